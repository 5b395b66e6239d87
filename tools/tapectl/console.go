package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	cmdline "github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/proto/tapewardpb"
)

// console runs command lines against the director.
type console struct {
	client tapewardpb.ConsoleClient
	close  func() error
	cfg    *configs.Console
	json   bool
	stdout io.Writer
	stderr io.Writer
	// The restore tree browser (browse.go): the director's session id
	// while lines are browser lines; confirm after done showed the plan.
	browseID      string
	browseConfirm bool
}

// maxScriptLine bounds one line of a script (the director takes far
// shorter ones; this only keeps a runaway input from filling memory).
const maxScriptLine = 1 << 20

// errPartial is a command whose result says some of its parts failed.
var errPartial = errors.New("the command partly failed (see its output above)")

// exec runs one line: progress to stderr as it arrives, the result to
// stdout, a returned file written on this side. The error is what to
// print after "tapectl: ".
func (c *console) exec(ctx context.Context, line string) error {
	if c.browsing() {
		return c.browseExec(ctx, line)
	}
	if isSelect(line) {
		return c.browseStart(ctx, line)
	}
	line, err := expandFileLists(line)
	if err != nil {
		return err
	}
	files := typedFiles(line)
	if err := checkConsoleFiles(files); err != nil {
		return err
	}
	var p peer.Peer
	stream, err := c.client.Run(ctx, &tapewardpb.RunRequest{Line: line, Json: c.json}, grpc.Peer(&p))
	if err != nil {
		return c.rpcError(ctx, err, &p)
	}
	var res *tapewardpb.Result
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.rpcError(ctx, err, &p)
		}
		switch m := m.Msg.(type) {
		case *tapewardpb.RunReply_Progress:
			fmt.Fprintln(c.stderr, strings.TrimRight(m.Progress, "\r\n"))
		case *tapewardpb.RunReply_Result:
			if res == nil {
				res = m.Result
			}
		}
	}
	if res == nil {
		return errors.New("the director ended the command without a result")
	}
	return c.show(res, files)
}

// consoleFile is a file the operator named on the command line for the
// console to write (export keys out=FILE).
type consoleFile struct {
	keyword string // "out"
	path    string // exactly as typed (after unquoting)
}

// typedFiles lists the console-side files a line names. A line that does
// not parse here names none (the director's answer will explain it, and
// any file it returned would be refused).
func typedFiles(line string) []consoleFile {
	cmd, err := cmdline.Parse(line)
	if err != nil {
		return nil
	}
	var fs []consoleFile
	for _, k := range cmd.ConsoleArgs() {
		fs = append(fs, consoleFile{keyword: k, path: cmd.Str(k)})
	}
	return fs
}

// checkConsoleFiles refuses, before anything is sent, a command whose
// console-side output file (export keys out=FILE) already exists or
// whose directory is missing or not writable here: the director records
// the keys it returns as sent to this console, so tapectl must not ask
// for keys it cannot write. (What can still fail after the check — a full
// disk — is reported as a failure naming what the director recorded.)
func checkConsoleFiles(files []consoleFile) error {
	for _, f := range files {
		path, err := filepath.Abs(f.path)
		if err != nil {
			return fmt.Errorf("%s=%s: %v; nothing was sent to the director", f.keyword, shortQuote(f.path), err)
		}
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it (choose another %s= file, or move the old one away); nothing was sent to the director", path, f.keyword)
		}
		dir := filepath.Dir(path)
		switch st, err := os.Stat(dir); {
		case err != nil:
			return fmt.Errorf("cannot write %s: directory %s: %v (create it first, or choose another %s= file); nothing was sent to the director", path, dir, unwrapPathError(err), f.keyword)
		case !st.IsDir():
			return fmt.Errorf("cannot write %s: %s is not a directory; nothing was sent to the director", path, dir)
		}
		probe, err := os.CreateTemp(dir, ".tapectl-probe-*")
		if err != nil {
			return fmt.Errorf("cannot write %s: directory %s is not writable here: %v; nothing was sent to the director", path, dir, unwrapPathError(err))
		}
		probe.Close()
		os.Remove(probe.Name())
	}
	return nil
}

// checkReturnedFile allows a file the director returned only under a
// name the operator typed: tapectl writes where it was told to, never
// where the director says.
func checkReturnedFile(name string, files []consoleFile) error {
	for _, f := range files {
		if name == f.path {
			return nil
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("the director returned a file to write as %s, but this command names no file to write; refusing it (nothing was written)", shortQuote(name))
	}
	return fmt.Errorf("the director returned a file to write as %s, but you asked for %s=%s; refusing it (nothing was written)",
		shortQuote(name), files[0].keyword, shortQuote(files[0].path))
}

// shortQuote quotes a name for a message, cut to 200 bytes.
func shortQuote(s string) string {
	if len(s) > 200 {
		return strconv.Quote(s[:200]) + "…"
	}
	return strconv.Quote(s)
}

// show prints a result and writes its file, which must be one the
// operator named (files).
func (c *console) show(res *tapewardpb.Result, files []consoleFile) error {
	if res.FileName != "" {
		if err := checkReturnedFile(res.FileName, files); err != nil {
			return err
		}
	}
	if c.json {
		// Some results (help) have no JSON form: their text goes to
		// stderr, so stdout holds only JSON documents.
		if strings.TrimSpace(res.Json) != "" {
			writeLine(c.stdout, res.Json)
		} else if res.Text != "" {
			writeLine(c.stderr, res.Text)
		}
	} else if res.Text != "" {
		writeLine(c.stdout, res.Text)
	}
	if res.FileName != "" {
		if err := c.writeFile(res.FileName, res.FileContent); err != nil {
			// The director has recorded the keys as sent to this
			// console: say that nothing was written, so no one
			// takes the export for made.
			return fmt.Errorf("%v\ntapectl: the export FAILED: the director recorded %s as sent to this console (list keyevents), but no file was written; run the export again to a file that can be written",
				err, plural(countRows(res.FileContent), "key"))
		}
	}
	if res.PartialFailure {
		return errPartial
	}
	return nil
}

func writeLine(w io.Writer, s string) {
	io.WriteString(w, s)
	if !strings.HasSuffix(s, "\n") {
		io.WriteString(w, "\n")
	}
}

// writeFile creates name (relative to the current directory) with mode
// 0600 and content, never replacing an existing file, and says on stderr
// what it wrote.
func (c *console) writeFile(name string, content []byte) error {
	path, err := filepath.Abs(name)
	if err != nil {
		return fmt.Errorf("cannot write %s: %v", name, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it (choose another out= file, or move the old one away)", path)
		}
		return fmt.Errorf("cannot write %s: %v", path, unwrapPathError(err))
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %v (nothing was kept)", path, unwrapPathError(err))
	}
	fmt.Fprintf(c.stderr, "tapectl: wrote %s (%s, %s, mode 0600)\n", path,
		plural(len(content), "byte"), plural(countRows(content), "row"))
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// countRows counts the rows of an export: its lines that are neither
// blank nor '#' comments (a last line without "\n" counts).
func countRows(b []byte) int {
	n := 0
	for line := range bytes.Lines(b) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			n++
		}
	}
	return n
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// rpcError turns an RPC failure into the message to print: the director's
// own explanation, errInterrupted after Ctrl-C, or, when the director was
// never reached, what to check.
func (c *console) rpcError(ctx context.Context, err error, p *peer.Peer) error {
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return errInterrupted
	}
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && p.Addr == nil {
		return c.connectError(st.Message())
	}
	if st.Code() == codes.Unavailable && lostConnection(st.Message()) {
		return fmt.Errorf("lost the connection to the director at %s during the command (%s); it may or may not have completed: check with status or list before running it again",
			c.cfg.Director.Address, st.Message())
	}
	return errors.New(st.Message())
}

// lostConnection tells gRPC's own words for a connection that broke
// during a call from an Unavailable error the director returned (such as
// an unreachable catalog, whose text may well say "connection reset").
func lostConnection(msg string) bool {
	for _, m := range []string{"error reading from server", "transport is closing"} {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

// connectError explains a failure to reach the director.
func (c *console) connectError(msg string) error {
	d := c.cfg.Director
	detail := msg
	for _, prefix := range []string{"last connection error: ", "connection error: desc = "} {
		detail = strings.TrimPrefix(detail, prefix)
	}
	if u, err := strconv.Unquote(detail); err == nil {
		detail = u
	}
	var hint string
	switch {
	case strings.Contains(msg, "connection refused"):
		hint = fmt.Sprintf("is the director running and listening on %s? ([director] address in %s)", d.Address, c.cfg.Path)
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no route to host"), strings.Contains(msg, "network is unreachable"):
		hint = fmt.Sprintf("is [director] address = %q in %s right, and is that host reachable?", d.Address, c.cfg.Path)
	case strings.Contains(msg, "presented the certificate of"):
		hint = fmt.Sprintf("what answers at %s is not the director named %q: nothing was sent to it. Find out what listens there (another program may hold the port), or, if the name is wrong, fix [director] name in %s", d.Address, directorName(c), c.cfg.Path)
	case strings.Contains(msg, "was revoked"):
		hint = fmt.Sprintf("the director's certificate is in the revocation list [tls] revocation_list = %s: the director needs a new certificate (tapekey pki issue)", c.cfg.TLS.RevocationList)
	case strings.Contains(msg, "revocation list"):
		hint = fmt.Sprintf("fix the revocation list [tls] revocation_list = %s (tapekey pki revoke writes it), or remove the setting from %s", c.cfg.TLS.RevocationList, c.cfg.Path)
	case strings.Contains(msg, "certificate is valid for"), strings.Contains(msg, "certificate is not valid for"):
		hint = fmt.Sprintf("the director's certificate does not carry the name %q: set [director] tls_server_name in %s to the name in the director's certificate", d.TLSServerName, c.cfg.Path)
	case strings.Contains(msg, "unknown authority"):
		hint = fmt.Sprintf("the director's certificate is not signed by the CA in [tls] ca = %s: use the CA of this installation", c.cfg.TLS.CA)
	case strings.Contains(msg, "unknown certificate authority"):
		hint = fmt.Sprintf("the director does not trust this console's certificate %s: have it issued by the director's CA", c.cfg.TLS.Cert)
	case strings.Contains(msg, "certificate expired"):
		hint = fmt.Sprintf("this console's certificate %s has expired (as the director sees it): have a new one issued", c.cfg.TLS.Cert)
	case strings.Contains(msg, "remote error"), strings.Contains(msg, "bad certificate"), strings.Contains(msg, "certificate required"):
		// The director refused a certificate its CA signed (tapectl has
		// checked it is a console certificate for its name): the name
		// is not one of its [[console]] entries.
		return c.refusedError(detail)
	case strings.Contains(msg, "broken pipe"), strings.Contains(msg, "connection reset"), strings.Contains(msg, "EOF"), strings.Contains(msg, "connection closed"):
		return c.refusedError("it closed the connection: " + detail)
	default:
		hint = fmt.Sprintf("is the director running at %s, are the [tls] certificate paths in %s right, and does tls_server_name %q match the director's certificate?", d.Address, c.cfg.Path, d.TLSServerName)
	}
	return fmt.Errorf("cannot reach the director at %s (server name %q): %s\ntapectl: check: %s", d.Address, d.TLSServerName, detail, hint)
}

// refusedError explains a director that refused this console at connect:
// it admits only the console names of its [[console]] entries (its own
// message, in its log, says the same).
func (c *console) refusedError(detail string) error {
	roles := cmdline.Roles()
	return fmt.Errorf("the director at %s refused console %q when it connected (%s)\n"+
		"tapectl: check: is console %q configured on the director? A certificate its CA signed is not enough: add [[console]] name = %q role = %q (or %s) "+
		"to the director's director.toml and restart the director; if it is configured, its certificate may be revoked (the director's [tls] revocation_list); the director's log says why it refused this console (certificate %s)",
		c.cfg.Director.Address, c.cfg.Name, detail, c.cfg.Name, c.cfg.Name, roles[0], strings.Join(roles[1:], ", "), c.cfg.TLS.Cert)
}

// argLines yields the command lines given as arguments.
func argLines(lines []string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for i, l := range lines {
			if !utf8.ValidString(l) {
				yield("", fmt.Errorf("command argument %d is not valid UTF-8; command lines are UTF-8 text (check the terminal's or script's encoding); it was not sent", i+1))
				return
			}
			if !yield(l, nil) {
				return
			}
		}
	}
}

// scriptLines yields the lines of a non-terminal stdin. A line that is
// not UTF-8 or is longer than maxScriptLine ends the script with an error
// that names the line and what is wrong (nothing of it is sent).
func scriptLines(r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			line, err := readScriptLine(br, n)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield("", err)
				return
			}
			if !yield(line, nil) {
				return
			}
		}
	}
}

// readScriptLine reads line n (without its "\n"); io.EOF at the end.
func readScriptLine(br *bufio.Reader, n int) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > maxScriptLine+1 { // +1: the "\n"
			return "", fmt.Errorf("line %d of stdin is longer than %d bytes (%d MiB), the longest line tapectl reads (a command line is at most %d bytes); it and the lines after it were not sent",
				n, maxScriptLine, maxScriptLine>>20, cmdline.MaxLineLen)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(b) == 0 {
			return "", io.EOF
		}
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("reading line %d of stdin: %v", n, err)
		}
		break
	}
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return "", fmt.Errorf("line %d of stdin is not valid UTF-8 (byte %d is 0x%02x); command lines are UTF-8 text: check the file's encoding (e.g. iconv -f latin1 -t utf-8); it and the lines after it were not sent",
			n, i+1, b[i])
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// batch runs lines in order (one-shot and script mode), stopping at the
// first failure; quit or exit ends it early with success.
func (c *console) batch(sigs <-chan os.Signal, lines iter.Seq2[string, error]) int {
	for line, err := range lines {
		if err != nil {
			fmt.Fprintf(c.stderr, "tapectl: reading commands: %v\n", err)
			return exitFailed
		}
		if !c.browsing() {
			skip, quit := local(line)
			if quit {
				return exitOK
			}
			if skip {
				continue
			}
		}
		ctx, stop := withInterrupt(sigs)
		err := c.exec(ctx, strings.TrimSpace(line))
		if stop() && err == nil {
			err = errInterrupted // Ctrl-C just as the command finished
		}
		if errors.Is(err, errInterrupted) {
			fmt.Fprintln(c.stderr, "tapectl: interrupted")
			return exitInterrupted
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "tapectl: %v\n", err)
			return exitFailed
		}
	}
	return exitOK
}
