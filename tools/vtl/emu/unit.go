package emu

import (
	"encoding/binary"
	"log/slog"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// Nexus is one I_T nexus (one socket connection) to one unit. Its buffers
// are reused between commands; the data-in of a reply aliases them until
// the next command on the same nexus.
type Nexus struct {
	id       uint64
	ua       []scsi.ASCQ // pending unit attentions, oldest first
	local    *encParams  // SCOPE=LOCAL parameters
	useLocal bool
	prevent  bool
	locked   bool   // parameters set with LOCK=1
	lockKIC  uint32 // the key instance counter they were locked at
	buf      []byte // record buffer (READ)
	out      []byte // assembled data-in
	meta     []byte
	sense    [255]byte
}

func newNexus(id uint64) *Nexus {
	return &Nexus{id: id, ua: []scsi.ASCQ{scsi.ASCPowerOnReset}, out: make([]byte, 0, 4096)}
}

// addUA queues a unit attention (no duplicates; power-on supersedes all).
func (nx *Nexus) addUA(a scsi.ASCQ) {
	for _, x := range nx.ua {
		if x == a {
			return
		}
	}
	nx.ua = append(nx.ua, a)
}

func (nx *Nexus) takeUA() *sense {
	if len(nx.ua) == 0 {
		return nil
	}
	a := nx.ua[0]
	if a == scsi.ASCPowerOnReset {
		// Power-on/reset supersedes every other pending condition.
		nx.ua = nx.ua[:0]
	} else {
		nx.ua = nx.ua[1:]
	}
	return checkSense(scsi.SenseUnitAttention, a)
}

// reply is a unit's answer to one command.
type reply struct {
	// status is a SAM status other than GOOD/CHECK CONDITION (RESERVATION
	// CONFLICT); 0 otherwise.
	status byte
	sense  *sense
	data   []byte // data-in (truncated to the allocation length by the caller)
	// residOut is the number of data-out bytes not consumed.
	residOut int
}

func good(data []byte) reply   { return reply{data: data} }
func fail(s *sense) reply      { return reply{sense: s} }
func (r reply) failed() bool   { return r.sense != nil }
func be16(b []byte) int        { return int(binary.BigEndian.Uint16(b)) }
func be24(b []byte) int        { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
func put16(b []byte, v int)    { binary.BigEndian.PutUint16(b, uint16(v)) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func put64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
func sext24(v int) int64       { return int64(int32(uint32(v)<<8) >> 8) }
func cdbByte(c []byte, i int) byte {
	if i < len(c) {
		return c[i]
	}
	return 0
}

// cdbLen is the CDB length each opcode group needs.
func cdbLen(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 6
}

// toResponse renders a reply for the wire.
func toResponse(nx *Nexus, req *vtlwire.Request, r reply, senseLen int, desc bool) vtlwire.Response {
	resp := vtlwire.Response{Status: r.status}
	if r.sense != nil {
		resp.Status = scsi.StatusCheckCondition
		if desc {
			resp.Sense = r.sense.descriptor(nx.sense[:0])
		} else {
			resp.Sense = r.sense.fixed(nx.sense[:], senseLen)
		}
	}
	switch req.Dir {
	case scsi.DirFromDevice:
		d := r.data
		if len(d) > req.AllocLen {
			d = d[:req.AllocLen]
		}
		resp.DataIn = d
		resp.Resid = int32(req.AllocLen - len(d))
	case scsi.DirToDevice:
		resp.Resid = int32(r.residOut)
	}
	return resp
}

// opNames names opcodes for --trace.
var opNames = map[byte]string{
	scsi.OpTestUnitReady: "TEST UNIT READY", scsi.OpRewind: "REWIND", scsi.OpRequestSense: "REQUEST SENSE",
	scsi.OpReadBlockLimits: "READ BLOCK LIMITS", scsi.OpInitializeElementStat: "INITIALIZE ELEMENT STATUS",
	scsi.OpRead6: "READ(6)", scsi.OpWrite6: "WRITE(6)", scsi.OpWriteFilemarks6: "WRITE FILEMARKS(6)",
	scsi.OpSpace6: "SPACE(6)", scsi.OpInquiry: "INQUIRY", scsi.OpModeSelect6: "MODE SELECT(6)",
	scsi.OpErase6: "ERASE(6)", scsi.OpModeSense6: "MODE SENSE(6)", scsi.OpLoadUnload: "LOAD UNLOAD",
	scsi.OpPreventAllow: "PREVENT ALLOW MEDIUM REMOVAL", scsi.OpReadPosition: "READ POSITION",
	scsi.OpLogSelect: "LOG SELECT", scsi.OpLogSense: "LOG SENSE", scsi.OpModeSelect10: "MODE SELECT(10)",
	scsi.OpModeSense10: "MODE SENSE(10)", scsi.OpLocate16: "LOCATE(16)", scsi.OpSpace16: "SPACE(16)",
	scsi.OpReportLUNs: "REPORT LUNS", scsi.OpSecurityProtocolIn: "SECURITY PROTOCOL IN",
	scsi.OpMoveMedium: "MOVE MEDIUM", scsi.OpSecurityProtocolOut: "SECURITY PROTOCOL OUT",
	scsi.OpReadElementStatus: "READ ELEMENT STATUS", 0x2B: "LOCATE(10)", 0x44: "REPORT DENSITY SUPPORT",
	opReserve6: "RESERVE(6)", opRelease6: "RELEASE(6)",
}

// OpName returns the standard name of an opcode.
func OpName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return "UNKNOWN"
}

// traceAttrs returns the key CDB fields of a command for --trace. It never
// includes data-out (a SPOUT parameter list carries a key).
func traceAttrs(cdb []byte, dataLen int) []slog.Attr {
	op := cdb[0]
	a := []slog.Attr{slog.String("op", OpName(op)), slog.String("opcode", hex2(op))}
	g := func(i int) byte { return cdbByte(cdb, i) }
	switch op {
	case scsi.OpRead6, scsi.OpWrite6:
		a = append(a, slog.Bool("fixed", g(1)&1 != 0), slog.Bool("sili", g(1)&2 != 0), slog.Int("length", int(g(2))<<16|int(g(3))<<8|int(g(4))))
	case scsi.OpWriteFilemarks6:
		a = append(a, slog.Int("count", int(g(2))<<16|int(g(3))<<8|int(g(4))), slog.Bool("immed", g(1)&1 != 0))
	case scsi.OpSpace6:
		a = append(a, slog.Int("code", int(g(1)&0xF)), slog.Int64("count", sext24(int(g(2))<<16|int(g(3))<<8|int(g(4)))))
	case scsi.OpSpace16:
		if len(cdb) >= 12 {
			a = append(a, slog.Int("code", int(g(1)&0xF)), slog.Int64("count", int64(binary.BigEndian.Uint64(cdb[4:12]))))
		}
	case scsi.OpLocate16:
		if len(cdb) >= 12 {
			a = append(a, slog.Int("dest_type", int(g(1)>>3&7)), slog.Uint64("id", binary.BigEndian.Uint64(cdb[4:12])))
		}
	case scsi.OpSecurityProtocolIn, scsi.OpSecurityProtocolOut:
		a = append(a, slog.String("protocol", hex2(g(1))), slog.Int("page", int(g(2))<<8|int(g(3))),
			slog.Int("length", int(g(6))<<24|int(g(7))<<16|int(g(8))<<8|int(g(9))))
	case scsi.OpInquiry:
		a = append(a, slog.Bool("evpd", g(1)&1 != 0), slog.String("page", hex2(g(2))))
	case scsi.OpModeSense6, scsi.OpModeSense10, scsi.OpLogSense:
		a = append(a, slog.String("page", hex2(g(2)&0x3F)), slog.Int("pc", int(g(2)>>6)))
	case scsi.OpLoadUnload:
		a = append(a, slog.Bool("load", g(4)&1 != 0), slog.Bool("hold", g(4)&8 != 0))
	case scsi.OpMoveMedium:
		a = append(a, slog.Int("source", int(g(4))<<8|int(g(5))), slog.Int("destination", int(g(6))<<8|int(g(7))))
	case scsi.OpReadElementStatus:
		a = append(a, slog.Int("type", int(g(1)&0xF)), slog.Bool("voltag", g(1)&0x10 != 0), slog.Int("start", int(g(2))<<8|int(g(3))))
	case scsi.OpReadPosition:
		a = append(a, slog.Int("service_action", int(g(1)&0x1F)))
	}
	a = append(a, slog.Int("data_len", dataLen))
	return a
}

func hex2(b byte) string {
	const h = "0123456789ABCDEF"
	return "0x" + string([]byte{h[b>>4], h[b&15]})
}

// SPC-2 reservations (RESERVE(6) / RELEASE(6)): a unit reserved by one
// nexus answers RESERVATION CONFLICT to the others, except for the
// commands SPC-2 lets through. The reservation ends with RELEASE from its
// holder, the holder's nexus ending, or a LUN reset (Library.ResetUnit).
const (
	opReserve6 = 0x16
	opRelease6 = 0x17
)

// conflict reports whether op from nx must get RESERVATION CONFLICT on a
// unit reserved by holder (nil: not reserved).
func conflict(holder, nx *Nexus, op byte) bool {
	if holder == nil || holder == nx {
		return false
	}
	switch op {
	case scsi.OpInquiry, scsi.OpRequestSense, scsi.OpReportLUNs, opRelease6:
		return false
	}
	return true
}

// reserve runs RESERVE(6) / RELEASE(6) (no third-party or extent
// reservations) against *holder.
func reserve(holder **Nexus, nx *Nexus, cdb []byte) reply {
	if cdb[1]&0x1F != 0 {
		// 3rdPty (bit 4), third-party device ID and extent (bit 0) are
		// SPC-1 leftovers no tape tool uses.
		return fail(invalidCDB(1))
	}
	switch {
	case cdb[0] == opRelease6:
		if *holder == nx {
			*holder = nil
		}
		// A RELEASE from a nexus that holds nothing is GOOD and changes
		// nothing (SPC-2 §7.17).
	case *holder == nil || *holder == nx:
		*holder = nx
	default:
		return reply{status: scsi.StatusReservationConflict}
	}
	return good(nil)
}
