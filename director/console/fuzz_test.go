package console

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// fuzzSeeds are valid and invalid lines; every line of the table tests is
// added too.
var fuzzSeeds = []string{
	"",
	"   ",
	"# comment",
	"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt",
	"label storage=sd1 pool=Offsite slot=7 volume=OFF007 encrypt drive=1",
	"LABEL Storage = sd1 POOL = \"Offsite\" slots=\"1, 3, 7-9\" BARCODES",
	"label storage=sd1 pool=P slots=5-1 barcodes",
	"label storage=sd1 pool=P slots=0 barcodes",
	"label storage=sd1 pool=P slots=1-10001 barcodes",
	"label storage=sd1 pool=P slots=1,,2 barcodes",
	"list volumes pool=Offsite storage=sd1",
	"list keyevents volume=OFF007 limit=20",
	"list volume",
	"status director",
	"status storage=sd1",
	"mount storage=sd1 slot=3 drive=0",
	"unmount storage=sd1 drive=0",
	"release storage=sd1 drive=0",
	"update volume=OFF007 encrypt=rotate",
	"update volume volume=OFF007 encrypt=no",
	"rekey yes",
	"export keys pool=Offsite out=\"/tmp/my keys.csv\"",
	"export keys out=\"a\\\"b\\\\c\"",
	"export keys out=\"unterminated",
	"export keys out=\"bad\\n escape\"",
	"help list volumes",
	"help lable",
	"exit",
	"quit\r\n",
	"lable storage=sd1",
	"pool=Offsite",
	"label storage=sd1 pool= slots=1 barcodes",
	"label storage=sd1 pool=a=b",
	"label storage==sd1",
	"label \"storage\"=sd1",
	"label storage=sd1 storage=sd2",
	"label storage=sd1\x00",
	"label storage=\xff",
	"status storage=\u212a",
	strings.Repeat("a", MaxLineLen+1),
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, tc := range validCases {
		f.Add(tc.line)
	}
	for _, tc := range invalidCases {
		f.Add(tc.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			checkError(t, line, c, err)
			return
		}
		if c.Args == nil || c.Spec() == nil || c.Spec().Name != c.Name {
			t.Fatalf("Parse(%q) = %#v: incomplete command", line, c)
		}
		s := c.String()
		c2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, but its String %q does not parse: %v", line, c.Name, s, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip of %q via %q: %#v != %#v", line, s, c, c2)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("String not stable: %q then %q", s, s2)
		}
		if c.Has("slots") && len(c.Slots()) == 0 {
			t.Fatalf("%q: slots given but Slots() is empty", line)
		}
		if c.Name == "help" {
			if _, err := Help(c.Str("topic")); err != nil {
				t.Fatalf("%q: Help(%q): %v", line, c.Str("topic"), err)
			}
		}
	})
}

// checkError asserts what every parse error must be: one of the package's
// types, a zero Command, and a short printable message.
func checkError(t *testing.T, line string, c Command, err error) {
	t.Helper()
	if c.Name != "" || c.Args != nil {
		t.Fatalf("Parse(%q) returned %#v with error %v", line, c, err)
	}
	var (
		se *SyntaxError
		uc *UnknownCommandError
		uk *UnknownKeywordError
		mk *MissingKeywordError
		ce *ConflictError
		bv *BadValueError
	)
	if !errors.Is(err, ErrEmpty) && !errors.As(err, &se) && !errors.As(err, &uc) && !errors.As(err, &uk) &&
		!errors.As(err, &mk) && !errors.As(err, &ce) && !errors.As(err, &bv) {
		t.Fatalf("Parse(%q): error of unexpected type %T: %v", line, err, err)
	}
	msg := err.Error()
	if len(msg) > 1024 {
		t.Fatalf("Parse(%q): error message of %d bytes: %.200s…", line, len(msg), msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("Parse(%q): error message is not UTF-8: %q", line, msg)
	}
	for _, r := range msg {
		if !unicode.IsPrint(r) {
			t.Fatalf("Parse(%q): error message holds non-printing %U: %q", line, r, msg)
		}
	}
}
