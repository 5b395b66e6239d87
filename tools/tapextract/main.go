// Command tapextract restores from Tapeward tapes with no director, no
// catalog and no storage daemon: it drives the changer and a drive
// itself, loads each volume's key (for reading only) from a crypto cache
// or an `export keys` file and the KEK, lists what the volumes hold from
// their labels and index tape files, and extracts jobs, volumes or paths
// with the same safe writing and digest checks as a restore. See
// README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type cli struct {
	stdout, stderr io.Writer
	// lib is the library in use, for the signal handler.
	lib libHolder
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

type command struct {
	name, synopsis, summary string
	run                     func(ctx context.Context, c *cli, f *flags, args []string) error
}

var commands = []*command{
	{"volumes", "--changer ADDR [--drive ADDR] [KEYS]", "every cartridge: slot, barcode, label (volume, pool, encryption, KEK id, fingerprint), jobs on it, key available or not and why", cmdVolumes},
	{"ls", "[-l] [--job N] --changer ADDR [--drive ADDR] --volume V KEYS", "the jobs on a volume from its index tape files, without reading data; -l lists the files (path, size, mtime, digest)", cmdLs},
	{"extract", "(--job N | --volume V) [--include GLOB ...] --to DIR --changer ADDR [--drive ADDR] KEYS  |  --bootstrap FILE --kek FILE --to DIR --changer ADDR [--drive ADDR]", "extract a job (across its volumes, loaded in order) or a volume's jobs: digests checked, written safely under DIR; with --bootstrap, the catalog dump it names (keys from the bootstrap, size and SHA-256 checked)", cmdExtract},
	{"catalog", "--dsn postgres://… --changer ADDR [--drive ADDR] KEYS [--volume V ...]", "rebuild the catalog's rows (pools, media with their wrapped keys, jobs, job media, files with exact addresses) from labels, part headers and index files", cmdCatalog},
	{"recipe", "--volume V [--changer ADDR [--drive ADDR] KEYS] [--tape /dev/nstN] [--sg /dev/sgN]", "the mt/dd/tar (and tapekey drive set-key) commands to restore the volume by hand", cmdRecipe},
}

const keysSynopsis = "KEYS: --cache FILE --kek FILE [--master FILE] [--bareos-kek FILE] | --keys FILE --kek FILE | --escrow-key FILE"

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(run(c, os.Args[1:]))
}

// run runs one command; SIGINT and SIGTERM cancel it, and the key is
// cleared before the process exits (the handler clears it itself if the
// command does not unwind in time).
func run(c *cli, args []string) int {
	if len(args) == 0 || isHelp(args[0]) {
		printHelp(c.stdout)
		return 0
	}
	var cmd *command
	for _, x := range commands {
		if x.name == args[0] {
			cmd = x
		}
	}
	if cmd == nil {
		fmt.Fprintf(c.stderr, "tapextract: unknown command %q; run: tapextract --help\n", args[0])
		return 2
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			name := "SIGTERM"
			if s == os.Interrupt {
				name = "SIGINT"
			}
			fmt.Fprintf(c.stderr, "tapextract: %s: stopping; clearing the drive's key\n", name)
			cancel(fmt.Errorf("interrupted by %s", name))
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				// The command did not unwind: clear the key from here.
				c.lib.emergencyClear(c.stderr)
				os.Exit(130)
			}
		case <-done:
		}
	}()
	f := &flags{FlagSet: flag.NewFlagSet("tapextract "+cmd.name, flag.ContinueOnError), path: "tapextract " + cmd.name}
	f.SetOutput(io.Discard)
	err := cmd.run(ctx, c, f, args[1:])
	close(done)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.stdout, "usage: tapextract %s %s\n  %s\n  %s\n", cmd.name, cmd.synopsis, cmd.summary, keysSynopsis)
		f.SetOutput(c.stdout)
		f.PrintDefaults()
		return 0
	}
	if cause := context.Cause(ctx); cause != nil {
		if strings.Contains(err.Error(), cause.Error()) {
			fmt.Fprintf(c.stderr, "tapextract %s: %v\n", cmd.name, err)
		} else {
			fmt.Fprintf(c.stderr, "tapextract %s: %v (%v)\n", cmd.name, cause, err)
		}
		return 130
	}
	if msg := err.Error(); strings.HasPrefix(msg, f.path) {
		fmt.Fprintln(c.stderr, msg)
	} else {
		fmt.Fprintf(c.stderr, "%s: %s\n", f.path, msg)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "tapextract — disaster recovery from Tapeward tapes: no director, no catalog, no storage daemon")
	fmt.Fprintln(w, "\nusage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  tapextract %s %s\n      %s\n", c.name, c.synopsis, c.summary)
	}
	fmt.Fprintf(w, "\n%s\n", keysSynopsis)
	fmt.Fprintln(w, "Device addresses: /dev/sgN, vtl:SOCKET#driveN, vtl:SOCKET#changer. Run tapextract COMMAND --help for its flags.")
}

// flags is a command's flag set.
type flags struct {
	*flag.FlagSet
	path string
}

// parse parses args (flags may follow positional arguments, which no
// command takes: they are refused, named).
func (f *flags) parse(args []string) error {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usagef("%s: %v; run: %s --help", f.path, err, f.path)
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) > 0 {
		return usagef("%s takes no arguments (got %s); run: %s --help", f.path, strings.Join(pos, " "), f.path)
	}
	return nil
}

// libHolder lets the signal handler reach the library in use.
type libHolder struct {
	p atomic.Pointer[library]
}

func (h *libHolder) set(l *library) { h.p.Store(l) }

func (h *libHolder) emergencyClear(w io.Writer) {
	l := h.p.Load()
	if l == nil {
		return
	}
	if err := l.clearKey(); err != nil {
		fmt.Fprintf(w, "tapextract: %v\n", err)
	}
}
