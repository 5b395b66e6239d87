package core

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// status storage with the library gone (vtl stopped): the text output says
// the drive cannot be read — not only --json — and shows no key state.
func TestStatusStorageShowsUnreachableDrive(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	pc, err := pgx.ParseConfig(pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	pki := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kekPath)
	vtl := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "2", "--drives", "1", "--load-delay", "0s")
	sc := testenv.Storaged{Name: "sd1", WorkDir: filepath.Join(dir, "sd1"), TLS: pki.Issue(t, "sd1", tlsconf.RoleStorage),
		DirectorName: "director", DirectorAddr: "127.0.0.1:9", KEKFiles: []string{kekPath}, VTLSocket: vtl.Socket, Drives: 1}
	scPath := filepath.Join(dir, "storaged.toml")
	sc.Write(t, scPath) // listens on a port the kernel picks
	_, sdAddr := testenv.StartServing(t, "storaged", filepath.Join(dir, "storaged.log"), "storaged ready", bins["storaged"], "-c", scPath)

	dc := testenv.Director{Name: "director", Listen: "127.0.0.1:0", TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User,
		KEKFiles: []string{kekPath}, Storages: map[string]string{"sd1": sdAddr}}
	dcPath := filepath.Join(dir, "director.toml")
	dc.Write(t, dcPath)
	cfg, err := configs.LoadDirector(dcPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(ctx, Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&testenv.LogBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	out, err := d.statusStorage(ctx, "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.Text, "error") {
		t.Fatalf("status storage with the library up shows an error:\n%s", out.Text)
	}
	vtl.Stop(t, os.Interrupt)
	out, err = d.statusStorage(ctx, "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Text, "drive0: error: reading the encryption status") || !strings.Contains(out.Text, vtl.Socket) {
		t.Fatalf("status storage with the library gone does not say drive0 cannot be read:\n%s", out.Text)
	}
	if strings.Contains(out.Text, "none") || strings.Contains(out.Text, "loaded") {
		t.Fatalf("status storage with the library gone shows a key state:\n%s", out.Text)
	}
}
