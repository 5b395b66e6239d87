// Package cart is vtl's cartridge store: one file per virtual LTO cartridge,
// holding the logical objects (blocks and filemarks) written to it, with
// per-record checksums so that a torn tail after a crash is detected and cut
// off at the next load instead of being misread.
//
// File layout (all integers big-endian; the format is documented in
// tools/vtl/README.md):
//
//	file header (64 bytes)
//	  0  [8]  magic "TWVTLCRT"
//	  8  u16  format version (1)
//	  10 u8   density code (0x5A = LTO-6)
//	  11 u8   flags (b0 write protected)
//	  12 u64  capacity in bytes (record bytes after the header)
//	  20 [32] barcode, space padded
//	  52 i64  creation time (unix seconds)
//	  60 u32  CRC-32C of bytes 0..59
//	records, back to back, until end of file (= end of data)
//	  0  [2]  magic "TR"
//	  2  u8   kind (1 logical block, 2 filemark)
//	  3  u8   flags (b0 encrypted, b1 not raw-readable (RDMDS), b2 written EXTERNAL)
//	  4  u8   KAD format
//	  5  u8   U-KAD length
//	  6  u8   A-KAD length
//	  7  u8   reserved (0)
//	  8  u32  payload length (bytes stored: ciphertext+tag when encrypted)
//	  12 u32  logical length (bytes the host wrote)
//	  16 [16] key fingerprint (tools/lib/keys, ASCII hex; zero when clear)
//	  32 [12] AES-GCM nonce (zero when clear)
//	  44 u32  CRC-32C of bytes 0..43 and the KADs
//	  48      U-KAD, A-KAD, payload
//	  ..  u32 CRC-32C of the payload
package cart

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes of the fixed parts of the format.
const (
	HeaderSize    = 64
	RecHeaderSize = 48
	RecTrailer    = 4
	Version       = 1
	// MaxPayload bounds one record's payload (8 MiB block + GCM overhead).
	MaxPayload = 8<<20 + 64
	// MaxKAD bounds one KAD (U-KAD or A-KAD) in a record.
	MaxKAD = 255
	// TailCheck is how far back from the end of the file Open verifies
	// payload checksums (a torn write can only affect the tail); records
	// before it are verified when they are read.
	TailCheck = 16 << 20
)

// skipSeek: Open skips a payload at least this long (and not already
// buffered) by repositioning its reader; shorter ones are read past.
const skipSeek = 64 << 10

const (
	fileMagic = "TWVTLCRT"
	recMagic  = "TR"
)

// Record kinds.
const (
	KindBlock    = 1
	KindFilemark = 2
)

// Record flags.
const (
	FlagEncrypted      = 1 << 0
	FlagNotRawReadable = 1 << 1
	FlagExternal       = 1 << 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a cartridge file that cannot be trusted (bad header, or
// a damaged record followed by more data).
var ErrCorrupt = errors.New("cartridge file is corrupt")

// ErrChecksum reports a record whose payload checksum does not match on read.
var ErrChecksum = errors.New("record payload checksum mismatch")

// Header is the decoded file header.
type Header struct {
	Density        byte
	WriteProtected bool
	Capacity       int64
	Barcode        string
	Created        time.Time
}

// Entry is the in-memory index of one logical object.
type Entry struct {
	Off      int64  // file offset of the record
	PayLen   uint32 // stored payload bytes
	PlainLen uint32 // logical block length
	Kind     uint8
	Flags    uint8
	KADLen   uint16 // U-KAD + A-KAD bytes
}

// Size is the record's size in the file.
func (e Entry) Size() int64 {
	return RecHeaderSize + int64(e.KADLen) + int64(e.PayLen) + RecTrailer
}

// Meta describes one block record (everything but the payload).
type Meta struct {
	Flags       uint8
	KADFormat   byte
	UKAD, AKAD  []byte
	Fingerprint [16]byte
	Nonce       [12]byte
	PlainLen    int
}

// Repair says what Open had to cut off.
type Repair struct {
	At        int64 // file offset where the file was truncated
	Truncated int64 // bytes removed
	Reason    string
}

// Cartridge is an open cartridge file. It is not safe for concurrent use;
// the drive holding it serializes access.
type Cartridge struct {
	path    string
	f       *os.File
	hdr     Header
	entries []Entry
	fms     []int64 // positions of filemarks, ascending
	nEnc    int     // encrypted blocks on the medium
	end     int64   // file offset of end of data
	// pend holds appended bytes not yet written to the file (small records
	// and the headers of large ones); large payloads go out with writev
	// straight from the caller's buffer.
	pend []byte
	wfd  int
	// werr is a sticky write error: after a failed write the index no
	// longer matches the file, so the cartridge refuses further I/O until
	// it is reopened (Open rescans and cuts off whatever was torn).
	werr error
	rec  [RecHeaderSize + 2*MaxKAD]byte
}

// Create makes a new, blank cartridge file. It fails if path exists.
func Create(path, barcode string, density byte, capacity int64) error {
	if len(barcode) > 32 {
		return fmt.Errorf("barcode %q longer than 32 bytes", barcode)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := EncodeHeader(Header{Density: density, Capacity: capacity, Barcode: barcode, Created: time.Now()})
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// EncodeHeader returns the 64-byte file header.
func EncodeHeader(h Header) [HeaderSize]byte {
	var b [HeaderSize]byte
	copy(b[0:8], fileMagic)
	binary.BigEndian.PutUint16(b[8:], Version)
	b[10] = h.Density
	if h.WriteProtected {
		b[11] = 1
	}
	binary.BigEndian.PutUint64(b[12:], uint64(h.Capacity))
	for i := range 32 {
		b[20+i] = ' '
	}
	copy(b[20:52], h.Barcode)
	binary.BigEndian.PutUint64(b[52:], uint64(h.Created.Unix()))
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// DecodeHeader parses and verifies a file header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrCorrupt, len(b), HeaderSize)
	}
	if string(b[0:8]) != fileMagic {
		return Header{}, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[0:8])
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.BigEndian.Uint32(b[60:]) {
		return Header{}, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != Version {
		return Header{}, fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, v)
	}
	capacity := int64(binary.BigEndian.Uint64(b[12:]))
	if capacity <= 0 {
		return Header{}, fmt.Errorf("%w: capacity %d", ErrCorrupt, capacity)
	}
	bc := b[20:52]
	n := len(bc)
	for n > 0 && (bc[n-1] == ' ' || bc[n-1] == 0) {
		n--
	}
	return Header{
		Density:        b[10],
		WriteProtected: b[11]&1 != 0,
		Capacity:       capacity,
		Barcode:        string(bc[:n]),
		Created:        time.Unix(int64(binary.BigEndian.Uint64(b[52:])), 0),
	}, nil
}

// EncodeRecordHeader fills dst (RecHeaderSize + KADs) for a record and
// returns the used prefix.
func EncodeRecordHeader(dst []byte, kind uint8, m *Meta, payLen int) []byte {
	b := dst[:RecHeaderSize]
	clear(b)
	copy(b[0:2], recMagic)
	b[2] = kind
	if m != nil {
		b[3] = m.Flags
		b[4] = m.KADFormat
		b[5] = byte(len(m.UKAD))
		b[6] = byte(len(m.AKAD))
		binary.BigEndian.PutUint32(b[12:], uint32(m.PlainLen))
		copy(b[16:32], m.Fingerprint[:])
		copy(b[32:44], m.Nonce[:])
		b = append(b, m.UKAD...)
		b = append(b, m.AKAD...)
	}
	binary.BigEndian.PutUint32(b[8:], uint32(payLen))
	crc := crc32.Checksum(b[:44], castagnoli)
	crc = crc32.Update(crc, castagnoli, b[RecHeaderSize:])
	binary.BigEndian.PutUint32(b[44:], crc)
	return b
}

// parseRecordHeader checks a record header (b holds at least the header and
// its KADs when kadOK) and returns its entry.
func parseRecordHeader(b []byte) (Entry, error) {
	if string(b[0:2]) != recMagic {
		return Entry{}, fmt.Errorf("bad record magic %q", b[0:2])
	}
	e := Entry{
		Kind:     b[2],
		Flags:    b[3],
		KADLen:   uint16(b[5]) + uint16(b[6]),
		PayLen:   binary.BigEndian.Uint32(b[8:]),
		PlainLen: binary.BigEndian.Uint32(b[12:]),
	}
	if e.Kind != KindBlock && e.Kind != KindFilemark {
		return Entry{}, fmt.Errorf("bad record kind %d", e.Kind)
	}
	if e.PayLen > MaxPayload || e.PlainLen > MaxPayload {
		return Entry{}, fmt.Errorf("record length %d out of range", e.PayLen)
	}
	if e.Kind == KindFilemark && (e.PayLen != 0 || e.KADLen != 0) {
		return Entry{}, fmt.Errorf("filemark record with a payload")
	}
	return e, nil
}

func checkRecordHeaderCRC(b []byte, kadLen int) bool {
	crc := crc32.Checksum(b[:44], castagnoli)
	crc = crc32.Update(crc, castagnoli, b[RecHeaderSize:RecHeaderSize+kadLen])
	return crc == binary.BigEndian.Uint32(b[44:])
}

// Open opens a cartridge file, rebuilds its index and cuts off a torn tail.
// A damaged header, or a damaged record followed by data beyond the
// largest possible record, is reported as ErrCorrupt.
func Open(path string) (*Cartridge, *Repair, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	c, rep, err := load(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	c.path = path
	return c, rep, nil
}

func load(f *os.File) (*Cartridge, *Repair, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	var hb [HeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return nil, nil, fmt.Errorf("%w: reading header: %v", ErrCorrupt, err)
	}
	hdr, err := DecodeHeader(hb[:])
	if err != nil {
		return nil, nil, err
	}
	c := &Cartridge{f: f, hdr: hdr}
	from := func(o int64) io.Reader { return io.NewSectionReader(f, o, size-o) }
	// seq reads runs of records; hop reads the header after a payload
	// skipped by repositioning (a few KiB, not a whole buffer).
	seq := bufio.NewReaderSize(from(HeaderSize), 64<<10)
	hop := bufio.NewReaderSize(nil, 4<<10)
	br := seq
	off := int64(HeaderSize)
	var rb [RecHeaderSize + 2*MaxKAD]byte
	var payBuf []byte
	var rep *Repair
	torn := func(reason string) {
		rep = &Repair{At: off, Truncated: size - off, Reason: reason}
	}
	for off < size {
		if size-off < RecHeaderSize+RecTrailer {
			torn("incomplete record header")
			break
		}
		if _, err := io.ReadFull(br, rb[:RecHeaderSize]); err != nil {
			return nil, nil, err
		}
		e, perr := parseRecordHeader(rb[:])
		bad := perr != nil
		if !bad {
			if _, err := io.ReadFull(br, rb[RecHeaderSize:RecHeaderSize+int(e.KADLen)]); err != nil && size-off >= e.Size() {
				return nil, nil, err
			}
			bad = !checkRecordHeaderCRC(rb[:], int(e.KADLen))
			if !bad && off+e.Size() > size {
				torn("record extends past end of file")
				break
			}
		}
		if bad {
			// A damaged header close to the end is a torn write; further
			// inside the file it is corruption we must not paper over.
			if size-off <= RecHeaderSize+2*MaxKAD+MaxPayload+RecTrailer {
				torn("damaged record header")
				break
			}
			reason := "header checksum mismatch"
			if perr != nil {
				reason = perr.Error()
			}
			return nil, nil, fmt.Errorf("%w: record at offset %d: %s", ErrCorrupt, off, reason)
		}
		e.Off = off
		rest := int64(e.PayLen) + RecTrailer
		if size-off <= TailCheck+e.Size() {
			if cap(payBuf) < int(rest) {
				payBuf = make([]byte, rest)
			}
			p := payBuf[:rest]
			if _, err := io.ReadFull(br, p); err != nil {
				return nil, nil, err
			}
			if crc32.Checksum(p[:e.PayLen], castagnoli) != binary.BigEndian.Uint32(p[e.PayLen:]) {
				torn("payload checksum mismatch in the tail")
				break
			}
		} else if rest > int64(br.Buffered()) && rest >= skipSeek {
			// Reposition instead of reading the payload through the
			// buffer: a load reads record headers, not the tape's data
			// (512 MiB of 256 KiB blocks: 2,048 reads of 4 KiB instead
			// of 512 MiB of copying).
			hop.Reset(from(off + e.Size()))
			br = hop
		} else {
			if _, err := br.Discard(int(rest)); err != nil {
				return nil, nil, err
			}
			if br == hop {
				// A short record after a skip (hop buffers less than
				// skipSeek): back to buffering more per read.
				seq.Reset(from(off + e.Size()))
				br = seq
			}
		}
		if e.Kind == KindFilemark {
			c.fms = append(c.fms, int64(len(c.entries)))
		} else if e.Flags&FlagEncrypted != 0 {
			c.nEnc++
		}
		c.entries = append(c.entries, e)
		off += e.Size()
	}
	if rep != nil {
		if err := f.Truncate(off); err != nil {
			return nil, nil, fmt.Errorf("truncating torn tail: %w", err)
		}
	}
	c.end = off
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, nil, err
	}
	c.pend = make([]byte, 0, pendSize)
	c.wfd = int(f.Fd())
	return c, rep, nil
}

// Header returns the cartridge's file header.
func (c *Cartridge) Header() Header { return c.hdr }

// Path returns the file path.
func (c *Cartridge) Path() string { return c.path }

// EOD is the logical object number of end of data (objects on the medium).
func (c *Cartridge) EOD() int64 { return int64(len(c.entries)) }

// Entry returns the index entry of object i (0 <= i < EOD).
func (c *Cartridge) Entry(i int64) Entry { return c.entries[i] }

// Used is the number of record bytes on the medium.
func (c *Cartridge) Used() int64 { return c.end - HeaderSize }

// EncryptedBlocks is the number of encrypted blocks on the medium.
func (c *Cartridge) EncryptedBlocks() int { return c.nEnc }

// Filemarks is the number of filemarks on the medium.
func (c *Cartridge) Filemarks() int64 { return int64(len(c.fms)) }

// FilemarksBefore counts filemarks at positions < pos.
func (c *Cartridge) FilemarksBefore(pos int64) int64 {
	return int64(sort.Search(len(c.fms), func(i int) bool { return c.fms[i] >= pos }))
}

// FilemarkAt returns the position of the n-th filemark (0-based).
func (c *Cartridge) FilemarkAt(n int64) int64 { return c.fms[n] }

// RecordSize is the file size of a block record.
func RecordSize(kadLen, payLen int) int64 {
	return RecHeaderSize + int64(kadLen) + int64(payLen) + RecTrailer
}

// Truncate makes pos the new end of data (tape semantics: writing at pos
// erases everything after it).
func (c *Cartridge) Truncate(pos int64) error {
	if pos >= int64(len(c.entries)) {
		return nil
	}
	if err := c.Flush(); err != nil {
		return err
	}
	off := c.entries[pos].Off
	for _, e := range c.entries[pos:] {
		if e.Flags&FlagEncrypted != 0 && e.Kind == KindBlock {
			c.nEnc--
		}
	}
	c.entries = c.entries[:pos]
	c.fms = c.fms[:c.FilemarksBefore(pos)]
	if err := c.f.Truncate(off); err != nil {
		return err
	}
	if _, err := c.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	c.end = off
	return nil
}

// AppendFilemark writes a filemark at end of data.
func (c *Cartridge) AppendFilemark() error {
	if c.werr != nil {
		return c.werr
	}
	b := EncodeRecordHeader(c.rec[:], KindFilemark, nil, 0)
	c.pend = append(c.pend, b...)
	c.pend = append(c.pend, 0, 0, 0, 0) // CRC-32C of an empty payload is 0
	if len(c.pend) >= pendSize {
		if err := c.Flush(); err != nil {
			return err
		}
	}
	c.fms = append(c.fms, int64(len(c.entries)))
	c.entries = append(c.entries, Entry{Off: c.end, Kind: KindFilemark})
	c.end += RecHeaderSize + RecTrailer
	return nil
}

// AppendBlock writes a block record at end of data. payload is what is
// stored (ciphertext and tag when m.Flags has FlagEncrypted).
func (c *Cartridge) AppendBlock(m *Meta, payload []byte) error {
	if len(payload) > MaxPayload || len(m.UKAD) > MaxKAD || len(m.AKAD) > MaxKAD {
		return fmt.Errorf("record too large")
	}
	if c.werr != nil {
		return c.werr
	}
	b := EncodeRecordHeader(c.rec[:], KindBlock, m, len(payload))
	var tr [RecTrailer]byte
	binary.BigEndian.PutUint32(tr[:], crc32.Checksum(payload, castagnoli))
	c.pend = append(c.pend, b...)
	if len(payload) < directSize {
		c.pend = append(c.pend, payload...)
		c.pend = append(c.pend, tr[:]...)
		if len(c.pend) >= pendSize {
			if err := c.Flush(); err != nil {
				return err
			}
		}
	} else {
		// One writev: pending bytes + this header, the payload in place,
		// the trailer.
		if err := writeAll(c.wfd, [][]byte{c.pend, payload, tr[:]}); err != nil {
			c.werr = fmt.Errorf("cartridge write failed: %w", err)
			return c.werr
		}
		c.pend = c.pend[:0]
	}
	e := Entry{Off: c.end, Kind: KindBlock, Flags: m.Flags, KADLen: uint16(len(m.UKAD) + len(m.AKAD)),
		PayLen: uint32(len(payload)), PlainLen: uint32(m.PlainLen)}
	c.entries = append(c.entries, e)
	if m.Flags&FlagEncrypted != 0 {
		c.nEnc++
	}
	c.end += e.Size()
	return nil
}

// Flush writes buffered records to the file (no fsync).
func (c *Cartridge) Flush() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.pend) == 0 {
		return nil
	}
	err := writeAll(c.wfd, [][]byte{c.pend})
	c.pend = c.pend[:0]
	if err != nil {
		c.werr = fmt.Errorf("cartridge write failed: %w", err)
		return c.werr
	}
	return nil
}

const (
	pendSize   = 256 << 10 // flush pending small records at this size
	directSize = 64 << 10  // payloads this large are written in place
)

// writeAll writes the buffers with writev(2) at the file's offset,
// resuming after short writes.
func writeAll(fd int, bufs [][]byte) error {
	for len(bufs) > 0 {
		if len(bufs[0]) == 0 {
			bufs = bufs[1:]
			continue
		}
		n, err := unix.Writev(fd, bufs)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
	}
	return nil
}

// Sync flushes and fsyncs.
func (c *Cartridge) Sync() error {
	if err := c.Flush(); err != nil {
		return err
	}
	return c.f.Sync()
}

// Close flushes and closes the file.
func (c *Cartridge) Close() error {
	err := c.Sync()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadBlock reads block record i into buf (grown as needed) and returns
// its metadata and payload, both aliasing buf. The payload checksum is
// verified (ErrChecksum).
func (c *Cartridge) ReadBlock(i int64, buf *[]byte, m *Meta) ([]byte, error) {
	if i < 0 || i >= int64(len(c.entries)) {
		return nil, fmt.Errorf("object %d out of range", i)
	}
	e := c.entries[i]
	if e.Kind != KindBlock {
		return nil, fmt.Errorf("object %d is not a block", i)
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	n := int(e.Size())
	if cap(*buf) < n {
		*buf = make([]byte, n+n/8)
	}
	b := (*buf)[:n]
	if _, err := c.f.ReadAt(b, e.Off); err != nil {
		return nil, err
	}
	if _, err := parseRecordHeader(b); err != nil || !checkRecordHeaderCRC(b, int(e.KADLen)) {
		return nil, fmt.Errorf("%w: record %d header", ErrChecksum, i)
	}
	ul, al := m.decode(b, e)
	ps := RecHeaderSize + ul + al
	p := b[ps : ps+int(e.PayLen)]
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(b[ps+int(e.PayLen):]) {
		return nil, fmt.Errorf("%w: record %d", ErrChecksum, i)
	}
	return p, nil
}

// ReadMeta reads only the metadata of block i (for NBES); KAD slices alias
// buf.
func (c *Cartridge) ReadMeta(i int64, buf *[]byte, m *Meta) error {
	if i < 0 || i >= int64(len(c.entries)) || c.entries[i].Kind != KindBlock {
		return fmt.Errorf("object %d is not a block", i)
	}
	if err := c.Flush(); err != nil {
		return err
	}
	e := c.entries[i]
	n := RecHeaderSize + int(e.KADLen)
	if cap(*buf) < n {
		*buf = make([]byte, 4096)
	}
	b := (*buf)[:n]
	if _, err := c.f.ReadAt(b, e.Off); err != nil {
		return err
	}
	if !checkRecordHeaderCRC(b, int(e.KADLen)) {
		return fmt.Errorf("%w: record %d header", ErrChecksum, i)
	}
	m.decode(b, e)
	return nil
}

// decode fills m from a block's record header (and KADs) in b, whose CRC
// the caller checked; it returns the U-KAD and A-KAD lengths. The KAD
// slices alias b.
func (m *Meta) decode(b []byte, e Entry) (ul, al int) {
	ul, al = int(b[5]), int(b[6])
	m.Flags = b[3]
	m.KADFormat = b[4]
	m.UKAD = b[RecHeaderSize : RecHeaderSize+ul]
	m.AKAD = b[RecHeaderSize+ul : RecHeaderSize+ul+al]
	copy(m.Fingerprint[:], b[16:32])
	copy(m.Nonce[:], b[32:44])
	m.PlainLen = int(e.PlainLen)
	return ul, al
}

// PayloadOffset returns the file offset of block i's payload and its length
// (for tools and tests that inspect the file).
func (c *Cartridge) PayloadOffset(i int64) (int64, int) {
	e := c.entries[i]
	return e.Off + RecHeaderSize + int64(e.KADLen), int(e.PayLen)
}

// SetWriteProtect flips the write-protect tab of a cartridge that is not
// open (rewrites the file header and fsyncs).
func SetWriteProtect(path string, on bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var hb [HeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return fmt.Errorf("%w: reading header: %v", ErrCorrupt, err)
	}
	h, err := DecodeHeader(hb[:])
	if err != nil {
		return err
	}
	h.WriteProtected = on
	nb := EncodeHeader(h)
	copy(nb[52:60], hb[52:60]) // keep the creation time exactly
	binary.BigEndian.PutUint32(nb[60:], crc32.Checksum(nb[:60], castagnoli))
	if _, err := f.WriteAt(nb[:], 0); err != nil {
		return err
	}
	return f.Sync()
}
