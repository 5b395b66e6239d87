package emu

import (
	"fmt"
	"sort"
	"strings"
)

// Personality is the set of per-vendor switches of one drive (§9, §11).
type Personality struct {
	Name     string
	Vendor   string // 8 bytes, space padded on the wire
	Product  string // 16 bytes
	Revision string // 4 bytes
	// SenseLen is the fixed-format sense length (IBM 36, HP 18).
	SenseLen int
	// NoAME: SPIN/SPOUT answer 05/20/00 (no application-managed encryption).
	NoAME bool
	// Lying: SPOUT accepted and DES reports encryption on, but blocks are
	// written in the clear.
	Lying bool
	// RDMCC is the DEC RDMC_C code (§3.3): 0b110 IBM (always disabled, as the
	// §11 page), 0b100 HP (controllable, default disabled).
	RDMCC byte
	// NotRawReadASC is the ASC/ASCQ for RAW reads of a block that is not raw
	// readable: 74/0A (IBM/T10) or 74/00 (HP).
	NotRawReadASC uint16
	// LocateFileOffset: LOCATE(16) to logical file n lands in file n+offset
	// (IBM 1, HP 0; §6.2 and §9.1).
	LocateFileOffset int64
	// WrongKeyLimit: after this many consecutive reads that failed with
	// 07/74/03, SPOUT answers 07/26/10 until the cartridge is unloaded or
	// the drive is power cycled (HP, §4.3 item 12). 0 = no lockout.
	WrongKeyLimit int
	// ChangerVendor/ChangerProduct for the library's INQUIRY.
	ChangerVendor, ChangerProduct string
}

var personalities = map[string]Personality{
	"ibm": {
		Name: "ibm", Vendor: "IBM", Product: "ULT3580-TD6", Revision: "J4D0",
		SenseLen: 36, RDMCC: 0b110, NotRawReadASC: 0x740A, LocateFileOffset: 1,
		ChangerVendor: "IBM", ChangerProduct: "3573-TL",
	},
	"hp": {
		Name: "hp", Vendor: "HP", Product: "Ultrium 6-SCSI", Revision: "35GD",
		SenseLen: 18, RDMCC: 0b100, NotRawReadASC: 0x7400, LocateFileOffset: 0, WrongKeyLimit: 10,
		ChangerVendor: "HP", ChangerProduct: "MSL G3 Series",
	},
}

func init() {
	na := personalities["ibm"]
	na.Name, na.NoAME = "no-ame", true
	personalities["no-ame"] = na
	ly := personalities["ibm"]
	ly.Name, ly.Lying = "lying", true
	personalities["lying"] = ly
}

// LookupPersonality returns a named personality.
func LookupPersonality(name string) (Personality, error) {
	p, ok := personalities[name]
	if !ok {
		return Personality{}, fmt.Errorf("unknown personality %q (have %s)", name, strings.Join(PersonalityNames(), ", "))
	}
	return p, nil
}

// PersonalityNames lists the known personalities.
func PersonalityNames() []string {
	var n []string
	for k := range personalities {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func pad(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
	return b
}
