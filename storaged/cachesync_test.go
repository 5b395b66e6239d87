package main

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func kekCounts(cs []*pb.KekCount) map[string][2]uint32 {
	m := map[string][2]uint32{}
	for _, c := range cs {
		m[c.KekId] = [2]uint32{c.Keys, c.Sole}
	}
	return m
}

// The crypto cache follows a rekey: storaged says hello at start-up (its
// KEKs and cache by KEK), the director pushes a volume's rewrapped current
// key and a history key, the cache keeps every earlier string, Hello and
// Status count the cache by KEK, and a restart without the old KEK warns
// that its wrappings are superseded (not lost).
func TestPushKeysFollowsRekey(t *testing.T) {
	kek2Path := filepath.Join(t.TempDir(), "kek2.key")
	kek2 := testenv.WriteKEK(t, kek2Path)
	e := newEnv(t, envOpts{extraSDKEKs: []string{kek2Path}})
	k1 := e.ring.IDs()[0]
	e.secrets = append(e.secrets, []byte(strings.TrimSpace(string(keys.EncodeKEKHex(kek2)))))

	waitFor(t, "storaged's hello to the director", func() bool { return e.director.helloCount() > 0 })
	h := e.director.lastHello()
	if want := slices.Sorted(slices.Values([]string{k1, kek2.ID()})); !slices.Equal(h.KekIds, want) || len(h.CacheKeks) != 0 {
		t.Fatalf("hello = %v, want KEKs %v and an empty cache", h, want)
	}

	lr, err := e.label(1, "TW0001L6", "drive0", true)
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	e.director.mu.Lock()
	cur := e.director.keys["TW0001L6"]
	e.director.mu.Unlock()
	// The rekey: the current key rewrapped under KEK 2, and a key the
	// volume had before (rotated, data on tape), also under KEK 2.
	both, err := keys.NewKeyring(kek2)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.ring.Unwrap(cur)
	if err != nil {
		t.Fatal(err)
	}
	cur2, err := both.Wrap(raw)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := both.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	histRaw, _ := both.Unwrap(hist)
	e.secrets = append(e.secrets, histRaw)
	push := &pb.PushKeysRequest{Reason: "rekey to KEK " + kek2.ID(), Keys: []*pb.CacheKey{
		{Volume: "TW0001L6", Key: wrapped(hist)},
		{Volume: "TW0001L6", Key: wrapped(cur2), Current: true},
		{Volume: "TW0001L6", Key: wrapped(cur)}, // the old wrapping: already held
	}}
	rep, err := e.client.PushKeys(e.ctx(), push)
	if err != nil {
		t.Fatalf("PushKeys: %v", err)
	}
	if rep.Added != 2 || rep.Unchanged != 1 {
		t.Fatalf("PushKeys reply = %v, want 2 added, 1 unchanged", rep)
	}
	wantCounts := map[string][2]uint32{k1: {1, 0}, kek2.ID(): {2, 1}}
	if got := kekCounts(rep.CacheKeks); !mapsEqual(got, wantCounts) {
		t.Fatalf("cache by KEK after the push = %v, want %v", got, wantCounts)
	}
	st, err := e.client.Status(e.ctx(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kekCounts(st.CacheKeks); !mapsEqual(got, wantCounts) || len(st.CacheUnknownKekIds) != 0 {
		t.Fatalf("status: cache by KEK %v unknown %v, want %v and none", got, st.CacheUnknownKekIds, wantCounts)
	}
	// The same push again changes nothing.
	if rep, err := e.client.PushKeys(e.ctx(), push); err != nil || rep.Added != 0 || rep.Unchanged != 3 {
		t.Fatalf("second PushKeys = %v, %v; want all unchanged", rep, err)
	}
	// A key that does not unwrap to the fingerprint it is pushed with:
	// refused, nothing written.
	bad := cur2
	bad.Fingerprint = hist.Fingerprint
	_, err = e.client.PushKeys(e.ctx(), &pb.PushKeysRequest{Keys: []*pb.CacheKey{{Volume: "TW0001L6", Key: wrapped(bad), Current: true}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "TW0001L6") || !strings.Contains(err.Error(), hist.Fingerprint) {
		t.Fatalf("a key with the wrong fingerprint: %v", err)
	}
	// A history key of a volume the cache holds no key of: left out (there
	// is no entry to join), said in the log, the rest of the push made.
	other, err := both.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	otherRaw, _ := both.Unwrap(other)
	e.secrets = append(e.secrets, otherRaw)
	rep, err = e.client.PushKeys(e.ctx(), &pb.PushKeysRequest{Keys: []*pb.CacheKey{{Volume: "NOPE", Key: wrapped(hist)}, {Volume: "TW0009L6", Key: wrapped(other), Current: true}}})
	if err != nil || rep.Added != 1 || rep.Unchanged != 0 {
		t.Fatalf("history key of a volume the cache lacks: %v, %v; want the other key added, that one left out", rep, err)
	}
	waitFor(t, "storaged to log the history key left out", func() bool {
		return strings.Contains(e.log(), "not added (the cache never held their keys)") && strings.Contains(e.log(), "NOPE")
	})
	wantCounts[kek2.ID()] = [2]uint32{3, 2}

	dump, err := exec.Command(bins.tapekey, "cache", "dump", "--json", filepath.Join(e.dir, "work", "storaged.cryptocache")).CombinedOutput()
	if err != nil {
		t.Fatalf("tapekey cache dump: %v\n%s", err, dump)
	}
	var d struct {
		Entries []struct {
			Volume      string `json:"volume"`
			KEKID       string `json:"kek_id"`
			Fingerprint string `json:"fingerprint"`
			History     []struct {
				KEKID       string `json:"kek_id"`
				Fingerprint string `json:"fingerprint"`
			} `json:"history"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(dump, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 2 || d.Entries[1].Volume != "TW0009L6" || d.Entries[0].KEKID != kek2.ID() || d.Entries[0].Fingerprint != lr.KeyFingerprint || len(d.Entries[0].History) != 2 ||
		d.Entries[0].History[0].KEKID != k1 || d.Entries[0].History[1].Fingerprint != hist.Fingerprint {
		t.Fatalf("cache after the push:\n%s", dump)
	}

	// Retire the old KEK from storaged: it warns, naming it, that its
	// wrappings are superseded; Hello names it as unknown.
	e.stopStoraged(syscall.SIGTERM)
	e.sdConf.KEKFiles = []string{kek2Path}
	e.sdConf.Write(t, e.cfgPath)
	n := e.director.helloCount()
	e.startStoraged()
	if l := e.log(); !strings.Contains(l, "older wrappings under KEKs not in this storaged's keyring (superseded") || !strings.Contains(l, k1) {
		t.Fatalf("start-up log does not name the superseded KEK %s:\n%s", k1, l)
	}
	waitFor(t, "storaged's second hello", func() bool { return e.director.helloCount() > n })
	if h := e.director.lastHello(); !slices.Equal(h.CacheUnknownKekIds, []string{k1}) {
		t.Fatalf("hello after retiring KEK %s: unknown = %v", k1, h.CacheUnknownKekIds)
	}
	hello, err := e.client.Hello(e.ctx(), &pb.HelloRequest{})
	if err != nil || !slices.Equal(hello.CacheUnknownKekIds, []string{k1}) || !mapsEqual(kekCounts(hello.CacheKeks), wantCounts) {
		t.Fatalf("Hello = %v, %v", hello, err)
	}
}

// storaged says hello in the background: a director that is down at
// start-up does not delay it, and gets the hello once it is back.
func TestHelloRetriesWhileDirectorDown(t *testing.T) {
	e := newEnv(t, envOpts{})
	waitFor(t, "the first hello", func() bool { return e.director.helloCount() > 0 })
	e.stopStoraged(syscall.SIGTERM)
	e.dirSrv.Stop()
	n := e.director.helloCount()
	e.startStoraged() // ready although the director is down
	waitFor(t, "storaged to log that the director is unreachable", func() bool {
		return strings.Contains(e.log(), "cannot say hello to the director")
	})
	tc, err := tlsconf.Server(e.dirFiles, tlsconf.Expect([]string{tlsconf.RoleStorage}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", e.dirAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	pb.RegisterDirectorServer(srv, e.director)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	waitFor(t, "the hello once the director is back", func() bool { return e.director.helloCount() > n })
}

func mapsEqual(a, b map[string][2]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
