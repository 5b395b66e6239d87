// Package archive is Tapeward's on-tape archive format (layout v2): the
// pax stream filed writes (Writer: one member at a time, reporting each
// member's stream offsets and SHA-256), the pax global header that
// starts every tape file of a job (PartHeader), the continuation of a
// member cut at the end of a volume (Cut, in GNU tar's multi-volume
// form), a reader for one tape file (Reader) and the job's index tape
// file (IndexWriter, IndexReader, EncodeIndex, DecodeIndex).
//
// It imports only the standard library: no SCSI, catalog or network.
// README.md describes the bytes and the mt/dd/tar recipe for a disaster.
package archive
