package scsi

import "fmt"

// ascText holds the meaning of every ASC/ASCQ that scsi-reference.md lists
// (§4.3–§4.5, §5.3, §6, §9), worded after the T10 list.
var ascText = map[ASCQ]string{
	0x0000: "no additional sense information",
	0x0001: "filemark detected",
	0x0002: "end-of-partition/medium detected",
	0x0004: "beginning-of-partition/medium detected",
	0x0005: "end-of-data detected",
	0x0007: "programmable early warning detected",
	0x0401: "logical unit is in process of becoming ready",
	0x0402: "initializing command required",
	0x0403: "manual intervention required",
	0x0C00: "write error",
	0x1100: "unrecovered read error",
	0x1400: "recorded entity not found",
	0x1401: "record not found",
	0x1A00: "parameter list length error",
	0x2000: "invalid command operation code",
	0x2100: "logical block address out of range",
	0x2101: "invalid element address",
	0x2400: "invalid field in CDB",
	0x2600: "invalid field in parameter list",
	0x2610: "data decryption key fail limit reached",
	0x2611: "incomplete key-associated data set",
	0x2612: "vendor specific key reference not found",
	0x2700: "write protected",
	0x2800: "not ready to ready change, medium may have changed",
	0x2801: "import or export element accessed",
	0x2900: "power on, reset, or bus device reset occurred",
	0x2901: "power on occurred",
	0x2902: "SCSI bus reset occurred",
	0x2903: "bus device reset function occurred",
	0x2904: "device internal reset",
	0x2A01: "mode parameters changed",
	0x2A0D: "data encryption capabilities changed",
	0x2A11: "data encryption parameters changed by another I_T nexus",
	0x2A12: "data encryption parameters changed by vendor specific event",
	0x2A13: "data encryption key instance counter has changed",
	0x3000: "incompatible medium installed",
	0x3001: "cannot read medium - unknown format",
	0x3002: "cannot read medium - incompatible format",
	0x3003: "cleaning cartridge installed",
	0x3005: "cannot write medium - incompatible format",
	0x300C: "WORM medium - overwrite attempted",
	0x3100: "medium format corrupted",
	0x3A00: "medium not present",
	0x3A02: "medium not present - tray open",
	0x3A04: "medium not present - medium auxiliary memory accessible",
	0x3B00: "sequential positioning error",
	0x3B0D: "medium destination element full",
	0x3B0E: "medium source element empty",
	0x4000: "RAM failure",
	0x4400: "internal target failure",
	0x5300: "media load or eject failed",
	0x5301: "unload tape failure",
	0x5302: "medium removal prevented",
	0x5508: "maximum number of supplemental decryption keys exceeded",
	0x7400: "security error",
	0x7401: "unable to decrypt data",
	0x7402: "unencrypted data encountered while decrypting",
	0x7403: "incorrect data encryption key",
	0x7404: "cryptographic integrity validation failed",
	0x7405: "error decrypting data",
	0x7406: "unknown signature verification key",
	0x7407: "encryption parameters not useable",
	0x7408: "digital signature validation failure",
	0x7409: "encryption mode mismatch on read",
	0x740A: "encrypted block not raw read enabled",
	0x740B: "incorrect encryption parameters",
	0x740C: "unable to decrypt parameter list",
	0x740D: "encryption algorithm disabled",
	0x7410: "SA creation parameter value invalid",
	0x7411: "SA creation parameter value rejected",
	0x7412: "invalid SA usage",
	0x7421: "data encryption configuration prevented",
	0x7430: "SA creation parameter not supported",
	0x7440: "authentication failed",
	0x7461: "external data encryption key manager access error",
	0x7462: "external data encryption key manager error",
	0x7463: "external data encryption key not found",
	0x7464: "external data encryption request not authorized",
	0x746E: "external data encryption control timeout",
	0x746F: "external data encryption control error",
	0x7471: "logical unit access not authorized",
	0x7479: "security conflict in translated device",
}

// ibmVendorText: IBM's vendor-specific encryption codes (§4.5), reported
// as such because another vendor may use the same numbers differently.
var ibmVendorText = map[ASCQ]string{
	0xEE00: "encryption key service not enabled",
	0xEE0E: "encryption key service timeout",
	0xEE0F: "encryption key service failure",
	0xEE12: "encryption key change detected",
	0xEE18: "encryption changed (read)",
	0xEE19: "encryption changed (write)",
	0xEE30: "encryption request prohibited",
	0xEED0: "decryption failure on read",
	0xEED1: "decryption failure on read-after-write",
	0xEF10: "encryption key required",
	0xEF11: "encryption key generation",
	0xEF13: "encryption key translate",
	0xEF1A: "encryption key optional",
	0xEFC0: "encryption no operation",
}

// Text returns the meaning of the code. Codes not in the table say what
// they are: vendor specific (ASC or ASCQ ≥ 0x80) or unknown.
func (a ASCQ) Text() string {
	if t, ok := ascText[a]; ok {
		return t
	}
	if t, ok := ibmVendorText[a]; ok {
		return "vendor specific (IBM: " + t + ")"
	}
	switch {
	case a.ASC() == 0x40 && a.Qualifier() != 0:
		return fmt.Sprintf("diagnostic failure on component %02Xh", a.Qualifier())
	case a.ASC() >= 0x80 || a.Qualifier() >= 0x80:
		return "vendor specific"
	}
	return "unknown additional sense code"
}

// String is Text plus the numeric form, e.g. "medium not present (3A/00)".
func (a ASCQ) String() string { return fmt.Sprintf("%s (%02X/%02X)", a.Text(), a.ASC(), a.Qualifier()) }
