package schedule

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const layout = "2006-01-02 15:04 -0700"

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v", name, err)
	}
	return loc
}

// TestFireTable: each line's next fires after a start time, computed by
// hand from the rules of doc.go and a printed calendar (not from this
// code). Times are local, with the zone's offset.
func TestFireTable(t *testing.T) {
	const utc, berlin, ny = "UTC", "Europe/Berlin", "America/New_York"
	cases := []struct {
		line, zone, after string
		want              []string
	}{
		// 1st = days 1-7. Sat 5 Dec 2026, Sat 2 Jan 2027, Sat 6 Feb 2027.
		{"Full 1st sat at 21:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-05 21:00 +0000", "2027-01-02 21:00 +0000", "2027-02-06 21:00 +0000"}},
		// 2nd-5th = days 8-31: Dec 2026 Saturdays 12, 19, 26; then Sat 9 Jan 2027.
		{"Differential 2nd-5th sat at 21:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-12 21:00 +0000", "2026-12-19 21:00 +0000", "2026-12-26 21:00 +0000", "2027-01-09 21:00 +0000"}},
		// Strictly after: Friday 4 Dec 21:00 itself is not next.
		{"Incremental mon-fri at 21:00", utc, "2026-12-04 21:00 +0000",
			[]string{"2026-12-07 21:00 +0000", "2026-12-08 21:00 +0000"}},
		// fri-mon wraps: Fri 4, Sat 5, Sun 6, Mon 7, then Fri 11.
		{"fri-mon at 23:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-04 23:00 +0000", "2026-12-05 23:00 +0000", "2026-12-06 23:00 +0000", "2026-12-07 23:00 +0000", "2026-12-11 23:00 +0000"}},
		// last = last 7 days: Dec 25-31 (Fri 25), Jan 25-31 (Fri 29), Feb 22-28 2027 (Fri 26).
		{"Level=Full last fri at 21:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-25 21:00 +0000", "2027-01-29 21:00 +0000", "2027-02-26 21:00 +0000"}},
		// Leap February 2028: last 7 days are 23-29; Sunday 27.
		{"last sun at 1:00", utc, "2028-02-01 00:00 +0000",
			[]string{"2028-02-27 01:00 +0000"}},
		{"Level=Full on 1 at 2:05", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-01 02:05 +0000", "2027-02-01 02:05 +0000"}},
		{"Level=Full hourly at 0:05", utc, "2026-12-02 10:30 +0000",
			[]string{"2026-12-02 11:05 +0000", "2026-12-02 12:05 +0000", "2026-12-02 13:05 +0000"}},
		{"hourly at :15", utc, "2026-12-31 22:20 +0000",
			[]string{"2026-12-31 23:15 +0000", "2027-01-01 00:15 +0000"}},
		// Odd days: 31 Dec and 1 Jan are both odd.
		{"1/2 at 23:10", utc, "2026-12-30 00:00 +0000",
			[]string{"2026-12-31 23:10 +0000", "2027-01-01 23:10 +0000", "2027-01-03 23:10 +0000"}},
		// Even days: 30 Nov, then 2 Dec (no 31 Nov).
		{"2/2 at 23:10", utc, "2026-11-29 00:00 +0000",
			[]string{"2026-11-30 23:10 +0000", "2026-12-02 23:10 +0000"}},
		// 2026: 4 Jan is a Sunday, week 1 = 29 Dec 2025-4 Jan 2026, so Mon
		// 21 Dec 2026 is w52 and Mon 28 Dec w53 (odd). 2027: 4 Jan is a
		// Monday, w01 = 4-10 Jan, w03 = 18-24 Jan; 1-3 Jan are w00 (even).
		{"w01/w02 mon at 23:10", utc, "2026-12-20 00:00 +0000",
			[]string{"2026-12-28 23:10 +0000", "2027-01-04 23:10 +0000", "2027-01-18 23:10 +0000"}},
		// w00 of 2027 = 1-3 Jan; of 2028 (4 Jan a Tuesday, w01 from Mon 3 Jan) = 1-2 Jan.
		{"w00 at 12:00", utc, "2026-12-30 00:00 +0000",
			[]string{"2027-01-01 12:00 +0000", "2027-01-02 12:00 +0000", "2027-01-03 12:00 +0000", "2028-01-01 12:00 +0000"}},
		// w53: none in 2027 (w01 starts 4 Jan, 31 Dec is w52) or 2028 (w01
		// starts 3 Jan); 2029 (4 Jan a Thursday, w01 from Mon 1 Jan): 31
		// Dec only; 2030 (4 Jan a Friday, w01 from Mon 31 Dec 2029): 30-31 Dec.
		{"w53 at 12:00", utc, "2027-12-01 00:00 +0000",
			[]string{"2029-12-31 12:00 +0000", "2030-12-30 12:00 +0000", "2030-12-31 12:00 +0000"}},
		{"jan-mar 15 at 06:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-15 06:00 +0000", "2027-02-15 06:00 +0000", "2027-03-15 06:00 +0000", "2028-01-15 06:00 +0000"}},
		{"at 12:00am", utc, "2026-12-02 10:00 +0000",
			[]string{"2026-12-03 00:00 +0000"}},
		{"at 12:30pm", utc, "2026-12-02 10:00 +0000",
			[]string{"2026-12-02 12:30 +0000", "2026-12-03 12:30 +0000"}},
		{"at 1:15pm", utc, "2026-12-02 10:00 +0000",
			[]string{"2026-12-02 13:15 +0000"}},
		{"daily at 02:00", utc, "2026-12-31 02:00 +0000",
			[]string{"2027-01-01 02:00 +0000", "2027-01-02 02:00 +0000"}},
		// weekly restricts nothing: every day.
		{"weekly at 2:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-02 02:00 +0000", "2026-12-03 02:00 +0000", "2026-12-04 02:00 +0000"}},
		// No time: every hour at :00 of Mondays (Mon 7 Dec 2026).
		{"mon", utc, "2026-12-06 22:30 +0000",
			[]string{"2026-12-07 00:00 +0000", "2026-12-07 01:00 +0000", "2026-12-07 02:00 +0000"}},
		// 29 Feb: leap years only; 2100 is not one.
		{"29 feb at 03:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2028-02-29 03:00 +0000", "2032-02-29 03:00 +0000"}},
		{"29 feb at 03:00", utc, "2096-03-01 00:00 +0000",
			[]string{"2104-02-29 03:00 +0000"}},
		// 31st: never in April, June (30 days).
		{"31 at 21:00", utc, "2027-03-31 22:00 +0000",
			[]string{"2027-05-31 21:00 +0000", "2027-07-31 21:00 +0000", "2027-08-31 21:00 +0000"}},
		{"on 1, 15 at 04:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-15 04:00 +0000", "2027-01-01 04:00 +0000", "2027-01-15 04:00 +0000"}},
		// First Sunday of January: 3 Jan 2027, 2 Jan 2028.
		{"Level=Full jan 1st sun at 03:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-03 03:00 +0000", "2028-01-02 03:00 +0000"}},
		// 5th = days 29-31: no Saturday there in Dec 2026 (29 Tue-31 Thu); Sat 30 Jan 2027.
		{"5th sat at 10:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-30 10:00 +0000"}},
		{"nov-feb 1 at 00:30", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-01 00:30 +0000", "2027-02-01 00:30 +0000", "2027-11-01 00:30 +0000"}},
		// 25-5 wraps: 25..31 and 1..5.
		{"25-5 at 08:00", utc, "2026-12-31 09:00 +0000",
			[]string{"2027-01-01 08:00 +0000", "2027-01-02 08:00 +0000", "2027-01-03 08:00 +0000",
				"2027-01-04 08:00 +0000", "2027-01-05 08:00 +0000", "2027-01-25 08:00 +0000"}},
		{"sat,sun at 09:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-05 09:00 +0000", "2026-12-06 09:00 +0000", "2026-12-12 09:00 +0000"}},
		{"at 1:00 13:00", utc, "2026-12-02 02:00 +0000",
			[]string{"2026-12-02 13:00 +0000", "2026-12-03 01:00 +0000", "2026-12-03 13:00 +0000"}},
		// 2nd (8-14) or last (last 7 days) Sunday: 13 and 27 Dec, 10 and 31 Jan.
		{"2nd last sun at 05:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-13 05:00 +0000", "2026-12-27 05:00 +0000", "2027-01-10 05:00 +0000", "2027-01-31 05:00 +0000"}},
		// w01-w02 of 2027 = 4-17 Jan (Wed 6, 13); of 2028 from Mon 3 Jan (Wed 5).
		{"w01-w02 wed at 7:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2027-01-06 07:00 +0000", "2027-01-13 07:00 +0000", "2028-01-05 07:00 +0000"}},
		// w52-w01 wraps: w52 of 2026 = 21-27 Dec (Fri 25), w53 = 28-31 Dec
		// (no Friday), w00 of 2027 = 1-3 Jan (Fri 1), w01 = 4-10 Jan (Fri 8),
		// w52 of 2027 = 27-31 Dec (Fri 31).
		{"w52-w01 fri at 20:00", utc, "2026-12-02 00:00 +0000",
			[]string{"2026-12-25 20:00 +0000", "2027-01-01 20:00 +0000", "2027-01-08 20:00 +0000", "2027-12-31 20:00 +0000"}},
		// Europe/Berlin springs forward on Sun 29 Mar 2026, 02:00 CET ->
		// 03:00 CEST: 02:30 does not exist and fires once at 03:00.
		{"at 02:30", berlin, "2026-03-28 12:00 +0100",
			[]string{"2026-03-29 03:00 +0200", "2026-03-30 02:30 +0200"}},
		// ... and falls back on Sun 25 Oct 2026, 03:00 CEST -> 02:00 CET:
		// 02:30 happens twice and fires once, the first time.
		{"at 02:30", berlin, "2026-10-24 12:00 +0200",
			[]string{"2026-10-25 02:30 +0200", "2026-10-26 02:30 +0100"}},
		{"at 2:00 3:00", berlin, "2026-03-28 12:00 +0100",
			[]string{"2026-03-29 03:00 +0200", "2026-03-30 02:00 +0200"}},
		// America/New_York springs forward on Sun 8 Mar 2026 (02:00 EST ->
		// 03:00 EDT): 02:30 moves to 03:00, then 03:30 as usual.
		{"hourly at :30", ny, "2026-03-08 00:45 -0500",
			[]string{"2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"}},
		// ... and falls back on Sun 1 Nov 2026 (02:00 EDT -> 01:00 EST):
		// 01:30 fires once (EDT), the next is 02:30 EST.
		{"hourly at :30", ny, "2026-11-01 00:00 -0400",
			[]string{"2026-11-01 00:30 -0400", "2026-11-01 01:30 -0400", "2026-11-01 02:30 -0500"}},
	}
	if len(cases) < 30 {
		t.Fatalf("the table has %d lines, want at least 30", len(cases))
	}
	for _, c := range cases {
		loc := mustLoc(t, c.zone)
		after, err := time.ParseInLocation(layout, c.after, loc)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := ParseSchedule("table", []string{c.line})
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		var got []string
		at := after
		for range c.want {
			f, ok := s.Next(at, loc)
			if !ok {
				break
			}
			got = append(got, f.At.Format(layout))
			at = f.At
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q in %s after %s:\n got  %v\n want %v", c.line, c.zone, c.after, got, c.want)
		}
	}
}

// TestNeverFires: 31 in a 30-day month, 30 February, w53 in January.
func TestNeverFires(t *testing.T) {
	for _, l := range []string{"30 feb at 1:00", "31 apr at 1:00", "w53 jan at 1:00", "w00 dec at 1:00", "1st 20 at 1:00"} {
		r, ws, err := Parse(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		s := NewSchedule("never", r)
		if f, ok := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC); ok {
			t.Errorf("%q fires at %v, want never", l, f.At)
		}
		if !hasWarning(ws, "never fires") {
			t.Errorf("%q: warnings %v, want one saying it never fires", l, ws)
		}
	}
}

// TestMovedAndFallBack checks Fire.Moved and that an instant between the
// two occurrences of a repeated wall time does not see the second one.
func TestMovedAndFallBack(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s, _, err := ParseSchedule("dst", []string{"at 02:30"})
	if err != nil {
		t.Fatal(err)
	}
	f, ok := s.Next(time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), berlin)
	if !ok || !f.Moved || f.At.UTC() != time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC) {
		t.Errorf("spring forward: %v moved=%v, want 01:00 UTC (03:00 CEST) moved", f.At, f.Moved)
	}
	f, _ = s.Next(time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC), berlin)
	if f.Moved {
		t.Errorf("an ordinary day's fire is marked moved: %v", f.At)
	}
	// 00:45 UTC on 25 Oct 2026 is 02:45 CEST, between 02:30 CEST and
	// 02:30 CET: the next fire is the next day's.
	f, _ = s.Next(time.Date(2026, 10, 25, 0, 45, 0, 0, time.UTC), berlin)
	if want := "2026-10-26 02:30 +0100"; f.At.Format(layout) != want {
		t.Errorf("after 02:45 CEST on the fall-back day: %s, want %s", f.At.Format(layout), want)
	}
	// Between over the fall-back day sees one fire of an hourly line at
	// each wall time: 25 of them minus one repeated hour = 24.
	h, _, _ := ParseSchedule("h", []string{"hourly at :30"})
	from := time.Date(2026, 10, 25, 0, 0, 0, 0, berlin)
	to := time.Date(2026, 10, 26, 0, 0, 0, 0, berlin) // 25 real hours later
	n := 0
	for range h.Between(from, to, berlin) {
		n++
	}
	if n != 24 {
		t.Errorf("hourly fires on the fall-back day: %d, want 24", n)
	}
}

func hasWarning(ws []Warning, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w.Msg, sub) {
			return true
		}
	}
	return false
}

// TestSeveralLinesOneMinute: one Fire per line (Bareos queues a job per
// Run resource), in line order, each with its overrides.
func TestSeveralLinesOneMinute(t *testing.T) {
	s, _, err := ParseSchedule("both", []string{
		"Level=Incremental Pool=Inc mon-sat at 21:00",
		"Level=Full Pool=Full Priority=5 1st sat at 21:00",
	})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC) // Fri; Sat 5 Dec is the 1st Saturday
	fs := s.NextFires(after, time.UTC, nil)
	if len(fs) != 2 || fs[0].Line != 1 || fs[1].Line != 2 ||
		fs[0].Level != "Incremental" || fs[1].Level != "Full" || fs[1].Pool != "Full" || !fs[1].HasPriority || fs[1].Priority != 5 {
		t.Fatalf("fires at 5 Dec 21:00: %+v", fs)
	}
	for _, f := range fs {
		if want := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC); !f.At.Equal(want) {
			t.Errorf("line %d at %v, want %v", f.Line, f.At, want)
		}
	}
	if f, _ := s.Next(after, time.UTC); f.Line != 1 {
		t.Errorf("Next gives line %d, want the lowest (1)", f.Line)
	}
	// Next after that instant skips both.
	f, _ := s.Next(fs[0].At, time.UTC)
	if want := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC); !f.At.Equal(want) || f.Line != 1 {
		t.Errorf("after both: line %d at %v, want line 1 at %v", f.Line, f.At, want)
	}
}

// TestLocalDefault: a nil location means time.Local.
func TestLocalDefault(t *testing.T) {
	s, _, _ := ParseSchedule("l", []string{"at 05:00"})
	from := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	a, ok1 := s.Next(from, nil)
	b, ok2 := s.Next(from, time.Local)
	if !ok1 || !ok2 || !a.At.Equal(b.At) || a.At.Location() != time.Local {
		t.Errorf("nil zone: %v (%v), time.Local: %v", a.At, a.At.Location(), b.At)
	}
}

// TestLiteralSchedule: a Schedule built as a literal (no NewSchedule)
// still fires, and skips its never-firing lines.
func TestLiteralSchedule(t *testing.T) {
	never, _, _ := Parse("30 feb at 1:00")
	r, _, _ := Parse("sun at 4:00am")
	s := &Schedule{Name: "lit", Runs: []*Run{never, r}}
	f, ok := s.Next(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.UTC)
	if want := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC); !ok || !f.At.Equal(want) || f.Line != 2 {
		t.Errorf("literal schedule: %v line %d (%v), want %v line 2", f.At, f.Line, ok, want)
	}
}

// TestHourlyOnSpringForward: `hourly` (at :00) on Berlin's spring-forward
// day fires once at 03:00 (02:00 moved onto it), not marked moved, and
// 23 times that day.
func TestHourlyOnSpringForward(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s, _, _ := ParseSchedule("h", []string{"hourly"})
	var got []string
	n := 0
	for f := range s.Between(time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), time.Date(2026, 3, 30, 0, 0, 0, 0, berlin), berlin) {
		n++
		if f.At.Hour() <= 3 {
			got = append(got, fmt.Sprintf("%s moved=%v", f.At.Format(layout), f.Moved))
		}
	}
	want := []string{"2026-03-29 00:00 +0100 moved=false", "2026-03-29 01:00 +0100 moved=false", "2026-03-29 03:00 +0200 moved=false"}
	if n != 23 || !slices.Equal(got, want) {
		t.Errorf("%d fires, first %v; want 23, first %v", n, got, want)
	}
}

// TestSkippedDay: Pacific/Apia skipped 30 December 2011 (23:59:59 on the
// 29th, -10, was followed by 00:00 on the 31st, +14). The 30th's runs
// fire once at the first valid minute after them, 31 Dec 00:00, which
// is also the 31st's own 00:00 run: one fire.
func TestSkippedDay(t *testing.T) {
	apia := mustLoc(t, "Pacific/Apia")
	s, _, _ := ParseSchedule("samoa", []string{"at 0:00 12:00"})
	var got []string
	for f := range s.Between(time.Date(2011, 12, 29, 0, 0, 0, 0, apia), time.Date(2012, 1, 1, 0, 0, 0, 0, apia), apia) {
		got = append(got, fmt.Sprintf("%s moved=%v", f.At.Format(layout), f.Moved))
	}
	want := []string{
		"2011-12-29 00:00 -1000 moved=false", "2011-12-29 12:00 -1000 moved=false",
		"2011-12-31 00:00 +1400 moved=false", "2011-12-31 12:00 +1400 moved=false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Apia across the skipped day:\n got  %v\n want %v", got, want)
	}
	noon, _, _ := ParseSchedule("noon", []string{"at 12:00"})
	f, _ := noon.Next(time.Date(2011, 12, 29, 13, 0, 0, 0, apia), apia)
	if want := "2011-12-31 00:00 +1400"; f.At.Format(layout) != want || !f.Moved {
		t.Errorf("the skipped day's noon: %s moved=%v, want %s moved", f.At.Format(layout), f.Moved, want)
	}
}
