package iscsi

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	w "github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
)

// seedStream is a well-formed initiator's side of a session: login
// straight to full feature phase, then one PDU of each kind the target
// handles.
func seedStream(t testing.TB, discovery bool) []byte {
	var buf bytes.Buffer
	wr := w.NewWriter(&buf)
	put := func(m w.Message, data []byte) {
		if err := wr.Write(w.NewPDU(m, data)); err != nil {
			t.Fatal(err)
		}
	}
	keys := []w.KV{{Key: "InitiatorName", Value: "iqn.2026-12.test:fuzz"}, {Key: "SessionType", Value: "Normal"},
		{Key: "TargetName", Value: DefaultName}, {Key: "AuthMethod", Value: "None"}}
	if discovery {
		keys[1].Value = "Discovery"
		keys = append(keys[:2], keys[3])
	}
	put(&w.LoginRequest{Transit: true, CSG: w.StageSecurity, NSG: w.StageOperational, ISID: [6]byte{0x80, 1, 2, 3, 0, 0}, ITT: 1}, w.AppendText(nil, keys...))
	put(&w.LoginRequest{Transit: true, CSG: w.StageOperational, NSG: w.StageFullFeature, ISID: [6]byte{0x80, 1, 2, 3, 0, 0}, ITT: 1},
		w.AppendText(nil, w.KV{Key: "MaxRecvDataSegmentLength", Value: "4096"}, w.KV{Key: "InitialR2T", Value: "No"},
			w.KV{Key: "ImmediateData", Value: "Yes"}, w.KV{Key: "FirstBurstLength", Value: "8192"}, w.KV{Key: "MaxBurstLength", Value: "16384"}))
	sn := uint32(0)
	cmd := func(lun int, cdb []byte, read, write bool, exp int, imm []byte) {
		c := w.SCSICommand{Final: true, Read: read, Write: write, Attr: w.AttrSimple, LUN: w.LUN(lun), ITT: sn + 10, ExpectedLength: uint32(exp), CmdSN: sn}
		copy(c.CDB[:], cdb)
		if write && len(imm) < exp {
			c.Final = false
		}
		sn++
		put(&c, imm)
	}
	cmd(1, inquiry(96), true, false, 96, nil)
	cmd(0, []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}, true, false, 4096, nil)
	cmd(1, tur(), false, false, 0, nil)
	cmd(1, reserve6(), false, false, 0, nil)
	p := sde(2, 3, make([]byte, 32))
	cmd(1, spoutCDB(len(p)), false, true, len(p), p[:20])
	put(&w.DataOut{Final: true, LUN: w.LUN(1), ITT: sn - 1 + 10, TTT: w.ReservedTag, BufferOffset: 20}, p[20:])
	cmd(1, write6(12000), false, true, 12000, make([]byte, 4000))
	put(&w.DataOut{Final: true, LUN: w.LUN(1), ITT: sn - 1 + 10, TTT: w.ReservedTag, BufferOffset: 4000}, make([]byte, 4000))
	put(&w.DataOut{Final: true, LUN: w.LUN(1), ITT: sn - 1 + 10, TTT: 1, BufferOffset: 8000}, make([]byte, 4000))
	cmd(1, read6(4096), true, false, 4096, nil)
	put(&w.NOPOut{Immediate: true, ITT: 99, TTT: w.ReservedTag, CmdSN: sn}, []byte("ping"))
	put(&w.TextRequest{Immediate: true, Final: true, ITT: 100, TTT: w.ReservedTag, CmdSN: sn}, w.AppendText(nil, w.KV{Key: "SendTargets", Value: "All"}))
	put(&w.TaskMgmtRequest{Immediate: true, Function: w.TMFAbortTask, LUN: w.LUN(1), ITT: 101, RefTaskTag: 12, CmdSN: sn}, nil)
	put(&w.TaskMgmtRequest{Immediate: true, Function: w.TMFLUNReset, LUN: w.LUN(1), ITT: 102, RefTaskTag: w.ReservedTag, CmdSN: sn}, nil)
	put(&w.LogoutRequest{Immediate: true, ITT: 103, CmdSN: sn}, nil)
	return buf.Bytes()
}

// feed runs one byte stream through a target connection and waits until
// the connection has ended; a panic in the target fails the test (newWorld).
func feed(t testing.TB, tg *Target, in []byte) []byte {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := tg.serveConn(sv)
	if c == nil {
		t.Fatal("target closed")
	}
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(cl)
		out <- b
	}()
	cl.SetWriteDeadline(time.Now().Add(20 * time.Second))
	cl.Write(in)
	cl.(*net.TCPConn).CloseWrite()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		os.WriteFile(filepath.Join(os.TempDir(), "iscsi-hang.txt"), append(append([]byte{}, in...), buf[:runtime.Stack(buf, true)]...), 0o600)
		t.Fatalf("the target still serves a connection 20 s after its input ended (stacks in %s)", filepath.Join(os.TempDir(), "iscsi-hang.txt"))
	}
	return <-out
}

// The seed streams are answered in full: the last PDU is the Logout
// Response.
func TestSeedStream(t *testing.T) {
	wd := newWorld(t, nil)
	if err := wd.lib.PanelLoad(1, 0); err != nil {
		t.Fatal(err)
	}
	for _, disc := range []bool{false, true} {
		out := feed(t, wd.tgt, seedStream(t, disc))
		r := w.NewReader(bytes.NewReader(out))
		var ops []byte
		for {
			p, err := r.Read()
			if err != nil {
				break
			}
			ops = append(ops, p.Opcode())
		}
		t.Logf("discovery=%v: %x", disc, ops)
		if len(ops) < 4 || ops[len(ops)-1] != w.OpLogoutResp {
			t.Fatalf("discovery=%v: target answered %x, want a full session ending with a Logout Response\n%s", disc, ops, wd.logs)
		}
	}
}

// A malformed PDU stream never crashes or hangs the target: random
// mutations of the seed streams (flipped and random bytes, cuts, noise) (go test -fuzz FuzzConn for more).
func TestMalformedStreams(t *testing.T) {
	wd := newWorld(t, nil)
	if err := wd.lib.PanelLoad(1, 0); err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{seedStream(t, false), seedStream(t, true)}
	rng := rand.New(rand.NewSource(14))
	for i := range 800 {
		in := bytes.Clone(seeds[i%2])
		for range 1 + rng.Intn(3) {
			if len(in) == 0 {
				in = []byte{0}
			}
			switch rng.Intn(5) {
			case 0:
				in[rng.Intn(len(in))] ^= byte(1 + rng.Intn(255))
			case 1:
				in = in[:rng.Intn(len(in))]
			case 2:
				at := rng.Intn(len(in) + 1)
				noise := make([]byte, rng.Intn(64))
				rng.Read(noise)
				in = append(in[:at], append(noise, in[at:]...)...)
			case 3:
				a, b := rng.Intn(len(in)), rng.Intn(len(in))
				if a > b {
					a, b = b, a
				}
				in = append(in[:a], in[b:]...)
			case 4:
				if len(in) <= 300 {
					continue
				}
				at := 300 + rng.Intn(len(in)-300)
				in[at] = byte(rng.Intn(256))
			}
			if len(in) == 0 {
				in = []byte{0}
			}
		}
		feed(t, wd.tgt, in)
	}
}

func FuzzConn(f *testing.F) {
	f.Add(seedStream(f, false))
	f.Add(seedStream(f, true))
	wd := newWorld(f, nil)
	if err := wd.lib.PanelLoad(1, 0); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		feed(t, wd.tgt, in)
		if n := wd.tgt.panics.Load(); n != 0 {
			t.Fatalf("target panicked:\n%s", wd.logs)
		}
	})
}
