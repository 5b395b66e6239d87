package schedule

import (
	"errors"
	"iter"
	"slices"
	"time"
)

// Schedule is a named list of Run lines; the lines are OR-ed.
//
// Build it with ParseSchedule or NewSchedule (which note the lines that
// can never fire); its methods are safe for concurrent use as long as
// Runs is not changed.
type Schedule struct {
	Name string
	Runs []*Run // Runs[i] is line i+1
	// months is the union of the lines' month masks that can fire
	// (Next skips the other months).
	months uint16
	live   []bool // live[i]: Runs[i] fires on some date
}

// Fire is one run of one line: a job to start at At (in the schedule's
// time zone) with the line's overrides. Line is 1-based.
type Fire struct {
	At   time.Time
	Line int
	Overrides
	// Moved is set when the line's local time did not exist that day
	// (clocks sprang forward over it) and the run fires at the first
	// valid minute after it instead.
	Moved bool
}

// ParseSchedule parses a schedule's Run lines. Every bad line is
// reported: the error joins one *SyntaxError per bad line (naming the
// schedule, the line and the column; errors.As finds the first), and
// the schedule is nil. Warnings are collected from every good line.
func ParseSchedule(name string, lines []string) (*Schedule, []Warning, error) {
	s := &Schedule{Name: name, Runs: make([]*Run, 0, len(lines))}
	var warns []Warning
	var errs []error
	for i, l := range lines {
		r, ws, err := parseLine(l, i+1, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		warns = append(warns, ws...)
		s.Runs = append(s.Runs, r)
	}
	if len(errs) > 0 {
		return nil, warns, errors.Join(errs...)
	}
	if len(lines) == 0 {
		warns = append(warns, Warning{Schedule: name, Msg: "no Run lines: this schedule never fires"})
	}
	s.init()
	return s, warns, nil
}

// NewSchedule builds a schedule from parsed runs (line i+1 is runs[i]).
func NewSchedule(name string, runs ...*Run) *Schedule {
	s := &Schedule{Name: name, Runs: runs}
	s.init()
	return s
}

func (s *Schedule) init() {
	s.months, s.live = liveLines(s.Runs)
}

func liveLines(runs []*Run) (months uint16, live []bool) {
	live = make([]bool, len(runs))
	for i, r := range runs {
		live[i] = !neverFires(r)
		if live[i] {
			months |= r.Months
		}
	}
	return months, live
}

// state is what init computed, or (for a Schedule built as a literal,
// or whose Runs changed) the same computed afresh.
func (s *Schedule) state() (uint16, []bool) {
	if s.live != nil && len(s.live) == len(s.Runs) {
		return s.months, s.live
	}
	return liveLines(s.Runs)
}

// ---- civil calendar (proleptic Gregorian, no time zone) ----

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

var monthDays = [12]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func daysIn(y, m int) int {
	if m == 2 && isLeap(y) {
		return 29
	}
	return monthDays[m-1]
}

// day is a local calendar date with what the masks look at.
type day struct {
	y, m, d int // m 1..12, d 1..31
	wd      int // 0 = Sunday
	yd      int // 0-based day of the year
	ldom    int // days in the month
	fty     int // Bareos' "first week day" term for this year (see woy)
}

func weekdayOf(y, m, d int) int {
	return int(time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC).Weekday())
}

// ftyFor: from the weekday of 4 January (Bareos TmWoy).
func ftyFor(jan4wd int) int {
	f := 1 - jan4wd
	if f <= 0 {
		f += 7
	}
	return f
}

func newDay(y, m, d int) day {
	yd := d - 1
	for k := 1; k < m; k++ {
		yd += daysIn(y, k)
	}
	return day{y: y, m: m, d: d, wd: weekdayOf(y, m, d), yd: yd, ldom: daysIn(y, m),
		fty: ftyFor(weekdayOf(y, 1, 4))}
}

// dayBefore is the local date before t's.
func dayBefore(t time.Time) day {
	y, m, d := t.Date()
	if d > 1 {
		return newDay(y, int(m), d-1)
	}
	py, pm := y, int(m)-1
	if pm == 0 {
		py, pm = y-1, 12
	}
	return newDay(py, pm, daysIn(py, pm))
}

func (c *day) next() {
	c.d++
	c.yd++
	c.wd = (c.wd + 1) % 7
	if c.d > c.ldom {
		c.d = 1
		c.m++
		if c.m > 12 {
			c.m, c.y, c.yd = 1, c.y+1, 0
			c.fty = ftyFor((c.wd + 3) % 7) // c.wd is now 1 January's
		}
		c.ldom = daysIn(c.y, c.m)
	}
}

// nextMonth moves to the 1st of the following month.
func (c *day) nextMonth() {
	n := c.ldom - c.d // days left after today
	c.d = c.ldom
	c.yd += n
	c.wd = (c.wd + n) % 7
	c.next()
}

func (c *day) before(y, m, d int) bool {
	if c.y != y {
		return c.y < y
	}
	if c.m != m {
		return c.m < m
	}
	return c.d < d
}

// woy is Bareos' week of the year: week 1 is the Monday-Sunday week
// that contains 4 January, days before it are week 0; weeks run on to
// 53 at the end of December (no roll-over into the next year's week 1).
func woy(yd, fty int) int {
	w := yd - fty + 4
	if w < 0 {
		return 0
	}
	return 1 + w/7
}

// matchesDay: every day field of r matches c.
func (r *Run) matchesDay(c *day) bool {
	if r.Months&(1<<(c.m-1)) == 0 || r.MDays&(1<<(c.d-1)) == 0 || r.WDays&(1<<c.wd) == 0 {
		return false
	}
	if r.WOMs&(1<<((c.d-1)/7)) == 0 && !(r.Last && c.d > c.ldom-7) {
		return false
	}
	return r.WOYs&(1<<woy(c.yd, c.fty)) != 0
}

// neverFires: no date of any kind of year (14 kinds: 1 January on each
// weekday, leap or not) matches r's day fields, or r has no hour. The
// day fields depend on nothing else, so such a line never fires.
func neverFires(r *Run) bool {
	if r.Hours&AllHours == 0 || r.Minute < 0 || r.Minute > 59 {
		return true
	}
	for jan1 := range 7 {
		for _, leap := range [2]bool{false, true} {
			c := day{m: 1, d: 1, wd: jan1, fty: ftyFor((jan1 + 3) % 7)}
			for ; c.m <= 12; c.m++ {
				c.ldom = monthDays[c.m-1]
				if leap && c.m == 2 {
					c.ldom = 29
				}
				if r.Months&(1<<(c.m-1)) == 0 {
					c.yd += c.ldom
					c.wd = (c.wd + c.ldom) % 7
					continue
				}
				for c.d = 1; c.d <= c.ldom; c.d++ {
					if r.matchesDay(&c) {
						return false
					}
					c.yd++
					c.wd = (c.wd + 1) % 7
				}
			}
		}
	}
	return true
}

// resolve turns a local wall-clock minute into the instant it fires at
// in loc: the first occurrence of a repeated wall time (clocks fell
// back), or, for a wall time that does not exist (clocks sprang
// forward over it), the first valid minute after it: the instant the
// clocks jumped.
func resolve(loc *time.Location, y, m, d, h, mi int) (time.Time, bool) {
	t := time.Date(y, time.Month(m), d, h, mi, 0, 0, loc)
	ty, tm, td := t.Date()
	th, tmi, _ := t.Clock()
	want := civilMinutes(y, m, d, h, mi)
	got := civilMinutes(ty, int(tm), td, th, tmi)
	if got == want {
		start, _ := t.ZoneBounds()
		if !start.IsZero() {
			_, off := t.Zone()
			_, prev := start.Add(-time.Second).Zone()
			if prev > off {
				// Clocks went back at start: wall times in
				// [start, start+(prev-off)) happened before too.
				if e := t.Add(-time.Duration(prev-off) * time.Second); e.Before(start) {
					return e, false
				}
			}
		}
		return t, false
	}
	start, end := t.ZoneBounds()
	if got > want {
		return start.In(loc), true // t lies after the gap, in the zone that starts at its end
	}
	return end.In(loc), true
}

// civilMinutes counts minutes from 1 March of year 0 (any fixed origin
// works: only differences and order matter).
func civilMinutes(y, m, d, h, mi int) int64 {
	if m <= 2 {
		y--
		m += 12
	}
	days := int64(365*y + y/4 - y/100 + y/400 + (153*(m-3)+2)/5 + d - 1)
	return days*1440 + int64(h*60+mi)
}

func orLocal(loc *time.Location) *time.Location {
	if loc == nil {
		return time.Local
	}
	return loc
}

// dayFires appends the fires of every live line on local date c, in
// order of (At, Line), without repeats of a line at one instant.
func (s *Schedule) dayFires(c *day, loc *time.Location, live []bool, buf []Fire) []Fire {
	n0 := len(buf)
	for i, r := range s.Runs {
		if !live[i] || !r.matchesDay(c) {
			continue
		}
		for h := range 24 {
			if r.Hours&(1<<h) == 0 {
				continue
			}
			at, moved := resolve(loc, c.y, c.m, c.d, h, r.Minute)
			if moved && r.firesOnNextDay(c, at) {
				continue // that day fires at this very instant itself
			}
			if k := len(buf); k > n0 && buf[k-1].Line == i+1 && buf[k-1].At.Equal(at) {
				// A gap moved an earlier hour onto this one: one fire,
				// not "moved" if this hour is the line's own.
				buf[k-1].Moved = buf[k-1].Moved && moved
				continue
			}
			buf = append(buf, Fire{At: at, Line: i + 1, Overrides: r.Overrides, Moved: moved})
		}
	}
	if len(s.Runs) > 1 {
		slices.SortStableFunc(buf[n0:], func(a, b Fire) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return a.Line - b.Line
		})
	}
	return buf
}

// firesOnNextDay: a gap that crosses midnight (Samoa skipped 30 December
// 2011) moved a fire of date c to at, on a later date; is at also one of
// that date's own fires of r?
func (r *Run) firesOnNextDay(c *day, at time.Time) bool {
	y, m, d := at.Date()
	if y == c.y && int(m) == c.m && d == c.d {
		return false
	}
	n := newDay(y, int(m), d)
	return at.Minute() == r.Minute && r.Hours&(1<<at.Hour()) != 0 && r.matchesDay(&n)
}

// maxScanDays bounds Next: the Gregorian calendar repeats every 400
// years (146097 days, a whole number of weeks), so a line that can fire
// fires within that span.
const maxScanDays = 146097 + 366

// Next is the first fire strictly after after, evaluated in loc (nil:
// the local zone); false when the schedule never fires. When several
// lines fire at that instant this is the lowest line: NextFires has
// them all.
func (s *Schedule) Next(after time.Time, loc *time.Location) (Fire, bool) {
	var one [4]Fire
	fs := s.NextFires(after, loc, one[:0])
	if len(fs) == 0 {
		return Fire{}, false
	}
	return fs[0], true
}

// NextFires appends to dst every fire at the earliest instant strictly
// after after (one per line firing then, in line order, as Bareos
// starts one job per Run line) and returns it; dst unchanged when the
// schedule never fires.
func (s *Schedule) NextFires(after time.Time, loc *time.Location, dst []Fire) []Fire {
	loc = orLocal(loc)
	months, live := s.state()
	if months == 0 {
		return dst
	}
	// Start a day early: a fire moved over a gap can cross midnight.
	c := dayBefore(after.In(loc))
	var bufArr [32]Fire
	buf := bufArr[:0]
	for n := 0; n < maxScanDays; n++ {
		if months&(1<<(c.m-1)) == 0 {
			c.nextMonth()
			continue
		}
		buf = s.dayFires(&c, loc, live, buf[:0])
		for k := range buf {
			if buf[k].At.After(after) {
				at := buf[k].At
				for ; k < len(buf) && buf[k].At.Equal(at); k++ {
					dst = append(dst, buf[k])
				}
				return dst
			}
		}
		c.next()
	}
	return dst
}

// Between yields every fire with from <= At < to, in order of (At,
// Line), evaluated in loc (nil: the local zone): the preview.
func (s *Schedule) Between(from, to time.Time, loc *time.Location) iter.Seq[Fire] {
	loc = orLocal(loc)
	return func(yield func(Fire) bool) {
		months, live := s.state()
		if months == 0 || !from.Before(to) {
			return
		}
		c := dayBefore(from.In(loc))
		ty, tm, td := to.In(loc).Date()
		// Stop after the day following to's date (a fall back can put
		// that day's first minutes before to).
		end := newDay(ty, int(tm), td)
		end.next()
		var bufArr [32]Fire
		buf := bufArr[:0]
		for !end.before(c.y, c.m, c.d) {
			if months&(1<<(c.m-1)) == 0 {
				c.nextMonth()
				continue
			}
			buf = s.dayFires(&c, loc, live, buf[:0])
			for _, f := range buf {
				if f.At.Before(from) {
					continue
				}
				if !f.At.Before(to) {
					return
				}
				if !yield(f) {
					return
				}
			}
			c.next()
		}
	}
}
