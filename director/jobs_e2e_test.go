package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/jobs/jobstest"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// The director binary runs backup jobs from tapectl against fakes of
// storaged (Storage.Job) and filed (Filed.Backup) over mutual TLS; a
// SIGTERM while a job runs ends it E, interrupted.
func TestJobsThroughTapectl(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewPKI(t, dir)
	kek := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kek)
	sd := jobstest.NewStorage(1, "V1")
	sdAddr := jobstest.Serve(t, p.Issue(t, "sd1", tlsconf.RoleStorage), func(s *grpc.Server) { pb.RegisterStorageServer(s, sd) })
	old := time.Now().Add(-time.Hour).UnixNano()
	web1 := jobstest.NewFiled("web1", sd, map[string]int64{"/srv/a": old, "/srv/b": old})
	fdAddr := jobstest.Serve(t, p.Issue(t, "web1", tlsconf.RoleClient), func(s *grpc.Server) { pb.RegisterFiledServer(s, web1) })

	// The catalog knows sd1, pool Local and an appendable clear volume V1.
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	store := catalog.NewStore(pool)
	for _, step := range []func() error{
		func() error { _, err := store.EnsureStorage(ctx, "sd1", sdAddr); return err },
		func() error {
			_, err := store.EnsurePool(ctx, catalog.PoolSpec{Name: "Local", Storage: "sd1"})
			return err
		},
		func() error {
			_, err := store.CreateLabeling(ctx, catalog.MediaNew{Volume: "V1", Barcode: "V1", Pool: "Local", Storage: "sd1", Slot: 1})
			return err
		},
		func() error { return store.MarkLabeled(ctx, "V1", time.Now(), nil) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()

	dc := testenv.Director{Name: "director", Listen: "127.0.0.1:0", TLS: p.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kek},
		Storages: map[string]string{"sd1": sdAddr}}
	path := filepath.Join(dir, "director.toml")
	dc.Write(t, path)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[[client]]\nname = \"web1\"\naddress = %q\ntls_server_name = \"web1\"\n\n[[fileset]]\nname = \"srv\"\ninclude = [\"/srv\"]\n\n"+
		"[[pool]]\nname = \"Local\"\nstorage = \"sd1\"\nencrypted = false\n\n[[job]]\nname = \"web1-srv\"\nclient = \"web1\"\nfileset = \"srv\"\npool = \"Local\"\n", fdAddr)
	f.Close()
	dird, dirAddr := testenv.StartServing(t, "director", filepath.Join(dir, "director.log"), "director ready", directorBin, "-c", path)
	con := filepath.Join(dir, "tapectl.toml")
	testenv.Console(t, con, "admin", "director", dirAddr, p.Issue(t, "admin", tlsconf.RoleConsole))
	tapectl := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bins["tapectl"], append([]string{"-c", con}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("tapectl %q: %v\nstdout: %s\nstderr: %s\ndirector log:\n%s", args, err, out.String(), errb.String(), dird.Output())
		}
		return out.String(), errb.String()
	}

	out, _ := tapectl("run job=web1-srv yes wait")
	for _, want := range []string{"Job report of JobId 1", "upgraded from Incremental: no prior Full", "Files written:         2", "Backup OK (T)"} {
		if !strings.Contains(out, want) {
			t.Errorf("run … wait lacks %q:\n%s", want, out)
		}
	}
	out, _ = tapectl("--json", "list files jobid=1")
	var files []struct {
		Path     string `json:"path"`
		Volume   string `json:"volume"`
		TapeFile int    `json:"tape_file"`
	}
	if err := json.Unmarshal([]byte(out), &files); err != nil || len(files) != 2 || files[0].Path != "/srv/a" || files[0].Volume != "V1" || files[0].TapeFile != 1 { // a clear volume: tape file 0 is its label
		t.Fatalf("list files --json: %v\n%s", err, out)
	}
	out, _ = tapectl("run job=web1-srv")
	if !strings.Contains(out, "JobId=2") {
		t.Fatalf("run: %s", out)
	}
	out, _ = tapectl("wait jobid=2")
	if !strings.Contains(out, "Backup Level:          Incremental") || !strings.Contains(out, "Files written:         0") {
		t.Errorf("the Incremental with nothing changed:\n%s", out)
	}

	// A job held by the storage; the director stops.
	sd.SetHold(true)
	tapectl("run job=web1-srv level=Full")
	for i := range 3 { // the opens of jobs 1, 2 and 3
		select {
		case o := <-sd.Opens:
			if o.Job.JobId != int64(i+1) {
				t.Errorf("open %d is of job %d", i+1, o.Job.JobId)
			}
		case <-time.After(time.Minute):
			t.Fatal("no session opened")
		}
	}
	out, _ = tapectl("status director")
	if !strings.Contains(out, "running jobs: 1") || !strings.Contains(out, "JobId 3 web1-srv") {
		t.Errorf("status director:\n%s", out)
	}
	dird.Stop(t, syscall.SIGTERM)
	conn := pgtest.Connect(t, dsn)
	var st, reason string
	if err := conn.QueryRow(ctx, "SELECT status, error_reason FROM jobs WHERE id = 3").Scan(&st, &reason); err != nil {
		t.Fatal(err)
	}
	if st != "E" || !strings.Contains(reason, "interrupted at") {
		t.Errorf("job 3 after SIGTERM: %s %q\n%s", st, reason, dird.Output())
	}
}
