package catalog

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tapeward/tapeward/tools/lib/bootstrap"
)

// BootstrapDump is what the director knows of the catalog dump it backed
// up: its path as backed up, the database dumped, and the size and
// SHA-256 it computed when the dump was made.
type BootstrapDump struct {
	Path     string
	Database string
	Size     int64
	SHA256   string // hex
}

// Bootstrap builds the bootstrap file of catalog job jobID, which ends (or
// ended) st, T or W,
// from its rows: its tape files grouped by volume in the job's order,
// each volume's barcode and current wrapped key, and the dump's file row
// (its exact address), which must agree with dump's size and SHA-256 (a
// dump changed between pg_dump and the backup is an error, not a
// bootstrap). It only reads.
func (s *Store) Bootstrap(ctx context.Context, jobID int64, st JobStatus, dump BootstrapDump) (*bootstrap.File, error) {
	j, err := s.GetJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if st != JobOK && st != JobWarnings || j.Status != JobRunning && j.Status != st {
		return nil, invalid(fmt.Sprintf("bootstrap of job %d", jobID), "the job ended %s; a bootstrap is written only for a job that ends T or W", j.Status)
	}
	jm, err := s.ListJobMedia(ctx, jobID)
	if err != nil {
		return nil, err
	}
	f := &bootstrap.File{Format: bootstrap.Format, Job: jobID, JobName: j.Name, Status: string(st), Written: s.nowUTC(),
		Dump: bootstrap.Dump{Path: dump.Path, Database: dump.Database, Size: dump.Size, SHA256: dump.SHA256}}
	for _, p := range jm {
		if p.LastBlock == nil || !p.Complete {
			return nil, invalid(fmt.Sprintf("bootstrap of job %d", jobID), "its part %d on volume %s (tape file %d) is not complete", p.Part, p.Volume, p.TapeFile)
		}
		v := f.Volume(p.Volume)
		if v == nil {
			f.Volumes = append(f.Volumes, bootstrap.Volume{Name: p.Volume, Sequence: len(f.Volumes) + 1,
				FirstFile: p.TapeFile, LastFile: p.TapeFile, FirstBlock: p.FirstBlock, LastBlock: *p.LastBlock})
			continue
		}
		v.FirstFile, v.LastFile = min(v.FirstFile, p.TapeFile), max(v.LastFile, p.TapeFile)
		v.FirstBlock, v.LastBlock = min(v.FirstBlock, p.FirstBlock), max(v.LastBlock, *p.LastBlock)
	}
	for i := range f.Volumes {
		v := &f.Volumes[i]
		m, err := s.GetMedia(ctx, v.Name)
		if err != nil {
			return nil, err
		}
		v.Barcode = m.Barcode
		if !m.Encrypted {
			continue
		}
		sk, err := s.VolumeKey(ctx, v.Name, m.Storage)
		if err != nil {
			return nil, err
		}
		v.Key = &bootstrap.Key{Stored: sk.Value, Scheme: string(sk.Scheme), KEKID: sk.KEKID, Fingerprint: sk.Fingerprint}
	}
	files, err := s.ListFiles(ctx, jobID)
	if err != nil {
		return nil, err
	}
	want := strings.TrimPrefix(dump.Path, "/")
	found := false
	for _, fr := range files {
		if strings.TrimPrefix(string(fr.Path), "/") != want || fr.Type != FileRegular {
			continue
		}
		found = true
		if fr.Size != dump.Size || !bytes.Equal(fr.SHA256, mustHex(dump.SHA256)) {
			return nil, invalid(fmt.Sprintf("bootstrap of job %d", jobID), "the backed-up %s is %d bytes, SHA-256 %s, but the dump made was %d bytes, SHA-256 %s: it changed before it was backed up; run the catalog job again", dump.Path, fr.Size, hex.EncodeToString(fr.SHA256), dump.Size, dump.SHA256)
		}
		f.Dump.At = bootstrap.Address{Volume: fr.At.Volume, File: fr.At.TapeFile, Block: fr.At.Block, Offset: int64(fr.At.Offset)}
	}
	if !found {
		return nil, invalid(fmt.Sprintf("bootstrap of job %d", jobID), "the job backed up no file %s (the catalog dump)", dump.Path)
	}
	if err := f.Validate(); err != nil {
		return nil, invalid(fmt.Sprintf("bootstrap of job %d", jobID), "%v", err)
	}
	return f, nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
