package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// consoleConfig issues a console certificate for name (signed by the
// world's CA) and writes its tapectl.toml; it returns the config's path.
func (w *world) consoleConfig(name string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, "tapectl-"+name+".toml")
	testenv.Console(w.t, p, name, "director", w.dirConf.Listen, w.pki.Issue(w.t, name, tlsconf.RoleConsole))
	return p
}

// Console roles, end to end: three configured consoles (read, operator,
// keyadmin) and one whose certificate the CA signed but the director does
// not list.
func TestConsoleRoles(t *testing.T) {
	w := newWorld(t, worldOpts{consoles: map[string]string{"admin": "keyadmin", "reader": "read", "ops": "operator", "keys": "keyadmin"}})
	reader, ops, keys, stranger := w.consoleConfig("reader"), w.consoleConfig("ops"), w.consoleConfig("keys"), w.consoleConfig("stranger")

	as := func(con string, args ...string) (string, string, int) {
		t.Helper()
		return w.tapectlWith(con, args...)
	}
	ok := func(con string, args ...string) string {
		t.Helper()
		out, errs, code := as(con, args...)
		if code != 0 {
			t.Fatalf("%s: %q: exit %d\n%s%s", filepath.Base(con), args, code, out, errs)
		}
		return out
	}
	refused := func(con, line, want string) {
		t.Helper()
		out, errs, code := as(con, line)
		if code != 1 || out != "" || errs != "tapectl: "+want+"\n" {
			t.Errorf("%s: %q: exit %d, stdout %q, stderr %q\nwant exit 1 and %q", filepath.Base(con), line, code, out, errs, want)
		}
	}

	// An operator labels; a keyadmin rotates and exports.
	ok(ops, "label storage=sd1 pool=Offsite slots=1-3 barcodes encrypt")
	before := w.volumes()

	// The unconfigured console is refused at connect, by name, and told
	// what to add; the director logs why.
	out, errs, code := as(stranger, "list volumes")
	if code != 1 || out != "" || !strings.Contains(errs, `refused console "stranger" when it connected`) ||
		!strings.Contains(errs, `add [[console]] name = "stranger" role = "read" (or operator, keyadmin) to the director's director.toml`) {
		t.Errorf("unconfigured console: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	// (The director logs it before it sends the TLS alert.)
	if log := w.dird.Output(); !strings.Contains(log, `msg="refused a console at connect" console=stranger reason="console \"stranger\" is not configured in this director: add [[console]] name = \"stranger\" role = \"read\" (or operator, keyadmin) to `+w.dirPath+` and restart the director"`) {
		t.Errorf("the director's log does not say why it refused stranger:\n%s", log)
	}

	// read: looks, never changes.
	if out := ok(reader, "list volumes"); !strings.Contains(out, "3 volumes") {
		t.Errorf("list volumes as reader: %s", out)
	}
	ok(reader, "status director")
	ok(reader, "list keyevents volume=TW0001L6")
	refused(reader, "label storage=sd1 pool=Offsite slot=4 volume=RO0004", `console "reader" (role read) may not run "label": it needs role operator`)
	refused(reader, "mount storage=sd1 slot=1 drive=0", `console "reader" (role read) may not run "mount": it needs role operator`)
	refused(reader, "rekey yes", `console "reader" (role read) may not run "rekey": it needs role keyadmin`)
	refused(reader, "export keys out=reader.csv", `console "reader" (role read) may not run "export keys": it needs role keyadmin`)

	// operator: works the library, no key custody.
	refused(ops, "export keys out=ops.csv", `console "ops" (role operator) may not run "export keys": it needs role keyadmin`)
	refused(ops, "rekey", `console "ops" (role operator) may not run "rekey": it needs role keyadmin`)
	refused(ops, "shred volume=TW0001L6 yes", `console "ops" (role operator) may not run "shred volume": it needs role keyadmin`)
	refused(ops, "update volume=TW0001L6 encrypt=rotate", `console "ops" (role operator) may not run "update volume" with encrypt=: it needs role keyadmin`)
	if out := ok(ops, "mount storage=sd1 slot=1 drive=0"); !strings.Contains(out, "TW0001L6 (slot 1) mounted in drive0") {
		t.Errorf("mount as ops: %s", out)
	}
	ok(ops, "unmount storage=sd1 drive=0")
	w.vtl.RequireNoKey(t)
	// Volume status is an operator's: set, refused with the allowed
	// ones, set back; a reader may only look.
	refused(reader, "update volume=TW0003L6 status=Disabled", `console "reader" (role read) may not run "update volume": it needs role operator`)
	if out := ok(ops, "update volume=TW0003L6 status=Archive"); !strings.Contains(out, "volume TW0003L6: status Append → Archive") {
		t.Errorf("status=Archive as ops: %s", out)
	}
	refused(ops, "update volume=TW0003L6 status=Append", `volume "TW0003L6" cannot go from Archive to Append; from Archive it may go to Full, Used, Read-Only, Disabled, Error`)
	ok(ops, "update volume=TW0003L6 status=Disabled")
	ok(ops, "update volume=TW0003L6 status=Append")
	if out := ok(reader, "list pools"); !strings.Contains(out, "Append 3") {
		t.Errorf("list pools as reader: %s", out)
	}

	// Nothing the refused commands asked for happened.
	for _, f := range []string{"reader.csv", "ops.csv"} {
		if _, err := os.Lstat(filepath.Join(w.dir, f)); err == nil {
			t.Errorf("a refused export wrote %s", f)
		}
	}
	after := w.volumes()
	if len(after) != 3 || after[0].Key != before[0].Key {
		t.Fatalf("refused commands changed the catalog: before %+v\nafter %+v", before, after)
	}

	// keyadmin: key custody.
	if out := ok(keys, "rekey"); !strings.Contains(out, "would rewrap 0 stored keys") {
		t.Errorf("rekey dry run as keys: %s", out)
	}
	if out := ok(keys, "update volume=TW0002L6 encrypt=rotate"); !strings.Contains(out, "label rewritten") {
		t.Errorf("rotate as keys: %s", out)
	}
	ok(keys, "export keys pool=Offsite out=keys.csv")
	if b, err := os.ReadFile(filepath.Join(w.dir, "keys.csv")); err != nil || strings.Count(string(b), "TW000") != 3 {
		t.Errorf("export as keys: %v\n%s", err, b)
	}

	// Key events carry the configured console names.
	var events []struct {
		Volume string `json:"Volume"`
		Event  string `json:"Event"`
		Actor  string `json:"Actor"`
	}
	if err := json.Unmarshal([]byte(ok(keys, "--json", "list keyevents")), &events); err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]map[string]bool{}
	for _, e := range events {
		if byEvent[e.Event] == nil {
			byEvent[e.Event] = map[string]bool{}
		}
		byEvent[e.Event][e.Actor] = true
		if e.Actor == "reader" || e.Actor == "stranger" {
			t.Errorf("key event %+v is by a console that may not change keys", e)
		}
	}
	for ev, actor := range map[string]string{"generated": "ops", "rotated": "keys", "exported": "keys"} {
		if len(byEvent[ev]) != 1 || !byEvent[ev][actor] {
			t.Errorf("%q key events are by %v, want %s only", ev, byEvent[ev], actor)
		}
	}

	// help shows each console what it may run.
	helps := map[string]string{}
	for name, con := range map[string]string{"read": reader, "operator": ops, "keyadmin": keys} {
		helps[name] = ok(con, "help")
	}
	for _, c := range []struct {
		role         string
		shows, hides []string
	}{
		{"read", []string{"list volumes", "list pools", "status storage", "list jobs", "wait", "estimate"}, []string{"label", "mount", "rekey", "export keys", "update volume", "update pool", "run", "cancel", "restore", "browse"}},
		// update volume: status= is an operator's, encrypt= a keyadmin's.
		{"operator", []string{"list volumes", "label", "mount", "release", "run", "cancel", "update volume", "update pool", "restore", "browse"}, []string{"rekey", "export keys"}},
		{"keyadmin", []string{"list volumes", "label", "mount", "rekey", "export keys", "update volume", "update pool"}, nil},
	} {
		h := helps[c.role]
		for _, s := range c.shows {
			if !strings.Contains(h, "\n  "+s+" ") {
				t.Errorf("help as %s lacks %q:\n%s", c.role, s, h)
			}
		}
		for _, s := range c.hides {
			if strings.Contains(h, "\n  "+s+" ") {
				t.Errorf("help as %s lists %q:\n%s", c.role, s, h)
			}
		}
	}
	if !strings.Contains(helps["read"], "This console has role read: 17 more commands need role operator or keyadmin") {
		t.Errorf("help as read does not say what it hides:\n%s", helps["read"])
	}
	if h := ok(reader, "help rekey"); !strings.Contains(h, "rekey needs role keyadmin; this console has role read") {
		t.Errorf("help rekey as reader:\n%s", h)
	}
}
