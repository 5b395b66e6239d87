package console

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

type validCase struct {
	line string
	name string
	args map[string]string
	str  string // canonical String()
}

var validCases = []validCase{
	// label
	{"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt", "label",
		map[string]string{"storage": "sd1", "pool": "Offsite", "slots": "1-5", "barcodes": "", "encrypt": ""},
		"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt"},
	{"label slots=1-5 barcodes encrypt pool=Offsite storage=sd1", "label",
		map[string]string{"storage": "sd1", "pool": "Offsite", "slots": "1-5", "barcodes": "", "encrypt": ""},
		"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt"},
	{"LABEL Storage = sd1   POOL =Offsite\tSlots= \"7, 1,3-4\" BarCodes drive=02", "label",
		map[string]string{"storage": "sd1", "pool": "Offsite", "slots": "1,3-4,7", "barcodes": "", "drive": "2"},
		"label storage=sd1 pool=Offsite slots=1,3-4,7 barcodes drive=2"},
	{"label storage=sd1 pool=Offsite slot=7 volume=OFF007 encrypt drive=1", "label",
		map[string]string{"storage": "sd1", "pool": "Offsite", "slot": "7", "volume": "OFF007", "encrypt": "", "drive": "1"},
		"label storage=sd1 pool=Offsite slot=7 volume=OFF007 encrypt drive=1"},
	{`label storage=sd1 pool="Off.site" slot=65535 volume="a:b+c-d_e.f"`, "label",
		map[string]string{"storage": "sd1", "pool": "Off.site", "slot": "65535", "volume": "a:b+c-d_e.f"},
		"label storage=sd1 pool=Off.site slot=65535 volume=a:b+c-d_e.f"},
	{"label storage=sd1 pool=P slots=1-10000 barcodes", "label",
		map[string]string{"storage": "sd1", "pool": "P", "slots": "1-10000", "barcodes": ""},
		"label storage=sd1 pool=P slots=1-10000 barcodes"},
	{"label storage=sd1 pool=P slots=3,1,2 barcodes\n", "label",
		map[string]string{"storage": "sd1", "pool": "P", "slots": "1-3", "barcodes": ""},
		"label storage=sd1 pool=P slots=1-3 barcodes"},
	// list
	{"list volumes", "list volumes", map[string]string{}, "list volumes"},
	{"List Volumes storage=sd1 pool=Offsite", "list volumes",
		map[string]string{"pool": "Offsite", "storage": "sd1"}, "list volumes pool=Offsite storage=sd1"},
	{"list keyevents", "list keyevents", map[string]string{}, "list keyevents"},
	{"list keyevents limit=0020 volume=OFF007", "list keyevents",
		map[string]string{"volume": "OFF007", "limit": "20"}, "list keyevents volume=OFF007 limit=20"},
	// status
	{"status director", "status director", map[string]string{}, "status director"},
	{"STATUS DIRECTOR", "status director", map[string]string{}, "status director"},
	{"status storage=sd1", "status storage", map[string]string{"storage": "sd1"}, "status storage=sd1"},
	{"status storage = sd1", "status storage", map[string]string{"storage": "sd1"}, "status storage=sd1"},
	{"status storage storage=sd1", "status storage", map[string]string{"storage": "sd1"}, "status storage=sd1"},
	// mount, unmount, release
	{"mount storage=sd1 slot=3", "mount", map[string]string{"storage": "sd1", "slot": "3"}, "mount storage=sd1 slot=3"},
	{"mount drive=1 slot=3 storage=sd1", "mount", map[string]string{"storage": "sd1", "slot": "3", "drive": "1"}, "mount storage=sd1 slot=3 drive=1"},
	{"unmount storage=sd1 drive=0", "unmount", map[string]string{"storage": "sd1", "drive": "0"}, "unmount storage=sd1 drive=0"},
	{"release storage=sd1 drive=255", "release", map[string]string{"storage": "sd1", "drive": "255"}, "release storage=sd1 drive=255"},
	// update volume
	{"update volume=OFF007 encrypt=rotate", "update volume",
		map[string]string{"volume": "OFF007", "encrypt": "rotate"}, "update volume=OFF007 encrypt=rotate"},
	{"UPDATE Volume=OFF007 Encrypt=YES", "update volume",
		map[string]string{"volume": "OFF007", "encrypt": "yes"}, "update volume=OFF007 encrypt=yes"},
	{"update volume = OFF007 encrypt = no", "update volume",
		map[string]string{"volume": "OFF007", "encrypt": "no"}, "update volume=OFF007 encrypt=no"},
	{"update encrypt=no volume=OFF007", "", nil, ""}, // filled below: not valid, see invalidCases
	{"update volume volume=OFF007 encrypt=no", "update volume",
		map[string]string{"volume": "OFF007", "encrypt": "no"}, "update volume=OFF007 encrypt=no"},
	{"update volume=OFF007 status=read-only", "update volume",
		map[string]string{"volume": "OFF007", "status": "Read-Only"}, "update volume=OFF007 status=Read-Only"},
	{"update pool=Offsite", "update pool", map[string]string{"pool": "Offsite"}, "update pool=Offsite"},
	{"list pools", "list pools", map[string]string{}, "list pools"},
	// rekey
	{"rekey", "rekey", map[string]string{}, "rekey"},
	{"rekey YES", "rekey", map[string]string{"yes": ""}, "rekey yes"},
	// export keys
	{"export keys out=keys.csv", "export keys", map[string]string{"out": "keys.csv"}, "export keys out=keys.csv"},
	{`export keys out="/media/usb stick/keys.csv" pool=Offsite`, "export keys",
		map[string]string{"pool": "Offsite", "out": "/media/usb stick/keys.csv"},
		`export keys pool=Offsite out="/media/usb stick/keys.csv"`},
	{`export keys out="a \"quoted\" \\ name"`, "export keys",
		map[string]string{"out": `a "quoted" \ name`}, `export keys out="a \"quoted\" \\ name"`},
	{`export keys out=C:\keys\x.csv`, "export keys",
		map[string]string{"out": `C:\keys\x.csv`}, `export keys out="C:\\keys\\x.csv"`},
	{`export keys out="a=b"`, "export keys", map[string]string{"out": "a=b"}, `export keys out="a=b"`},
	{`export keys out=" lead"`, "export keys", map[string]string{"out": " lead"}, `export keys out=" lead"`},
	{"export keys out=ключи.csv", "export keys", map[string]string{"out": "ключи.csv"}, "export keys out=ключи.csv"},
	// help, quit
	{"help", "help", map[string]string{}, "help"},
	{"help label", "help", map[string]string{"topic": "label"}, "help label"},
	{"HELP List   Volumes", "help", map[string]string{"topic": "list volumes"}, "help list volumes"},
	{"help list", "help", map[string]string{"topic": "list"}, "help list"},
	{"help exit", "help", map[string]string{"topic": "quit"}, "help quit"},
	{"quit", "quit", map[string]string{}, "quit"},
	{"exit", "quit", map[string]string{}, "quit"},
	{"  Exit\r\n", "quit", map[string]string{}, "quit"},
}

func init() {
	// Drop the placeholder row (kept above to show the order matters).
	out := validCases[:0]
	for _, tc := range validCases {
		if tc.name != "" {
			out = append(out, tc)
		}
	}
	validCases = out
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		c, err := Parse(tc.line)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.line, err)
			continue
		}
		if c.Name != tc.name || !reflect.DeepEqual(c.Args, tc.args) {
			t.Errorf("Parse(%q) = %q %v, want %q %v", tc.line, c.Name, c.Args, tc.name, tc.args)
		}
		if got := c.String(); got != tc.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.line, got, tc.str)
		}
		c2, err := Parse(c.String())
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Errorf("round trip of %q: %v, %v", tc.line, c2, err)
		}
	}
}

var labelUsage = "label (slots=LIST barcodes | slot=N volume=NAME) [storage=NAME] [pool=NAME] [encrypt] [drive=N]"
var labelKeywords = []string{"storage", "pool", "slots", "barcodes", "slot", "volume", "encrypt", "drive"}

type invalidCase struct {
	line string
	want error    // compared field by field (SyntaxError: Pos only)
	msg  []string // substrings of Error()
}

var invalidCases = []invalidCase{
	// lexing
	{"export keys out=\"abc", &SyntaxError{Pos: 16}, []string{"column 17", "unterminated quote"}},
	{`export keys out="a\nb"`, &SyntaxError{Pos: 18}, []string{`only \" and \\ are escapes`}},
	{`export keys out="a"b`, &SyntaxError{Pos: 19}, []string{"followed by a space"}},
	{`export keys out=a"b"`, &SyntaxError{Pos: 17}, []string{"quote the whole value"}},
	{`label "storage"=sd1`, &SyntaxError{Pos: 6}, []string{"quoted text must follow a keyword"}},
	{`label st"orage=sd1`, &SyntaxError{Pos: 8}, []string{"quote inside a word"}},
	{"label storage=sd1 =x", &SyntaxError{Pos: 18}, []string{`"=" without a keyword`}},
	{"label storage==sd1", &SyntaxError{Pos: 14}, []string{`"=" twice`}},
	{"label storage=a=b", &SyntaxError{Pos: 15}, []string{`quote values that contain "="`}},
	{"label storage=sd1\x07", &SyntaxError{Pos: 17}, []string{"non-printing character U+0007"}},
	{"label storage=\xff", &SyntaxError{Pos: 14}, []string{"invalid UTF-8"}},
	{"label storage=sd1\npool=x", &SyntaxError{Pos: 17}, []string{"U+000A"}},
	{"label storage=a\u00a0b", &SyntaxError{Pos: 15}, []string{"U+00A0"}},
	{strings.Repeat("x", MaxLineLen+1), &SyntaxError{Pos: MaxLineLen}, []string{"8193 bytes", "limit is 8192"}},
	{"label storage=sd1 Storage=sd2 pool=P slot=1 volume=V", &SyntaxError{Pos: 18}, []string{"label: storage given twice"}},
	{"label storage=sd1 pool=P slots=1 barcodes barcodes", &SyntaxError{Pos: 42}, []string{"barcodes given twice"}},
	{"update volume=A volume=B encrypt=no", &SyntaxError{Pos: 16}, []string{"volume given twice"}},
	{"pool=Offsite", &SyntaxError{Pos: 0}, []string{"starts with a command"}},
	{"label =sd1", &SyntaxError{Pos: 0}, []string{"starts with a command"}},
	{"list volumes=3", &SyntaxError{Pos: 5}, []string{"takes no value"}},
	{"help label=1", &SyntaxError{Pos: 5}, []string{"takes a command name"}},
	// unknown commands
	{"lable storage=sd1", &UnknownCommandError{Word: "lable", Suggestion: "label"}, []string{`unknown command "lable" — did you mean "label"?`}},
	{"LSIT volumes", &UnknownCommandError{Word: "LSIT", Suggestion: "list"}, []string{`did you mean "list"?`}},
	{"backup job=x", &UnknownCommandError{Word: "backup"}, []string{`unknown command "backup" (type "help"`}},
	{"xit", &UnknownCommandError{Word: "xit", Suggestion: "exit"}, nil},
	{"list volume", &UnknownCommandError{Word: "list volume", Suggestion: "list volumes", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}},
		[]string{`did you mean "list volumes"?`}},
	{"list keyevent", &UnknownCommandError{Word: "list keyevent", Suggestion: "list keyevents", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}}, nil},
	{"list job", &UnknownCommandError{Word: "list job", Suggestion: "list jobs", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}}, nil},
	{"list storages", &UnknownCommandError{Word: "list storages", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}}, []string{"one of list volumes, list pools, list keyevents"}},
	{"list", &UnknownCommandError{Word: "list", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}},
		[]string{`incomplete command "list": say list volumes, list pools, list keyevents, list volumeevents, list jobs, list files, list jobmedia or list joblog`}},
	{"status", &UnknownCommandError{Word: "status", Choices: []string{"status director", "status storage", "status kek", "status client", "status scheduler"}}, nil},
	{"status dirctor", &UnknownCommandError{Word: "status dirctor", Suggestion: "status director", Choices: []string{"status director", "status storage", "status kek", "status client", "status scheduler"}}, nil},
	{"update client=x", &UnknownCommandError{Word: "update client", Choices: []string{"update volume", "update pool"}}, nil},
	{"update encrypt=no volume=OFF007", &UnknownCommandError{Word: "update encrypt", Choices: []string{"update volume", "update pool"}}, nil},
	{"export key out=x", &UnknownCommandError{Word: "export key", Suggestion: "export keys", Choices: []string{"export volume", "export keys"}}, nil},
	{"help lable", &UnknownCommandError{Word: "lable", Suggestion: "label"}, nil},
	{"help list volume", &UnknownCommandError{Word: "list volume", Suggestion: "list volumes", Choices: []string{"list volumes", "list pools", "list keyevents", "list volumeevents", "list jobs", "list files", "list jobmedia", "list joblog"}}, nil},
	{"help label storage", &UnknownCommandError{Word: "label storage", Suggestion: "label"}, nil},
	// unknown keywords
	{"label storage=sd1 slto=3", &UnknownKeywordError{Command: "label", Keyword: "slto", Suggestion: "slot", Allowed: labelKeywords},
		[]string{`label: unknown keyword "slto" — did you mean "slot"? (label takes storage, pool, slots, barcodes, slot, volume, encrypt, drive)`}},
	{"label storage=sd1 Barcode", &UnknownKeywordError{Command: "label", Keyword: "Barcode", Suggestion: "barcodes", Allowed: labelKeywords}, nil},
	{"label storage=sd1 encrpyt", &UnknownKeywordError{Command: "label", Keyword: "encrpyt", Suggestion: "encrypt", Allowed: labelKeywords}, nil},
	{"label storage=sd1 yes", &UnknownKeywordError{Command: "label", Keyword: "yes", Allowed: labelKeywords}, nil},
	{"label storage=sd1 " + strings.Repeat("z", 100), &UnknownKeywordError{Command: "label", Keyword: strings.Repeat("z", 100), Allowed: labelKeywords},
		[]string{`"` + strings.Repeat("z", 40) + `"… (100 characters)`}},
	{"status director storage=sd1", &UnknownKeywordError{Command: "status director", Keyword: "storage"}, []string{"status director takes no keywords"}},
	{"rekey now", &UnknownKeywordError{Command: "rekey", Keyword: "now", Allowed: []string{"yes"}}, nil},
	{"quit now", &UnknownKeywordError{Command: "quit", Keyword: "now"}, nil},
	{"list volumes pol=x", &UnknownKeywordError{Command: "list volumes", Keyword: "pol", Suggestion: "pool", Allowed: []string{"pool", "storage", "vault"}}, nil},
	{"update volume=A encrypt=yes pool=P", &UnknownKeywordError{Command: "update volume", Keyword: "pool", Allowed: []string{"volume", "encrypt", "status"}}, nil},
	// missing keywords and conflicts
	{"label", &MissingKeywordError{Command: "label", Keywords: []string{"slots=LIST barcodes", "slot=N volume=NAME"}, Usage: labelUsage},
		[]string{"label: missing slots=LIST barcodes or slot=N volume=NAME (usage: label (slots="}},
	// Every missing keyword at once.
	{"update volume", &MissingKeywordError{Command: "update volume", Keywords: []string{"volume=NAME"}, More: []string{"encrypt=yes|no|rotate or status=Append|Full|Used|Read-Only|Disabled|Archive|Error"}, Usage: "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)"},
		[]string{"update volume: missing volume=NAME; missing encrypt=yes|no|rotate or status=Append|Full|Used|Read-Only|Disabled|Archive|Error (usage: "}},
	{"label storage=sd1 pool=P", &MissingKeywordError{Command: "label", Keywords: []string{"slots=LIST barcodes", "slot=N volume=NAME"}, Usage: labelUsage},
		[]string{"missing slots=LIST barcodes or slot=N volume=NAME"}},
	{"label storage=sd1 pool=P encrypt", &MissingKeywordError{Command: "label", Keywords: []string{"slots=LIST barcodes", "slot=N volume=NAME"}, Usage: labelUsage}, nil},
	{"label storage=sd1 pool=P slots=1-5", &MissingKeywordError{Command: "label", Keywords: []string{"barcodes"}, Hint: "slots= goes with barcodes", Usage: labelUsage},
		[]string{"label: missing barcodes — slots= goes with barcodes"}},
	{"label storage=sd1 pool=P barcodes", &MissingKeywordError{Command: "label", Keywords: []string{"slots=LIST"}, Hint: "barcodes goes with slots=", Usage: labelUsage}, nil},
	{"label storage=sd1 pool=P volume=V", &MissingKeywordError{Command: "label", Keywords: []string{"slot=N"}, Hint: "volume= goes with slot=", Usage: labelUsage}, nil},
	{"label storage=sd1 pool=P slot=3", &MissingKeywordError{Command: "label", Keywords: []string{"volume=NAME"}, Hint: "slot= goes with volume=", Usage: labelUsage}, nil},
	{"label storage=sd1 pool=P slots=1 volume=V", &ConflictError{Command: "label", Keywords: []string{"slots=", "volume="}, Usage: labelUsage},
		[]string{"label: slots= and volume= cannot be used together"}},
	{"label storage=sd1 pool=P barcodes slot=1 volume=V", &ConflictError{Command: "label", Keywords: []string{"barcodes", "slot="}, Usage: labelUsage}, nil},
	{"status storage", &MissingKeywordError{Command: "status storage", Keywords: []string{"storage=NAME"}, Usage: "status storage=NAME"}, nil},
	{"mount storage=sd1", &MissingKeywordError{Command: "mount", Keywords: []string{"slot=N"}, Usage: "mount storage=NAME slot=N [drive=N]"}, nil},
	{"mount slot=1", &MissingKeywordError{Command: "mount", Keywords: []string{"storage=NAME"}, Usage: "mount storage=NAME slot=N [drive=N]"}, nil},
	{"unmount storage=sd1", &MissingKeywordError{Command: "unmount", Keywords: []string{"drive=N"}, Usage: "unmount storage=NAME drive=N"}, nil},
	{"release drive=0", &MissingKeywordError{Command: "release", Keywords: []string{"storage=NAME"}, Usage: "release storage=NAME drive=N"}, nil},
	{"update volume encrypt=yes", &MissingKeywordError{Command: "update volume", Keywords: []string{"volume=NAME"}, Usage: "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)"}, nil},
	{"update volume=A encrypt=yes status=Full", &ConflictError{Command: "update volume", Keywords: []string{"encrypt=", "status="}, Usage: "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)"}, []string{"cannot be used together"}},
	{"update volume=A status=Lost", &BadValueError{Command: "update volume", Keyword: "status", Value: "Lost", Want: TVolStatus.Want()}, []string{"want Append, Full, Used, Read-Only, Disabled, Archive or Error"}},
	{"update volume=A", &MissingKeywordError{Command: "update volume", Keywords: []string{"encrypt=yes|no|rotate", "status=Append|Full|Used|Read-Only|Disabled|Archive|Error"}, Usage: "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)"}, nil},
	{"export keys pool=P", &MissingKeywordError{Command: "export keys", Keywords: []string{"out=FILE"}, Usage: "export keys out=FILE [pool=NAME]"}, nil},
	// bad values
	{"label storage=sd1 pool=P slots=5-1 barcodes", &BadValueError{Command: "label", Keyword: "slots", Value: "5-1", Want: TSlots.Want(), Problem: "descending range 5-1 (write 1-5)"},
		[]string{`label: bad slots="5-1": descending range 5-1 (write 1-5)`}},
	{"label storage=sd1 pool=P slots=0-3 barcodes", &BadValueError{Command: "label", Keyword: "slots", Value: "0-3", Want: TSlots.Want(), Problem: "slot 0 does not exist (slots count from 1)"}, nil},
	{"label storage=sd1 pool=P slots=1,3,3 barcodes", &BadValueError{Command: "label", Keyword: "slots", Value: "1,3,3", Want: TSlots.Want(), Problem: "slot 3 named twice"}, nil},
	{"label storage=sd1 pool=P slots=1-10001 barcodes", &BadValueError{Command: "label", Keyword: "slots", Value: "1-10001", Want: TSlots.Want(), Problem: "more than 10000 slots in one list"}, nil},
	{"label storage=sd1 pool=P slot=0 volume=V", &BadValueError{Command: "label", Keyword: "slot", Value: "0", Want: "a whole number from 1 to 65535"},
		[]string{`label: bad slot="0": want a whole number from 1 to 65535`}},
	{"label storage=sd1 pool=P slot=65536 volume=V", &BadValueError{Command: "label", Keyword: "slot", Value: "65536", Want: "a whole number from 1 to 65535"}, nil},
	{"label storage=sd1 pool=P slot=-1 volume=V", &BadValueError{Command: "label", Keyword: "slot", Value: "-1", Want: "a whole number from 1 to 65535"}, nil},
	{"label storage=sd1 pool=P slot=+1 volume=V", &BadValueError{Command: "label", Keyword: "slot", Value: "+1", Want: "a whole number from 1 to 65535"}, nil},
	{"label storage=sd1 pool=P slot=99999999999999999999 volume=V", &BadValueError{Command: "label", Keyword: "slot", Value: "99999999999999999999", Want: "a whole number from 1 to 65535"}, nil},
	{"label storage=sd1 pool=P slot=1 volume=\"has space\"", &BadValueError{Command: "label", Keyword: "volume", Value: "has space", Want: TVolume.Want()}, nil},
	{"label storage=sd1 pool=P slot=1 volume=" + strings.Repeat("v", 128), &BadValueError{Command: "label", Keyword: "volume", Value: strings.Repeat("v", 128), Want: TVolume.Want(), Problem: "name is 128 characters; at most 127"},
		[]string{`"` + strings.Repeat("v", 40) + `"… (128 characters)`}},
	{"label storage=sd1 pool=a:b slot=1 volume=V", &BadValueError{Command: "label", Keyword: "pool", Value: "a:b", Want: TName.Want()}, nil},
	{`label storage=sd1 pool="" slot=1 volume=V`, &BadValueError{Command: "label", Keyword: "pool", Value: "", Want: TName.Want(), Problem: "empty name"}, nil},
	{"label storage=sd1 pool slot=1 volume=V", &BadValueError{Command: "label", Keyword: "pool", Want: TName.Want(), Problem: "write pool=NAME", NoValue: true},
		[]string{"label: pool needs a value: write pool=NAME"}},
	{"label storage=sd1 pool= slot=1 volume=V", &BadValueError{Command: "label", Keyword: "pool", Want: TName.Want(), Problem: "write pool=NAME", NoValue: true}, nil},
	{"label storage=sd1 pool=", &BadValueError{Command: "label", Keyword: "pool", Want: TName.Want(), Problem: "write pool=NAME", NoValue: true}, nil},
	{"label storage=sd1 pool=P slots=1 barcodes=yes", &BadValueError{Command: "label", Keyword: "barcodes", Value: "yes", Want: "no value", Problem: "barcodes takes no value (write barcodes on its own)"}, nil},
	{"label storage=sd1 pool=P slot=1 volume=V encrypt=yes", &BadValueError{Command: "label", Keyword: "encrypt", Value: "yes", Want: "no value", Problem: "encrypt takes no value (write encrypt on its own)"}, nil},
	{"label storage=sd1 pool=P slot=1 volume=V drive=256", &BadValueError{Command: "label", Keyword: "drive", Value: "256", Want: "a whole number from 0 to 255"}, nil},
	{"update volume=A encrypt=maybe", &BadValueError{Command: "update volume", Keyword: "encrypt", Value: "maybe", Want: "yes, no or rotate"},
		[]string{`update volume: bad encrypt="maybe": want yes, no or rotate`}},
	{"list keyevents limit=0", &BadValueError{Command: "list keyevents", Keyword: "limit", Value: "0", Want: "a whole number from 1 to 1000000"}, nil},
	{`export keys out=""`, &BadValueError{Command: "export keys", Keyword: "out", Value: "", Want: TPath.Want(), Problem: "empty path"}, nil},
	{"status storage=\u212a", &BadValueError{Command: "status storage", Keyword: "storage", Value: "\u212a", Want: TName.Want()}, nil},
	{"status storage=" + strings.Repeat("é", 50), &BadValueError{Command: "status storage", Keyword: "storage", Value: strings.Repeat("é", 50), Want: TName.Want()},
		[]string{"… (50 characters)"}},
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		c, err := Parse(tc.line)
		if err == nil {
			t.Errorf("Parse(%.60q) = %v, want error %T", tc.line, c, tc.want)
			continue
		}
		checkError(t, tc.line, c, err)
		if reflect.TypeOf(err) != reflect.TypeOf(tc.want) {
			t.Errorf("Parse(%.60q): error %T (%v), want %T", tc.line, err, err, tc.want)
			continue
		}
		if want, ok := tc.want.(*SyntaxError); ok {
			if got := err.(*SyntaxError); got.Pos != want.Pos {
				t.Errorf("Parse(%.60q): %v at %d, want at %d", tc.line, err, got.Pos, want.Pos)
			}
		} else if !reflect.DeepEqual(err, tc.want) {
			t.Errorf("Parse(%.60q):\n got %#v\nwant %#v", tc.line, err, tc.want)
		}
		for _, m := range tc.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("Parse(%.60q): message %q lacks %q", tc.line, err.Error(), m)
			}
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, l := range []string{"", " ", "\t \t", "\n", "\r\n", "# a comment", "   #label storage=x"} {
		c, err := Parse(l)
		if !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) = %v, %v; want ErrEmpty", l, c, err)
		}
	}
	// A '#' inside a line is an ordinary character.
	c, err := Parse("export keys out=#keys")
	if err != nil || c.Str("out") != "#keys" {
		t.Errorf("Parse(out=#keys) = %v, %v", c, err)
	}
}

// Lines exactly at the limit parse; one byte more does not.
func TestLineLimit(t *testing.T) {
	head := "export keys out="
	line := head + strings.Repeat("k", MaxLineLen-len(head))
	if len(line) != MaxLineLen {
		t.Fatal(len(line))
	}
	_, err := Parse(line)
	var bv *BadValueError
	if !errors.As(err, &bv) || bv.Problem != "path is 8176 bytes; at most 4096" {
		t.Errorf("line of MaxLineLen: %v, want the path limit", err)
	}
	ok := "list volumes pool=" + strings.Repeat("p", 100) + strings.Repeat(" ", MaxLineLen-118)
	if len(ok) != MaxLineLen {
		t.Fatal(len(ok))
	}
	if _, err := Parse(ok); err != nil {
		t.Errorf("line of exactly MaxLineLen: %v", err)
	}
	var se *SyntaxError
	if _, err := Parse(ok + " "); !errors.As(err, &se) {
		t.Errorf("line of MaxLineLen+1: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	c, err := Parse("label storage=sd1 pool=Offsite slots=9,1-3,7 barcodes encrypt drive=2")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Slots(); !reflect.DeepEqual(got, []int{1, 2, 3, 7, 9}) {
		t.Errorf("Slots() = %v", got)
	}
	if n, ok := c.Int("drive"); !ok || n != 2 {
		t.Errorf("Int(drive) = %d, %v", n, ok)
	}
	if n, ok := c.Int("slot"); ok || n != 0 {
		t.Errorf("Int(slot) = %d, %v; want not given", n, ok)
	}
	if _, ok := c.Int("pool"); ok {
		t.Error("Int(pool) of a name reports ok")
	}
	if !c.Bool("encrypt") || !c.Bool("BARCODES") || c.Bool("yes") {
		t.Errorf("Bool: encrypt %v barcodes %v yes %v", c.Bool("encrypt"), c.Bool("BARCODES"), c.Bool("yes"))
	}
	if c.Str("Pool") != "Offsite" || c.Str("volume") != "" || !c.Has("storage") || c.Has("volume") {
		t.Errorf("Str/Has wrong: %v", c.Args)
	}
	if c.Local() || c.ConsoleArgs() != nil || c.Spec().Name != "label" {
		t.Errorf("Local %v ConsoleArgs %v Spec %v", c.Local(), c.ConsoleArgs(), c.Spec().Name)
	}
	u, _ := Parse("update volume=V encrypt=yes")
	if !u.Bool("encrypt") {
		t.Error("Bool(encrypt=yes) is false")
	}
	u, _ = Parse("update volume=V encrypt=rotate")
	if u.Bool("encrypt") || u.Str("encrypt") != "rotate" {
		t.Errorf("encrypt=rotate: Bool %v Str %q", u.Bool("encrypt"), u.Str("encrypt"))
	}
	m, _ := Parse("mount storage=sd1 slot=3")
	if m.Slots() != nil {
		t.Errorf("Slots() without slots= = %v", m.Slots())
	}
	e, _ := Parse(`export keys out="x y.csv"`)
	if !reflect.DeepEqual(e.ConsoleArgs(), []string{"out"}) || e.Local() {
		t.Errorf("export keys: ConsoleArgs %v Local %v", e.ConsoleArgs(), e.Local())
	}
	for _, l := range []string{"help", "quit", "exit"} {
		if c, _ := Parse(l); !c.Local() {
			t.Errorf("%s is not Local", l)
		}
	}
	var zero Command
	if zero.Local() || zero.Spec() != nil || zero.ConsoleArgs() != nil || zero.String() != "" || zero.Slots() != nil {
		t.Error("zero Command accessors misbehave")
	}
	// A Command built by hand prints in table order.
	h := Command{Name: "mount", Args: map[string]string{"slot": "4", "storage": "sd2"}}
	if h.String() != "mount storage=sd2 slot=4" {
		t.Errorf("hand-made String = %q", h.String())
	}
}

// Every example in the table parses and is already canonical.
func TestExamplesParse(t *testing.T) {
	for _, s := range Commands() {
		for _, ex := range s.Examples {
			c, err := Parse(ex)
			if err != nil {
				t.Errorf("%s example %q: %v", s.Name, ex, err)
				continue
			}
			if c.Name != s.Name {
				t.Errorf("example %q parses as %q, want %q", ex, c.Name, s.Name)
			}
			if c.String() != ex && !strings.Contains(ex, `"`) {
				t.Errorf("example %q is not canonical (%q)", ex, c.String())
			}
		}
	}
}

func TestLookup(t *testing.T) {
	for in, want := range map[string]string{"label": "label", "LIST  Volumes": "list volumes", "exit": "quit", "list": "", "nope": ""} {
		s := Lookup(in)
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", in, got, want)
		}
	}
	want := []string{"label", "list volumes", "export volume", "import", "prune volume", "purge volume", "list pools", "list keyevents", "list volumeevents", "status director", "status storage", "status kek", "mount", "unmount",
		"release", "update volume", "update pool", "rekey", "export keys", "shred volume", "run", "wait", "cancel", "estimate", "list jobs", "restore", "browse", "list files", "list jobmedia",
		"list joblog", "status client", "status scheduler", "help", "quit"}
	if got := names(Commands()); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands() = %v", got)
	}
}

func TestUsage(t *testing.T) {
	for name, want := range map[string]string{
		"label":             labelUsage,
		"list volumes":      "list volumes [pool=NAME] [storage=NAME] [vault]",
		"export volume":     "export volume=NAME [yes]",
		"import":            "import [storage=NAME]",
		"prune volume":      "prune volume=NAME [yes]",
		"purge volume":      "purge volume=NAME [yes]",
		"list keyevents":    "list keyevents [volume=NAME] [limit=N]",
		"status director":   "status director",
		"status storage":    "status storage=NAME",
		"mount":             "mount storage=NAME slot=N [drive=N]",
		"unmount":           "unmount storage=NAME drive=N",
		"release":           "release storage=NAME drive=N",
		"update volume":     "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)",
		"update pool":       "update pool=NAME",
		"list pools":        "list pools",
		"rekey":             "rekey [yes]",
		"export keys":       "export keys out=FILE [pool=NAME]",
		"list volumeevents": "list volumeevents [volume=NAME] [limit=N]",
		"shred volume":      "shred volume=NAME [yes]",
		"help":              "help [COMMAND]",
		"quit":              "quit",
	} {
		if got := Lookup(name).Usage(); got != want {
			t.Errorf("%s usage = %q, want %q", name, got, want)
		}
	}
}

// status kek=ID parses like status storage=NAME: the second word with its
// value.
func TestStatusKEK(t *testing.T) {
	c, err := Parse("status kek=3f0c9a1b22d4e5f6")
	if err != nil || c.Name != "status kek" || c.Str("kek") != "3f0c9a1b22d4e5f6" {
		t.Fatalf("Parse(status kek=…) = %+v, %v", c, err)
	}
	if _, err := Parse("status kek"); err == nil {
		t.Fatal("status kek without an id parsed")
	}
	h, err := Help("status kek")
	if err != nil || !strings.Contains(h, "status kek=ID") || !strings.Contains(h, "nothing depends on KEK ID") {
		t.Fatalf("help status kek: %v\n%s", err, h)
	}
}

// The job commands of issue 10: canonical values, and what is refused.
func TestParseJobCommands(t *testing.T) {
	for line, want := range map[string]string{
		"run job=web1-home level=Full yes wait":                       "run job=web1-home level=Full yes wait",
		"RUN job=web1-home level=INCREMENTAL":                         "run job=web1-home level=Incremental",
		"wait jobid=042":                                              "wait jobid=42",
		"cancel jobid=7":                                              "cancel jobid=7",
		"estimate job=web1-home listing":                              "estimate job=web1-home listing",
		"list jobs job=web1-home client=web1 jobstatus=E days=7 last": "list jobs job=web1-home client=web1 jobstatus=E days=7 last",
		"list files jobid=42":                                         "list files jobid=42",
		"list jobmedia jobid=42":                                      "list jobmedia jobid=42",
		"list joblog jobid=42":                                        "list joblog jobid=42",
		"status client=web1":                                          "status client=web1",
	} {
		c, err := Parse(line)
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if got := c.String(); got != want {
			t.Errorf("%q → %q, want %q", line, got, want)
		}
	}
	for line, why := range map[string]string{
		"run":                     "job",
		"run job=x level=weekly":  "level",
		"cancel jobid=0":          "jobid",
		"cancel jobid=x":          "jobid",
		"wait":                    "jobid",
		"list files":              "jobid",
		"list jobs days=0":        "days",
		"estimate level=Full":     "job",
		"status client":           "client",
		"status scheduler days=0": "days",
	} {
		if _, err := Parse(line); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v; want an error naming %s", line, err, why)
		}
	}
}

func TestRepeatedKeywords(t *testing.T) {
	c, err := Parse(`restore client=web1 file=/etc/hosts file="/etc/a b" directory=/srv all`)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Strs("file"); !reflect.DeepEqual(got, []string{"/etc/hosts", "/etc/a b"}) {
		t.Fatalf("Strs(file) = %q", got)
	}
	if got := c.Strs("fileregex"); got != nil {
		t.Fatalf("Strs of a keyword not given = %q", got)
	}
	s := c.String()
	if s != `restore client=web1 file=/etc/hosts file="/etc/a b" directory=/srv all` {
		t.Fatalf("String() = %s", s)
	}
	c2, err := Parse(s)
	if err != nil || !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip: %+v, %v", c2, err)
	}
	w := c.With("file", []string{"/x", "/y", "/z"})
	if got := w.String(); got != `restore client=web1 file=/x file=/y file=/z directory=/srv all` {
		t.Fatalf("With = %s", got)
	}
	if got := c.Strs("file"); len(got) != 2 {
		t.Fatalf("With changed the original: %q", got)
	}
	// A keyword that is not Repeat is still refused twice.
	if _, err := Parse("restore client=web1 client=web2 all"); err == nil || !strings.Contains(err.Error(), "client given twice") {
		t.Fatalf("client twice: %v", err)
	}
}
