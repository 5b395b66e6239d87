package iscsiwire

// Each PDU kind is a struct with Encode (to a BHS) and a Decode function
// (from one). Fields carry the values of the wire; the data segment is
// not part of them (PDU.Data). Byte offsets are those of RFC 7143 §11.

// Message is any typed header.
type Message interface {
	// Encode writes the header into a fresh BHS (data segment length 0;
	// NewPDU sets it from the data).
	Encode() BHS
}

// SCSI Command attribute values (§11.3.1, byte 1 bits 0–2).
const (
	AttrUntagged = 0
	AttrSimple   = 1
	AttrOrdered  = 2
	AttrHoQ      = 3
	AttrACA      = 4
)

// SCSICommand is a SCSI Command PDU (§11.3).
type SCSICommand struct {
	Immediate      bool
	Final          bool // F: no unsolicited Data-Out follows (the last PDU of the command)
	Read, Write    bool // R and W bits
	Attr           byte // task attribute (AttrSimple …)
	LUN            uint64
	ITT            uint32
	ExpectedLength uint32 // Expected Data Transfer Length
	CmdSN          uint32
	ExpStatSN      uint32
	CDB            [16]byte // a CDB longer than 16 bytes needs an extended-CDB AHS (not used by Tapeward)
}

func (m *SCSICommand) Encode() BHS {
	var b BHS
	b.start(OpSCSICommand, m.Immediate)
	b[1] = flag(m.Final, 0x80) | flag(m.Read, 0x40) | flag(m.Write, 0x20) | m.Attr&7
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.ExpectedLength)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	copy(b[32:48], m.CDB[:])
	return b
}

// DecodeSCSICommand reads a SCSI Command header.
func DecodeSCSICommand(b *BHS) SCSICommand {
	m := SCSICommand{
		Immediate: b.Immediate(), Final: b[1]&0x80 != 0, Read: b[1]&0x40 != 0, Write: b[1]&0x20 != 0,
		Attr: b[1] & 7, LUN: b.u64(8), ITT: b.u32(16), ExpectedLength: b.u32(20),
		CmdSN: b.u32(24), ExpStatSN: b.u32(28),
	}
	copy(m.CDB[:], b[32:48])
	return m
}

// SCSI Response "response" codes (§11.4.3).
const (
	RespCompleted    = 0x00 // Command Completed at Target
	RespTargetFailed = 0x01 // Target Failure
)

// SCSIResponse is a SCSI Response PDU (§11.4). Its data segment, when
// present, is the sense data with its 2-byte length (SenseSegment).
type SCSIResponse struct {
	BidiOverflow, BidiUnderflow bool // o, u
	Overflow, Underflow         bool // O, U
	Response                    byte
	Status                      byte // SAM status
	ITT                         uint32
	StatSN, ExpCmdSN, MaxCmdSN  uint32
	ExpDataSN                   uint32
	BidiResidual, Residual      uint32
}

func (m *SCSIResponse) Encode() BHS {
	var b BHS
	b.start(OpSCSIResponse, false)
	b[1] = 0x80 | flag(m.BidiOverflow, 0x10) | flag(m.BidiUnderflow, 0x08) | flag(m.Overflow, 0x04) | flag(m.Underflow, 0x02)
	b[2], b[3] = m.Response, m.Status
	b.put32(16, m.ITT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b.put32(36, m.ExpDataSN)
	b.put32(40, m.BidiResidual)
	b.put32(44, m.Residual)
	return b
}

// DecodeSCSIResponse reads a SCSI Response header.
func DecodeSCSIResponse(b *BHS) SCSIResponse {
	return SCSIResponse{
		BidiOverflow: b[1]&0x10 != 0, BidiUnderflow: b[1]&0x08 != 0, Overflow: b[1]&0x04 != 0, Underflow: b[1]&0x02 != 0,
		Response: b[2], Status: b[3], ITT: b.u32(16), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32),
		ExpDataSN: b.u32(36), BidiResidual: b.u32(40), Residual: b.u32(44),
	}
}

// DataIn is a SCSI Data-In PDU (§11.7). With HasStatus (the S bit) it
// also ends the command and carries its status (then Final is set too).
type DataIn struct {
	Final, Ack                 bool // F, A
	Overflow, Underflow        bool // O, U (valid with HasStatus)
	HasStatus                  bool // S
	Status                     byte
	LUN                        uint64
	ITT, TTT                   uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
	DataSN, BufferOffset       uint32
	Residual                   uint32
}

func (m *DataIn) Encode() BHS {
	var b BHS
	b.start(OpDataIn, false)
	b[1] = flag(m.Final, 0x80) | flag(m.Ack, 0x40) | flag(m.Overflow, 0x04) | flag(m.Underflow, 0x02) | flag(m.HasStatus, 0x01)
	if m.HasStatus {
		b[3] = m.Status
	}
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b.put32(36, m.DataSN)
	b.put32(40, m.BufferOffset)
	b.put32(44, m.Residual)
	return b
}

// DecodeDataIn reads a Data-In header.
func DecodeDataIn(b *BHS) DataIn {
	return DataIn{
		Final: b[1]&0x80 != 0, Ack: b[1]&0x40 != 0, Overflow: b[1]&0x04 != 0, Underflow: b[1]&0x02 != 0, HasStatus: b[1]&0x01 != 0,
		Status: b[3], LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20), StatSN: b.u32(24), ExpCmdSN: b.u32(28),
		MaxCmdSN: b.u32(32), DataSN: b.u32(36), BufferOffset: b.u32(40), Residual: b.u32(44),
	}
}

// DataOut is a SCSI Data-Out PDU (§11.7). TTT is ReservedTag for
// unsolicited data, else the R2T's Target Transfer Tag.
type DataOut struct {
	Final        bool
	LUN          uint64
	ITT, TTT     uint32
	ExpStatSN    uint32
	DataSN       uint32
	BufferOffset uint32
}

func (m *DataOut) Encode() BHS {
	var b BHS
	b.start(OpDataOut, false)
	b[1] = flag(m.Final, 0x80)
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(28, m.ExpStatSN)
	b.put32(36, m.DataSN)
	b.put32(40, m.BufferOffset)
	return b
}

// DecodeDataOut reads a Data-Out header.
func DecodeDataOut(b *BHS) DataOut {
	return DataOut{Final: b[1]&0x80 != 0, LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20), ExpStatSN: b.u32(28), DataSN: b.u32(36), BufferOffset: b.u32(40)}
}

// R2T is a Ready To Transfer PDU (§11.8).
type R2T struct {
	LUN                        uint64
	ITT, TTT                   uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
	R2TSN                      uint32
	BufferOffset               uint32
	DesiredLength              uint32 // Desired Data Transfer Length
}

func (m *R2T) Encode() BHS {
	var b BHS
	b.start(OpR2T, false)
	b[1] = 0x80
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b.put32(36, m.R2TSN)
	b.put32(40, m.BufferOffset)
	b.put32(44, m.DesiredLength)
	return b
}

// DecodeR2T reads an R2T header.
func DecodeR2T(b *BHS) R2T {
	return R2T{LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32),
		R2TSN: b.u32(36), BufferOffset: b.u32(40), DesiredLength: b.u32(44)}
}

// Login stages (§11.12.3 CSG/NSG).
const (
	StageSecurity    = 0
	StageOperational = 1
	StageFullFeature = 3
)

// LoginRequest is a Login Request PDU (§11.12).
type LoginRequest struct {
	Transit, Continue bool // T, C
	CSG, NSG          byte
	VersionMax        byte
	VersionMin        byte
	ISID              [6]byte
	TSIH              uint16
	ITT               uint32
	CID               uint16
	CmdSN, ExpStatSN  uint32
}

func (m *LoginRequest) Encode() BHS {
	var b BHS
	b.start(OpLogin, true) // a login request is always immediate (§11.12)
	b[1] = flag(m.Transit, 0x80) | flag(m.Continue, 0x40) | (m.CSG&3)<<2 | m.NSG&3
	b[2], b[3] = m.VersionMax, m.VersionMin
	copy(b[8:14], m.ISID[:])
	b.put16(14, m.TSIH)
	b.put32(16, m.ITT)
	b.put16(20, m.CID)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	return b
}

// DecodeLoginRequest reads a Login Request header.
func DecodeLoginRequest(b *BHS) LoginRequest {
	m := LoginRequest{Transit: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0, CSG: b[1] >> 2 & 3, NSG: b[1] & 3,
		VersionMax: b[2], VersionMin: b[3], TSIH: b.u16(14), ITT: b.u32(16), CID: b.u16(20), CmdSN: b.u32(24), ExpStatSN: b.u32(28)}
	copy(m.ISID[:], b[8:14])
	return m
}

// LoginResponse is a Login Response PDU (§11.13).
type LoginResponse struct {
	Transit, Continue          bool
	CSG, NSG                   byte
	VersionMax, VersionActive  byte
	ISID                       [6]byte
	TSIH                       uint16
	ITT                        uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
	StatusClass, StatusDetail  byte
}

func (m *LoginResponse) Encode() BHS {
	var b BHS
	b.start(OpLoginResp, false)
	b[1] = flag(m.Transit, 0x80) | flag(m.Continue, 0x40) | (m.CSG&3)<<2 | m.NSG&3
	b[2], b[3] = m.VersionMax, m.VersionActive
	copy(b[8:14], m.ISID[:])
	b.put16(14, m.TSIH)
	b.put32(16, m.ITT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b[36], b[37] = m.StatusClass, m.StatusDetail
	return b
}

// DecodeLoginResponse reads a Login Response header.
func DecodeLoginResponse(b *BHS) LoginResponse {
	m := LoginResponse{Transit: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0, CSG: b[1] >> 2 & 3, NSG: b[1] & 3,
		VersionMax: b[2], VersionActive: b[3], TSIH: b.u16(14), ITT: b.u32(16), StatSN: b.u32(24), ExpCmdSN: b.u32(28),
		MaxCmdSN: b.u32(32), StatusClass: b[36], StatusDetail: b[37]}
	copy(m.ISID[:], b[8:14])
	return m
}

// TextRequest is a Text Request PDU (§11.10).
type TextRequest struct {
	Immediate        bool
	Final, Continue  bool
	LUN              uint64
	ITT, TTT         uint32
	CmdSN, ExpStatSN uint32
}

func (m *TextRequest) Encode() BHS {
	var b BHS
	b.start(OpText, m.Immediate)
	b[1] = flag(m.Final, 0x80) | flag(m.Continue, 0x40)
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	return b
}

// DecodeTextRequest reads a Text Request header.
func DecodeTextRequest(b *BHS) TextRequest {
	return TextRequest{Immediate: b.Immediate(), Final: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0, LUN: b.u64(8),
		ITT: b.u32(16), TTT: b.u32(20), CmdSN: b.u32(24), ExpStatSN: b.u32(28)}
}

// TextResponse is a Text Response PDU (§11.11).
type TextResponse struct {
	Final, Continue            bool
	LUN                        uint64
	ITT, TTT                   uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
}

func (m *TextResponse) Encode() BHS {
	var b BHS
	b.start(OpTextResp, false)
	b[1] = flag(m.Final, 0x80) | flag(m.Continue, 0x40)
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	return b
}

// DecodeTextResponse reads a Text Response header.
func DecodeTextResponse(b *BHS) TextResponse {
	return TextResponse{Final: b[1]&0x80 != 0, Continue: b[1]&0x40 != 0, LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20),
		StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32)}
}

// Logout reason codes (§11.14.1).
const (
	LogoutSession    = 0
	LogoutConnection = 1
	LogoutRecovery   = 2
)

// LogoutRequest is a Logout Request PDU (§11.14).
type LogoutRequest struct {
	Immediate        bool
	Reason           byte
	ITT              uint32
	CID              uint16
	CmdSN, ExpStatSN uint32
}

func (m *LogoutRequest) Encode() BHS {
	var b BHS
	b.start(OpLogout, m.Immediate)
	b[1] = 0x80 | m.Reason&0x7f
	b.put32(16, m.ITT)
	b.put16(20, m.CID)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	return b
}

// DecodeLogoutRequest reads a Logout Request header.
func DecodeLogoutRequest(b *BHS) LogoutRequest {
	return LogoutRequest{Immediate: b.Immediate(), Reason: b[1] & 0x7f, ITT: b.u32(16), CID: b.u16(20), CmdSN: b.u32(24), ExpStatSN: b.u32(28)}
}

// LogoutResponse is a Logout Response PDU (§11.15).
type LogoutResponse struct {
	Response                   byte // 0 closed successfully
	ITT                        uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
	Time2Wait, Time2Retain     uint16
}

func (m *LogoutResponse) Encode() BHS {
	var b BHS
	b.start(OpLogoutResp, false)
	b[1] = 0x80
	b[2] = m.Response
	b.put32(16, m.ITT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b.put16(40, m.Time2Wait)
	b.put16(42, m.Time2Retain)
	return b
}

// DecodeLogoutResponse reads a Logout Response header.
func DecodeLogoutResponse(b *BHS) LogoutResponse {
	return LogoutResponse{Response: b[2], ITT: b.u32(16), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32),
		Time2Wait: b.u16(40), Time2Retain: b.u16(42)}
}

// NOPOut is a NOP-Out PDU (§11.18): a ping (ITT set, TTT ReservedTag) or
// the answer to a target's NOP-In (ITT ReservedTag, TTT echoed).
type NOPOut struct {
	Immediate        bool
	LUN              uint64
	ITT, TTT         uint32
	CmdSN, ExpStatSN uint32
}

func (m *NOPOut) Encode() BHS {
	var b BHS
	b.start(OpNOPOut, m.Immediate)
	b[1] = 0x80
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	return b
}

// DecodeNOPOut reads a NOP-Out header.
func DecodeNOPOut(b *BHS) NOPOut {
	return NOPOut{Immediate: b.Immediate(), LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20), CmdSN: b.u32(24), ExpStatSN: b.u32(28)}
}

// NOPIn is a NOP-In PDU (§11.19): the answer to a ping (ITT echoed, TTT
// ReservedTag) or the target's own ping (ITT ReservedTag, TTT set).
type NOPIn struct {
	LUN                        uint64
	ITT, TTT                   uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
}

func (m *NOPIn) Encode() BHS {
	var b BHS
	b.start(OpNOPIn, false)
	b[1] = 0x80
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.TTT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	return b
}

// DecodeNOPIn reads a NOP-In header.
func DecodeNOPIn(b *BHS) NOPIn {
	return NOPIn{LUN: b.u64(8), ITT: b.u32(16), TTT: b.u32(20), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32)}
}

// Task management functions (§11.5.1) and responses (§11.6.1).
const (
	TMFAbortTask         = 1
	TMFAbortTaskSet      = 2
	TMFClearACA          = 3
	TMFClearTaskSet      = 4
	TMFLUNReset          = 5
	TMFTargetWarmReset   = 6
	TMFTargetColdReset   = 7
	TMFTaskReassign      = 8
	TMFRespComplete      = 0
	TMFRespNoTask        = 1 // Task does not exist
	TMFRespNoLUN         = 2 // LUN does not exist
	TMFRespTaskAllegnt   = 3 // Task still allegiant
	TMFRespNoReassign    = 4
	TMFRespNotSupported  = 5
	TMFRespNotAuthorized = 6
	TMFRespRejected      = 255
)

// TaskMgmtRequest is a Task Management Function Request PDU (§11.5).
type TaskMgmtRequest struct {
	Immediate        bool
	Function         byte
	LUN              uint64
	ITT              uint32
	RefTaskTag       uint32 // ABORT TASK: the ITT of the task to abort; else ReservedTag
	CmdSN, ExpStatSN uint32
	RefCmdSN         uint32
	ExpDataSN        uint32
}

func (m *TaskMgmtRequest) Encode() BHS {
	var b BHS
	b.start(OpTaskMgmt, m.Immediate)
	b[1] = 0x80 | m.Function&0x7f
	b.put64(8, m.LUN)
	b.put32(16, m.ITT)
	b.put32(20, m.RefTaskTag)
	b.put32(24, m.CmdSN)
	b.put32(28, m.ExpStatSN)
	b.put32(32, m.RefCmdSN)
	b.put32(36, m.ExpDataSN)
	return b
}

// DecodeTaskMgmtRequest reads a Task Management Function Request header.
func DecodeTaskMgmtRequest(b *BHS) TaskMgmtRequest {
	return TaskMgmtRequest{Immediate: b.Immediate(), Function: b[1] & 0x7f, LUN: b.u64(8), ITT: b.u32(16), RefTaskTag: b.u32(20),
		CmdSN: b.u32(24), ExpStatSN: b.u32(28), RefCmdSN: b.u32(32), ExpDataSN: b.u32(36)}
}

// TaskMgmtResponse is a Task Management Function Response PDU (§11.6).
type TaskMgmtResponse struct {
	Response                   byte
	ITT                        uint32
	StatSN, ExpCmdSN, MaxCmdSN uint32
}

func (m *TaskMgmtResponse) Encode() BHS {
	var b BHS
	b.start(OpTaskMgmtResp, false)
	b[1] = 0x80
	b[2] = m.Response
	b.put32(16, m.ITT)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	return b
}

// DecodeTaskMgmtResponse reads a Task Management Function Response header.
func DecodeTaskMgmtResponse(b *BHS) TaskMgmtResponse {
	return TaskMgmtResponse{Response: b[2], ITT: b.u32(16), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32)}
}

// Asynchronous events (§11.9.1).
const (
	AsyncSCSIEvent        = 0 // data segment: sense data (e.g. a unit attention)
	AsyncLogoutRequest    = 1 // target asks for a logout within Parameter3 seconds
	AsyncDropConnection   = 2
	AsyncDropAll          = 3
	AsyncRequestNegotiate = 4
	AsyncVendor           = 255
)

// AsyncMessage is an Asynchronous Message PDU (§11.9).
type AsyncMessage struct {
	LUN                        uint64
	StatSN, ExpCmdSN, MaxCmdSN uint32
	Event, VCode               byte
	Param1, Param2, Param3     uint16
}

func (m *AsyncMessage) Encode() BHS {
	var b BHS
	b.start(OpAsync, false)
	b[1] = 0x80
	b.put64(8, m.LUN)
	b.put32(16, ReservedTag)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b[36], b[37] = m.Event, m.VCode
	b.put16(38, m.Param1)
	b.put16(40, m.Param2)
	b.put16(42, m.Param3)
	return b
}

// DecodeAsyncMessage reads an Asynchronous Message header.
func DecodeAsyncMessage(b *BHS) AsyncMessage {
	return AsyncMessage{LUN: b.u64(8), StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32), Event: b[36], VCode: b[37],
		Param1: b.u16(38), Param2: b.u16(40), Param3: b.u16(42)}
}

// Reject reasons (§11.17.1).
const (
	RejectDigestError      = 0x02
	RejectSNACK            = 0x03
	RejectProtocolError    = 0x04
	RejectNotSupported     = 0x05
	RejectImmediateRefused = 0x06
	RejectTaskInProgress   = 0x07
	RejectInvalidDataAck   = 0x08
	RejectInvalidField     = 0x09
	RejectLongOp           = 0x0a
	RejectWaitingLogout    = 0x0c
)

// Reject is a Reject PDU (§11.17). Its data segment is the rejected
// PDU's BHS.
type Reject struct {
	Reason                     byte
	StatSN, ExpCmdSN, MaxCmdSN uint32
	DataSN                     uint32 // DataSN/R2TSN of a rejected SNACK
}

func (m *Reject) Encode() BHS {
	var b BHS
	b.start(OpReject, false)
	b[1] = 0x80
	b[2] = m.Reason
	b.put32(16, ReservedTag)
	b.put32(24, m.StatSN)
	b.put32(28, m.ExpCmdSN)
	b.put32(32, m.MaxCmdSN)
	b.put32(36, m.DataSN)
	return b
}

// DecodeReject reads a Reject header.
func DecodeReject(b *BHS) Reject {
	return Reject{Reason: b[2], StatSN: b.u32(24), ExpCmdSN: b.u32(28), MaxCmdSN: b.u32(32), DataSN: b.u32(36)}
}

// RejectReasonName names a Reject reason for messages.
func RejectReasonName(r byte) string {
	switch r {
	case RejectDigestError:
		return "data digest error"
	case RejectSNACK:
		return "SNACK reject"
	case RejectProtocolError:
		return "protocol error"
	case RejectNotSupported:
		return "command not supported"
	case RejectImmediateRefused:
		return "immediate command rejected"
	case RejectTaskInProgress:
		return "task in progress"
	case RejectInvalidDataAck:
		return "invalid data ack"
	case RejectInvalidField:
		return "invalid PDU field"
	case RejectLongOp:
		return "long operation reject: out of resources"
	case RejectWaitingLogout:
		return "waiting for logout"
	}
	return "reason 0x" + hex2(r)
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}
