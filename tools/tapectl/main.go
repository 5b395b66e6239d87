// Command tapectl is Tapeward's operator console. It sends command lines,
// exactly as typed, to the director's Console service over mutual TLS and
// prints what comes back; the director parses them ("help" lists them).
//
//	tapectl [-c FILE] [--json]                 interactive prompt (stdin is a terminal)
//	tapectl [-c FILE] [--json] "LINE" ...      one-shot: run each LINE in order
//	... | tapectl [-c FILE] [--json]           script: one command per stdin line
//
// Progress lines stream to stderr; results go to stdout (with --json, the
// result's JSON document instead of its text). Only blank lines, '#'
// comments and quit/exit are handled locally.
//
// Exit status: 0 every command succeeded; 1 a command failed (or partly
// failed, or the director could not be reached); 2 usage or configuration
// error; 130 interrupted by Ctrl-C. The interactive prompt exits 0 when
// left with quit, exit or Ctrl-D (a failed command there is reported and
// the prompt comes back; Ctrl-C cancels the running command only), and
// 128+N on SIGTERM or SIGHUP, after giving the terminal back.
//
// The prompt keeps its history in ~/.tapeward_history (mode 0600, the
// last 500 lines), never a line that contains "key=" or "kek=".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

const (
	defaultConfig = "/etc/tapeward/tapectl.toml"
	configEnv     = "TAPEWARD_CONSOLE_CONFIG"
	// maxRecv bounds one reply message (a keys export of many volumes is
	// the largest); gRPC's default of 4 MiB is too small for big catalogs.
	maxRecv = 256 << 20
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usageText = `Usage: tapectl [-c FILE] [--json] [COMMAND ...]

tapectl is the Tapeward operator console. It sends each command line to the
director and prints the result.

  tapectl                           interactive prompt with line editing and
                                    history (~/.tapeward_history); leave with
                                    quit, exit or Ctrl-D
  tapectl "list volumes" ...        run the commands given as arguments, in
                                    order, stopping at the first that fails
  echo "status director" | tapectl  read one command per line from a
                                    non-terminal stdin (blank lines and lines
                                    starting with # are skipped); stops at the
                                    first failure

Type "help" (at the prompt or as a command) for the director's command list,
and "help COMMAND" for one command. At the prompt, a label line that leaves
out what the director cannot choose (the storage when several are
configured, the pool when director.toml sets no default_pool, the slots
with barcodes) is completed by questions with numbered menus, as Bareos'
console asks; a one-shot command instead names everything missing.

Options:
  -c, --config FILE   console configuration (default: $TAPEWARD_CONSOLE_CONFIG,
                      else /etc/tapeward/tapectl.toml)
  --json              print each result as one JSON document instead of text
                      (a result with no JSON form, like help's, prints its
                      text on stderr, so stdout holds only JSON)
  -h, --help          show this help

Progress goes to stderr, results to stdout. A command that writes a file on
this machine (export keys out=FILE) creates FILE with mode 0600, never
overwrites an existing file, and writes only the FILE typed (a file the
director names otherwise is refused).

Exit status: 0 all commands succeeded; 1 a command failed or partly failed,
or the director could not be reached; 2 usage or configuration error;
130 interrupted (Ctrl-C). Ctrl-C at the prompt cancels the running command.
`

// options are the parsed command line.
type options struct {
	config string
	json   bool
	help   bool
	lines  []string
}

// parseArgs accepts options before, between and after the command lines
// (no command starts with '-'); "--" ends the options.
func parseArgs(args []string) (options, error) {
	var o options
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.lines = append(o.lines, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			o.lines = append(o.lines, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "c", "config":
			if !hasValue {
				if i+1 >= len(args) {
					return o, fmt.Errorf("%s needs a file name", a)
				}
				i++
				value = args[i]
			}
			if value == "" {
				return o, fmt.Errorf("%s needs a file name", a)
			}
			o.config = value
		case "json":
			if hasValue {
				return o, fmt.Errorf("--json takes no value")
			}
			o.json = true
		case "h", "help":
			o.help = true
		default:
			return o, fmt.Errorf("unknown option %s", a)
		}
	}
	return o, nil
}

// run is main with its streams and returns the exit code.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "tapectl: %v (see tapectl --help)\n", err)
		return exitUsage
	}
	if o.help {
		io.WriteString(stdout, usageText)
		return exitOK
	}
	if o.config == "" {
		o.config = os.Getenv(configEnv)
	}
	if o.config == "" {
		o.config = defaultConfig
	}
	cfg, err := configs.LoadConsole(o.config)
	if err != nil {
		fmt.Fprintf(stderr, "tapectl: %v\n", err)
		return exitUsage
	}
	c, err := dial(cfg, o.json, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tapectl: %v\n", err)
		return exitUsage
	}
	defer c.close()

	// SIGINT cancels the running command; what happens next depends on
	// the mode (one-shot and script: exit 130; prompt: back to it).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)

	switch {
	case len(o.lines) > 0:
		return c.batch(sigs, argLines(o.lines))
	case term.IsTerminal(int(stdin.Fd())):
		return c.interactive(sigs, stdin, stdout)
	default:
		return c.batch(sigs, scriptLines(stdin))
	}
}

// dial makes the console's client connection to the director (nothing is
// sent until the first command: a director that cannot be reached is that
// command's error).
func dial(cfg *configs.Console, json bool, stdout, stderr io.Writer) (*console, error) {
	tc, err := clientTLS(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", cfg.Path, err)
	}
	conn, err := grpc.NewClient(cfg.Director.Address,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecv)))
	if err != nil {
		return nil, fmt.Errorf("%s: director address %q: %v", cfg.Path, cfg.Director.Address, err)
	}
	return &console{
		client: tapewardpb.NewConsoleClient(conn),
		close:  conn.Close,
		cfg:    cfg,
		json:   json,
		stdout: stdout,
		stderr: stderr,
	}, nil
}

// clientTLS builds the console's TLS configuration and checks, before
// anything is sent, that its certificate is a console certificate for the
// configured name (the director authorizes by both).
func clientTLS(cfg *configs.Console) (*tls.Config, error) {
	// The director must present a director certificate for its name.
	// [director] name, or else tls_server_name (the prompt's rule).
	want := tlsconf.Peer{Role: tlsconf.RoleDirector, Name: directorName(&console{cfg: cfg})}
	tc, err := tlsconf.Client(tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, RevocationList: cfg.TLS.RevocationList}, want, cfg.Director.TLSServerName)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %v", cfg.TLS.Cert, err)
	}
	var role string
	if len(leaf.Subject.OrganizationalUnit) > 0 {
		role = leaf.Subject.OrganizationalUnit[0]
	}
	if role != tlsconf.RoleConsole {
		return nil, fmt.Errorf("certificate %s has role %q; tapectl needs a console certificate (role %q), issued for name %q",
			cfg.TLS.Cert, role, tlsconf.RoleConsole, cfg.Name)
	}
	if leaf.Subject.CommonName != cfg.Name {
		return nil, fmt.Errorf("certificate %s is for %q but this console is name = %q; they must match",
			cfg.TLS.Cert, leaf.Subject.CommonName, cfg.Name)
	}
	return tc, nil
}

// local reports whether line is handled without the director: blank
// lines and comments are skipped; quit and exit leave.
func local(line string) (skip, quit bool) {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return true, false
	}
	if strings.EqualFold(t, "quit") || strings.EqualFold(t, "exit") {
		return false, true
	}
	return false, false
}

// errInterrupted is a command cancelled by Ctrl-C.
var errInterrupted = errors.New("interrupted")

// withInterrupt returns a context cancelled (cause errInterrupted) when a
// SIGINT arrives on sigs, and its stop function, which reports whether
// that happened — also when the signal came after the command finished,
// so that no Ctrl-C is lost between two commands.
func withInterrupt(sigs <-chan os.Signal) (context.Context, func() bool) {
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-sigs:
			cancel(errInterrupted)
		case <-done:
		}
	}()
	return ctx, func() bool {
		close(done)
		<-watched
		interrupted := errors.Is(context.Cause(ctx), errInterrupted)
		cancel(nil)
		return interrupted
	}
}

// drain discards signals that arrived while no command ran (at the
// prompt, the terminal sends none; these came from kill).
func drain(sigs <-chan os.Signal) {
	for {
		select {
		case <-sigs:
		default:
			return
		}
	}
}
