// Command director is Tapeward's director daemon: catalog, keys, console
// commands (package director/core).
//
//	director -c configs/director.toml                  run the daemon (applies pending migrations first)
//	director migrate -c configs/director.toml          apply pending migrations
//	director migrate status -c configs/director.toml   show versions and pending migrations
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/tools/lib/harden"
)

// defaultConfig is used when -c is not given.
const defaultConfig = "/etc/tapeward/director.toml"

const usage = `usage: director -c FILE            run the director
       director <command> [flags]

commands:
  migrate -c FILE          bring the catalog schema up to date (a second run does nothing)
  migrate status -c FILE   show the catalog's schema version and pending migrations

flags:
  -c FILE   the director's config file (default ` + defaultConfig + `)
`

// usageError is a command line mistake: exit status 2 with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	// Before any key or password is read: no core dump, no ptrace.
	if err := harden.Process(); err != nil {
		fmt.Fprintf(os.Stderr, "director: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "-c", "--c", "-config", "--config", "-debug", "--debug":
		err = serve(ctx, args, stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "director: %s\n\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "director: %v\n", err)
		return 1
	}
}

// migrate runs "migrate [status] -c FILE" (the word status may also come
// after the flags).
func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	status := false
	if len(args) > 0 && args[0] == "status" {
		status, args = true, args[1:]
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("c", defaultConfig, "config file")
	fs.StringVar(cfgPath, "config", defaultConfig, "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{"migrate: " + err.Error()}
	}
	rest := fs.Args()
	if !status && len(rest) > 0 && rest[0] == "status" {
		status, rest = true, rest[1:]
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("migrate: unexpected %q", rest[0])}
	}

	cfg, err := configs.LoadDirector(*cfgPath)
	if err != nil {
		return err
	}
	conn, err := catalog.Connect(ctx, cfg.Catalog, cfg.Path)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	if status {
		st, err := migrations.Status(ctx, conn)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "catalog:         %s\n", cfg.Catalog.Where())
		fmt.Fprintf(stdout, "current version: %d\n", st.Current)
		fmt.Fprintf(stdout, "latest version:  %d\n", st.Latest)
		if len(st.Pending) == 0 {
			fmt.Fprintln(stdout, "pending:         none (up to date)")
			return nil
		}
		fmt.Fprintf(stdout, "pending:         %d migration(s), run `director migrate -c %s`:\n", len(st.Pending), cfg.Path)
		for _, m := range st.Pending {
			fmt.Fprintf(stdout, "  %d  %s\n", m.Version, m.Name)
		}
		return nil
	}

	applied := 0
	err = migrations.ApplyNotify(ctx, conn, func(m migrations.Migration) {
		applied++
		fmt.Fprintf(stdout, "applying %s (version %d)\n", m.Name, m.Version)
	})
	if err != nil {
		return err
	}
	st, err := migrations.Status(ctx, conn)
	if err != nil {
		return err
	}
	if applied == 0 {
		fmt.Fprintf(stdout, "catalog schema is up to date (version %d)\n", st.Current)
	} else {
		fmt.Fprintf(stdout, "catalog schema is now at version %d (%d migration(s) applied)\n", st.Current, applied)
	}
	return nil
}
