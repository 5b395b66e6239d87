package core

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// bare is a director with consoles but no catalog, keyring or storage
// links: any command that got past the role check would panic on them.
func bare(log *bytes.Buffer) *Director {
	return &Director{
		cfg: &configs.Director{Path: "/etc/tapeward/director.toml"},
		log: slog.New(slog.NewTextHandler(log, nil)),
		consoles: map[string]console.Role{
			"reader": console.RoleRead, "ops": console.RoleOperator, "keys": console.RoleKeyAdmin,
		},
		storages: map[string]*storageLink{},
	}
}

func TestAcceptOnlyConfiguredConsoles(t *testing.T) {
	var log bytes.Buffer
	d := bare(&log)
	for _, name := range []string{"reader", "ops", "keys"} {
		if err := d.Accept(tlsconf.Peer{Name: name, Role: tlsconf.RoleConsole}); err != nil {
			t.Errorf("configured console %s refused: %v", name, err)
		}
	}
	want := `console "bob" is not configured in this director: add [[console]] name = "bob" role = "read" (or operator, keyadmin) to /etc/tapeward/director.toml and restart the director`
	if err := d.Accept(tlsconf.Peer{Name: "bob", Role: tlsconf.RoleConsole}); err == nil || err.Error() != want {
		t.Errorf("unconfigured console: %v\nwant %s", err, want)
	}
	if !strings.Contains(log.String(), `msg="refused a console at connect" console=bob`) {
		t.Errorf("the refusal is not logged:\n%s", log.String())
	}
	// A storage's name is not a console's, nor the other way round.
	if err := d.Accept(tlsconf.Peer{Name: "ops", Role: tlsconf.RoleStorage}); err == nil {
		t.Error("a storage certificate named like a console accepted")
	}
}

// Every command × every role at the director: a command the role may not
// run is refused before anything runs (the bare director would panic),
// with the message console.Permit gives; help runs and shows the role's
// commands.
func TestExecChecksTheRoleFirst(t *testing.T) {
	var log bytes.Buffer
	d := bare(&log)
	roles := map[string]console.Role{"reader": console.RoleRead, "ops": console.RoleOperator, "keys": console.RoleKeyAdmin}
	refusals := 0
	for _, s := range console.Commands() {
		for _, ex := range s.Examples {
			cmd, err := console.Parse(ex)
			if err != nil {
				t.Fatalf("%q: %v", ex, err)
			}
			need, _, _ := console.Needs(cmd)
			for name, role := range roles {
				if role.Allows(need) {
					if cmd.Name == "help" {
						out, err := d.Exec(context.Background(), name, cmd, func(string, ...any) {})
						if err != nil || out.Text == "" {
							t.Errorf("%q as %s: %v", ex, name, err)
						}
					}
					continue
				}
				refusals++
				_, err := d.Exec(context.Background(), name, cmd, func(string, ...any) {})
				want := console.Permit(cmd, name, role)
				if status.Code(err) != codes.PermissionDenied || want == nil || status.Convert(err).Message() != want.Error() {
					t.Errorf("%q as %s (%s): %v; want PermissionDenied: %v", ex, name, role, err, want)
				}
			}
		}
	}
	if refusals == 0 {
		t.Fatal("no command was refused to any role")
	}
	// An actor with no [[console]] runs nothing, not even help.
	help, _ := console.Parse("help")
	if _, err := d.Exec(context.Background(), "bob", help, nil); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `console "bob" is not configured`) {
		t.Errorf("help as an unconfigured console: %v", err)
	}
	// help as reader lists what reader may run.
	out, err := d.Exec(context.Background(), "reader", help, nil)
	if err != nil || strings.Contains(out.Text, "\n  rekey ") || !strings.Contains(out.Text, "\n  list volumes ") {
		t.Errorf("help as reader: %v\n%v", err, out)
	}
	if !strings.Contains(log.String(), `msg="console command refused" console=reader role=read command=rekey`) {
		t.Errorf("refusals are not logged:\n%s", log.String())
	}
}
