package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var tapectlBin string

// TestMain builds the binary once; the tests run it as an operator would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapectl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built, err := testenv.Build(dir, "tools/tapectl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	tapectlBin = built["tapectl"]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// request is what the director double received.
type request struct {
	line string
	json bool
	peer string
}

// director is a Console server double over mutual TLS that answers
// scripted lines.
type director struct {
	tapewardpb.UnimplementedConsoleServer
	addr string

	mu   sync.Mutex
	reqs []request

	stop      func()      // stops the server, dropping connections
	started   chan string // a "slow" command arrived
	cancelled chan string // a "slow" command saw its context end
}

// exportContent has the director's export form: '#' comments, then one
// row per key.
const exportContent = "# Tapeward keys export\n# VOLUME<TAB>STORED<TAB>SCHEME<TAB>KEK_ID\nTW0001L6\tAAAA\tv1\tk1\n\nTW0002L6\tBBBB\tv1\tk1"

func (d *director) Run(req *tapewardpb.RunRequest, s grpc.ServerStreamingServer[tapewardpb.RunReply]) error {
	p, err := tlsconf.PeerOf(s.Context())
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.reqs = append(d.reqs, request{req.Line, req.Json, p.Name})
	d.mu.Unlock()

	progress := func(m string) error {
		return s.Send(&tapewardpb.RunReply{Msg: &tapewardpb.RunReply_Progress{Progress: m}})
	}
	result := func(r *tapewardpb.Result) error {
		return s.Send(&tapewardpb.RunReply{Msg: &tapewardpb.RunReply_Result{Result: r}})
	}
	js := func(doc string) string {
		if req.Json {
			return doc
		}
		return ""
	}
	line := req.Line
	switch {
	case line == "status storage=Tape":
		for _, m := range []string{"asking storage Tape", "drive 0: empty"} {
			if err := progress(m); err != nil {
				return err
			}
		}
		return result(&tapewardpb.Result{Text: "Storage Tape: 1 drive, idle\n", Json: js(`{"storage":"Tape","drives":[{"index":0,"state":"empty"}]}`)})
	case line == "status director":
		return result(&tapewardpb.Result{Text: "director director", Json: js(`{"name":"director","configured_storages":["sd1","sd2"],"pools":["Local","Offsite"]}`)})
	case line == "list volumes":
		return result(&tapewardpb.Result{Text: "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full", Json: js(`{"volumes":["TW0001L6","TW0002L6"]}`)})
	case line == "help":
		return result(&tapewardpb.Result{Text: "Commands:\n  label ...\n  list volumes\n"})
	case strings.HasPrefix(line, "lable"):
		return status.Error(codes.InvalidArgument, `unknown command "lable" — did you mean "label"?`)
	case line == "status storage=Gone":
		return status.Error(codes.Unavailable, "storage Gone is not connected to the director")
	case line == "list keyevents":
		return status.Error(codes.Unavailable, "catalog unreachable: read tcp 127.0.0.1:5432: connection reset by peer")
	case strings.HasPrefix(line, "label "):
		for i := 1; i <= 3; i++ {
			msg := fmt.Sprintf("slot %d/3: TW000%dL6 labelled, encryption verified", i, i)
			if i == 2 {
				msg = "slot 2/3: no cartridge"
			}
			if err := progress(msg); err != nil {
				return err
			}
		}
		return result(&tapewardpb.Result{Text: "2 of 3 volumes labelled; slot 2 failed: no cartridge\n", PartialFailure: true,
			Json: js(`{"labelled":2,"failed":1}`)})
	case strings.HasPrefix(line, "export keys pool=Evil out="):
		// A director that names another file than the operator typed.
		return result(&tapewardpb.Result{Text: "exported 2 keys\n", FileName: "evil.csv", FileContent: []byte(exportContent)})
	case line == "list volumes pool=Evil":
		// A file for a command that names none.
		return result(&tapewardpb.Result{Text: "no volumes\n", FileName: "evil.csv", FileContent: []byte(exportContent)})
	case strings.HasPrefix(line, "export keys out="):
		return result(&tapewardpb.Result{Text: "exported 2 keys\n", FileName: strings.TrimPrefix(line, "export keys out="),
			FileContent: []byte(exportContent), Json: js(`{"exported":2}`)})
	case line == "slow":
		if err := progress("waiting for the library"); err != nil {
			return err
		}
		d.started <- line
		<-s.Context().Done()
		d.cancelled <- line
		return s.Context().Err()
	case line == "die":
		if err := progress("about to lose the connection"); err != nil {
			return err
		}
		go d.stop()
		<-s.Context().Done()
		return s.Context().Err()
	case line == "noresult":
		return progress("done, but no result")
	case strings.HasPrefix(line, "restore ") && strings.Contains(line, " select"):
		return result(&tapewardpb.Result{Text: "Tree browser session s1", Json: `{"session":"s1"}`})
	case strings.HasPrefix(line, "browse session=s1 line="):
		return result(&tapewardpb.Result{Text: "browser: " + strings.TrimPrefix(line, "browse session=s1 line="), Json: js(`{}`)})
	case strings.HasPrefix(line, "restore ") && strings.HasSuffix(line, " yes"):
		return result(&tapewardpb.Result{Text: "Restore job queued. JobId=9"})
	case strings.HasPrefix(line, "restore "):
		return result(&tapewardpb.Result{Text: "Restore plan: 2 files\nNothing was run: add yes to run this restore (tapectl asks)."})
	}
	return status.Errorf(codes.Unimplemented, "the double has no script for %q", line)
}

func (d *director) requests() []request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]request(nil), d.reqs...)
}

// env is one installation: a CA, a director double and a console
// configuration.
type env struct {
	dir    string // pki files and tapectl.toml
	config string
	d      *director
	ca     *pki.CA
}

// start makes the PKI, starts the double (accepting console certificates
// whose name is one of accept; none: any) and writes a console config.
func start(t *testing.T, accept ...string) *env {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"director", tlsconf.RoleDirector}, {"admin", tlsconf.RoleConsole}} {
		iss, err := ca.Issue(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := iss.WriteFiles(dir); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := tlsconf.Server(tlsconf.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "director.crt"), Key: filepath.Join(dir, "director.key")},
		tlsconf.Expect([]string{tlsconf.RoleConsole}, accept...))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &director{addr: lis.Addr().String(), started: make(chan string, 1), cancelled: make(chan string, 1)}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(sc)))
	d.stop = srv.Stop
	tapewardpb.RegisterConsoleServer(srv, d)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	e := &env{dir: dir, d: d, ca: ca}
	e.config = e.writeConfig(t, "tapectl.toml", d.addr, "director", "ca.crt", "admin")
	return e
}

// writeConfig writes a console config in e.dir.
func (e *env) writeConfig(t *testing.T, name, addr, serverName, ca, cert string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	text := fmt.Sprintf("name = \"admin\"\n[director]\naddress = %q\ntls_server_name = %q\n[tls]\nca = %q\ncert = %q\nkey = %q\n",
		addr, serverName, ca, cert+".crt", cert+".key")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type result struct {
	stdout, stderr string
	code           int
}

// tapectl runs the binary in cwd with stdin and the given environment
// additions.
func tapectl(t *testing.T, cwd, stdin string, extraEnv []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(tapectlBin, args...)
	cmd.Dir = cwd
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(append(os.Environ(), "TAPEWARD_CONSOLE_CONFIG=", "HOME="+t.TempDir()), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tapectl %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func expect(t *testing.T, r result, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || r.stderr != stderr {
		t.Errorf("got exit %d\nstdout:\n%q\nstderr:\n%q\nwant exit %d\nstdout:\n%q\nstderr:\n%q", r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func (e *env) lines(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	for _, r := range e.d.requests() {
		got = append(got, r.line)
		if r.peer != "admin" {
			t.Errorf("request %q came from %q, want admin", r.line, r.peer)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("director received %q, want %q", got, want)
	}
}

func TestOneShotProgressAndResult(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "status storage=Tape")
	expect(t, r, 0, "Storage Tape: 1 drive, idle\n", "asking storage Tape\ndrive 0: empty\n")
	e.lines(t, "status storage=Tape")
	if rs := e.d.requests(); rs[0].json {
		t.Error("text mode asked for JSON")
	}
}

func TestOneShotSeveralInOrder(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "--config", e.config, "list volumes", "  status storage=Tape  ")
	expect(t, r, 0, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\nStorage Tape: 1 drive, idle\n", "asking storage Tape\ndrive 0: empty\n")
	e.lines(t, "list volumes", "status storage=Tape")
}

func TestOneShotStopsAtFirstFailure(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "list volumes", "lable slot=1", "status storage=Tape")
	expect(t, r, 1, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n", "tapectl: unknown command \"lable\" — did you mean \"label\"?\n")
	e.lines(t, "list volumes", "lable slot=1")
}

func TestJSON(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "status storage=Tape", "--json", "-c="+e.config, "list volumes")
	expect(t, r, 0, `{"storage":"Tape","drives":[{"index":0,"state":"empty"}]}`+"\n"+`{"volumes":["TW0001L6","TW0002L6"]}`+"\n",
		"asking storage Tape\ndrive 0: empty\n")
	for _, rq := range e.d.requests() {
		if !rq.json {
			t.Errorf("%q: --json did not ask for JSON", rq.line)
		}
	}
	// A result without a JSON form (help): its text goes to stderr.
	r = tapectl(t, t.TempDir(), "", nil, "--json", "-c", e.config, "help", "list volumes")
	expect(t, r, 0, `{"volumes":["TW0001L6","TW0002L6"]}`+"\n", "Commands:\n  label ...\n  list volumes\n")
}

func TestPartialFailure(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "label storage=Tape pool=Offsite slots=1-3 barcodes encrypt", "list volumes")
	expect(t, r, 1, "2 of 3 volumes labelled; slot 2 failed: no cartridge\n",
		"slot 1/3: TW0001L6 labelled, encryption verified\nslot 2/3: no cartridge\nslot 3/3: TW0003L6 labelled, encryption verified\n"+
			"tapectl: "+errPartial.Error()+"\n")
	e.lines(t, "label storage=Tape pool=Offsite slots=1-3 barcodes encrypt")
}

func TestServerUnavailableIsNotAConnectionError(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "status storage=Gone")
	expect(t, r, 1, "", "tapectl: storage Gone is not connected to the director\n")
	r = tapectl(t, t.TempDir(), "", nil, "-c", e.config, "list keyevents")
	expect(t, r, 1, "", "tapectl: catalog unreachable: read tcp 127.0.0.1:5432: connection reset by peer\n")
}

func TestConnectionLostDuringCommand(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "die", "list volumes")
	// The progress line may or may not beat the closing connection.
	rest := strings.TrimPrefix(r.stderr, "about to lose the connection\n")
	prefix := "tapectl: lost the connection to the director at " + e.d.addr + " during the command ("
	suffix := "); it may or may not have completed: check with status or list before running it again\n"
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(rest, prefix) || !strings.HasSuffix(rest, suffix) {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.lines(t, "die")
}

func TestNoResult(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "noresult")
	expect(t, r, 1, "", "done, but no result\ntapectl: the director ended the command without a result\n")
}

func TestExportWritesFile(t *testing.T) {
	e := start(t)
	cwd := t.TempDir()
	r := tapectl(t, cwd, "", nil, "-c", e.config, "export keys out=keys.csv")
	path := filepath.Join(cwd, "keys.csv")
	expect(t, r, 0, "exported 2 keys\n", "tapectl: wrote "+path+" (105 bytes, 2 rows, mode 0600)\n")
	if len(exportContent) != 105 {
		t.Fatalf("test content is %d bytes; fix the expected message", len(exportContent))
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != exportContent {
		t.Fatalf("keys.csv: %q, %v", b, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("keys.csv has mode %04o, want 0600", st.Mode().Perm())
	}

	// An existing file is never overwritten.
	if err := os.WriteFile(path, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// It is refused before anything is sent: the director never exports
	// (nor audits an export of) keys that would not be written.
	r = tapectl(t, cwd, "", nil, "-c", e.config, "export keys out=keys.csv", "list volumes")
	expect(t, r, 1, "", "tapectl: "+path+" already exists; refusing to overwrite it (choose another out= file, or move the old one away); nothing was sent to the director\n")
	if b, _ := os.ReadFile(path); string(b) != "precious\n" {
		t.Errorf("existing file changed to %q", b)
	}

	// A directory that does not exist, or that tapectl may not write: refused
	// before anything is sent, so the director records no export.
	r = tapectl(t, cwd, "", nil, "-c", e.config, "export keys out=no/such/dir/k.csv")
	expect(t, r, 1, "", "tapectl: cannot write "+filepath.Join(cwd, "no/such/dir/k.csv")+": directory "+filepath.Join(cwd, "no/such/dir")+
		": no such file or directory (create it first, or choose another out= file); nothing was sent to the director\n")
	ro := filepath.Join(cwd, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 { // root writes anyway
		r = tapectl(t, cwd, "", nil, "-c", e.config, "export keys out=ro/k.csv")
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "is not writable here") || !strings.Contains(r.stderr, "nothing was sent to the director") {
			t.Errorf("export into a read-only directory: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 2 {
		t.Errorf("the working directory holds %v; want keys.csv and ro only (no probe left)", ents)
	}
	e.lines(t, "export keys out=keys.csv")
}

// tapectl writes only the out= file the operator typed: a file the
// director names otherwise is refused and nothing is written.
func TestReturnedFileMustBeTheTypedOne(t *testing.T) {
	e := start(t)
	cwd := t.TempDir()
	r := tapectl(t, cwd, "", nil, "-c", e.config, "export keys pool=Evil out=mine.csv", "list volumes")
	expect(t, r, 1, "", "tapectl: the director returned a file to write as \"evil.csv\", but you asked for out=\"mine.csv\"; refusing it (nothing was written)\n")
	r = tapectl(t, cwd, "", nil, "-c", e.config, "list volumes pool=Evil")
	expect(t, r, 1, "", "tapectl: the director returned a file to write as \"evil.csv\", but this command names no file to write; refusing it (nothing was written)\n")
	if ents, err := os.ReadDir(cwd); err != nil || len(ents) != 0 {
		t.Errorf("the working directory holds %v (%v); nothing may be written", ents, err)
	}
	e.lines(t, "export keys pool=Evil out=mine.csv", "list volumes pool=Evil")
}

// Bad input on stdin or in arguments: a message with the line number,
// what is wrong and the limit, not a Go or gRPC internal error; nothing
// of the bad line (or after it) is sent.
func TestScriptBadLines(t *testing.T) {
	e := start(t)
	r := tapectl(t, t.TempDir(), "list volumes\nlist volumes pool=Caf\xe9\nlist volumes\n", nil, "-c", e.config)
	expect(t, r, 1, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n",
		"tapectl: reading commands: line 2 of stdin is not valid UTF-8 (byte 22 is 0xe9); command lines are UTF-8 text: check the file's encoding (e.g. iconv -f latin1 -t utf-8); it and the lines after it were not sent\n")
	e.lines(t, "list volumes")

	e2 := start(t)
	big := "list volumes\n" + strings.Repeat("x", 10<<20) + "\nlist volumes\n"
	r = tapectl(t, t.TempDir(), big, nil, "-c", e2.config)
	expect(t, r, 1, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n",
		"tapectl: reading commands: line 2 of stdin is longer than 1048576 bytes (1 MiB), the longest line tapectl reads (a command line is at most 8192 bytes); it and the lines after it were not sent\n")
	e2.lines(t, "list volumes")

	// Exactly at the limit is read (and sent: the director judges it).
	if _, err := readScriptLine(bufio.NewReader(strings.NewReader(strings.Repeat("y", maxScriptLine)+"\n")), 1); err != nil {
		t.Fatalf("a line of exactly %d bytes: %v", maxScriptLine, err)
	}

	e3 := start(t)
	r = tapectl(t, t.TempDir(), "", nil, "-c", e3.config, "list volumes", "list volumes pool=\xff")
	expect(t, r, 1, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n",
		"tapectl: reading commands: command argument 2 is not valid UTF-8; command lines are UTF-8 text (check the terminal's or script's encoding); it was not sent\n")
}

func TestScriptFromStdin(t *testing.T) {
	e := start(t)
	script := "# nightly check\n\nlist volumes\n   \nstatus storage=Tape\r\nquit\nhelp\n"
	r := tapectl(t, t.TempDir(), script, nil, "-c", e.config)
	expect(t, r, 0, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\nStorage Tape: 1 drive, idle\n", "asking storage Tape\ndrive 0: empty\n")
	e.lines(t, "list volumes", "status storage=Tape")

	e2 := start(t)
	r = tapectl(t, t.TempDir(), "list volumes\nlable\nlist volumes\n", nil, "-c", e2.config, "--json")
	expect(t, r, 1, `{"volumes":["TW0001L6","TW0002L6"]}`+"\n", "tapectl: unknown command \"lable\" — did you mean \"label\"?\n")
	e2.lines(t, "list volumes", "lable")

	e3 := start(t)
	r = tapectl(t, t.TempDir(), "list volumes\nlable x\nlist volumes\n", []string{"TAPEWARD_CONSOLE_CONFIG=" + e3.config})
	expect(t, r, 1, "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n", "tapectl: unknown command \"lable\" — did you mean \"label\"?\n")
	e3.lines(t, "list volumes", "lable x")
}

func TestInterruptOneShot(t *testing.T) {
	e := start(t)
	cmd := exec.Command(tapectlBin, "-c", e.config, "slow", "list volumes")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout = &out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	stderr := bufio.NewReader(pipe)
	// The progress line arrives before the interrupt.
	first := make(chan string, 1)
	go func() {
		l, _ := stderr.ReadString('\n')
		first <- l
	}()
	select {
	case l := <-first:
		if l != "waiting for the library\n" {
			t.Fatalf("first stderr line %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no progress from the slow command")
	}
	<-e.d.started
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.d.cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the director never saw the command cancelled")
	}
	rest, _ := io.ReadAll(stderr)
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130", err)
	}
	if out.String() != "" || string(rest) != "tapectl: interrupted\n" {
		t.Errorf("stdout %q, rest of stderr %q", out.String(), rest)
	}
	e.lines(t, "slow")
}

func TestConnectionErrors(t *testing.T) {
	e := start(t)
	cwd := t.TempDir()

	// Nothing listens there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	cfg := e.writeConfig(t, "dead.toml", dead, "director", "ca.crt", "admin")
	r := tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
	wantStart := fmt.Sprintf("tapectl: cannot reach the director at %s (server name \"director\"): ", dead)
	connFail(t, r, wantStart, "connection refused", "tapectl: check: is the director running and listening on "+dead+"? ([director] address in "+cfg+")\n")

	// The director's certificate does not carry the configured name.
	cfg = e.writeConfig(t, "name.toml", e.d.addr, "dir.example.com", "ca.crt", "admin")
	r = tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
	connFail(t, r, fmt.Sprintf("tapectl: cannot reach the director at %s (server name \"dir.example.com\"): ", e.d.addr),
		"dir.example.com", "tapectl: check: the director's certificate does not carry the name \"dir.example.com\": set [director] tls_server_name in "+cfg+" to the name in the director's certificate\n")

	// The console trusts another CA.
	other, err := pki.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	odir := filepath.Join(e.dir, "other")
	os.Mkdir(odir, 0o700)
	if _, err := other.WriteCA(odir); err != nil {
		t.Fatal(err)
	}
	cfg = e.writeConfig(t, "ca.toml", e.d.addr, "director", "other/ca.crt", "admin")
	r = tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
	connFail(t, r, fmt.Sprintf("tapectl: cannot reach the director at %s (server name \"director\"): ", e.d.addr),
		"unknown authority", "tapectl: check: the director's certificate is not signed by the CA in [tls] ca = "+filepath.Join(odir, "ca.crt")+": use the CA of this installation\n")
	if n := len(e.d.requests()); n != 0 {
		t.Errorf("the director received %d requests over bad connections", n)
	}

	// The director refuses this console.
	e2 := start(t, "someone-else")
	r = tapectl(t, cwd, "", nil, "-c", e2.config, "list volumes", "help")
	// Depending on timing the client sees the TLS alert or a closed
	// connection; either way tapectl names the console and says what to
	// add to director.toml.
	refused := "tapectl: check: is console \"admin\" configured on the director? A certificate its CA signed is not enough: " +
		"add [[console]] name = \"admin\" role = \"read\" (or operator, keyadmin) to the director's director.toml and restart the director; " +
		"if it is configured, its certificate may be revoked (the director's [tls] revocation_list); " +
		"the director's log says why it refused this console (certificate " + filepath.Join(e2.dir, "admin.crt") + ")\n"
	prefix := fmt.Sprintf("tapectl: the director at %s refused console \"admin\" when it connected (", e2.d.addr)
	if strings.Contains(r.stderr, "remote error") {
		connFail(t, r, prefix, "bad certificate", refused)
	} else {
		connFail(t, r, prefix+"it closed the connection: ", "", refused)
	}
	if n := len(e2.d.requests()); n != 0 {
		t.Errorf("the director ran %d requests of a refused console", n)
	}
}

// connFail checks a connection failure: exit 1, no stdout, a first line
// starting with prefix and holding detail, and the hint line.
func connFail(t *testing.T, r result, prefix, detail, hint string) {
	t.Helper()
	first, rest, _ := strings.Cut(r.stderr, "\n")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(first, prefix) || !strings.Contains(first, detail) || rest != hint {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1, first line %q…%q…, then %q", r.code, r.stdout, r.stderr, prefix, detail, hint)
	}
}

func TestConfigAndUsageErrors(t *testing.T) {
	e := start(t)
	cwd := t.TempDir()
	missing := filepath.Join(cwd, "none.toml")
	r := tapectl(t, cwd, "", nil, "-c", missing, "list volumes")
	expect(t, r, 2, "", "tapectl: "+missing+": no such config file (give the right one with -c FILE; examples are in configs/ of the source tree)\n")

	// The default path is used when neither -c nor the variable is set.
	r = tapectl(t, cwd, "", nil, "list volumes")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "tapectl: /etc/tapeward/tapectl.toml: ") {
		if _, err := os.Stat("/etc/tapeward/tapectl.toml"); err != nil {
			t.Errorf("default config: exit %d, stderr %q", r.code, r.stderr)
		}
	}

	bad := filepath.Join(e.dir, "bad.toml")
	os.WriteFile(bad, []byte("name = \"admin\"\nfoo = 1\n[director]\naddress = \"127.0.0.1:1\"\n[tls]\nca = \"ca.crt\"\ncert = \"admin.crt\"\nkey = \"admin.key\"\n"), 0o644)
	r = tapectl(t, cwd, "", nil, "-c", bad, "list volumes")
	if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "tapectl: ") || !strings.Contains(r.stderr, "foo") {
		t.Errorf("unknown key: %+v", r)
	}

	// A certificate that is not a console's, or not this console's.
	iss, err := e.ca.Issue("sd1", tlsconf.RoleStorage)
	if err != nil {
		t.Fatal(err)
	}
	iss.WriteFiles(e.dir)
	cfg := e.writeConfig(t, "role.toml", e.d.addr, "director", "ca.crt", "sd1")
	r = tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
	expect(t, r, 2, "", "tapectl: "+cfg+": certificate "+filepath.Join(e.dir, "sd1.crt")+" has role \"storage\"; tapectl needs a console certificate (role \"console\"), issued for name \"admin\"\n")
	iss, err = e.ca.Issue("bob", tlsconf.RoleConsole)
	if err != nil {
		t.Fatal(err)
	}
	iss.WriteFiles(e.dir)
	cfg = e.writeConfig(t, "bob.toml", e.d.addr, "director", "ca.crt", "bob")
	r = tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
	expect(t, r, 2, "", "tapectl: "+cfg+": certificate "+filepath.Join(e.dir, "bob.crt")+" is for \"bob\" but this console is name = \"admin\"; they must match\n")

	// A key file others can read.
	os.Chmod(filepath.Join(e.dir, "admin.key"), 0o644)
	r = tapectl(t, cwd, "", nil, "-c", e.config, "list volumes")
	if r.code != 2 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("readable key: %+v", r)
	}
	os.Chmod(filepath.Join(e.dir, "admin.key"), 0o600)

	r = tapectl(t, cwd, "", nil, "-c", e.config, "--frobnicate", "list volumes")
	expect(t, r, 2, "", "tapectl: unknown option --frobnicate (see tapectl --help)\n")
	r = tapectl(t, cwd, "", nil, "list volumes", "-c")
	expect(t, r, 2, "", "tapectl: -c needs a file name (see tapectl --help)\n")
	if n := len(e.d.requests()); n != 0 {
		t.Errorf("the director received %d requests", n)
	}

	r = tapectl(t, cwd, "", nil, "--help")
	expect(t, r, 0, usageText, "")
	if !strings.Contains(usageText, `Type "help"`) {
		t.Error("--help does not point at help")
	}
}

// TestImpostorDirector: something that holds a certificate of this CA but
// is not the director (a console's certificate that, as tapekey used to
// issue them, may serve and carries the name "director"; a storage's) is
// refused before any command is sent, and the message says what it
// presented and what was expected.
func TestImpostorDirector(t *testing.T) {
	e := start(t)
	cwd := t.TempDir()
	for _, imp := range []struct{ name, role string }{{"admin", tlsconf.RoleConsole}, {"sd1", tlsconf.RoleStorage}} {
		f := testenv.Impostor(t, e.ca, e.dir, imp.name, imp.role, "director")
		sc, err := tlsconf.Server(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d := &director{addr: lis.Addr().String(), started: make(chan string, 1), cancelled: make(chan string, 1)}
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(sc)))
		tapewardpb.RegisterConsoleServer(srv, d)
		go srv.Serve(lis)
		defer srv.Stop()
		cfg := e.writeConfig(t, "impostor-"+imp.role+".toml", d.addr, "director", "ca.crt", "admin")
		r := tapectl(t, cwd, "", nil, "-c", cfg, "list volumes")
		connFail(t, r, fmt.Sprintf("tapectl: cannot reach the director at %s (server name \"director\"): ", d.addr),
			fmt.Sprintf("presented the certificate of %s %q, but this side expects director \"director\"", imp.role, imp.name),
			fmt.Sprintf("tapectl: check: what answers at %s is not the director named \"director\": nothing was sent to it. Find out what listens there (another program may hold the port), or, if the name is wrong, fix [director] name in %s\n", d.addr, cfg))
		if n := len(d.requests()); n != 0 {
			t.Errorf("the impostor %s received %d requests", imp.role, n)
		}
	}
}

// TestRevokedDirector: a director whose certificate is in the console's
// revocation list is refused, saying so.
func TestRevokedDirector(t *testing.T) {
	e := start(t)
	list := filepath.Join(e.dir, "revoked.txt")
	leaf, err := tlsconf.Files{CA: filepath.Join(e.dir, "ca.crt"), Cert: filepath.Join(e.dir, "director.crt"), Key: filepath.Join(e.dir, "director.key")}.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(list, tlsconf.Revocation{Serial: leaf.SerialNumber, At: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Name: "director", Role: "director", Reason: "key leaked"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, append(b, []byte("revocation_list = \"revoked.txt\"\n")...), 0o644)
	r := tapectl(t, t.TempDir(), "", nil, "-c", e.config, "list volumes")
	connFail(t, r, fmt.Sprintf("tapectl: cannot reach the director at %s (server name \"director\"): ", e.d.addr),
		"the certificate of director \"director\" (serial "+tlsconf.FormatSerial(leaf.SerialNumber)+") was revoked on 2026-12-02T06:00:00Z (key leaked)",
		"tapectl: check: the director's certificate is in the revocation list [tls] revocation_list = "+list+": the director needs a new certificate (tapekey pki issue)\n")
	if n := len(e.d.requests()); n != 0 {
		t.Errorf("a revoked director received %d requests", n)
	}
}
