package catalog

import (
	"errors"
	"testing"
	"time"
)

func TestBeginRelabel(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	_, sk := f.label(t, "OFF001", "", "sd1", 1, r)
	ctx := f.ctx
	verified := t0.Add(time.Minute)

	// Labeling (storaged may be at work) is refused.
	var se *StateError
	if err := f.s.BeginRelabel(ctx, "OFF001"); !errors.As(err, &se) {
		t.Fatalf("BeginRelabel(Labeling) = %v, want a StateError", err)
	}
	// A failed label goes back to Labeling with the same key.
	if err := f.s.MarkError(ctx, "OFF001", "drive on fire"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.BeginRelabel(ctx, "OFF001"); err != nil {
		t.Fatalf("BeginRelabel(Error) = %v", err)
	}
	m, err := f.s.GetMedia(ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != StatusLabeling || m.ErrorReason != "" || m.KeyFingerprint != sk.Fingerprint {
		t.Fatalf("after BeginRelabel: status %s, reason %q, fingerprint %s (want Labeling, no reason, %s)", m.Status, m.ErrorReason, m.KeyFingerprint, sk.Fingerprint)
	}
	// An Append volume without data qualifies; with data it does not.
	if err := f.s.MarkLabeled(ctx, "OFF001", t0, &verified); err != nil {
		t.Fatal(err)
	}
	if err := f.s.BeginRelabel(ctx, "OFF001"); err != nil {
		t.Fatalf("BeginRelabel(Append, empty) = %v", err)
	}
	if err := f.s.MarkLabeled(ctx, "OFF001", t0, &verified); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordWritten(ctx, "OFF001", 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	var hd *HasDataError
	if err := f.s.BeginRelabel(ctx, "OFF001"); !errors.As(err, &hd) {
		t.Fatalf("BeginRelabel(with data) = %v, want a HasDataError", err)
	}
	if err := f.s.BeginRelabel(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BeginRelabel(unknown) = %v", err)
	}
}
