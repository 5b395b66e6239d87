// Package dial opens a scsi.Transport from a device address, the form
// storaged's configuration and `tapekey drive …` take:
//
//	/dev/sgN                    a Linux SCSI generic node (or a udev link to one,
//	                            e.g. /dev/tape/by-id/scsi-…-sg)
//	vtl:<socket path>#drive<N>  drive N of a running vtl
//	vtl:<socket path>#changer   the changer of a running vtl
//	iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN
//	                            a LUN of an iSCSI target, reached by the
//	                            userspace initiator (storaged/scsi/iscsi);
//	                            USER is the CHAP user name, the secret comes
//	                            from a file (Options.ISCSI, or the environment:
//	                            TAPEWARD_ISCSI_CHAP_SECRET_FILE,
//	                            TAPEWARD_ISCSI_INITIATOR_NAME)
package dial

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/sgio"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// Forms lists the accepted address forms, for messages.
const Forms = "/dev/sgN (a Linux SCSI generic node, or a udev link to one), vtl:<socket path>#drive<N>, vtl:<socket path>#changer, " + iscsi.Form

// ErrAddress is wrapped by every "this address names nothing" error.
var ErrAddress = errors.New("unrecognized device address")

// Address is a parsed device address.
type Address struct {
	VTL    bool
	Path   string // sg node, or the vtl socket
	Unit   string // "drive0", "changer" (vtl only)
	Drive  int    // drive number when Unit is a drive
	Change bool   // Unit is the changer
	// ISCSI is the LUN of an iscsi:// address (nil otherwise).
	ISCSI *iscsi.Address
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
	case strings.HasPrefix(address, "iscsi://"):
		a, err := iscsi.ParseAddress(address)
		if err != nil {
			return Address{}, fmt.Errorf("%w: %w", ErrAddress, err)
		}
		return Address{ISCSI: &a}, nil
	case strings.HasPrefix(address, "/"):
		return Address{Path: address}, nil
	}
	return bad("neither an absolute device path, a vtl: nor an iscsi:// address")
}

// Options controls OpenWith.
type Options struct {
	// Types lists the acceptable INQUIRY peripheral device types
	// (scsi.TypeTape, scsi.TypeMediumChanger); empty: either.
	Types []byte
	// Shared opens without exclusive access. The default is exclusive —
	// O_EXCL on an sg node, one holder per unit on vtl — so that a second
	// storaged, or tapekey, cannot send commands (or clear the key) of a
	// drive in use: they get a *scsi.BusyDeviceError (scsi.IsBusy)
	// naming the device. Shared is for tests that open a unit twice on
	// purpose (several I_T nexuses).
	Shared bool
	// ISCSI are the initiator's settings for iscsi:// addresses (its
	// Shared is Options.Shared). An empty InitiatorName or CHAPSecretFile
	// comes from the environment: TAPEWARD_ISCSI_INITIATOR_NAME,
	// TAPEWARD_ISCSI_CHAP_SECRET_FILE (storaged's [iscsi] settings and the
	// tools' --iscsi-… flags set them).
	ISCSI iscsi.Options
}

// Environment variables that configure the iSCSI initiator when neither
// a configuration file nor a flag does.
const (
	EnvInitiatorName  = "TAPEWARD_ISCSI_INITIATOR_NAME"
	EnvCHAPSecretFile = "TAPEWARD_ISCSI_CHAP_SECRET_FILE"
)

// ISCSIFromEnv fills o's empty initiator name and CHAP secret file from
// the environment.
func ISCSIFromEnv(o iscsi.Options) iscsi.Options {
	if o.InitiatorName == "" {
		o.InitiatorName = os.Getenv(EnvInitiatorName)
	}
	if o.CHAPSecretFile == "" {
		o.CHAPSecretFile = os.Getenv(EnvCHAPSecretFile)
	}
	return o
}

// Open opens the transport an address names, exclusively. An sg node must
// be a tape drive or a changer (INQUIRY is checked).
func Open(address string) (scsi.Transport, error) {
	return OpenWith(address, Options{})
}

// OpenExpect is Open that also requires the device's INQUIRY peripheral
// type to be one of types (scsi.TypeTape, scsi.TypeMediumChanger); with no
// types, a tape drive or a changer is accepted.
func OpenExpect(address string, types ...byte) (scsi.Transport, error) {
	return OpenWith(address, Options{Types: types})
}

// OpenWith opens an address with options. A device another process holds
// is refused with a *scsi.BusyDeviceError (errors.Is scsi.ErrBusy).
func OpenWith(address string, o Options) (scsi.Transport, error) {
	types := o.Types
	a, err := Parse(address)
	if err != nil {
		return nil, err
	}
	if !a.VTL && a.ISCSI == nil {
		t, err := sgio.Open(a.Path, sgio.Options{Types: types, Exclusive: !o.Shared})
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	var c scsi.Transport
	if a.ISCSI != nil {
		io := ISCSIFromEnv(o.ISCSI)
		io.Shared = o.Shared
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t, err := iscsi.Dial(ctx, *a.ISCSI, io)
		cancel()
		if err != nil {
			return nil, err
		}
		c = t
	} else {
		t, err := vtlwire.DialOpts(a.Path, vtlwire.Hello{Unit: a.Unit, Exclusive: !o.Shared, SharedBuffer: true})
		if err != nil {
			return nil, err
		}
		c = t
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

// OpenDevice opens an address exclusively and wraps it in a scsi.Device.
func OpenDevice(address string, types ...byte) (*scsi.Device, error) {
	return OpenDeviceWith(address, Options{Types: types})
}

// OpenDeviceWith is OpenWith wrapped in a scsi.Device.
func OpenDeviceWith(address string, o Options) (*scsi.Device, error) {
	t, err := OpenWith(address, o)
	if err != nil {
		return nil, err
	}
	return scsi.NewDevice(t), nil
}
