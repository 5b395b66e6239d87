package schedule

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var seedLines = []string{
	"Full 1st sat at 21:00", "Differential 2nd-5th sat at 21:00", "Incremental mon-fri at 21:00",
	"Level=Full Pool=Monthly 1st sun at 2:05", "Level=Full on 1 at 2:05", "Level=Full last fri at 21:00",
	"Level=Full hourly at 0:05", "1/2 at 23:10", "w01/w02 mon at 23:10", "Level=Full jan 1st sun at 03:00",
	"fri-mon at 1:00pm", "weekly at 2:00", "mon", "29 feb at 03:00", "31 at 21:00", "on 1, 15 at 04:00",
	"hourly at :15", "at 12:00am", "25-5 at 8:00", "w52-w01 fri at 20:00", `Pool="Tape Pool" Priority=3 at 1:00`,
	"mon daily at 1:00", "5-5 at 1:00", "at 2:00 3:00", "Full mon at", "mon at 25:00", "1/0 at 1:00",
}

// FuzzParse: Parse never panics; an error is a *SyntaxError inside the
// line; a parsed line's canonical form parses back to the same run and
// is a fixed point.
func FuzzParse(f *testing.F) {
	for _, l := range seedLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, _, err := Parse(line)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error %v is not a *SyntaxError", line, err)
			}
			if se.Line != 1 || se.Col < 1 || se.Col > utf8.RuneCountInString(line)+1 || se.Expected == "" {
				t.Fatalf("%q: error position %d:%d (%q) outside the line", line, se.Line, se.Col, se.Expected)
			}
			return
		}
		s := r.String()
		r2, _, err := Parse(s)
		if err != nil {
			t.Fatalf("%q: canonical %q does not parse: %v", line, s, err)
		}
		if *r2 != *r {
			t.Fatalf("%q: canonical %q parses to %+v, want %+v", line, s, *r2, *r)
		}
		if s2 := r2.String(); s2 != s {
			t.Fatalf("%q: canonical form not stable: %q then %q", line, s, s2)
		}
	})
}

// randomLine builds a line from the grammar's words (many are invalid;
// the caller skips those).
func randomLine(rng *rand.Rand) string {
	words := []string{
		"mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon-fri", "fri-mon", "sat-sun",
		"jan", "feb", "mar", "oct", "nov", "dec", "jan-mar", "nov-feb",
		"1st", "2nd", "3rd", "4th", "5th", "last", "2nd-5th", "5th-1st",
		"1", "2", "15", "28", "29", "30", "31", "1-7", "25-5", "1/2", "2/2", "3/7",
		"w00", "w01", "w26", "w52", "w53", "w01/w02", "w00/w03", "w50-w03",
		"daily", "weekly", "monthly", "on",
	}
	times := []string{"at 0:00", "at 1:30", "at 2:00", "at 2:15", "at 2:30", "at 3:00", "at 12:00am", "at 12:45pm",
		"at 23:59", "hourly", "hourly at :30", "at 1:10 2:10 3:10", ""}
	var b strings.Builder
	for range rng.IntN(4) {
		b.WriteString(words[rng.IntN(len(words))] + " ")
	}
	b.WriteString(times[rng.IntN(len(times))])
	return b.String()
}

// TestNextAgreesWithBetween: for random lines, zones and start times,
// Between(from, to) is exactly what repeated NextFires gives, in order,
// and every fire is on a matching date at the line's time (or moved
// over a gap).
func TestNextAgreesWithBetween(t *testing.T) {
	zones := []*time.Location{time.UTC, mustLoc(t, "Europe/Berlin"), mustLoc(t, "America/New_York"),
		mustLoc(t, "Australia/Lord_Howe") /* 30-minute DST shifts */}
	rng := rand.New(rand.NewPCG(11, 2026))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	checked, moved := 0, 0
	for checked < 300 {
		var lines []string
		for range 1 + rng.IntN(3) {
			lines = append(lines, randomLine(rng))
		}
		s, _, err := ParseSchedule("p", lines)
		if err != nil {
			continue
		}
		checked++
		loc := zones[rng.IntN(len(zones))]
		from := time.Unix(base+rng.Int64N(4*365*86400), 0)
		// The day before a DST change (Berlin, New York, Lord Howe
		// in 2026) half of the time.
		if rng.IntN(2) == 0 {
			d := [][2]int{{3, 28}, {10, 24}, {3, 7}, {10, 31}, {4, 4}, {10, 3}}[rng.IntN(6)]
			from = time.Date(2026, time.Month(d[0]), d[1], rng.IntN(24), 0, 0, 0, loc)
		}
		to := from.Add(time.Duration(1+rng.IntN(10*24)) * time.Hour)

		var between []Fire
		for f := range s.Between(from, to, loc) {
			between = append(between, f)
		}
		var next []Fire
		at := from.Add(-time.Nanosecond)
		for {
			fs := s.NextFires(at, loc, nil)
			if len(fs) == 0 || !fs[0].At.Before(to) {
				break
			}
			next = append(next, fs...)
			at = fs[0].At
		}
		if fmt.Sprint(between) != fmt.Sprint(next) {
			t.Fatalf("%q in %s from %v to %v:\n Between %v\n Next    %v", lines, loc, from, to, between, next)
		}
		for i, f := range between {
			if f.At.Before(from) || !f.At.Before(to) || f.At.Location() != loc {
				t.Fatalf("%q: fire %v outside [%v, %v) or not in %s", lines, f.At, from, to, loc)
			}
			if i > 0 {
				p := between[i-1]
				if f.At.Before(p.At) || (f.At.Equal(p.At) && f.Line <= p.Line) {
					t.Fatalf("%q: fires out of order: %v line %d then %v line %d", lines, p.At, p.Line, f.At, f.Line)
				}
			}
			if f.Moved {
				moved++
			}
			r := s.Runs[f.Line-1]
			y, m, d := f.At.Date()
			c := newDay(y, int(m), d)
			if !f.Moved && (f.At.Minute() != r.Minute || r.Hours&(1<<f.At.Hour()) == 0 || !r.matchesDay(&c)) {
				t.Fatalf("%q line %d fires at %v, which its masks do not match", lines, f.Line, f.At)
			}
			// A moved fire is at the instant the clocks jumped; an
			// unmoved one is the first occurrence of its wall time.
			if start, _ := f.At.ZoneBounds(); f.Moved && !start.Equal(f.At) {
				t.Fatalf("%q line %d moved to %v, not a zone transition (%v)", lines, f.Line, f.At, start)
			}
			for _, back := range []time.Duration{30 * time.Minute, time.Hour} {
				if e := f.At.Add(-back); !f.Moved && e.Format(layout[:16]) == f.At.Format(layout[:16]) {
					t.Fatalf("%q line %d fires at %v, the second occurrence of %s", lines, f.Line, f.At, e.Format(layout))
				}
			}
		}
	}
	if moved == 0 {
		t.Fatal("no sampled fire crossed a spring-forward gap: the sample misses DST")
	}
	t.Logf("%d schedules, %d moved fires", checked, moved)
}

// TestNeverFiresMatchesScan: neverFires (14 kinds of year) agrees with
// scanning 28 real years day by day.
func TestNeverFiresMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	for n := 0; n < 400; {
		r, _, err := Parse(randomLine(rng))
		if err != nil {
			continue
		}
		n++
		scan := false
		for c := newDay(2001, 1, 1); c.y < 2029 && !scan; c.next() {
			scan = r.matchesDay(&c)
		}
		if neverFires(r) == scan {
			t.Fatalf("%q: neverFires=%v but a 28-year scan found a date: %v", r, neverFires(r), scan)
		}
	}
}
