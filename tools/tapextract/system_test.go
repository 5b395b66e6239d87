package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

var (
	daemonsOnce sync.Once
	daemons     map[string]string
	daemonsErr  error
)

// daemonBins builds the director, storaged, filed and tapectl (only for
// the test that makes a real backup).
func daemonBins(t *testing.T) map[string]string {
	t.Helper()
	daemonsOnce.Do(func() {
		daemons, daemonsErr = testenv.Build(filepath.Dir(bins["tapextract"]), "director", "storaged", "tools/filed", "tools/tapectl")
	})
	if daemonsErr != nil {
		t.Fatal(daemonsErr)
	}
	return daemons
}

// TestDRAfterRealBackup: a backup made by the system — director, catalog,
// storaged, filed, driven by tapectl — spanning two volumes; then the
// director, the catalog's use and storaged are gone, and tapextract
// restores the tree from the tapes with storaged's crypto cache and the
// KEK alone.
// startFiledAndStoraged starts client web1 and storage sd1 (drives drives
// of the vtl at socket) for a director that will listen at dirAddr: the
// daemons of the system tests' real backups.
func startFiledAndStoraged(t *testing.T, b map[string]string, dir string, pki *testenv.PKI, dirAddr, kekPath, socket string, drives int) (fdAddr, sdAddr string, sdConf testenv.Storaged, sd *testenv.Proc) {
	t.Helper()
	sdAddr = testenv.FreeAddr(t)
	fdConf := testenv.Filed{Name: "web1", WorkDir: filepath.Join(dir, "fd-web1"), TLS: pki.Issue(t, "web1", tlsconf.RoleClient), DirectorName: "director"}
	os.MkdirAll(fdConf.WorkDir, 0o700)
	fdPath := filepath.Join(dir, "filed.toml")
	fdConf.Write(t, fdPath)
	_, fdAddr = testenv.StartServing(t, "filed", filepath.Join(dir, "filed.log"), "filed ready", b["filed"], "-c", fdPath)
	sdConf = testenv.Storaged{Name: "sd1", Listen: sdAddr, WorkDir: filepath.Join(dir, "sd1"), TLS: pki.Issue(t, "sd1", tlsconf.RoleStorage),
		DirectorName: "director", DirectorAddr: dirAddr, KEKFiles: []string{kekPath}, VTLSocket: socket, Drives: drives}
	sdPath := filepath.Join(dir, "storaged.toml")
	sdConf.Write(t, sdPath)
	sd = testenv.Start(t, "storaged", filepath.Join(dir, "storaged.log"), "storaged ready", b["storaged"], "-c", sdPath)
	return fdAddr, sdAddr, sdConf, sd
}

func TestDRAfterRealBackup(t *testing.T) {
	b := daemonBins(t)
	dir := t.TempDir()
	dsn := pgtest.NewDB(t)
	pki := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek1.key")
	testenv.WriteKEK(t, kekPath)
	vtl := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "4", "--drives", "2", "--capacity", "96MiB", "--load-delay", "0s")
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "data-web1")
	if err := testtree.Make(root, testtree.Options{Seed: 3, LargeFiles: 2, LargeSize: 60 << 20, SmallFiles: 120, SmallSize: 5000, Links: true, LongName: true}); err != nil {
		t.Fatal(err)
	}
	dirAddr := testenv.FreeAddr(t)
	fdAddr, sdAddr, sdConf, sd := startFiledAndStoraged(t, b, dir, pki, dirAddr, kekPath, vtl.Socket, 2)
	dirConf := testenv.Director{Name: "director", Listen: dirAddr, TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kekPath}, Storages: map[string]string{"sd1": sdAddr},
		Clients:  []testenv.Client{{Name: "web1", Address: fdAddr}},
		Filesets: []testenv.Fileset{{Name: "fs-web1", Include: []string{root}}},
		Pools:    []testenv.Pool{{Name: "Backup", Storage: "sd1"}},
		Jobs:     []testenv.Job{{Name: "web1-home", Client: "web1", Fileset: "fs-web1", Pool: "Backup"}}}
	dirPath := filepath.Join(dir, "director.toml")
	dirConf.Write(t, dirPath)
	dird := testenv.Start(t, "director", filepath.Join(dir, "director.log"), "director ready", b["director"], "-c", dirPath)
	conPath := filepath.Join(dir, "tapectl.toml")
	testenv.Console(t, conPath, "admin", "director", dirAddr, pki.Issue(t, "admin", tlsconf.RoleConsole))
	tapectl := func(line string) string {
		t.Helper()
		out, err := exec.Command(b["tapectl"], "-c", conPath, line).CombinedOutput()
		if err != nil {
			t.Fatalf("tapectl %q: %v\n%s", line, err, out)
		}
		return string(out)
	}
	tapectl("label storage=sd1 pool=Backup slots=1-3 barcodes encrypt")
	out := tapectl("run job=web1-home yes")
	m := regexp.MustCompile(`(?i)job\s*id\D{0,3}(\d+)|\bjob\s+#?(\d+)\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run printed no job id:\n%s", out)
	}
	id := m[1] + m[2]
	report := tapectl("wait jobid=" + id)
	files := tapectl("list jobmedia jobid=" + id)
	if !strings.Contains(files, "TW0001L6") || !strings.Contains(files, "TW0002L6") {
		t.Fatalf("the job should span TW0001L6 and TW0002L6:\n%s\n%s", files, report)
	}

	// The disaster: the director and storaged are gone (storaged clears
	// its keys as it stops).
	dird.Stop(t, syscall.SIGTERM)
	sd.Stop(t, syscall.SIGTERM)
	vtl.RequireNoKey(t)

	w := &world{t: t, dir: dir, vtl: vtl, changer: "vtl:" + vtl.Socket + "#changer", drive: "vtl:" + vtl.Socket + "#drive0",
		kekPath: kekPath, cache: filepath.Join(sdConf.WorkDir, "storaged.cryptocache")}
	kb, _ := os.ReadFile(kekPath)
	w.secrets = append(w.secrets, strings.TrimSpace(string(kb)))
	t.Cleanup(w.checkNoKeyMaterial)
	entries, err := cryptocache.ReadFile(w.cache)
	if err != nil || len(entries) < 2 {
		t.Fatalf("storaged's crypto cache: %v (%d entries)", err, len(entries))
	}
	for _, e := range entries {
		w.secrets = append(w.secrets, e.Key.Value)
	}

	vols := w.ok(args([]string{"volumes"}, w.lib(), w.keysV1())...)
	if !strings.Contains(vols, id+" (part 1)") || !strings.Contains(vols, id+" (part 2; index: ") {
		t.Fatalf("volumes:\n%s", vols)
	}
	to := filepath.Join(dir, "restore")
	w.ok(args([]string{"extract", "--job", id, "--to", to}, w.lib(), w.keysV1())...)
	sameTree(t, root, filepath.Join(to, root))
	vtl.RequireNoKey(t)

	// ls reads the labels, the first 64 KiB of each tape file and the
	// index: under 1 % of the job (blocks as storaged writes them; the
	// vtl counts a whole block read even when only its start is
	// transferred, as a drive reads it whole from tape).
	vtl.Reads(t, true)
	w.ok(args([]string{"ls", "--volume", "TW0001L6"}, w.lib(), w.keysV1())...)
	long := w.ok(args([]string{"ls", "-l", "--job", id, "--volume", "TW0002L6"}, w.lib(), w.keysV1())...)
	reads := vtl.Reads(t, false)
	_, r1 := reads.Cartridge("TW0001L6")
	_, r2 := reads.Cartridge("TW0002L6")
	var data int64
	snap, _ := testtree.Take(root)
	for _, e := range snap {
		data += e.Size
	}
	if (r1+r2)*100 > data {
		t.Fatalf("ls read %d bytes of a job of %d bytes (more than 1 %%)", r1+r2, data)
	}
	t.Logf("ls of both volumes read %d + %d bytes of a %d-byte job (%.2f %%)", r1, r2, data, float64(r1+r2)*100/float64(data))

	// A hard link selected without its first path gets the data.
	hardB := strings.TrimPrefix(filepath.Join(root, testtree.HardB), "/")
	if !regexp.MustCompile(`(?m)^\s+link\s.*` + regexp.QuoteMeta(hardB) + ` -> `).MatchString(long) {
		t.Fatalf("ls -l does not list %s as a hard link:\n%s", hardB, long)
	}
	// The catalog rebuilt from the tapes into an empty database has the
	// rows the director wrote.
	rebuilt := pgtest.NewDB(t)
	cout := w.ok(args([]string{"catalog", "--dsn", rebuilt}, w.lib(), w.keysV1())...)
	t.Logf("tapextract catalog:\n%s", cout)
	orig, re := pgtest.Connect(t, dsn), pgtest.Connect(t, rebuilt)
	for _, q := range []string{
		`SELECT m.volume_name, m.barcode, p.name, s.name, m.slot, m.media_type, m.status, m.bytes_written, m.blocks_written, m.label_time,
			m.encrypted, m.key_string, m.key_scheme, m.kek_id, m.key_fingerprint FROM media m JOIN pools p ON p.id = m.pool_id LEFT JOIN storages s ON s.id = m.storage_id ORDER BY volume_name`,
		`SELECT j.id, j.name, j.job_type, j.level, j.status, j.client, j.fileset, p.name, s.name, j.files_count, j.bytes_count, j.flushed_offset
			FROM jobs j LEFT JOIN pools p ON p.id = j.pool_id LEFT JOIN storages s ON s.id = j.storage_id ORDER BY id`,
		`SELECT jm.job_id, m.volume_name, jm.volume_index, jm.part, jm.kind, jm.tape_file, jm.first_block, jm.last_block, jm.bytes, jm.first_stream_offset, jm.complete
			FROM job_media jm JOIN media m ON m.id = jm.media_id ORDER BY job_id, part`,
		`SELECT f.job_id, f.path, f.type, f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime_ns, f.link, f.sha256, m.volume_name,
			f.tape_file, f.block, f.block_offset, f.stream_offset, f.parts FROM files f JOIN media m ON m.id = f.media_id ORDER BY job_id, stream_offset`,
		`SELECT fp.job_id, fp.stream_offset, fp.part, m.volume_name, fp.tape_file, fp.block, fp.block_offset, fp.data_offset
			FROM file_parts fp JOIN media m ON m.id = fp.media_id ORDER BY job_id, stream_offset, part`,
	} {
		want := dumpRows(t, orig, q)
		if len(want) == 0 {
			t.Fatalf("the director's catalog has no rows for %s", q)
		}
		compareLines(t, q, dumpRows(t, re, q), want)
	}
	var parts int
	if err := re.QueryRow(context.Background(), `SELECT count(*) FROM file_parts`).Scan(&parts); err != nil || parts == 0 {
		t.Fatalf("the rebuilt catalog has %d continuation rows (%v): the job should have a member cut by the end of TW0001L6", parts, err)
	}

	to2 := filepath.Join(dir, "restore-link")
	w.ok(args([]string{"extract", "--job", id, "--include", "/" + hardB, "--to", to2}, w.lib(), w.keysV1())...)
	want, _ := os.ReadFile(filepath.Join(root, testtree.HardB))
	got, err := os.ReadFile(filepath.Join(to2, hardB))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the hard link extracted alone: %v (%d bytes, want %d)", err, len(got), len(want))
	}
}
