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
}

func (f Faults) check(unit string) error {
	switch f.Position {
	case "", "zero", "stale":
	default:
		return fmt.Errorf("%s: position fault %q (have zero, stale)", unit, f.Position)
	}
	if f.MaxTransfer < 0 || f.MaxBlock < 0 || f.MaxBlock > MaxBlock || f.ShortElementStatus < 0 {
		return fmt.Errorf("%s: fault values out of range (max_block at most %d)", unit, MaxBlock)
	}
	isChanger := unit == "changer"
	if isChanger && (f.MaxBlock != 0 || f.Position != "" || f.PositionPastEW) {
		return fmt.Errorf("changer: max_block and position faults apply to drives")
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
	d.mu.Lock()
	d.faults = f
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
	d.mu.Lock()
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
// "drive0:max_transfer=1048576,position=zero", "changer:short_element_status=8".
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
		default:
			err = fmt.Errorf("--fault %q: unknown key %q (max_transfer, max_block, position, position_past_ew, short_element_status)", s, k)
		}
		if err != nil {
			return "", f, err
		}
	}
	return unit, f, f.check(unit)
}
