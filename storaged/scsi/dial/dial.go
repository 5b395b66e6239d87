// Package dial opens a scsi.Transport from a device address, the form
// storaged's configuration and `tapekey drive …` take:
//
//	/dev/sgN                    a Linux SCSI generic node (or a udev link to one,
//	                            e.g. /dev/tape/by-id/scsi-…-sg)
//	vtl:<socket path>#drive<N>  drive N of a running vtl
//	vtl:<socket path>#changer   the changer of a running vtl
package dial

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/sgio"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// Forms lists the accepted address forms, for messages.
const Forms = "/dev/sgN (a Linux SCSI generic node, or a udev link to one), vtl:<socket path>#drive<N>, vtl:<socket path>#changer"

// ErrAddress is wrapped by every "this address names nothing" error.
var ErrAddress = errors.New("unrecognized device address")

// Address is a parsed device address.
type Address struct {
	VTL    bool
	Path   string // sg node, or the vtl socket
	Unit   string // "drive0", "changer" (vtl only)
	Drive  int    // drive number when Unit is a drive
	Change bool   // Unit is the changer
}

// Parse checks an address without opening anything.
func Parse(address string) (Address, error) {
	bad := func(why string) (Address, error) {
		return Address{}, fmt.Errorf("%w %q: %s; accepted forms: %s", ErrAddress, address, why, Forms)
	}
	switch {
	case address == "":
		return bad("empty")
	case strings.HasPrefix(address, "vtl:"):
		rest := strings.TrimPrefix(address, "vtl:")
		i := strings.LastIndexByte(rest, '#')
		if i < 0 {
			return bad("a vtl address needs #drive<N> or #changer after the socket path")
		}
		sock, unit := rest[:i], rest[i+1:]
		if sock == "" {
			return bad("no socket path")
		}
		a := Address{VTL: true, Path: sock, Unit: unit}
		switch {
		case unit == "changer":
			a.Change = true
		case strings.HasPrefix(unit, "drive"):
			n, err := strconv.Atoi(strings.TrimPrefix(unit, "drive"))
			if err != nil || n < 0 || strconv.Itoa(n) != strings.TrimPrefix(unit, "drive") {
				return bad(fmt.Sprintf("unit %q is not drive<N>", unit))
			}
			a.Drive = n
		default:
			return bad(fmt.Sprintf("unit %q is neither drive<N> nor changer", unit))
		}
		return a, nil
	case strings.HasPrefix(address, "/"):
		return Address{Path: address}, nil
	}
	return bad("neither an absolute device path nor a vtl: address")
}

// Open opens the transport an address names. An sg node must be a tape
// drive or a changer (INQUIRY is checked).
func Open(address string) (scsi.Transport, error) {
	return OpenExpect(address)
}

// OpenExpect is Open that also requires the device's INQUIRY peripheral
// type to be one of types (scsi.TypeTape, scsi.TypeMediumChanger); with no
// types, a tape drive or a changer is accepted.
func OpenExpect(address string, types ...byte) (scsi.Transport, error) {
	a, err := Parse(address)
	if err != nil {
		return nil, err
	}
	if !a.VTL {
		t, err := sgio.Open(a.Path, sgio.Options{Types: types})
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	c, err := vtlwire.Dial(a.Path, a.Unit)
	if err != nil {
		return nil, err
	}
	if len(types) > 0 {
		q, err := scsi.NewDevice(c).Inquiry()
		if err != nil {
			c.Close()
			return nil, err
		}
		ok := false
		for _, t := range types {
			ok = ok || q.DeviceType == t
		}
		if !ok {
			c.Close()
			return nil, fmt.Errorf("refusing %s: it is a %s (%s %s), expected a %s", c.Addr(), scsi.DeviceTypeName(q.DeviceType), q.Vendor, q.Product, scsi.DeviceTypeName(types[0]))
		}
	}
	return c, nil
}

// OpenDevice opens an address and wraps it in a scsi.Device.
func OpenDevice(address string, types ...byte) (*scsi.Device, error) {
	t, err := OpenExpect(address, types...)
	if err != nil {
		return nil, err
	}
	return scsi.NewDevice(t), nil
}
