package scsi

import (
	"errors"
	"testing"
)

// flakyTransport fails its first n commands as a broken connection does,
// then answers INQUIRY with a tape drive.
type flakyTransport struct {
	fail  int
	calls int
}

func (f *flakyTransport) Do(cmd *Command) (Result, error) {
	f.calls++
	if f.fail > 0 {
		f.fail--
		return Result{}, errors.New("broken pipe")
	}
	if cmd.CDB[0] == OpInquiry {
		copy(cmd.Data, []byte{TypeTape, 0x80, 6, 2, 31, 0, 0, 0, 'I', 'B', 'M', ' ', ' ', ' ', ' ', ' '})
		return Result{Resid: len(cmd.Data) - 36}, nil
	}
	return Result{}, nil
}
func (f *flakyTransport) Addr() string { return "flaky" }
func (f *flakyTransport) Close() error { return nil }

func TestQueryAskedAgainAfterTransportFailure(t *testing.T) {
	ft := &flakyTransport{fail: 1}
	d := NewDevice(ft)
	q, err := d.Inquiry()
	if err != nil || q.DeviceType != TypeTape || ft.calls != 2 {
		t.Fatalf("INQUIRY after one carriage failure: %v, %v, %d calls (want success after 2)", q, err, ft.calls)
	}
	// Twice in a row is a real outage: reported.
	ft = &flakyTransport{fail: 2}
	if _, err := NewDevice(ft).Inquiry(); err == nil || ft.calls != 2 {
		t.Fatalf("INQUIRY after two failures: err %v, %d calls", err, ft.calls)
	}
	// A data command is never resent: its outcome is unknown.
	ft = &flakyTransport{fail: 1}
	if _, err := NewDevice(ft).Write(make([]byte, 512)); err == nil || ft.calls != 1 {
		t.Fatalf("WRITE after a carriage failure: err %v, %d calls (want the error, 1 call)", err, ft.calls)
	}
}
