package scsi

import (
	"errors"
	"strings"
)

// ErrBusy is matched (errors.Is) by a *BusyDeviceError.
//
// Coordination note: branch wt-drives (exclusive opens) defines these same
// names in transport.go; this file only lets storaged/sd refuse busy drives
// before that lands, and is to be deleted when it is merged.
var ErrBusy = errors.New("device busy")

// BusyDeviceError refuses to open a device another process holds
// (O_EXCL on an sg node, one holder per unit on vtl).
type BusyDeviceError struct {
	Addr   string // "/dev/sg3", "vtl:/run/vtl.sock#drive0"
	Detail string // what the OS or vtl said
}

func (e *BusyDeviceError) Error() string {
	s := "open " + e.Addr + ": device busy: another storaged or tapekey has " + e.Addr + " open"
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if strings.HasPrefix(e.Addr, "/") {
		return s + "; stop that process (find it with `fuser -v " + e.Addr + "`) or use another device"
	}
	return s + "; stop that process or use another device"
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyDeviceError) Is(target error) bool { return target == ErrBusy }

// IsBusy reports whether err is a *BusyDeviceError.
func IsBusy(err error) bool { return errors.Is(err, ErrBusy) }
