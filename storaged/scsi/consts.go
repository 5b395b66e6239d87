package scsi

// Operation codes (§6). Names follow the standards.
const (
	OpTestUnitReady          = 0x00
	OpRewind                 = 0x01
	OpRequestSense           = 0x03
	OpReadBlockLimits        = 0x05
	OpInitializeElementStat  = 0x07
	OpRead6                  = 0x08
	OpWrite6                 = 0x0A
	OpWriteFilemarks6        = 0x10
	OpSpace6                 = 0x11
	OpInquiry                = 0x12
	OpModeSelect6            = 0x15
	OpErase6                 = 0x19
	OpModeSense6             = 0x1A
	OpLoadUnload             = 0x1B
	OpPreventAllow           = 0x1E
	OpReadPosition           = 0x34
	OpLogSelect              = 0x4C
	OpLogSense               = 0x4D
	OpModeSelect10           = 0x55
	OpModeSense10            = 0x5A
	OpLocate16               = 0x92
	OpSpace16                = 0x91
	OpReportLUNs             = 0xA0
	OpSecurityProtocolIn     = 0xA2
	OpMoveMedium             = 0xA5
	OpSecurityProtocolOut    = 0xB5
	OpReadElementStatus      = 0xB8
	OpInitializeElementRange = 0xE7
)

// Sense keys (§5.1 byte 2 b3..b0).
const (
	SenseNoSense        = 0x0
	SenseRecoveredError = 0x1
	SenseNotReady       = 0x2
	SenseMediumError    = 0x3
	SenseHardwareError  = 0x4
	SenseIllegalRequest = 0x5
	SenseUnitAttention  = 0x6
	SenseDataProtect    = 0x7
	SenseBlankCheck     = 0x8
	SenseVendorSpecific = 0x9
	SenseCopyAborted    = 0xA
	SenseAbortedCommand = 0xB
	SenseVolumeOverflow = 0xD
	SenseMiscompare     = 0xE
)

// ASCQ is an additional sense code and qualifier pair, written 0xAAQQ.
type ASCQ uint16

// MakeASCQ builds an ASCQ from its two bytes.
func MakeASCQ(asc, ascq byte) ASCQ { return ASCQ(uint16(asc)<<8 | uint16(ascq)) }

// ASC returns the additional sense code byte.
func (a ASCQ) ASC() byte { return byte(a >> 8) }

// Qualifier returns the additional sense code qualifier byte.
func (a ASCQ) Qualifier() byte { return byte(a) }

// Additional sense codes a tape drive or changer returns (§4.5, §5.3, §6).
// The text for each (and for every other code in the reference) is in
// asctext.go.
const (
	ASCNoAdditionalInfo          ASCQ = 0x0000
	ASCFilemarkDetected          ASCQ = 0x0001
	ASCEndOfPartitionDetected    ASCQ = 0x0002 // early warning / EOM
	ASCBeginningOfPartition      ASCQ = 0x0004
	ASCEndOfData                 ASCQ = 0x0005
	ASCProgrammableEarlyWarning  ASCQ = 0x0007
	ASCBecomingReady             ASCQ = 0x0401
	ASCInitializingCmdRequired   ASCQ = 0x0402
	ASCManualIntervention        ASCQ = 0x0403
	ASCUnrecoveredReadError      ASCQ = 0x1100
	ASCRecordNotFound            ASCQ = 0x1401
	ASCParameterListLengthError  ASCQ = 0x1A00
	ASCInvalidOpcode             ASCQ = 0x2000
	ASCLBAOutOfRange             ASCQ = 0x2100
	ASCInvalidElementAddress     ASCQ = 0x2101
	ASCInvalidFieldInCDB         ASCQ = 0x2400
	ASCInvalidFieldInParamList   ASCQ = 0x2600
	ASCDecryptionKeyFailLimit    ASCQ = 0x2610
	ASCIncompleteKADSet          ASCQ = 0x2611
	ASCWriteProtected            ASCQ = 0x2700
	ASCMediumMayHaveChanged      ASCQ = 0x2800
	ASCImportExportAccessed      ASCQ = 0x2801
	ASCPowerOnReset              ASCQ = 0x2900
	ASCModeParametersChanged     ASCQ = 0x2A01
	ASCEncryptionCapsChanged     ASCQ = 0x2A0D
	ASCEncParamsChangedByNexus   ASCQ = 0x2A11
	ASCEncParamsChangedByVendor  ASCQ = 0x2A12
	ASCKeyInstanceCounterChanged ASCQ = 0x2A13
	ASCCleaningCartridge         ASCQ = 0x3003
	ASCWORMOverwrite             ASCQ = 0x300C
	ASCUnknownFormat             ASCQ = 0x3001
	ASCIncompatibleFormat        ASCQ = 0x3002
	ASCMediumFormatCorrupted     ASCQ = 0x3100
	ASCMediumNotPresent          ASCQ = 0x3A00
	ASCMediumNotPresentTrayOpen  ASCQ = 0x3A02
	ASCPositioningError          ASCQ = 0x3B00
	ASCMediumDestFull            ASCQ = 0x3B0D
	ASCMediumSourceEmpty         ASCQ = 0x3B0E
	ASCInternalTargetFailure     ASCQ = 0x4400
	ASCMediumRemovalPrevented    ASCQ = 0x5302
	ASCMediumLoadEjectFailed     ASCQ = 0x5300
	ASCSecurityError             ASCQ = 0x7400
	ASCUnableToDecrypt           ASCQ = 0x7401
	ASCUnencryptedWhileDecrypt   ASCQ = 0x7402
	ASCIncorrectEncryptionKey    ASCQ = 0x7403
	ASCIntegrityValidationFailed ASCQ = 0x7404
	ASCErrorDecryptingData       ASCQ = 0x7405
	ASCEncryptionParamsNotUsable ASCQ = 0x7407
	ASCEncryptionModeMismatch    ASCQ = 0x7409
	ASCEncryptedNotRawReadable   ASCQ = 0x740A
	ASCEncryptionConfigPrevented ASCQ = 0x7421
)

// Security protocols and tape data encryption page codes (§1–§4).
const (
	SecProtoInfo          = 0x00
	SecProtoTapeEncrypt   = 0x20
	PageSupportedProtos   = 0x0000 // protocol 0x00
	PageCertificate       = 0x0001 // protocol 0x00
	PageTDEInSupport      = 0x0000
	PageTDEOutSupport     = 0x0001
	PageDataEncCaps       = 0x0010 // DEC (SPIN)
	PageSetDataEncryption = 0x0010 // SDE (SPOUT)
	PageSupportedKeyFmts  = 0x0011
	PageDataEncMgmtCaps   = 0x0012
	PageDataEncStatus     = 0x0020 // DES
	PageNextBlockEncStat  = 0x0021 // NBES
	AlgorithmAES256GCM    = 0x00010014
)
