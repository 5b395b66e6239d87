package schedule

import (
	"errors"
	"go/build"
	"strings"
	"testing"
)

// TestSyntaxErrors: each malformed line names the column and what was
// expected there.
func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		line     string
		col      int
		expected string // a substring of Expected
		got      string
	}{
		{"Full mon at", 12, `a time must follow "at"`, ""},
		{"Full mon at mon 21:00", 13, `a time must follow "at"`, "mon"},
		{"mon at 25:00", 8, "an hour 0-23", "25:00"},
		{"mon 21:00", 5, "`at` before a time", "21:00"},
		{"32 at 1:00", 1, "a day of the month 1-31", "32"},
		{"0 at 1:00", 1, "a day of the month 1-31", "0"},
		{"w54 at 1:00", 1, "w00-w53", "w54"},
		{"w1 at 1:00", 1, "two digits", "w1"},
		{"mon-mon at 1:00", 1, "ends differ", "mon-mon"},
		{"mon-jan at 1:00", 1, "same kind", "mon-jan"},
		{"1-w05 at 1:00", 1, "a range of days", "1-w05"},
		{"Level=Fool mon at 1:00", 7, "Full, Incremental or Differential", "Fool"},
		{"Level=VirtualFull mon at 1:00", 7, "Full, Incremental or Differential", "VirtualFull"},
		{"Base mon at 1:00", 1, "a level Tapeward supports", "Base"},
		{"mon at 1:00 Pool=X", 13, "overrides (Key=Value) before the date and time", "Pool"},
		{"mon at 1:00 Full", 13, "the level before the date and time", "Full"},
		{"Priority=0 at 1:00", 10, "a whole number from 1", "0"},
		{"Priority=high at 1:00", 10, "a whole number from 1", "high"},
		{"Pool=", 6, "a value must follow `Pool=`", ""},
		{"at 2:5", 4, "two-digit minutes", "2:5"},
		{"at 2:60", 4, "minutes 00-59", "2:60"},
		{"at 13:00pm", 4, "an hour 1-12 before am/pm", "13:00pm"},
		{"at 0:30am", 4, "an hour 1-12 before am/pm", "0:30am"},
		{"at 2:00 pm", 9, "a month", "pm"},
		{"at 2:00xm", 4, "only am or pm", "2:00xm"},
		{"at :15", 4, "write `hourly at :MM`", ":15"},
		{"at 1:00 13:30", 9, "the same minute as the time at column 4 (:00)", "13:30"},
		{"1/0 at 1:00", 1, "a step b of 1-30", "1/0"},
		{"5/2 at 1:00", 1, "at most b+1", "5/2"},
		{"w03/w02 at 1:00", 1, "A at most B", "w03/w02"},
		{"x/y at 1:00", 1, "a modulo of days", "x/y"},
		{"Full Full mon at 1:00", 6, "the level is already given at column 1", "Full"},
		{"Pool=A Pool=B at 1:00", 8, "Pool= is already given at column 1", "Pool"},
		{"NextPool=X mon at 1:00", 1, "NextPool= is Bareos-only", "NextPool"},
		{"Colour=red mon at 1:00", 1, "an override name", "Colour"},
		{"fortnightly at 1:00", 1, "a month (jan)", "fortnightly"},
		{"", 1, "a Run line", ""},
		{"   ", 1, "a Run line", ""},
		{`Pool="abc at 1:00`, 18, "a closing quote", ""},
		{"= mon", 1, "an override name before '='", "="},
		{"mon at 1:00 =", 13, "a month", "="},
	}
	for _, c := range cases {
		r, _, err := Parse(c.line)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, %v; want a *SyntaxError", c.line, r, err)
			continue
		}
		if se.Line != 1 || se.Col != c.col || !strings.Contains(se.Expected, c.expected) || se.Got != c.got {
			t.Errorf("%q: line %d col %d expected %q got %q;\n want line 1 col %d, expected containing %q, got %q",
				c.line, se.Line, se.Col, se.Expected, se.Got, c.col, c.expected, c.got)
		}
	}
}

// TestErrorNamesScheduleLineColumn: the printed form a user reads.
func TestErrorNamesScheduleLineColumn(t *testing.T) {
	_, _, err := ParseSchedule("Nightly", []string{"Level=Full 1st sun at 2:05", "Level=Incremental mon-sat at"})
	want := `schedule "Nightly": run line 2, column 29: a time must follow "at" (HH:MM, H:MMam or H:MMpm); the line ends there`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n %v\nwant\n %s", err, want)
	}
	// Every bad line is reported, each typed.
	_, _, err = ParseSchedule("Two", []string{"mon at 25:00", "tue at 1:00", "w54 at 1:00"})
	want = `schedule "Two": run line 1, column 8: an hour 0-23; got "25:00"` + "\n" +
		`schedule "Two": run line 3, column 1: a week of the year w00-w53; got "w54"`
	var first *SyntaxError
	if err == nil || err.Error() != want || !errors.As(err, &first) || first.Line != 1 {
		t.Fatalf("error:\n %v\nwant\n %s", err, want)
	}
	_, _, err = Parse("mon at 9:00 tue at wed")
	want = `run line 1, column 20: a time must follow "at" (HH:MM, H:MMam or H:MMpm); got "wed"`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n %v\nwant\n %s", err, want)
	}
	// Columns count characters, not bytes.
	_, _, err = Parse(`Pool="Bänder" mon xyz`)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Col != 19 {
		t.Fatalf("error %v, want column 19", err)
	}
}

// TestParseMasks: what each form sets, against Bareos' semantics.
func TestParseMasks(t *testing.T) {
	cases := []struct {
		line string
		want Run
	}{
		{"mon-fri at 21:00", Run{Hours: 1 << 21, Minute: 0, MDays: AllMDays, Months: AllMonths, WDays: 0b0111110, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"fri-mon at 9:05", Run{Hours: 1 << 9, Minute: 5, MDays: AllMDays, Months: AllMonths, WDays: 0b1100011, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"last fri at 21:00", Run{Hours: 1 << 21, MDays: AllMDays, Months: AllMonths, WDays: 1 << 5, WOMs: 0, Last: true, WOYs: AllWOYs}},
		{"2nd-5th sat at 21:00", Run{Hours: 1 << 21, MDays: AllMDays, Months: AllMonths, WDays: 1 << 6, WOMs: 0b11110, WOYs: AllWOYs}},
		{"1/2 at 23:10", Run{Hours: 1 << 23, Minute: 10, MDays: 0x55555555 & AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"2/2 at 23:10", Run{Hours: 1 << 23, Minute: 10, MDays: 0x2aaaaaaa, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"w01/w02 at 0:00", Run{Hours: 1, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: 0xaaaaaaaaaaaaaa & AllWOYs}},
		{"nov-feb at 0:00", Run{Hours: 1, MDays: AllMDays, Months: 0b110000000011, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		// 12am = 00:00, 12pm = 12:00 (Bareos, after NIST).
		{"at 12:00am", Run{Hours: 1, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"at 12:00PM", Run{Hours: 1 << 12, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"hourly at 0:05", Run{Hours: AllHours, Minute: 5, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"at 3:05 hourly", Run{Hours: AllHours, Minute: 5, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		// Equal numeric ends are a full wrap in Bareos.
		{"5-5 at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		// daily resets the weekdays; before day numbers it makes them add to all days.
		{"mon daily at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"daily mon at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: 2, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"daily 15 at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"15 daily at 1:00", Run{Hours: 2, MDays: 1 << 14, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		// weekly resets day of month, position and week of year.
		{"1st sun weekly at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: 1, WOMs: AllWOMs, WOYs: AllWOYs}},
		{"jan monthly at 1:00", Run{Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		// No time: every hour at :00.
		{"Level=Full", Run{Overrides: Overrides{Level: "Full"}, Hours: AllHours, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}},
		{`level = differential pool="Tape Pool" FullPool=F IncrementalPool=I DifferentialPool=D storage=LTO9 priority=7 MONDAY AT 1:00`,
			Run{Overrides: Overrides{Level: "Differential", Pool: "Tape Pool", FullPool: "F", IncrementalPool: "I", DifferentialPool: "D", Storage: "LTO9", Priority: 7, HasPriority: true},
				Hours: 2, MDays: AllMDays, Months: AllMonths, WDays: 2, WOMs: AllWOMs, WOYs: AllWOYs}},
	}
	for _, c := range cases {
		r, _, err := Parse(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if *r != c.want {
			t.Errorf("%q:\n got  %+v\n want %+v", c.line, *r, c.want)
		}
	}
}

// TestWarnings: the traps warn, ordinary lines do not.
func TestWarnings(t *testing.T) {
	cases := []struct {
		line string
		want []string // substrings, one warning each
	}{
		{"weekly at 2:00", []string{"`weekly` restricts nothing", "fires every day"}},
		{"monthly at 2:00", []string{"`monthly` restricts nothing"}},
		{"mon daily at 1:00", []string{"`daily` here undoes a restriction"}},
		{"daily 15 at 1:00", []string{"`daily` here undoes a restriction"}},
		{"mon", []string{"no time: this line fires at the start of every hour"}},
		{"Level=Full", []string{"no time"}},
		{"5-5 at 1:00", []string{"equal ends"}},
		{"31 apr at 1:00", []string{"never fires"}},
		{"hourly at 2:15", []string{"the hour of 2:15 is ignored"}},
		{"hourly at 0:05", nil},
		{"daily at 02:00", nil},
		{"daily mon at 1:00", nil},
		{"hourly", nil},
		{"Level=Full Pool=Monthly 1st sun at 2:05", nil},
		{"Full 1st sat at 21:00", nil},
	}
	for _, c := range cases {
		_, ws, err := Parse(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if len(c.want) == 0 && len(ws) != 0 {
			t.Errorf("%q: unexpected warnings %v", c.line, ws)
		}
		for _, sub := range c.want {
			if !hasWarning(ws, sub) {
				t.Errorf("%q: warnings %v, want one containing %q", c.line, ws, sub)
			}
		}
	}
	if _, ws, _ := ParseSchedule("Empty", nil); len(ws) != 1 || ws[0].String() != `schedule "Empty": no Run lines: this schedule never fires` {
		t.Errorf("empty schedule warnings %v", ws)
	}
	_, ws, _ := ParseSchedule("S", []string{"mon at 1:00", "weekly at 2:00"})
	if len(ws) != 1 || ws[0].Line != 2 || ws[0].Col != 1 || !strings.HasPrefix(ws[0].String(), `schedule "S": run line 2, column 1: `) {
		t.Errorf("schedule warnings %v, want one for line 2 column 1", ws)
	}
}

// TestCanonical: String is the canonical form, and parses back to the
// same run.
func TestCanonical(t *testing.T) {
	cases := []struct{ line, want string }{
		{"Full 1st sat at 21:00", "Level=Full 1st sat at 21:00"},
		{"Level=Full Pool=Monthly on 1st sun, at 2:05", "Level=Full Pool=Monthly 1st sun at 02:05"},
		{"fri-mon at 1:00pm", "fri-mon at 13:00"},
		{"friday saturday sunday monday at 1:00pm", "fri-mon at 13:00"},
		{"w01/w02 mon at 23:10", "mon w01/w02 at 23:10"},
		{"1/2 at 23:10", "1/2 at 23:10"},
		{"3/2 at 23:10", "3/2 at 23:10"},
		{"jan-mar 15 at 6:00", "jan-mar 15 at 06:00"},
		{"25-5 at 8:00", "25-5 at 08:00"},
		{"2nd last sun at 5:00", "2nd last sun at 05:00"},
		{"last fri at 21:00", "last fri at 21:00"},
		{"hourly at :15", "hourly at 0:15"},
		{"mon", "mon hourly at 0:00"},
		{"at 1:00 13:00", "at 01:00 13:00"},
		{`Pool="Tape Pool" Priority=3 at 1:00`, `Pool="Tape Pool" Priority=3 at 01:00`},
		{"w52-w01 fri at 20:00", "fri w52-w01 at 20:00"},
	}
	for _, c := range cases {
		r, _, err := Parse(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if got := r.String(); got != c.want {
			t.Errorf("%q: String() = %q, want %q", c.line, got, c.want)
		}
		r2, _, err := Parse(r.String())
		if err != nil || *r2 != *r {
			t.Errorf("%q: Parse(%q) = %+v, %v; want %+v", c.line, r.String(), r2, err, r)
		}
	}
}

// TestImportsStandardLibraryOnly: the package is pure (architecture §2);
// tools/layering checks the module, this checks everything else.
func TestImportsStandardLibraryOnly(t *testing.T) {
	p, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Imports) == 0 {
		t.Fatal("no imports found: the check is broken")
	}
	for _, imp := range p.Imports {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") {
			t.Errorf("imports %s: configs/schedule may import only the standard library", imp)
		}
	}
}
