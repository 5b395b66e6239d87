package emu

import (
	"fmt"
	"strconv"
	"strings"
)

// Faults make one unit misbehave the way real devices and adapters were
// seen to (issue 9: storaged on Linux against tgt). The zero value is a
// faithful unit. Set them at start (Config.Faults, `vtl serve --fault`) or
// at run time (Library.SetFaults, the panel's "fault" op).
type Faults struct {
	// MaxTransfer (drives, changer): the largest data phase one command
	// may carry, as an adapter's queue limit does. New connections are
	// told the limit in the hello reply; a larger command is answered with
	// host status DID_ERROR and nothing is done. 0: vtlwire.MaxData.
	MaxTransfer int `json:"max_transfer,omitempty"`
	// MaxBlock (drives): the MAXIMUM BLOCK LENGTH of READ BLOCK LIMITS and
	// the largest block WRITE accepts. 0: MaxBlock (8 MiB).
	MaxBlock int `json:"max_block,omitempty"`
	// Position (drives): READ POSITION lies. "zero": block 0, file 0,
	// BOP clear, as tgt's stub answers; "stale": the position before the
	// last WRITE or WRITE FILEMARKS. "" answers truthfully.
	Position string `json:"position,omitempty"`
	// PositionPastEW (drives): lie only once the tape is past early
	// warning (drives that report oddly after EOM).
	PositionPastEW bool `json:"position_past_ew,omitempty"`
	// ShortElementStatus (changer): READ ELEMENT STATUS sends this many
	// bytes less than its own byte counts say (tgt sends 8 less).
	ShortElementStatus int `json:"short_element_status,omitempty"`
	// FlipRead (drives): flip one byte (XOR 0xFF) of the Nth data block
	// READ returns after the faults are set (1: the next block read),
	// once: bytes that went bad on their way to the host, which only the
	// host's digests can catch.
	FlipRead int `json:"flip_read,omitempty"`
	// FlipBlock (drives): flip one byte of every READ of the block at
	// this logical object address (as READ POSITION counts it). nil:
	// none.
	FlipBlock *int64 `json:"flip_block,omitempty"`
	// FlipOffset (drives): which byte of the block FlipRead and FlipBlock
	// flip (0: the first; past the block's end: its last).
	FlipOffset int `json:"flip_offset,omitempty"`
}

// String is the faults as `vtl fault` takes them ("none" for a faithful
// unit).
func (f Faults) String() string {
	var kv []string
	add := func(k string, v any) { kv = append(kv, fmt.Sprintf("%s=%v", k, v)) }
	if f.MaxTransfer != 0 {
		add("max_transfer", f.MaxTransfer)
	}
	if f.MaxBlock != 0 {
		add("max_block", f.MaxBlock)
	}
	if f.Position != "" {
		add("position", f.Position)
	}
	if f.PositionPastEW {
		add("position_past_ew", true)
	}
	if f.ShortElementStatus != 0 {
		add("short_element_status", f.ShortElementStatus)
	}
	if f.FlipRead != 0 {
		add("flip_read", f.FlipRead)
	}
	if f.FlipBlock != nil {
		add("flip_block", *f.FlipBlock)
	}
	if f.FlipOffset != 0 {
		add("flip_offset", f.FlipOffset)
	}
	if len(kv) == 0 {
		return "none"
	}
	return strings.Join(kv, ",")
}

// flips reports whether the block at pos, the n-th data block read since
// the faults were set, gets a byte flipped.
func (f Faults) flips(pos int64, n int) bool {
	return (f.FlipRead > 0 && n == f.FlipRead) || (f.FlipBlock != nil && *f.FlipBlock == pos)
}

func (f Faults) check(unit string) error {
	switch f.Position {
	case "", "zero", "stale":
	default:
		return fmt.Errorf("%s: position fault %q (have zero, stale)", unit, f.Position)
	}
	if f.MaxTransfer < 0 || f.MaxBlock < 0 || f.MaxBlock > MaxBlock || f.ShortElementStatus < 0 || f.FlipRead < 0 || f.FlipOffset < 0 || (f.FlipBlock != nil && *f.FlipBlock < 0) {
		return fmt.Errorf("%s: fault values out of range (max_block at most %d)", unit, MaxBlock)
	}
	isChanger := unit == "changer"
	if isChanger && (f.MaxBlock != 0 || f.Position != "" || f.PositionPastEW || f.FlipRead != 0 || f.FlipBlock != nil || f.FlipOffset != 0) {
		return fmt.Errorf("changer: max_block, position and flip faults apply to drives")
	}
	if !isChanger && f.ShortElementStatus != 0 {
		return fmt.Errorf("%s: short_element_status applies to the changer", unit)
	}
	return nil
}

// SetFaults replaces the faults of unit ("drive0", …, "changer").
func (lib *Library) SetFaults(unit string, f Faults) error {
	if err := f.check(unit); err != nil {
		return err
	}
	if unit == "changer" {
		lib.mu.Lock()
		lib.cfaults = f
		lib.mu.Unlock()
		return nil
	}
	d, err := lib.driveUnit(unit)
	if err != nil {
		return err
	}
	d.lock()
	d.faults, d.flipSeen = f, 0
	d.mu.Unlock()
	return nil
}

// UnitFaults returns the faults of unit.
func (lib *Library) UnitFaults(unit string) (Faults, error) {
	if unit == "changer" {
		lib.mu.Lock()
		defer lib.mu.Unlock()
		return lib.cfaults, nil
	}
	d, err := lib.driveUnit(unit)
	if err != nil {
		return Faults{}, err
	}
	d.mu.Lock() // a read: a read-ahead stays good
	defer d.mu.Unlock()
	return d.faults, nil
}

func (lib *Library) driveUnit(unit string) (*Drive, error) {
	n, ok := strings.CutPrefix(unit, "drive")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 || i >= len(lib.drives) || strconv.Itoa(i) != n {
		return nil, fmt.Errorf("no unit %q (have drive0..drive%d, changer)", unit, len(lib.drives)-1)
	}
	return lib.drives[i], nil
}

// maxTransfer is the unit's data phase limit (0: none beyond the wire's).
func (lib *Library) maxTransfer(unit string) int {
	f, err := lib.UnitFaults(unit)
	if err != nil {
		return 0
	}
	return f.MaxTransfer
}

// maxBlock is the drive's largest block; caller holds d.mu.
func (d *Drive) maxBlock() int {
	if d.faults.MaxBlock > 0 {
		return d.faults.MaxBlock
	}
	return MaxBlock
}

// ParseFaults parses the --fault flag: "UNIT:KEY=VALUE[,KEY=VALUE…]", e.g.
// "drive0:max_transfer=1048576,position=zero", "changer:short_element_status=8",
// "drive0:flip_read=2,flip_offset=700".
// "UNIT:none" is a faithful unit. Sizes accept the suffixes of --capacity.
func ParseFaults(s string, size func(string) (int64, error)) (string, Faults, error) {
	unit, rest, ok := strings.Cut(s, ":")
	var f Faults
	if !ok || unit == "" {
		return "", f, fmt.Errorf("--fault %q: want UNIT:KEY=VALUE[,…]", s)
	}
	if rest == "none" {
		return unit, f, f.check(unit)
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return "", f, fmt.Errorf("--fault %q: %q is not KEY=VALUE", s, kv)
		}
		num := func() (int, error) {
			n, err := size(v)
			if err != nil || n > 1<<31 {
				return 0, fmt.Errorf("--fault %q: bad %s %q", s, k, v)
			}
			return int(n), nil
		}
		var err error
		switch k {
		case "max_transfer":
			f.MaxTransfer, err = num()
		case "max_block":
			f.MaxBlock, err = num()
		case "short_element_status":
			f.ShortElementStatus, err = strconv.Atoi(v)
		case "position":
			f.Position = v
		case "position_past_ew":
			f.PositionPastEW, err = strconv.ParseBool(v)
		case "flip_read":
			f.FlipRead, err = strconv.Atoi(v)
		case "flip_block":
			var b int64
			if b, err = strconv.ParseInt(v, 10, 64); err == nil {
				f.FlipBlock = &b
			}
		case "flip_offset":
			f.FlipOffset, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("--fault %q: unknown key %q (max_transfer, max_block, position, position_past_ew, short_element_status, flip_read, flip_block, flip_offset)", s, k)
		}
		if err != nil {
			return "", f, err
		}
	}
	return unit, f, f.check(unit)
}
