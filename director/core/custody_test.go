package core

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var bins map[string]string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapeward-core-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bins, err = testenv.Build(dir, "storaged", "tools/vtl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// A storage that was down during a rekey, and whose hello the director
// never got (storaged here is pointed at an address where no director
// listens), is brought up to date by the retry loop at its next tick; the
// ticker is injected, the components are real (PostgreSQL, storaged, vtl).
func TestRetryLoopPushesPendingKeys(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := pgtest.NewDB(t)
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pki := testenv.NewPKI(t, dir)
	k1Path, k2Path := filepath.Join(dir, "kek1.key"), filepath.Join(dir, "kek2.key")
	k1, k2 := testenv.WriteKEK(t, k1Path), testenv.WriteKEK(t, k2Path)
	sdAddr := testenv.FreeAddr(t)
	dc := testenv.Director{Name: "director", Listen: testenv.FreeAddr(t), TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User,
		KEKFiles: []string{k1Path, k2Path}, ActiveKEK: k2Path, Storages: map[string]string{"sd1": sdAddr}}
	dcPath := filepath.Join(dir, "director.toml")
	dc.Write(t, dcPath)
	cfg, err := configs.LoadDirector(dcPath)
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &testenv.LogBuffer{}
	d, err := New(ctx, Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// A volume of sd1 whose key is under KEK 1; rekey to KEK 2 while sd1 is
	// down: the push is pending.
	old, _ := keys.NewKeyring(k1)
	sk, err := old.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.EnsurePool(ctx, catalog.PoolSpec{Name: "Offsite", Encrypt: true, Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.CreateLabeling(ctx, catalog.MediaNew{Volume: "TW0001L6", Pool: "Offsite", Storage: "sd1", Slot: 1, Encrypted: true, Key: &sk, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if res, err := d.store.Rekey(ctx, d.ring, "test"); err != nil || res.Pending["sd1"] != 1 {
		t.Fatalf("Rekey = %+v, %v; want 1 push pending for sd1", res, err)
	}
	if o := d.RetryPushes(ctx); len(o) != 1 || !o[0].Unreachable || o[0].Pending != 1 ||
		o[0].String() != "sd1: unreachable — 1 volumes pending, pushed when it next connects" {
		t.Fatalf("RetryPushes with sd1 down = %+v", o)
	}

	// sd1 comes up; its hello goes nowhere. The next tick pushes.
	vtl := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "2", "--drives", "1", "--load-delay", "0s")
	sc := testenv.Storaged{Name: "sd1", Listen: sdAddr, WorkDir: filepath.Join(dir, "sd1"), TLS: pki.Issue(t, "sd1", tlsconf.RoleStorage),
		DirectorName: "director", DirectorAddr: testenv.FreeAddr(t), KEKFiles: []string{k1Path, k2Path}, VTLSocket: vtl.Socket, Drives: 1}
	scPath := filepath.Join(dir, "storaged.toml")
	sc.Write(t, scPath)
	testenv.Start(t, "storaged", filepath.Join(dir, "storaged.log"), "storaged ready", bins["storaged"], "-c", scPath)
	tick := make(chan time.Time)
	go d.RunPushRetry(ctx, tick)
	tick <- time.Now()
	testenv.WaitFor(t, "the retry loop to push the pending keys", func() bool {
		n, err := d.store.PendingCounts(ctx)
		return err == nil && n["sd1"] == 0
	})
	es, err := cryptocache.ReadFile(filepath.Join(sc.WorkDir, cryptocache.FileName))
	if err != nil || len(es) != 1 || es[0].Volume != "TW0001L6" || es[0].Key.KEKID != k2.ID() || es[0].Key.Fingerprint != sk.Fingerprint {
		t.Fatalf("sd1's crypto cache after the retry: %v, %v", es, err)
	}
	evs, err := d.store.ListKeyEvents(ctx, catalog.KeyEventFilter{Volume: "TW0001L6", Event: catalog.EventPushed})
	if err != nil || len(evs) != 1 || evs[0].Actor != "director" {
		t.Fatalf("pushed events = %+v, %v", evs, err)
	}
	if strings.Contains(logBuf.String(), sk.Value) {
		t.Fatal("the director's log holds a stored key string")
	}
}
