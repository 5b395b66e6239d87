// Command tapekey is Tapeward's key tool: KEK files, volume keys, RFC 3394
// wrap and unwrap (v1, bareos and raw), and the Tink master keyset that
// seals KEK files. Run "tapekey help" for the commands.
//
// It is a small dispatcher over command groups. Each group lives in its own
// file and is one entry of the groups table below; to add a group (drive,
// cache, pki, ...) write one file that defines a *group and add it there.
//
// Exit status: 0 on success, 2 for usage errors, 1 for every other failure
// (with a one-line message on stderr). No command prints key material,
// except unwrap, which prints the unwrapped key on stdout.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tapeward/tapeward/tools/lib/harden"
)

// groups is the command table, in the order "tapekey help" lists it.
var groups = []*group{
	kekGroup,
	keyGroup,
	wrapGroup,
	unwrapGroup,
	masterKeysetGroup,
	escrowGroup,
	driveGroup,
	cacheGroup,
	pkiGroup,
}

// group is a top-level word of the command line. A group has named
// subcommands ("kek new", "kek id"), or is a command itself (leaf: "wrap").
type group struct {
	name     string
	summary  string
	commands []*command // subcommands; empty when leaf is set
	leaf     *command   // the command run for "tapekey <name> ..."
}

// command is one runnable command. It parses its own flags with one
// flag.FlagSet (see newFlags).
type command struct {
	name     string // subcommand name; empty for a leaf
	synopsis string // arguments, e.g. "--out FILE [--json]"
	summary  string // one line, for the command list
	detail   string // more, for "--help"; optional
	// run defines its flags on f (made by the dispatcher for this
	// command), parses args with f.parse and does the work.
	run func(c *cli, f *flags, args []string) error
}

// cli carries the process's streams, so commands never touch os.Std*.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func main() {
	// Most commands read KEKs, keys or the CA key: keep them out of core
	// dumps and debuggers.
	if err := harden.Process(); err != nil {
		fmt.Fprintln(os.Stderr, "tapekey:", err)
		os.Exit(1)
	}
	os.Exit(run(&cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// run dispatches args and returns the exit status.
func run(c *cli, args []string) int {
	err := dispatch(c, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	if !strings.HasPrefix(msg, "tapekey ") {
		msg = "tapekey: " + msg
	}
	fmt.Fprintln(c.stderr, msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(c *cli, args []string) error {
	if len(args) == 0 {
		printHelp(c.stderr)
		return usagef("no command given; run: tapekey help")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if g := findGroup(rest[0]); g != nil {
				if g.leaf != nil {
					return g.leaf.run(c, newFlags(g, g.leaf), []string{"--help"})
				}
				printGroupHelp(c.stdout, g)
				return nil
			}
			return usagef("unknown command %q; run: tapekey help", rest[0])
		}
		printHelp(c.stdout)
		return nil
	}
	g := findGroup(name)
	if g == nil {
		return usagef("unknown command %q; run: tapekey help", name)
	}
	if g.leaf != nil {
		return g.leaf.run(c, newFlags(g, g.leaf), rest)
	}
	if len(rest) == 0 {
		printGroupHelp(c.stderr, g)
		return usagef("%q needs a subcommand; run: tapekey %s --help", g.name, g.name)
	}
	if isHelpFlag(rest[0]) || rest[0] == "help" {
		printGroupHelp(c.stdout, g)
		return nil
	}
	for _, cmd := range g.commands {
		if cmd.name == rest[0] {
			return cmd.run(c, newFlags(g, cmd), rest[1:])
		}
	}
	return usagef("unknown command \"%s %s\"; run: tapekey %s --help", g.name, rest[0], g.name)
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func findGroup(name string) *group {
	for _, g := range groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: tapekey <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, g := range groups {
		for _, cmd := range g.all() {
			fmt.Fprintf(w, "  %s\n      %s\n", g.line(cmd), cmd.summary)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run \"tapekey <command> --help\" for a command's flags. Keys are never printed,")
	fmt.Fprintln(w, "except by unwrap, on stdout. Exit status: 0 ok, 1 failure, 2 usage error.")
}

func printGroupHelp(w io.Writer, g *group) {
	fmt.Fprintf(w, "tapekey %s: %s\n\ncommands:\n", g.name, g.summary)
	for _, cmd := range g.all() {
		fmt.Fprintf(w, "  %s\n      %s\n", g.line(cmd), cmd.summary)
	}
}

func (g *group) all() []*command {
	if g.leaf != nil {
		return []*command{g.leaf}
	}
	return g.commands
}

// line is the command's name and synopsis as help lists it.
func (g *group) line(cmd *command) string {
	s := "tapekey " + g.name
	if cmd.name != "" {
		s += " " + cmd.name
	}
	if cmd.synopsis != "" {
		s += " " + cmd.synopsis
	}
	return s
}

// flags is one command's flag.FlagSet plus what its help shows.
type flags struct {
	*flag.FlagSet
	path    string // "tapekey kek new"
	line    string // path and synopsis
	summary string
}

// newFlags returns the flag set of "tapekey <group> [<cmd>]". Parse errors
// and -h are handled by parse.
func newFlags(g *group, cmd *command) *flags {
	path := "tapekey " + g.name
	if cmd.name != "" {
		path += " " + cmd.name
	}
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	text := cmd.summary
	if cmd.detail != "" {
		text += "\n\n" + cmd.detail
	}
	return &flags{FlagSet: fs, path: path, line: g.line(cmd), summary: text}
}

// parse parses args, allowing flags after positional arguments
// ("kek id FILE --master M"); "--" ends the flags. -h prints the command's
// usage on stdout and returns flag.ErrHelp (exit 0).
func (f *flags) parse(c *cli, args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stdout, "usage: %s\n\n%s\n", f.line, f.summary)
			if hasFlags(f.FlagSet) {
				fmt.Fprintln(c.stdout, "\nflags:")
				f.SetOutput(c.stdout)
				f.PrintDefaults()
			}
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, usagef("%s: %s; run: %s --help", f.path, err, f.path)
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs is a usage error unless pos is empty.
func (f *flags) noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("%s takes no arguments (got %d); run: %s --help", f.path, len(pos), f.path)
	}
	return nil
}

// required is a usage error when a required flag has no value.
func (f *flags) required(name, value string) error {
	if value == "" {
		return usagef("%s needs --%s; run: %s --help", f.path, name, f.path)
	}
	return nil
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
