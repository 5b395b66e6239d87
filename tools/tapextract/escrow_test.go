package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// TestDRWithEscrowKeyOnly: a pool with escrow_public_key; volumes labelled
// and a backup made by the system, driven by tapectl; status director
// names the escrow key of the volumes' envelopes. Then the director and
// storaged are gone, and so are the crypto cache and the KEK file:
// tapextract restores the tree from the tapes with only the escrow private
// key typed back from its paper form (the envelope in each label). A
// different escrow key is refused with the id of the one needed.
func TestDRWithEscrowKeyOnly(t *testing.T) {
	b := daemonBins(t)
	dir := t.TempDir()
	dsn := pgtest.NewDB(t)
	pki := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek1.key")
	testenv.WriteKEK(t, kekPath)
	esc, err := keys.NewEscrowKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "escrow.pub")
	pub, err := esc.Public().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	paper := esc.PaperText()
	paperPath := filepath.Join(dir, "escrow-paper.txt")
	if err := os.WriteFile(paperPath, []byte(strings.ToLower(paper)), 0o600); err != nil {
		t.Fatal(err)
	}

	vtl := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "3", "--drives", "1", "--capacity", "96MiB", "--load-delay", "0s")
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "data-web1")
	if err := testtree.Make(root, testtree.Options{Seed: 5, LargeFiles: 1, LargeSize: 3 << 20, SmallFiles: 40, SmallSize: 3000, Links: true}); err != nil {
		t.Fatal(err)
	}
	dirAddr := testenv.FreeAddr(t)
	fdAddr, sdAddr, sdConf, sd := startFiledAndStoraged(t, b, dir, pki, dirAddr, kekPath, vtl.Socket, 1)
	dirConf := testenv.Director{Name: "director", Listen: dirAddr, TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kekPath}, Storages: map[string]string{"sd1": sdAddr},
		Clients:  []testenv.Client{{Name: "web1", Address: fdAddr}},
		Filesets: []testenv.Fileset{{Name: "fs-web1", Include: []string{root}}},
		Pools:    []testenv.Pool{{Name: "Backup", Storage: "sd1", EscrowPublicKey: pubPath}},
		Jobs:     []testenv.Job{{Name: "web1-home", Client: "web1", Fileset: "fs-web1", Pool: "Backup"}}}
	dirPath := filepath.Join(dir, "director.toml")
	dirConf.Write(t, dirPath)
	dird := testenv.Start(t, "director", filepath.Join(dir, "director.log"), "director ready", b["director"], "-c", dirPath)
	conPath := filepath.Join(dir, "tapectl.toml")
	testenv.Console(t, conPath, "admin", "director", dirAddr, pki.Issue(t, "admin", tlsconf.RoleConsole))
	var consoleOuts []string
	tapectl := func(line string) string {
		t.Helper()
		out, err := exec.Command(b["tapectl"], "-c", conPath, line).CombinedOutput()
		consoleOuts = append(consoleOuts, string(out))
		if err != nil {
			t.Fatalf("tapectl %q: %v\n%s", line, err, out)
		}
		return string(out)
	}
	tapectl("label storage=sd1 pool=Backup slots=1-2 barcodes encrypt")
	out := tapectl("run job=web1-home yes")
	m := regexp.MustCompile(`(?i)job\s*id\D{0,3}(\d+)|\bjob\s+#?(\d+)\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run printed no job id:\n%s", out)
	}
	id := m[1] + m[2]
	tapectl("wait jobid=" + id)
	st := tapectl("status director")
	if !strings.Contains(st, "pool Backup: new keys sealed to escrow key "+esc.ID()) || !strings.Contains(st, "2 under escrow key "+esc.ID()) {
		t.Fatalf("status director does not name the escrow key %s of the 2 volumes:\n%s", esc.ID(), st)
	}

	// Shredding the unused volume: the envelope in its label is listed
	// among what the system cannot reach.
	pre := tapectl("shred volume=TW0002L6")
	sh := tapectl("shred volume=TW0002L6 yes")
	for _, o := range []string{pre, sh} {
		if !strings.Contains(o, "escrow envelope in the volume's label on the tape: sealed to escrow key "+esc.ID()) {
			t.Fatalf("shred does not list the on-tape envelope:\n%s", o)
		}
	}

	// The disaster: the daemons stop.
	dird.Stop(t, syscall.SIGTERM)
	sd.Stop(t, syscall.SIGTERM)
	vtl.RequireNoKey(t)
	w := &world{t: t, dir: dir, vtl: vtl, changer: "vtl:" + vtl.Socket + "#changer", drive: "vtl:" + vtl.Socket + "#drive0"}
	// The paper's lines of groups (whole lines: a lone group of 5
	// characters could match ordinary text by chance).
	var paperLines []string
	for _, l := range strings.Split(paper, "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			paperLines = append(paperLines, strings.Join(f[1:], " "))
		}
	}
	w.secrets = append(w.secrets, paperLines...)
	t.Cleanup(w.checkNoKeyMaterial)

	// The catalog rebuilt from the tapes (cache + KEK, and the escrow
	// key): TW0001L6 gets its wrapped key and the label's envelope back;
	// the shredded TW0002L6 has no key in the cache, opens only through
	// its envelope, and is not rebuilt (no wrapped key), saying why.
	cache := filepath.Join(sdConf.WorkDir, "storaged.cryptocache")
	rebuilt := pgtest.NewDB(t)
	// (It exits 1: the catalog is incomplete without TW0002L6.)
	cout, cerr, code := w.run(args([]string{"catalog", "--dsn", rebuilt, "--cache", cache, "--kek", kekPath, "--escrow-key", paperPath}, w.lib())...)
	if code != 1 || !strings.Contains(cout, "volume TW0002L6 (slot 2): NOT REBUILT: its key came from the label's escrow envelope") ||
		!strings.Contains(cout, "volume TW0001L6 (slot 1): added to pool Backup") {
		t.Logf("stderr:\n%s", cerr)
		t.Fatalf("tapextract catalog:\n%s", cout)
	}
	var origEnv, reEnv, reID string
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), `SELECT escrow_envelope FROM media WHERE volume_name = 'TW0001L6'`).Scan(&origEnv); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Connect(t, rebuilt).QueryRow(t.Context(), `SELECT escrow_key_id, escrow_envelope FROM media WHERE volume_name = 'TW0001L6'`).Scan(&reID, &reEnv); err != nil {
		t.Fatalf("rebuilt TW0001L6: %v\n%s", err, cout)
	}
	if reID != esc.ID() || reEnv != origEnv {
		t.Fatalf("rebuilt envelope: id %s (want %s), same envelope %t", reID, esc.ID(), reEnv == origEnv)
	}

	// Now the crypto cache and the KEK are lost too.
	if err := os.Remove(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kekPath); err != nil {
		t.Fatal(err)
	}
	vols := w.ok(args([]string{"volumes", "--escrow-key", paperPath}, w.lib())...)
	if !regexp.MustCompile(`TW0001L6\s.*\byes \(label has an escrow envelope for escrow key ` + esc.ID() + `\)\s+` + id + ` `).MatchString(vols) {
		t.Fatalf("volumes with the escrow key:\n%s", vols)
	}
	to := filepath.Join(dir, "restore")
	w.ok(args([]string{"extract", "--job", id, "--to", to, "--escrow-key", paperPath}, w.lib())...)
	sameTree(t, root, filepath.Join(to, root))
	vtl.RequireNoKey(t)

	// Another escrow key: refused, naming the one the envelope needs.
	other, _ := keys.NewEscrowKey()
	otherJSON, _ := other.MarshalPrivate()
	otherPath := filepath.Join(dir, "other.key")
	os.WriteFile(otherPath, otherJSON, 0o600)
	w.fails("sealed to escrow key "+esc.ID(), args([]string{"extract", "--job", id, "--to", filepath.Join(dir, "restore2"), "--escrow-key", otherPath}, w.lib())...)

	// No secret in the daemons' logs or the console's output.
	var logs []string
	for _, f := range []string{"director.log", "storaged.log", "filed.log"} {
		lb, _ := os.ReadFile(filepath.Join(dir, f))
		logs = append(logs, string(lb))
	}
	for _, s := range append(logs, consoleOuts...) {
		for _, g := range paperLines {
			if strings.Contains(strings.ToUpper(s), g) {
				t.Fatalf("a paper group of the escrow key in a log or console output")
			}
		}
	}
}
