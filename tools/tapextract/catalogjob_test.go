package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/bootstrap"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// TestCatalogJobDR: the director's Catalog job dumps the catalog with
// pg_dump, backs it up through a filed (the one on "the director's
// host"), and writes the bootstrap to bootstrap_dir and to
// bootstrap_command. Then the director and storaged are stopped, the
// catalog database is dropped and the dump file deleted; tapextract
// extracts the dump with the bootstrap and the KEK alone (no crypto
// cache), pg_restore puts it into a fresh database, and a director
// started on that database lists the original jobs.
func TestCatalogJobDR(t *testing.T) {
	b := daemonBins(t)
	pgDump, err := pgtest.Program("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	pgRestore, err := pgtest.Program("pg_restore")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dsn := pgtest.NewDB(t)
	pki := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek1.key")
	testenv.WriteKEK(t, kekPath)
	vtl := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "4", "--drives", "2", "--capacity", "256MiB", "--load-delay", "0s")
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "data-web1")
	if err := testtree.Make(root, testtree.Options{Seed: 5, LargeFiles: 1, LargeSize: 2 << 20, SmallFiles: 30, SmallSize: 3000}); err != nil {
		t.Fatal(err)
	}
	dirAddr := testenv.FreeAddr(t)
	fdAddr, sdAddr, sdConf, sd := startFiledAndStoraged(t, b, dir, pki, dirAddr, kekPath, vtl.Socket, 2)
	dumpDir, bsrDir, mailed := filepath.Join(dir, "state", "catalog-dump"), filepath.Join(dir, "bootstrap"), filepath.Join(dir, "mailed.bsr")
	relayUp := filepath.Join(dir, "relay-up")
	os.WriteFile(relayUp, nil, 0o600)
	dirConf := testenv.Director{Name: "director", Listen: dirAddr, TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kekPath}, Storages: map[string]string{"sd1": sdAddr},
		Clients:  []testenv.Client{{Name: "web1", Address: fdAddr}},
		Filesets: []testenv.Fileset{{Name: "fs-web1", Include: []string{root}}},
		Pools:    []testenv.Pool{{Name: "Backup", Storage: "sd1"}},
		Jobs:     []testenv.Job{{Name: "web1-home", Client: "web1", Fileset: "fs-web1", Pool: "Backup"}},
		TopTOML: "catalog_dump_dir = " + quote(dumpDir) + "\nbootstrap_dir = " + quote(bsrDir) + "\npg_dump = " + quote(pgDump) +
			"\nbootstrap_command = " + quote("cat > "+mailed+"; test -e "+relayUp+" || { echo no mail relay >&2; exit 3; }"),
		ExtraTOML: "\n[[job]]\nname = \"BackupCatalog\"\ntype = \"Catalog\"\nclient = \"web1\"\npool = \"Backup\"\n"}
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
	jobID := regexp.MustCompile(`(?i)job\s*id\D{0,3}(\d+)|\bjob\s+#?(\d+)\b`)
	run := func(job string) string {
		t.Helper()
		out := tapectl("run job=" + job + " yes")
		m := jobID.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("run printed no job id:\n%s", out)
		}
		id := m[1] + m[2]
		tapectl("wait jobid=" + id)
		return id
	}
	tapectl("label storage=sd1 pool=Backup slots=1-2 barcodes encrypt")
	homeID := run("web1-home")
	firstCat := run("BackupCatalog")
	// The mail relay is down: the next catalog job ends W, saying why;
	// its bootstrap is still in bootstrap_dir.
	os.Remove(relayUp)
	catID := run("BackupCatalog")
	jobsBefore := tapectl("list jobs")
	if !regexp.MustCompile(`(?m)^\s*`+firstCat+`\s+BackupCatalog\s+web1\s+Catalog\s+T\b`).MatchString(jobsBefore) ||
		!regexp.MustCompile(`(?m)^\s*`+catID+`\s+BackupCatalog\s+web1\s+Catalog\s+W\b`).MatchString(jobsBefore) {
		t.Fatalf("the catalog jobs %s, %s should end T, W:\n%s\n%s", firstCat, catID, jobsBefore, tapectl("list joblog jobid="+firstCat))
	}
	if jl := tapectl("list joblog jobid=" + catID); !strings.Contains(jl, "bootstrap_command") || !strings.Contains(jl, "no mail relay") ||
		!strings.Contains(jl, "Bootstrap written to") || !strings.Contains(jl, "Dumping the catalog") {
		t.Fatalf("the catalog job's log:\n%s", jl)
	}

	// The bootstrap: in bootstrap_dir (per job and latest, 0600) and
	// piped to bootstrap_command.
	latest := filepath.Join(bsrDir, bootstrap.LatestName)
	bf, err := bootstrap.ReadFile(latest)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(latest); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", latest, st.Mode(), err)
	}
	perJob, _ := os.ReadFile(filepath.Join(bsrDir, "catalog-"+catID+".bsr"))
	mailedData, _ := os.ReadFile(mailed)
	latestData, _ := os.ReadFile(latest)
	if string(perJob) != string(latestData) || string(mailedData) != string(latestData) {
		t.Fatalf("catalog-%s.bsr, catalog-latest.bsr and the piped copy differ:\n%s\n---\n%s", catID, latestData, mailedData)
	}
	dumpPath := filepath.Join(dumpDir, pc.Database+".dump")
	if itoa(bf.Job) != catID || bf.Dump.Path != dumpPath || bf.Dump.Database != pc.Database || len(bf.Volumes) == 0 || bf.Dump.At.Volume == "" {
		t.Fatalf("bootstrap:\n%s", latestData)
	}
	for _, v := range bf.Volumes {
		if v.Key == nil || v.Key.KEKID == "" || v.Key.Fingerprint == "" || !strings.Contains(string(latestData), v.Name) {
			t.Fatalf("volume %s in the bootstrap has no wrapped key:\n%s", v.Name, latestData)
		}
	}
	if st, err := os.Stat(dumpPath); err != nil || st.Mode().Perm() != 0o600 || st.Size() != bf.Dump.Size {
		t.Fatalf("the dump %s: %v %v", dumpPath, st, err)
	}

	// The disaster: the daemons stop, the catalog database is dropped,
	// the dump on disk is gone, and so is storaged's crypto cache.
	dird.Stop(t, syscall.SIGTERM)
	sd.Stop(t, syscall.SIGTERM)
	vtl.RequireNoKey(t)
	os.Remove(dumpPath)
	os.Remove(filepath.Join(sdConf.WorkDir, "storaged.cryptocache"))
	freshDSN := pgtest.NewEmptyDB(t)
	admin := pgtest.Connect(t, freshDSN)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{pc.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}

	w := &world{t: t, dir: dir, vtl: vtl, changer: "vtl:" + vtl.Socket + "#changer", drive: "vtl:" + vtl.Socket + "#drive0", kekPath: kekPath}
	kb, _ := os.ReadFile(kekPath)
	w.secrets = append(w.secrets, strings.TrimSpace(string(kb)))
	t.Cleanup(w.checkNoKeyMaterial)
	to := filepath.Join(dir, "restore")
	out := w.ok(args([]string{"extract", "--bootstrap", latest, "--kek", kekPath, "--to", to}, w.lib())...)
	if !strings.Contains(out, "as the bootstrap says") {
		t.Fatalf("extract --bootstrap:\n%s", out)
	}
	vtl.RequireNoKey(t)
	restored := filepath.Join(to, dumpPath)
	if out, err := exec.Command(pgRestore, "--no-owner", "--exit-on-error", "-d", freshDSN, restored).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	// Both jobs are in the restored catalog: the backup ended T, the
	// catalog job as it was when pg_dump ran (running: a director started
	// on it ends it E, as Bareos' catalog job is incomplete in its dump).
	var homeStatus, firstStatus, catStatus string
	if err := admin.QueryRow(ctx, "SELECT (SELECT status FROM jobs WHERE id = $1), (SELECT status FROM jobs WHERE id = $2), (SELECT status FROM jobs WHERE id = $3)",
		homeID, firstCat, catID).Scan(&homeStatus, &firstStatus, &catStatus); err != nil || homeStatus != "T" || firstStatus != "T" || catStatus != "R" {
		t.Fatalf("restored jobs: backup %q, catalog jobs %q, %q (want T, T, R): %v", homeStatus, firstStatus, catStatus, err)
	}

	// A director on the restored catalog lists the original jobs.
	fpc, err := pgx.ParseConfig(freshDSN)
	if err != nil {
		t.Fatal(err)
	}
	dirConf.DBName = fpc.Database
	dirConf.Write(t, dirPath)
	testenv.Start(t, "director", filepath.Join(dir, "director2.log"), "director ready", b["director"], "-c", dirPath)
	jobsAfter := tapectl("list jobs")
	if !regexp.MustCompile(`(?m)^\s*`+homeID+`\b.*web1-home.*\bT\b`).MatchString(jobsAfter) || !strings.Contains(jobsAfter, "BackupCatalog") {
		t.Fatalf("list jobs on the restored catalog:\n%s\nbefore:\n%s", jobsAfter, jobsBefore)
	}
	t.Logf("list jobs on the restored catalog:\n%s", jobsAfter)

	// No key material in any log: the daemons' and the job logs (the
	// wrapped keys are only in the bootstrap files).
	var secrets []string
	for _, v := range bf.Volumes {
		secrets = append(secrets, v.Key.Stored)
	}
	secrets = append(secrets, strings.TrimSpace(string(kb)))
	logs := []string{jobsBefore, jobsAfter, tapectl("list joblog jobid=" + catID), tapectl("list joblog jobid=" + firstCat)}
	for _, name := range []string{"director.log", "director2.log", "storaged.log", "filed.log"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, string(data))
	}
	for i, l := range logs {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(l, sec) {
				t.Errorf("key material in log %d", i)
			}
		}
	}
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
