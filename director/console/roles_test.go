package console

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/configs"
)

func TestRoles(t *testing.T) {
	if got := Roles(); !slices.Equal(got, []string{"read", "operator", "keyadmin"}) {
		t.Fatalf("Roles() = %q", got)
	}
	// director.toml's [[console]] role takes exactly these names.
	if !slices.Equal(configs.ConsoleRoles, Roles()) {
		t.Fatalf("configs.ConsoleRoles = %q, the console's roles are %q: they must be the same", configs.ConsoleRoles, Roles())
	}
	for i, n := range Roles() {
		r, ok := ParseRole(n)
		if !ok || r != Role(i+1) || r.String() != n {
			t.Errorf("ParseRole(%q) = %v, %v", n, r, ok)
		}
	}
	for _, bad := range []string{"", "Read", "admin", "keyadmin ", "root"} {
		if r, ok := ParseRole(bad); ok {
			t.Errorf("ParseRole(%q) = %v", bad, r)
		}
	}
	if Role(0).Allows(0) || Role(9).Allows(RoleRead) || !RoleKeyAdmin.Allows(RoleRead) || RoleRead.Allows(RoleOperator) {
		t.Error("Allows: the zero role or an unknown one allows something, or the order is wrong")
	}
}

// Every command of the table is covered by exactly one entry of the role
// table (its own or its family's), and every entry covers a command: a
// command cannot be added without saying which role runs it.
func TestEveryCommandHasOneRole(t *testing.T) {
	used := map[string]bool{}
	for _, s := range Commands() {
		var matches []string
		if _, ok := needs[s.Name]; ok {
			matches = append(matches, s.Name)
		}
		if first, _, two := strings.Cut(s.Name, " "); two {
			if _, ok := needs[first]; ok {
				matches = append(matches, first)
			}
		}
		if len(matches) != 1 {
			t.Errorf("command %q matches %d entries of the role table (%q); it needs exactly one: add it to needs in roles.go", s.Name, len(matches), matches)
		}
		for _, m := range matches {
			used[m] = true
			n := needs[m]
			if n.Role < RoleRead || n.Role > RoleKeyAdmin {
				t.Errorf("role table entry %q has no role", m)
			}
			for k, r := range n.Keywords {
				if s.Keyword(k) == nil {
					t.Errorf("role table entry %q names keyword %q, which %q does not take", m, k, s.Name)
				}
				if r <= n.Role || r > RoleKeyAdmin {
					t.Errorf("role table entry %q: keyword %q must need a role above %s", m, k, n.Role)
				}
			}
		}
	}
	for name := range needs {
		if !used[name] {
			t.Errorf("role table entry %q covers no command", name)
		}
	}
}

// Every command (each of its forms) × every role, against this table,
// written independently of roles.go.
func TestPermitEveryCommandEveryRole(t *testing.T) {
	const (
		read     = RoleRead
		operator = RoleOperator
		keyadmin = RoleKeyAdmin
	)
	lines := []struct {
		line string
		need Role
	}{
		{"help", read},
		{"help rekey", read},
		{"quit", read},
		{"exit", read},
		{"list volumes pool=Offsite", read},
		{"list keyevents volume=V1 limit=5", read},
		{"status director", read},
		{"status storage=sd1", read},
		{"status scheduler days=14 job=web1-home client=web1 schedule=WeeklyCycle", read},
		{"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt", operator},
		{"label storage=sd1 pool=Scratch slot=7 volume=V7", operator},
		{"mount storage=sd1 slot=3 drive=0", operator},
		{"unmount storage=sd1 drive=0", operator},
		{"release storage=sd1 drive=0", operator},
		{"update volume=V1 encrypt=rotate", keyadmin},
		{"update volume=V1 encrypt=yes", keyadmin},
		{"update volume=V1 encrypt=no", keyadmin},
		{"update volume=V1 status=Read-Only", operator},
		{"update volume=V1 status=append", operator},
		{"update pool=Offsite", operator},
		{"list pools", read},
		{"list volumeevents volume=V1 limit=5", read},
		{"rekey", keyadmin},
		{"rekey yes", keyadmin},
		{"export volume=V1", operator},
		{"export volume=V1 yes", operator},
		{"import", operator},
		{"import storage=sd1", operator},
		{"prune volume=V1", operator},
		{"prune volume=V1 yes", operator},
		{"purge volume=V1 yes", operator},
		{"list volumes vault pool=Offsite", read},
		{"export keys out=k.csv", keyadmin},
		{"export keys pool=Offsite out=k.csv", keyadmin},
		{"shred volume=V1", keyadmin},
		{"shred volume=V1 yes", keyadmin},
		{"run job=web1-home", operator},
		{"run job=web1-home level=Full yes wait", operator},
		{"cancel jobid=42", operator},
		{"wait jobid=42", read},
		{"estimate job=web1-home level=Incremental listing", read},
		{"list jobs job=web1-home client=web1 jobstatus=E days=7 last", read},
		{"list files jobid=42", read},
		{"list jobmedia jobid=42", read},
		{"list joblog jobid=42", read},
		{"status client=web1", read},
		{"list jobs type=Restore", read},
		{"restore client=web1 all where=/tmp/r yes", operator},
		{"restore client=web1 file=/etc/hosts dryrun", operator},
		{"restore client=web1 select", operator},
		{"browse session=ab12 line=ls", operator},
	}
	// Commands other branches are adding: checked when they exist.
	pending := []struct {
		line string
		need Role
	}{{"status kek=K1", read}}
	for _, p := range pending {
		if c, err := Parse(p.line); err == nil && Lookup(c.Name) != nil {
			lines = append(lines, p)
		}
	}
	covered := map[string]bool{}
	for _, l := range lines {
		cmd, err := Parse(l.line)
		if err != nil {
			t.Fatalf("%q: %v", l.line, err)
		}
		covered[cmd.Name] = true
		for _, role := range []Role{0, read, operator, keyadmin} {
			err := Permit(cmd, "bob", role)
			if allowed := role >= l.need && role != 0; allowed != (err == nil) {
				t.Errorf("%q as role %v: err = %v; want allowed = %v (it needs %s)", l.line, role, err, allowed, l.need)
				continue
			}
			var pe *PermissionError
			if err != nil && (!errors.As(err, &pe) || pe.Console != "bob" || pe.Role != role || pe.Command != cmd.Name || pe.Need != l.need || pe.NoEntry) {
				t.Errorf("%q as role %v: %#v", l.line, role, err)
			}
		}
	}
	for _, s := range Commands() {
		if !covered[s.Name] {
			t.Errorf("command %q is not in this test's table: add its forms and the role each needs", s.Name)
		}
	}

	// The messages an operator sees.
	for _, c := range []struct {
		line string
		role Role
		want string
	}{
		{"rekey yes", read, `console "bob" (role read) may not run "rekey": it needs role keyadmin`},
		{"label storage=sd1 pool=P slot=1 volume=V", read, `console "bob" (role read) may not run "label": it needs role operator`},
		{"update volume=V1 encrypt=rotate", operator, `console "bob" (role operator) may not run "update volume" with encrypt=: it needs role keyadmin`},
		{"export keys out=k.csv", operator, `console "bob" (role operator) may not run "export keys": it needs role keyadmin`},
		{"run job=web1-home", read, `console "bob" (role read) may not run "run": it needs role operator`},
		{"cancel jobid=7", read, `console "bob" (role read) may not run "cancel": it needs role operator`},
	} {
		cmd, _ := Parse(c.line)
		if err := Permit(cmd, "bob", c.role); err == nil || err.Error() != c.want {
			t.Errorf("%q as %v: %v\nwant %s", c.line, c.role, err, c.want)
		}
	}

	// Another form of update volume (without encrypt=) is an operator's.
	upd := Command{Name: "update volume", Args: map[string]string{"volume": "V1"}}
	if err := Permit(upd, "op", operator); err != nil {
		t.Errorf("update volume without encrypt= as operator: %v", err)
	}
	if err := Permit(upd, "ro", read); err == nil {
		t.Error("update volume without encrypt= allowed to read")
	}
	// A command the role table does not know is refused to every role.
	var pe *PermissionError
	if err := Permit(Command{Name: "destroy", Args: map[string]string{}}, "root", keyadmin); !errors.As(err, &pe) || !pe.NoEntry || !strings.Contains(err.Error(), "no role may") {
		t.Errorf("unknown command as keyadmin: %v", err)
	}
}

func TestHelpByRole(t *testing.T) {
	for _, role := range []Role{RoleRead, RoleOperator, RoleKeyAdmin} {
		h, err := HelpFor("", role)
		if err != nil {
			t.Fatal(err)
		}
		hidden := 0
		for _, s := range Commands() {
			need, _ := MinRole(s)
			listed := strings.Contains(h, "\n  "+s.Name+" ")
			if listed != role.Allows(need) {
				t.Errorf("help as %s: %q listed = %v; it needs %s", role, s.Name, listed, need)
			}
			if !listed {
				hidden++
			}
		}
		note := "This console has role " + role.String() + ": "
		if (hidden > 0) != strings.Contains(h, note) {
			t.Errorf("help as %s hides %d commands; note %q present = %v:\n%s", role, hidden, note, !(hidden > 0), h)
		}
	}
	h, _ := HelpFor("", RoleRead)
	if !strings.Contains(h, "This console has role read: 17 more commands need role operator or keyadmin (help COMMAND says which).") {
		t.Errorf("help as read:\n%s", h)
	}
	if full, _ := Help(""); full != mustHelp(t, "", RoleKeyAdmin) {
		t.Error("Help is not HelpFor keyadmin")
	}

	// A forbidden topic says which role it needs, and shows no usage.
	h, err := HelpFor("rekey", RoleRead)
	want := "rekey — rewrap every stored volume key under the active KEK (no tape is touched)\n\nrekey needs role keyadmin; this console has role read, so the director refuses it.\n"
	if err != nil || h != want {
		t.Errorf("help rekey as read = %q, %v\nwant %q", h, err, want)
	}
	h = mustHelp(t, "update volume", RoleOperator)
	if !strings.Contains(h, "Usage:\n  update volume=NAME (") || !strings.Contains(h, "(needs role keyadmin)") {
		t.Errorf("help update volume as operator:\n%s", h)
	}
	h = mustHelp(t, "update volume", RoleRead)
	if !strings.Contains(h, "update volume needs role operator; this console has role read") || strings.Contains(h, "Usage:") {
		t.Errorf("help update volume as read:\n%s", h)
	}
	// An allowed topic says its role.
	if h := mustHelp(t, "mount", RoleOperator); !strings.Contains(h, "Usage:\n  mount storage=NAME slot=N [drive=N]\n") || !strings.Contains(h, "\nNeeds role operator.\n") {
		t.Errorf("help mount as operator:\n%s", h)
	}
	// A family: each member as this role sees it.
	h = mustHelp(t, "list", RoleRead)
	if !strings.Contains(h, "list volumes — ") || !strings.Contains(h, "Usage:\n  list keyevents") {
		t.Errorf("help list as read:\n%s", h)
	}
	// Unknown topics are errors for every role.
	var uc *UnknownCommandError
	if _, err := HelpFor("lable", RoleRead); !errors.As(err, &uc) || uc.Suggestion != "label" {
		t.Errorf("help lable as read: %v", err)
	}
}

func mustHelp(t *testing.T, topic string, role Role) string {
	t.Helper()
	h, err := HelpFor(topic, role)
	if err != nil {
		t.Fatalf("HelpFor(%q, %s): %v", topic, role, err)
	}
	return h
}
