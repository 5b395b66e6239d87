package sd

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// ShredKeys removes the volume's keys from the crypto cache and unmounts a
// drive holding it (key cleared); a key the director handed out just
// before the shred (the double still answers with it) is neither cached
// nor loaded again: the mount is refused saying the volume was shredded.
func TestShredKeysClearsCacheAndDrive(t *testing.T) {
	l := newLib(t, 1)
	l.label(t, 1, "V1", true)
	l.label(t, 2, "V2", true)
	ctx := context.Background()
	if _, err := l.d.Mount(ctx, MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	if st := l.d.VolumeState("V1"); !st.Mounted {
		t.Fatalf("V1 not mounted before the shred: %+v", st)
	}
	res, err := l.d.ShredKeys(ctx, []string{"V1", "V9"}, "shred volume=V1 by test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Destroyed != 1 || len(res.Absent) != 1 || res.Absent[0] != "V9" {
		t.Fatalf("ShredKeys = %+v, want 1 string destroyed, V9 absent", res)
	}
	if st := l.d.VolumeState("V1"); st.Mounted {
		t.Fatalf("V1 still mounted after the shred: %+v", st)
	}
	l.vtl.RequireNoKey(t)
	if _, err := l.d.cache.Get("V1"); err == nil {
		t.Fatal("the crypto cache still holds V1 after the shred")
	}
	if _, err := l.d.cache.Get("V2"); err != nil {
		t.Fatalf("the shred of V1 removed V2's key: %v", err)
	}

	_, err = l.d.Mount(ctx, MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
	var cr *CryptoRefusedError
	if !errors.As(err, &cr) || !strings.Contains(err.Error(), "shredded") {
		t.Fatalf("mount of V1 with a key fetched before the shred: %v, want a refusal saying it was shredded", err)
	}
	if _, err := l.d.cache.Get("V1"); err == nil {
		t.Fatal("the refused mount put V1's key back into the crypto cache")
	}
	l.vtl.RequireNoKey(t)
}
