package scsi

import (
	"encoding/binary"
	"fmt"
)

// ---- CDB builders (§6.2) ----

// ReadBlockLimitsCDB is `05 00 00 00 00 00`.
func ReadBlockLimitsCDB() []byte { return []byte{OpReadBlockLimits, 0, 0, 0, 0, 0} }

func put24(b []byte, v uint32) { b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v) }

// Read6CDB builds READ(6) in variable-block mode (FIXED=0), length in bytes.
func Read6CDB(length uint32, sili bool) []byte {
	c := []byte{OpRead6, 0, 0, 0, 0, 0}
	if sili {
		c[1] = 0x02
	}
	put24(c[2:5], length)
	return c
}

// Write6CDB builds WRITE(6) in variable-block mode, length in bytes.
func Write6CDB(length uint32) []byte {
	c := []byte{OpWrite6, 0, 0, 0, 0, 0}
	put24(c[2:5], length)
	return c
}

// WriteFilemarks6CDB builds WRITE FILEMARKS(6).
func WriteFilemarks6CDB(count uint32, immed bool) []byte {
	c := []byte{OpWriteFilemarks6, 0, 0, 0, 0, 0}
	if immed {
		c[1] = 1
	}
	put24(c[2:5], count)
	return c
}

// SpaceCode selects what SPACE counts (§6.2).
type SpaceCode byte

const (
	SpaceBlocks          SpaceCode = 0
	SpaceFilemarks       SpaceCode = 1
	SpaceSeqFilemarks    SpaceCode = 2
	SpaceEndOfData       SpaceCode = 3
	space6Min, space6Max           = -(1 << 23), 1<<23 - 1
)

func (c SpaceCode) String() string {
	switch c {
	case SpaceBlocks:
		return "blocks"
	case SpaceFilemarks:
		return "filemarks"
	case SpaceSeqFilemarks:
		return "sequential filemarks"
	case SpaceEndOfData:
		return "end of data"
	}
	return fmt.Sprintf("space code %d", byte(c))
}

// SpaceCDB builds SPACE(6) when count fits 24 bits signed, else SPACE(16).
// Negative counts move toward BOP.
func SpaceCDB(code SpaceCode, count int64) []byte {
	if count >= space6Min && count <= space6Max {
		c := []byte{OpSpace6, byte(code) & 0x0F, 0, 0, 0, 0}
		put24(c[2:5], uint32(count))
		return c
	}
	c := make([]byte, 16)
	c[0] = OpSpace16
	c[1] = byte(code) & 0x0F
	binary.BigEndian.PutUint64(c[4:12], uint64(count))
	return c
}

// RewindCDB builds REWIND.
func RewindCDB(immed bool) []byte {
	c := []byte{OpRewind, 0, 0, 0, 0, 0}
	if immed {
		c[1] = 1
	}
	return c
}

// LoadUnloadOpts are the LOAD UNLOAD flags.
type LoadUnloadOpts struct {
	Load, Immed, Hold, EOT, Reten bool
}

// LoadUnloadCDB builds LOAD UNLOAD.
func LoadUnloadCDB(o LoadUnloadOpts) []byte {
	c := []byte{OpLoadUnload, 0, 0, 0, 0, 0}
	if o.Immed {
		c[1] = 1
	}
	if o.Hold {
		c[4] |= 0x08
	}
	if o.EOT {
		c[4] |= 0x04
	}
	if o.Reten {
		c[4] |= 0x02
	}
	if o.Load {
		c[4] |= 0x01
	}
	return c
}

// ReadPositionLongCDB is `34 06 00 00 00 00 00 00 00 00` (long form;
// allocation length must be 0 for service action 06h).
func ReadPositionLongCDB() []byte {
	c := make([]byte, 10)
	c[0] = OpReadPosition
	c[1] = 0x06
	return c
}

// LocateDest is LOCATE(16)'s DEST_TYPE.
type LocateDest byte

const (
	LocateBlock LocateDest = 0 // logical object identifier (block number)
	LocateFile  LocateDest = 1 // logical file identifier (filemark count)
	LocateEOD   LocateDest = 3 // end of data
)

// Locate16CDB builds LOCATE(16). changePartition sets CP (partition used).
func Locate16CDB(dest LocateDest, id uint64, partition byte, changePartition, immed bool) []byte {
	c := make([]byte, 16)
	c[0] = OpLocate16
	c[1] = byte(dest&0x07) << 3
	if changePartition {
		c[1] |= 0x02
	}
	if immed {
		c[1] |= 0x01
	}
	c[3] = partition
	binary.BigEndian.PutUint64(c[4:12], id)
	return c
}

// ---- commands ----

// BlockLimits is the READ BLOCK LIMITS answer.
type BlockLimits struct {
	Granularity byte   `json:"granularity"`
	Max         uint32 `json:"max_block_length"`
	Min         uint16 `json:"min_block_length"`
}

// ParseBlockLimits decodes the 6-byte READ BLOCK LIMITS data.
func ParseBlockLimits(b []byte) (BlockLimits, error) {
	if len(b) < 6 {
		return BlockLimits{}, short("READ BLOCK LIMITS data", 6, len(b))
	}
	return BlockLimits{
		Granularity: b[0] & 0x1F,
		Max:         uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]),
		Min:         binary.BigEndian.Uint16(b[4:6]),
	}, nil
}

// ReadBlockLimits returns the drive's block size limits.
func (d *Device) ReadBlockLimits() (BlockLimits, error) {
	b, err := d.dataIn(ReadBlockLimitsCDB(), 6)
	if err != nil {
		return BlockLimits{}, err
	}
	l, err := ParseBlockLimits(b)
	if err != nil {
		return l, &CommandError{Addr: d.Addr(), Op: "READ BLOCK LIMITS", Err: err}
	}
	return l, nil
}

// MaxBlockLength is the largest block a variable-mode READ(6)/WRITE(6) can
// carry (a 24-bit transfer length).
const MaxBlockLength = 1<<24 - 1

// BlockSizeError says why no usable block size exists.
type BlockSizeError struct {
	Addr        string
	Configured  int
	Limits      BlockLimits
	MaxTransfer int
}

func (e *BlockSizeError) Error() string {
	return fmt.Sprintf("%s: no usable block size for the configured %d bytes: the drive accepts %d..%d (granularity 2^%d), the transport carries at most %d bytes per command; set block_size within those limits",
		e.Addr, e.Configured, e.Limits.Min, e.Limits.Max, e.Limits.Granularity, e.MaxTransfer)
}

// EffectiveBlockSize is the block size that is really written when
// `configured` bytes are asked for: lowered to the drive's READ BLOCK
// LIMITS maximum, to the transport's largest data phase (maxTransfer, 0 =
// unknown) and to the 24-bit READ/WRITE(6) length, then down to the
// drive's granularity. It fails when the result is below the drive's
// minimum. configured must be > 0.
func EffectiveBlockSize(configured int, lim BlockLimits, maxTransfer int) (int, error) {
	bad := &BlockSizeError{Configured: configured, Limits: lim, MaxTransfer: maxTransfer}
	if configured <= 0 {
		return 0, bad
	}
	bs := min(configured, MaxBlockLength)
	if lim.Max > 0 {
		bs = min(bs, int(lim.Max))
	}
	if maxTransfer > 0 {
		bs = min(bs, maxTransfer)
	}
	if g := 1 << lim.Granularity; g > 1 {
		bs -= bs % g
	}
	if bs <= 0 || bs < int(lim.Min) {
		return 0, bad
	}
	return bs, nil
}

// EffectiveBlockSize asks the drive (READ BLOCK LIMITS) and the transport
// (MaxTransfer) and returns the block size a session configured for
// `configured` bytes really writes; the volume label must record this
// size, not the configured one.
func (d *Device) EffectiveBlockSize(configured int) (int, error) {
	lim, err := d.ReadBlockLimits()
	if err != nil {
		return 0, fmt.Errorf("%s: reading block limits: %w", d.Addr(), err)
	}
	bs, err := EffectiveBlockSize(configured, lim, d.MaxTransfer())
	if e, ok := err.(*BlockSizeError); ok {
		e.Addr = d.Addr()
	}
	return bs, err
}

// MaxTransfer is the transport's largest data phase in bytes (0: unknown).
func (d *Device) MaxTransfer() int { return MaxTransfer(d.T) }

// checkTransfer refuses a data phase the transport cannot carry, before
// anything is sent (SG_IO would fail with ENOMEM).
func (d *Device) checkTransfer(op string, n int) error {
	if mt := d.MaxTransfer(); mt > 0 && n > mt {
		return &CommandError{Addr: d.Addr(), Op: op, Err: fmt.Errorf("%d bytes exceed the transport's limit of %d bytes per command (use EffectiveBlockSize)", n, mt)}
	}
	return nil
}

// ReadResult is the outcome of one variable-mode READ(6). Filemark, EOD,
// short and long blocks are values, not errors.
type ReadResult struct {
	// N is the number of bytes placed in the buffer.
	N int `json:"n"`
	// BlockLen is the length of the block on tape when known (equal to N,
	// or larger when Overlength).
	BlockLen int `json:"block_length"`
	// Short: the block was shorter than the buffer (reported through ILI
	// when SILI=0, through the residual when SILI=1).
	Short bool `json:"short,omitempty"`
	// Overlength: the block was longer than the buffer; only len(buf)
	// bytes were transferred and the rest of the block is lost. The
	// position is after the block.
	Overlength bool `json:"overlength,omitempty"`
	// Filemark: a filemark was read instead of a block (N = 0); the
	// position is after it.
	Filemark bool `json:"filemark,omitempty"`
	// EOD: end of data (BLANK CHECK) was reached (N = 0).
	EOD bool `json:"eod,omitempty"`
	// EOM: the drive reported EOM (past early warning).
	EOM bool `json:"eom,omitempty"`
}

// Read reads one variable-length block into buf (READ(6), FIXED=0). With
// sili, an under-length block completes GOOD and the size comes from the
// residual; without it the drive reports ILI and the size comes from the
// sense INFORMATION. Errors are real failures (medium error, decryption
// error 07/74/xx, no medium …).
func (d *Device) Read(buf []byte, sili bool) (ReadResult, error) {
	if len(buf) == 0 || len(buf) > 0xFFFFFF {
		return ReadResult{}, fmt.Errorf("READ(6): buffer of %d bytes (need 1..16777215)", len(buf))
	}
	if err := d.checkTransfer("READ(6)", len(buf)); err != nil {
		return ReadResult{}, err
	}
	cmd := &Command{CDB: Read6CDB(uint32(len(buf)), sili), Dir: DirFromDevice, Data: buf}
	res, s, err := d.Run(cmd)
	if err != nil {
		return ReadResult{}, err
	}
	n := res.Transferred(cmd)
	if s == nil {
		r := ReadResult{N: n, BlockLen: n, Short: n < len(buf)}
		return r, nil
	}
	return readOutcome(s, len(buf), n, func() error { return d.cmdErr(cmd, s) })
}

// readOutcome interprets the sense of a READ(6) of `req` bytes of which
// `xfer` arrived (by the residual).
func readOutcome(s *Sense, req, xfer int, fail func() error) (ReadResult, error) {
	r := ReadResult{EOM: s.EOM}
	switch {
	case s.Key == SenseBlankCheck:
		r.EOD = true
		return r, nil
	case s.Key == SenseNoSense && (s.Filemark || s.Code() == ASCFilemarkDetected):
		r.Filemark = true
		return r, nil
	case (s.Key == SenseNoSense || s.Key == SenseRecoveredError) && s.ILI:
		if s.Valid {
			actual := int64(req) - s.Information
			if s.Information < 0 {
				r.Overlength = true
				r.N = req
				r.BlockLen = int(actual)
			} else {
				r.Short = true
				r.N = int(max(actual, 0))
				r.BlockLen = r.N
			}
		} else {
			// No INFORMATION: trust the residual.
			r.N = xfer
			r.BlockLen = xfer
			r.Short = xfer < req
		}
		return r, nil
	case s.Key == SenseNoSense || s.Key == SenseRecoveredError:
		// e.g. early warning on read (REW) or a recovered error: data is good.
		r.N = xfer
		r.BlockLen = xfer
		r.Short = xfer < req
		return r, nil
	}
	return ReadResult{}, fail()
}

// WriteResult is the outcome of a WRITE or WRITE FILEMARKS that succeeded.
type WriteResult struct {
	// EarlyWarning: the data was written, and the drive is past early
	// warning (00/00/02, EOM) or programmable early warning (00/00/07).
	// Finish the current unit of work and change volumes.
	EarlyWarning bool `json:"early_warning,omitempty"`
	Programmable bool `json:"programmable_early_warning,omitempty"`
}

func writeOutcome(s *Sense, fail func() error) (WriteResult, error) {
	if s.Key == SenseNoSense || s.Key == SenseRecoveredError {
		switch {
		case s.Code() == ASCProgrammableEarlyWarning:
			return WriteResult{EarlyWarning: true, Programmable: true}, nil
		case s.EOM || s.Code() == ASCEndOfPartitionDetected:
			return WriteResult{EarlyWarning: true}, nil
		}
		if !s.Deferred {
			return WriteResult{}, nil
		}
	}
	return WriteResult{}, fail()
}

// Write writes one variable-length block (WRITE(6), FIXED=0). Volume
// overflow (IsVolumeOverflow: nothing written), write protect and
// encryption refusals are errors; early warning is a value.
func (d *Device) Write(block []byte) (WriteResult, error) {
	if len(block) == 0 || len(block) > 0xFFFFFF {
		return WriteResult{}, fmt.Errorf("WRITE(6): block of %d bytes (need 1..16777215)", len(block))
	}
	if err := d.checkTransfer("WRITE(6)", len(block)); err != nil {
		return WriteResult{}, err
	}
	cmd := &Command{CDB: Write6CDB(uint32(len(block))), Dir: DirToDevice, Data: block}
	_, s, err := d.Run(cmd)
	if err != nil {
		return WriteResult{}, err
	}
	if s == nil {
		return WriteResult{}, nil
	}
	return writeOutcome(s, func() error { return d.cmdErr(cmd, s) })
}

// WriteFilemarks writes count filemarks; count 0 with immed false flushes
// the drive buffer.
func (d *Device) WriteFilemarks(count uint32, immed bool) (WriteResult, error) {
	if count > 0xFFFFFF {
		return WriteResult{}, fmt.Errorf("WRITE FILEMARKS(6): count %d too large", count)
	}
	cmd := &Command{CDB: WriteFilemarks6CDB(count, immed), Dir: DirNone}
	_, s, err := d.Run(cmd)
	if err != nil {
		return WriteResult{}, err
	}
	if s == nil {
		return WriteResult{}, nil
	}
	return writeOutcome(s, func() error { return d.cmdErr(cmd, s) })
}

// Flush writes buffered data to tape (WRITE FILEMARKS with count 0).
func (d *Device) Flush() error {
	_, err := d.WriteFilemarks(0, false)
	return err
}

// SpaceResult is the outcome of SPACE. A stop at a filemark, EOD or BOP is
// a value; Residual is how many of the requested objects were not spaced.
type SpaceResult struct {
	Residual int64 `json:"residual"`
	Filemark bool  `json:"filemark,omitempty"`
	EOD      bool  `json:"eod,omitempty"`
	BOP      bool  `json:"bop,omitempty"`
	EOM      bool  `json:"eom,omitempty"`
}

// Space moves over blocks or filemarks (negative count: toward BOP), or to
// end of data (code SpaceEndOfData, count ignored).
func (d *Device) Space(code SpaceCode, count int64) (SpaceResult, error) {
	if code == SpaceEndOfData {
		count = 0
	}
	cmd := &Command{CDB: SpaceCDB(code, count), Dir: DirNone}
	_, s, err := d.Run(cmd)
	if err != nil || s == nil {
		return SpaceResult{}, err
	}
	r := SpaceResult{EOM: s.EOM}
	if s.Valid {
		r.Residual = s.Information
		if r.Residual < 0 {
			r.Residual = -r.Residual // decode as a magnitude (§6.2)
		}
	}
	switch {
	case s.Key == SenseBlankCheck:
		r.EOD = true
		return r, nil
	case s.Key == SenseNoSense && (s.Filemark || s.Code() == ASCFilemarkDetected):
		r.Filemark = true
		return r, nil
	case s.Key == SenseNoSense && s.Code() == ASCBeginningOfPartition:
		r.BOP = true
		return r, nil
	case s.Key == SenseNoSense || s.Key == SenseRecoveredError:
		return r, nil
	}
	return SpaceResult{}, d.cmdErr(cmd, s)
}

// Rewind rewinds to BOP.
func (d *Device) Rewind(immed bool) error { return d.noData(RewindCDB(immed)) }

// LoadUnload sends LOAD UNLOAD with the given flags.
func (d *Device) LoadUnload(o LoadUnloadOpts) error { return d.noData(LoadUnloadCDB(o)) }

// Load threads the cartridge and positions at BOP.
func (d *Device) Load() error { return d.LoadUnload(LoadUnloadOpts{Load: true}) }

// Unload rewinds and ejects the cartridge so that the changer can pick it.
func (d *Device) Unload() error { return d.LoadUnload(LoadUnloadOpts{}) }

// Position is the READ POSITION long form (§6.2).
type Position struct {
	BOP       bool   `json:"bop"`
	EOP       bool   `json:"eop"`
	MPU       bool   `json:"mark_position_unknown,omitempty"`
	LONU      bool   `json:"object_number_unknown,omitempty"`
	BPEW      bool   `json:"beyond_programmable_early_warning,omitempty"`
	Partition uint32 `json:"partition"`
	// Block is the logical object number: blocks + filemarks from BOP.
	Block uint64 `json:"block"`
	// File is the number of filemarks between BOP and the position.
	File uint64 `json:"file"`
}

func (p Position) String() string {
	s := fmt.Sprintf("partition %d, block %d, file %d", p.Partition, p.Block, p.File)
	if p.BOP {
		s += ", BOP"
	}
	if p.EOP {
		s += ", EOP"
	}
	if p.LONU {
		s += ", position unknown"
	}
	return s
}

// ParsePositionLong decodes the 32-byte READ POSITION long form.
func ParsePositionLong(b []byte) (Position, error) {
	if len(b) < 32 {
		return Position{}, short("READ POSITION long form", 32, len(b))
	}
	return Position{
		BOP:       b[0]&0x80 != 0,
		EOP:       b[0]&0x40 != 0,
		MPU:       b[0]&0x08 != 0,
		LONU:      b[0]&0x04 != 0,
		BPEW:      b[0]&0x01 != 0,
		Partition: binary.BigEndian.Uint32(b[4:8]),
		Block:     binary.BigEndian.Uint64(b[8:16]),
		File:      binary.BigEndian.Uint64(b[16:24]),
	}, nil
}

// ReadPosition returns the current position (long form).
func (d *Device) ReadPosition() (Position, error) {
	b, err := d.dataIn(ReadPositionLongCDB(), 32)
	if err != nil {
		return Position{}, err
	}
	p, err := ParsePositionLong(b)
	if err != nil {
		return p, &CommandError{Addr: d.Addr(), Op: "READ POSITION", Err: err}
	}
	return p, nil
}

// Locate positions with LOCATE(16) on the current partition. LocateFile
// differs by one between IBM and HP drives (§6.2); callers verify with
// ReadPosition.
func (d *Device) Locate(dest LocateDest, id uint64) error {
	return d.noData(Locate16CDB(dest, id, 0, false, false))
}
