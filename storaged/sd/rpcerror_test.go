package sd

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRPCErrorCodes: library states are not faults (FailedPrecondition,
// NotFound for what does not exist), a busy drive is Aborted — never
// Unavailable, which tells the director this daemon is gone — and nothing
// of these is Internal.
func TestRPCErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{stateErr("changer %s: slot %d is empty", "changer0", 4), codes.FailedPrecondition},
		{fmt.Errorf("drive0: %w", stateErr("drive0 holds cartridge TW0001L6 (volume TW0001L6); unmount it first")), codes.FailedPrecondition},
		{&LibraryStateError{NoSuch: true, Msg: "changer changer0 has slots 1-8; there is no slot 9"}, codes.NotFound},
		{&BusyError{Drive: "drive0"}, codes.Aborted},
		{&BusyError{Drive: "every drive of changer changer0", Detail: "drive0: busy"}, codes.Aborted},
		{errors.New("SCSI: MEDIUM ERROR 03/11/00"), codes.Internal},
	} {
		got := rpcError(c.err)
		if status.Code(got) != c.want || status.Convert(got).Message() != c.err.Error() {
			t.Errorf("rpcError(%v) = %v, want code %s with the same text", c.err, got, c.want)
		}
	}
}
