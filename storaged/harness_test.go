package main

// The end-to-end harness: real vtl and storaged processes on loopback and
// unix sockets, and a director test double (a gRPC Director server over
// mutual TLS) in the test process, which also calls storaged as the
// director would.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var bins struct{ dir, storaged, vtl, tapekey string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storaged-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built, err := testenv.Build(dir, "storaged", "tools/vtl", "tools/tapekey")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bins.dir, bins.storaged, bins.vtl, bins.tapekey = dir, built["storaged"], built["vtl"], built["tapekey"]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeDirector is the director test double: it hands out the wrapped keys
// it was given, only to storage "sd1", after checking the label storaged
// read against them (current key or history), confirms write sessions
// (BeginWrite) and records reports.
type fakeDirector struct {
	pb.UnimplementedDirectorServer
	mu      sync.Mutex
	keys    map[string]keys.StoredKey
	history map[string][]keys.StoredKey
	reports []*pb.ReportVolumeRequest
	fetches int
	hellos  []*pb.StorageHelloRequest
	labels  []*pb.LabelView // every label checked
	writes  []*pb.BeginWriteRequest
	// refuseWrites, when set, is the reason BeginWrite refuses.
	refuseWrites string
}

// StorageHello records storaged's hello (a storage daemon coming up).
func (f *fakeDirector) StorageHello(ctx context.Context, r *pb.StorageHelloRequest) (*pb.StorageHelloReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if p.Role != tlsconf.RoleStorage || p.Name != "sd1" {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not a storage of this director", p)
	}
	f.mu.Lock()
	f.hellos = append(f.hellos, r)
	f.mu.Unlock()
	return &pb.StorageHelloReply{}, nil
}

// helloCount is how many hellos the double has received.
func (f *fakeDirector) helloCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hellos)
}

// lastHello is the latest hello received (nil: none).
func (f *fakeDirector) lastHello() *pb.StorageHelloRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hellos) == 0 {
		return nil
	}
	return f.hellos[len(f.hellos)-1]
}

func (f *fakeDirector) GetVolumeKey(ctx context.Context, r *pb.GetVolumeKeyRequest) (*pb.GetVolumeKeyReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if p.Role != tlsconf.RoleStorage || p.Name != "sd1" {
		return nil, status.Errorf(codes.PermissionDenied, "%s may not fetch keys of sd1's volumes", p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	sk, ok := f.keys[r.Volume]
	reply := func(k keys.StoredKey, source string) *pb.GetVolumeKeyReply {
		return &pb.GetVolumeKeyReply{Volume: r.Volume, Encrypted: true, KeySource: source,
			Key: &pb.WrappedKey{Stored: k.Value, Scheme: string(k.Scheme), KekId: k.KEKID, Fingerprint: k.Fingerprint}}
	}
	lv := r.Label
	if lv == nil {
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no volume %s", r.Volume)
		}
		return reply(sk, "current"), nil
	}
	f.labels = append(f.labels, lv)
	switch {
	case lv.Storage != "" && lv.Storage != "sd1":
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s: storage: the label was written by %q, the catalog says the volume belongs to \"sd1\"", r.Volume, lv.Storage)
	case !ok && !lv.Encrypted:
		return &pb.GetVolumeKeyReply{Volume: r.Volume, KeySource: "current"}, nil
	case !ok:
		return nil, status.Errorf(codes.NotFound, "no volume %s", r.Volume)
	case !lv.Encrypted:
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s: encrypted: the label says no, the catalog says yes (key %s under KEK %s)", r.Volume, sk.Fingerprint, sk.KEKID)
	case lv.KeyFingerprint == sk.Fingerprint:
		return reply(sk, "current"), nil
	}
	for _, h := range f.history[r.Volume] {
		if h.Fingerprint == lv.KeyFingerprint {
			return reply(h, "history: superseded (rotated)"), nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "volume %s: key fingerprint: the label names key %s, the catalog's key is %s and its key history has no such key", r.Volume, lv.KeyFingerprint, sk.Fingerprint)
}

func (f *fakeDirector) BeginWrite(ctx context.Context, r *pb.BeginWriteRequest) (*pb.BeginWriteReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuseWrites != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q may not take data: %s", r.Volume, f.refuseWrites)
	}
	f.writes = append(f.writes, r)
	return &pb.BeginWriteReply{}, nil
}

// rotate makes a new current key for volume in the double; the old one
// goes to its history.
func (f *fakeDirector) rotate(volume string, sk keys.StoredKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.keys[volume]; ok {
		f.history[volume] = append(f.history[volume], old)
	}
	f.keys[volume] = sk
}

func (f *fakeDirector) beganWrites(volume string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.writes {
		if w.Volume == volume {
			n++
		}
	}
	return n
}

func (f *fakeDirector) ReportVolume(ctx context.Context, r *pb.ReportVolumeRequest) (*pb.ReportVolumeReply, error) {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	f.mu.Unlock()
	return &pb.ReportVolumeReply{}, nil
}

// reportsOf returns copies of the reports received about volume.
func (f *fakeDirector) reportsOf(volume string) []*pb.ReportVolumeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*pb.ReportVolumeRequest
	for _, r := range f.reports {
		if r.Volume == volume {
			out = append(out, proto.Clone(r).(*pb.ReportVolumeRequest))
		}
	}
	return out
}

// cleared returns the "cleared" reports about volume whose detail is
// detail.
func (f *fakeDirector) cleared(volume, detail string) []*pb.ReportVolumeRequest {
	var out []*pb.ReportVolumeRequest
	for _, r := range f.reportsOf(volume) {
		if r.Event == "cleared" && r.Detail == detail {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeDirector) setKey(volume string, sk keys.StoredKey) {
	f.mu.Lock()
	f.keys[volume] = sk
	f.mu.Unlock()
}

func (f *fakeDirector) events(volume string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports {
		if r.Volume == volume {
			out = append(out, r.Event)
		}
	}
	return out
}

// env is one test's library: vtl, storaged, the director double, KEKs.
type env struct {
	t       testing.TB
	dir     string
	vtl     *testenv.VTL
	vtlArgs []string
	vtlSock string
	spare   int // the vtl drive storaged is not configured for
	sd      *testenv.Proc
	sdAddr  string // where storaged listens (it picks a port)
	sdConf  testenv.Storaged
	cfgPath string

	pki      *testenv.PKI
	dirFiles tlsconf.Files // the director's certificate (it calls storaged too)
	director *fakeDirector
	dirSrv   *grpc.Server
	dirAddr  string

	ring    *keys.Keyring // the director's KEKs
	kekPath string
	secrets [][]byte // every key and KEK used, for the log grep
	client  pb.StorageClient
	conn    *grpc.ClientConn
}

type envOpts struct {
	mountTimeout  string // storaged [timeouts] mount (default 30s)
	capacity      string // vtl cartridge capacity
	personalities string // vtl --personality
	drives        int
	slots         int
	sdKEKs        []string // KEK files storaged gets (default: the env's KEK)
	extraSDKEKs   []string // KEK files storaged gets besides the env's KEK
	loadDelay     string   // vtl --load-delay (default: vtl's own)
	// revocationList gives storaged an (empty) [tls] revocation_list,
	// e.dir/revoked.txt.
	revocationList bool
	// iscsi serves the vtl as an iSCSI target too, and storaged reaches
	// the changer and drives through iscsi:// addresses (its userspace
	// initiator) instead of the socket.
	iscsi bool
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.capacity == "" {
		o.capacity = "64MiB"
	}
	if o.drives == 0 {
		o.drives = 3
	}
	if o.slots == 0 {
		o.slots = 6
	}
	if o.personalities == "" {
		o.personalities = "drive1=no-ame,drive2=lying"
	}
	e := &env{t: t, dir: t.TempDir(), director: &fakeDirector{keys: map[string]keys.StoredKey{}, history: map[string][]keys.StoredKey{}}}
	e.pki = testenv.NewPKI(t, e.dir)
	e.dirFiles = e.issue("director", tlsconf.RoleDirector)

	// The KEK, shared by the director double and storaged.
	e.kekPath = filepath.Join(e.dir, "kek.key")
	kek := testenv.WriteKEK(t, e.kekPath)
	e.secrets = append(e.secrets, bytes.Clone(keys.EncodeKEKHex(kek)[:64]))
	var err error
	if e.ring, err = keys.NewKeyring(kek); err != nil {
		t.Fatal(err)
	}

	// The director double.
	e.serveDirector("127.0.0.1:0")

	// One drive more than storaged is given: the tests' own (forging a
	// label, looking at a tape) — storaged holds its drives exclusively.
	e.spare = o.drives
	args := []string{"--slots", fmt.Sprint(o.slots), "--drives", fmt.Sprint(o.drives + 1), "--capacity", o.capacity, "--personality", o.personalities}
	if o.loadDelay != "" {
		args = append(args, "--load-delay", o.loadDelay)
	}
	var portal, target string
	if o.iscsi {
		// A fixed port, so that a restarted vtl (a power cycle) is at the
		// address storaged has.
		portal, target = testenv.FreeAddr(t), "iqn.2026-12.io.tapeward.test:storaged"
		args = append(args, "--iscsi", portal, "--iscsi-target", target)
	}
	e.vtlArgs = args
	e.vtl = testenv.StartVTL(t, bins.vtl, e.dir, args...)
	e.vtlSock = e.vtl.Socket
	kekFiles := o.sdKEKs
	if kekFiles == nil {
		kekFiles = append([]string{e.kekPath}, o.extraSDKEKs...)
	}
	e.sdConf = testenv.Storaged{Name: "sd1", Listen: "127.0.0.1:0", MountTimeout: o.mountTimeout, WorkDir: filepath.Join(e.dir, "work"),
		TLS: e.issue("sd1", tlsconf.RoleStorage), DirectorName: "director", DirectorAddr: e.dirAddr,
		KEKFiles: kekFiles, VTLSocket: e.vtlSock, Drives: o.drives, ISCSIPortal: portal, ISCSITarget: target}
	if o.revocationList {
		e.sdConf.TLS.RevocationList = filepath.Join(e.dir, "revoked.txt")
		if err := os.WriteFile(e.sdConf.TLS.RevocationList, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.cfgPath = filepath.Join(e.dir, "storaged.toml")
	e.sdConf.Write(t, e.cfgPath)
	e.startStoraged()
	t.Cleanup(func() { e.checkNoSecretsInLogs() })
	return e
}

func (e *env) issue(name, role string) tlsconf.Files { return e.pki.Issue(e.t, name, role) }

// serveDirector serves the director double on addr ("127.0.0.1:0" the
// first time; its old address to bring it back after e.dirSrv.Stop()).
func (e *env) serveDirector(addr string) {
	e.t.Helper()
	tc, err := tlsconf.Server(e.dirFiles, tlsconf.Expect([]string{tlsconf.RoleStorage}))
	if err != nil {
		e.t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.dirAddr = lis.Addr().String()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	pb.RegisterDirectorServer(srv, e.director)
	go srv.Serve(lis)
	e.dirSrv = srv
	e.t.Cleanup(func() { srv.Stop() })
}

// startStoraged starts storaged (again) and connects to it as the director.
func (e *env) startStoraged() {
	e.t.Helper()
	e.sd, e.sdAddr = testenv.StartServing(e.t, "storaged", filepath.Join(e.dir, "storaged.log"), "storaged ready", bins.storaged, "-c", e.cfgPath)
	e.connect(e.dirFiles)
}

// connect (re)connects to storaged as the holder of files.
func (e *env) connect(files tlsconf.Files) {
	e.t.Helper()
	tc, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if e.conn != nil {
		e.conn.Close()
	}
	e.conn, err = grpc.NewClient(e.sdAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)))
	if err != nil {
		e.t.Fatal(err)
	}
	conn := e.conn
	e.t.Cleanup(func() { conn.Close() })
	e.client = pb.NewStorageClient(e.conn)
}

// stopStoraged sends sig and waits for storaged to exit.
func (e *env) stopStoraged(sig os.Signal) { e.sd.Stop(e.t, sig) }

// log is the current storaged run's log.
func (e *env) log() string { return e.sd.Output() }

// newKey makes a volume key wrapped v1 under the env's KEK, registers it
// with the director double and returns it (and records the secrets).
func (e *env) newKey(volume string) keys.StoredKey {
	e.t.Helper()
	sk, err := e.ring.WrapNew()
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := e.ring.Unwrap(sk)
	if err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, raw)
	e.director.setKey(volume, sk)
	return sk
}

func wrapped(sk keys.StoredKey) *pb.WrappedKey {
	return &pb.WrappedKey{Stored: sk.Value, Scheme: string(sk.Scheme), KekId: sk.KEKID, Fingerprint: sk.Fingerprint}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) label(slot uint32, volume, drive string, encrypt bool) (*pb.LabelVolumeReply, error) {
	req := &pb.LabelVolumeRequest{Changer: "changer0", Slot: slot, Drive: drive, Volume: volume, Pool: "Offsite", MediaType: "LTO-6", Encrypt: encrypt}
	if encrypt {
		req.Key = wrapped(e.newKey(volume))
	}
	return e.client.LabelVolume(e.ctx(), req)
}

// write sends data as one session to drive and returns the reply.
func (e *env) write(drive string, data []byte, marks ...uint64) (*pb.WriteDataReply, error) {
	st, err := e.client.WriteData(e.ctx())
	if err != nil {
		return nil, err
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: drive, Marks: marks}}}); err != nil {
		return nil, err
	}
	for off := 0; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: data[off:end]}}); err != nil {
			break // the server ended the stream; CloseAndRecv has its answer
		}
	}
	return st.CloseAndRecv()
}

func (e *env) read(drive string, from *pb.BlockAddress) ([]byte, error) {
	st, err := e.client.ReadData(e.ctx(), &pb.ReadDataRequest{Drive: drive, From: from})
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		r, err := st.Recv()
		if err != nil {
			if strings.Contains(err.Error(), "EOF") || err.Error() == "EOF" {
				return out, nil
			}
			if status.Code(err) == codes.OK {
				return out, nil
			}
			return out, err
		}
		out = append(out, r.Data...)
	}
}

func (e *env) vtlStatus() string   { return e.vtl.Status(e.t) }
func (e *env) requireNoKeyLoaded() { e.vtl.RequireNoKey(e.t) }

// checkNoSecretsInLogs greps every log for every key and KEK in hex and
// base64 (invariant 4).
func (e *env) checkNoSecretsInLogs() {
	var logs []string
	for _, p := range []string{filepath.Join(e.dir, "storaged.log"), filepath.Join(e.dir, "vtl.log")} {
		b, _ := os.ReadFile(p)
		logs = append(logs, string(b))
	}
	for _, s := range e.secrets {
		raw := s
		if len(s) == 64 { // a KEK in hex form
			if b, err := hex.DecodeString(string(s)); err == nil {
				raw = b
			}
		}
		for _, form := range []string{hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)),
			base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw)} {
			for _, l := range logs {
				if strings.Contains(l, form) {
					e.t.Errorf("a log contains key material (%d-byte secret)", len(raw))
				}
			}
		}
	}
}

func randomData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t testing.TB, what string, ok func() bool) { testenv.WaitFor(t, what, ok) }
