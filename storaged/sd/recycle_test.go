package sd

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A job session on a recycled volume (JobVolume.recycle): refused when
// the director's key is the key the old label names (nothing written);
// with a new key the label is rewritten, the key-check block verified,
// LabelWritten reported, the key in the crypto cache (the old one kept in
// its history), and the data goes to tape file 2 — the old data is gone.
func TestJobRecyclesAVolume(t *testing.T) {
	needTars(t)
	e := newJobEnv(t, 1, 4, "64MiB")
	oldFP := e.label(t, 1, "V1", true)
	// The old data: a job's tape files 2 and 3.
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.attach(t, e.connect(t, "web1", "client"), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	old := makeTree(20)
	for _, f := range old {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.finish(); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}

	// The catalog still has the old key: refused, nothing written.
	open := jobOpen("V1", 1, 2)
	open.Volume.Recycle, open.Volume.KnownTapeFiles = true, 2
	if _, err := e.openJob(t, open); status.Code(err) == codes.OK || !strings.Contains(err.Error(), "refusing to recycle volume V1: the catalog's key "+oldFP) {
		t.Fatalf("recycling with the old key: %v", err)
	}
	e.vtl.RequireNoKey(t)
	e.dir.mu.Lock()
	n := len(e.dir.labelled)
	e.dir.mu.Unlock()
	if n != 0 {
		t.Fatalf("LabelWritten was reported %d times for a refused recycling", n)
	}

	// A new key in the catalog.
	nk, err := e.ring.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	e.dir.mu.Lock()
	e.dir.keys["V1"] = nk
	e.dir.mu.Unlock()
	r, err = e.openJob(t, open)
	if err != nil {
		t.Fatalf("recycling with a new key: %v", err)
	}
	if !r.opened.Encrypted || r.opened.KeyFingerprint != nk.Fingerprint {
		t.Fatalf("opened %v, want key %s", r.opened, nk.Fingerprint)
	}
	e.dir.mu.Lock()
	lw := e.dir.labelled
	e.dir.mu.Unlock()
	if len(lw) != 1 || lw[0].Volume != "V1" || lw[0].KeyFingerprint != nk.Fingerprint || !lw[0].EncryptionVerified || lw[0].VerifiedTimeUnix == 0 {
		t.Fatalf("LabelWritten: %v", lw)
	}
	c, err := e.d.cache.Get("V1")
	if err != nil || c.Key.Fingerprint != nk.Fingerprint || len(c.History) != 1 || c.History[0].Key.Fingerprint != oldFP {
		t.Fatalf("crypto cache: %+v, %v", c, err)
	}
	s, err = e.attach(t, e.connect(t, "web1", "client"), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(5)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.finish(); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	var parts []uint32
	for _, ev := range r.events {
		if p := ev.GetPart(); p != nil {
			parts = append(parts, p.TapeFile)
		}
	}
	if len(parts) != 2 || parts[0] != 2 || parts[1] != 3 {
		t.Fatalf("the recycled volume's tape files: %v, want 2, 3", parts)
	}
	// Tape file 2 is the new job's, read with the new key.
	out := tarList(t, "tar", e.readTapeFile(t, 1, 2))
	if !strings.Contains(out, strings.TrimSuffix(files[3].m.Path, "/")) || strings.Contains(out, strings.TrimSuffix(old[19].m.Path, "/")) {
		t.Errorf("tape file 2 after recycling (want %s, not the old %s):\n%s", files[3].m.Path, old[19].m.Path, out)
	}
	e.vtl.RequireNoKey(t)
}
