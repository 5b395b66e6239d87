package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a Run line that does not parse. It names the line
// (1-based; a single Parse is line 1), the column (1-based, in
// characters; one past the end when the line ended too early), what was
// expected there and what was found ("" when the line ended).
type SyntaxError struct {
	Schedule string // the schedule's name, "" for a lone Parse
	Line     int
	Col      int
	Expected string
	Got      string
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	if e.Schedule != "" {
		fmt.Fprintf(&b, "schedule %q: ", e.Schedule)
	}
	fmt.Fprintf(&b, "run line %d, column %d: %s", e.Line, e.Col, e.Expected)
	if e.Got != "" {
		fmt.Fprintf(&b, "; got %q", e.Got)
	} else {
		b.WriteString("; the line ends there")
	}
	return b.String()
}

// Warning is a line that parses but probably does not mean what it
// says (a trap of the Bareos grammar). Col is 1-based, 0 for the line as
// a whole; Line is 0 for the schedule as a whole (no Run lines).
type Warning struct {
	Schedule string
	Line     int
	Col      int
	Msg      string
}

func (w Warning) String() string {
	var b strings.Builder
	if w.Schedule != "" {
		fmt.Fprintf(&b, "schedule %q: ", w.Schedule)
	}
	switch {
	case w.Line == 0:
		b.WriteString(w.Msg) // the schedule as a whole
	case w.Col > 0:
		fmt.Fprintf(&b, "run line %d, column %d: %s", w.Line, w.Col, w.Msg)
	default:
		fmt.Fprintf(&b, "run line %d: %s", w.Line, w.Msg)
	}
	return b.String()
}

type tokKind uint8

const (
	tWord   tokKind = iota
	tEquals         // "="
	tQuoted         // "..." (s without the quotes)
)

type token struct {
	s    string
	col  int
	kind tokKind
}

func isSeparator(r rune) bool {
	return unicode.IsSpace(r) || r == ',' || r == '=' || r == '"' || unicode.IsControl(r)
}

// tokenize splits a line into words, "=" and quoted strings; blanks and
// commas only separate (Bareos ignores commas).
func tokenize(line string) ([]token, *SyntaxError) {
	toks := make([]token, 0, 8)
	col := 1
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == '=':
			toks = append(toks, token{s: "=", col: col, kind: tEquals})
			i += size
			col++
		case r == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, &SyntaxError{Col: col + utf8.RuneCountInString(line[i:]), Expected: `a closing quote '"'`}
			}
			s := line[i+1 : i+1+j]
			if strings.ContainsFunc(s, unicode.IsControl) {
				return nil, &SyntaxError{Col: col, Expected: "a name without control characters", Got: s}
			}
			toks = append(toks, token{s: s, col: col, kind: tQuoted})
			col += utf8.RuneCountInString(line[i : i+2+j])
			i += 2 + j
		case isSeparator(r):
			i += size
			col++
		default:
			j := i
			n := 0
			for j < len(line) {
				r, size := utf8.DecodeRuneInString(line[j:])
				if isSeparator(r) {
					break
				}
				j += size
				n++
			}
			toks = append(toks, token{s: line[i:j], col: col, kind: tWord})
			col += n
			i = j
		}
	}
	return toks, nil
}

// Parse parses one Run line (the text after `Run =`). Errors are
// *SyntaxError with Line 1; warnings name the traps the line falls in.
func Parse(line string) (*Run, []Warning, error) {
	return parseLine(line, 1, "")
}

func parseLine(line string, lineNo int, sched string) (*Run, []Warning, error) {
	toks, serr := tokenize(line)
	if serr == nil {
		var p parser
		var r Run
		r, serr = p.parse(toks, -1, endCol(line))
		if serr == nil {
			ws := p.warnings(toks, &r, endCol(line))
			for i := range ws {
				ws[i].Line, ws[i].Schedule = lineNo, sched
			}
			return &r, ws, nil
		}
	}
	serr.Line, serr.Schedule = lineNo, sched
	return nil, nil, serr
}

func endCol(line string) int { return utf8.RuneCountInString(line) + 1 }

type kwKind uint8

const (
	kNone kwKind = iota // "on": noise
	kAt
	kLast
	kWDay
	kMonth
	kWOM
	kDaily
	kWeekly
	kMonthly
	kHourly
)

type keyword struct {
	kind kwKind
	code int
}

var keywords = map[string]keyword{
	"on": {kNone, 0}, "at": {kAt, 0}, "last": {kLast, 0},
	"daily": {kDaily, 0}, "weekly": {kWeekly, 0}, "monthly": {kMonthly, 0}, "hourly": {kHourly, 0},
	"sun": {kWDay, 0}, "mon": {kWDay, 1}, "tue": {kWDay, 2}, "wed": {kWDay, 3}, "thu": {kWDay, 4}, "fri": {kWDay, 5}, "sat": {kWDay, 6},
	"sunday": {kWDay, 0}, "monday": {kWDay, 1}, "tuesday": {kWDay, 2}, "wednesday": {kWDay, 3},
	"thursday": {kWDay, 4}, "friday": {kWDay, 5}, "saturday": {kWDay, 6},
	"jan": {kMonth, 0}, "feb": {kMonth, 1}, "mar": {kMonth, 2}, "apr": {kMonth, 3}, "may": {kMonth, 4}, "jun": {kMonth, 5},
	"jul": {kMonth, 6}, "aug": {kMonth, 7}, "sep": {kMonth, 8}, "oct": {kMonth, 9}, "nov": {kMonth, 10}, "dec": {kMonth, 11},
	"january": {kMonth, 0}, "february": {kMonth, 1}, "march": {kMonth, 2}, "april": {kMonth, 3}, "june": {kMonth, 5},
	"july": {kMonth, 6}, "august": {kMonth, 7}, "september": {kMonth, 8}, "october": {kMonth, 9},
	"november": {kMonth, 10}, "december": {kMonth, 11},
	"1st": {kWOM, 0}, "2nd": {kWOM, 1}, "3rd": {kWOM, 2}, "4th": {kWOM, 3}, "5th": {kWOM, 4},
	"first": {kWOM, 0}, "second": {kWOM, 1}, "third": {kWOM, 2}, "fourth": {kWOM, 3}, "fifth": {kWOM, 4},
}

func lookup(s string) (keyword, bool) {
	k, ok := keywords[strings.ToLower(s)]
	return k, ok
}

var levels = map[string]string{"full": "Full", "incremental": "Incremental", "differential": "Differential"}

// Bareos levels and overrides Tapeward does not have: named in the error.
var bareosOnlyLevels = map[string]bool{"base": true, "since": true, "virtualfull": true, "initcatalog": true,
	"catalog": true, "volumetocatalog": true, "disktocatalog": true, "data": true}
var bareosOnlyOverrides = map[string]bool{"nextpool": true, "messages": true, "spooldata": true,
	"maxrunschedtime": true, "accurate": true, "vfullpool": true}

const expectSpec = "a month (jan), a day of the month (1-31), a weekday (mon), 1st-5th or last, a week (w00-w53), " +
	"a range (mon-fri) or modulo (1/2, w01/w02), `at` and a time, hourly, daily, weekly or monthly"

// parser is Bareos' run-line state machine: each field is "all" until
// the line first names it, then only what the line names.
type parser struct {
	haveHour, haveMDay, haveWDay, haveMonth, haveWOM, haveWOY, haveAt bool
	timed, hourly                                                     bool
	minuteCol                                                         int
	specStart                                                         int    // index of the first date-time token
	hourTok                                                           *token // a time naming an hour other than 0
	equalRanges                                                       []token
}

func errAt(t token, expected string) *SyntaxError {
	return &SyntaxError{Col: t.col, Expected: expected, Got: t.s}
}

// parse parses toks, skipping toks[skip] (for the `daily` check).
func (p *parser) parse(toks []token, skip int, end int) (Run, *SyntaxError) {
	*p = parser{}
	r := Run{Hours: AllHours, MDays: AllMDays, Months: AllMonths, WDays: AllWDays, WOMs: AllWOMs, WOYs: AllWOYs}
	if len(toks) == 0 {
		return r, &SyntaxError{Col: 1, Expected: "a Run line: overrides and a date-time spec such as `mon-fri at 21:00`"}
	}
	seen := map[string]int{}
	i := 0
	// Overrides: Key=Value and bare levels, before the date-time spec.
	for ; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tEquals {
			return r, errAt(t, "an override name before '=' (Level, Pool, FullPool, IncrementalPool, DifferentialPool, Storage, Priority)")
		}
		if t.kind == tQuoted {
			return r, errAt(t, "an override (Pool=\"…\") or "+expectSpec)
		}
		lower := strings.ToLower(t.s)
		if i+1 < len(toks) && toks[i+1].kind == tEquals {
			key := overrideKey(lower)
			if key == "" {
				if bareosOnlyOverrides[lower] {
					return r, errAt(t, "an override Tapeward supports (Level, Pool, FullPool, IncrementalPool, DifferentialPool, Storage, Priority); "+t.s+"= is Bareos-only")
				}
				return r, errAt(t, "an override name (Level, Pool, FullPool, IncrementalPool, DifferentialPool, Storage, Priority)")
			}
			if c, dup := seen[key]; dup {
				return r, errAt(t, fmt.Sprintf("each override once per line (%s= is already given at column %d)", key, c))
			}
			seen[key] = t.col
			if i+2 >= len(toks) || toks[i+2].kind == tEquals {
				got := token{col: end}
				if i+2 < len(toks) {
					got = toks[i+2]
				}
				return r, errAt(got, "a value must follow `"+key+"=`")
			}
			v := toks[i+2]
			if err := setOverride(&r.Overrides, key, v); err != nil {
				return r, err
			}
			i += 2
			continue
		}
		if t.kind == tWord {
			if lv, ok := levels[lower]; ok {
				if c, dup := seen["Level"]; dup {
					return r, errAt(t, fmt.Sprintf("each override once per line (the level is already given at column %d)", c))
				}
				seen["Level"] = t.col
				r.Level = lv
				continue
			}
			if bareosOnlyLevels[lower] {
				return r, errAt(t, "a level Tapeward supports (Full, Incremental or Differential)")
			}
		}
		break
	}
	p.specStart = i
	if i == len(toks) {
		// Only overrides: Bareos' defaults apply (every hour at :00);
		// the no-time warning says so.
		p.finish(&r)
		return r, nil
	}
	// Date-time spec.
	hasHourly := false
	for _, t := range toks[i:] {
		if k, ok := lookup(t.s); ok && t.kind == tWord && k.kind == kHourly {
			hasHourly = true
		}
	}
	for ; i < len(toks); i++ {
		if i == skip {
			continue
		}
		t := toks[i]
		if t.kind != tWord {
			return r, errAt(t, expectSpec)
		}
		if lower := strings.ToLower(t.s); i+1 < len(toks) && toks[i+1].kind == tEquals && (overrideKey(lower) != "" || bareosOnlyOverrides[lower]) {
			return r, errAt(t, "overrides (Key=Value) before the date and time")
		}
		if _, ok := levels[strings.ToLower(t.s)]; ok {
			return r, errAt(t, "the level before the date and time")
		}
		s := t.s
		switch {
		case strings.ContainsRune(s, '-'):
			if err := p.rangeTok(&r, t); err != nil {
				return r, err
			}
		case strings.ContainsRune(s, ':'):
			if err := p.timeTok(&r, t, hasHourly); err != nil {
				return r, err
			}
		case strings.ContainsRune(s, '/'):
			if err := p.moduloTok(&r, t); err != nil {
				return r, err
			}
		case isDigits(s):
			d, err := strconv.Atoi(s)
			if err != nil || d < 1 || d > 31 {
				return r, errAt(t, "a day of the month 1-31")
			}
			p.setMDay(&r, d-1)
		case isWeek(s):
			w, _ := strconv.Atoi(s[1:])
			if w > 53 {
				return r, errAt(t, "a week of the year w00-w53")
			}
			p.setWOY(&r, w)
		default:
			k, ok := lookup(s)
			if !ok {
				if (s[0] == 'w' || s[0] == 'W') && isDigits(s[1:]) {
					return r, errAt(t, "a week of the year as w and two digits (w00-w53)")
				}
				return r, errAt(t, expectSpec)
			}
			switch k.kind {
			case kNone:
			case kAt:
				if i+1 >= len(toks) || toks[i+1].kind != tWord || !strings.ContainsRune(toks[i+1].s, ':') || strings.ContainsRune(toks[i+1].s, '-') {
					got := token{col: end}
					if i+1 < len(toks) {
						got = toks[i+1]
					}
					return r, errAt(got, "a time must follow \"at\" (HH:MM, H:MMam or H:MMpm)")
				}
				p.haveAt = true
			case kLast:
				r.Last = true
				p.clearWOM(&r)
			case kWDay:
				p.setWDay(&r, k.code)
			case kMonth:
				p.setMonth(&r, k.code)
			case kWOM:
				p.setWOM(&r, k.code)
			case kHourly:
				p.haveHour, p.hourly = true, true
				r.Hours = AllHours
			case kWeekly:
				// Bareos: resets day of month, week of month and week of
				// year to "all" and counts them as named.
				p.haveMDay, p.haveWOM, p.haveWOY = true, true, true
				r.MDays, r.WOMs, r.WOYs = AllMDays, AllWOMs, AllWOYs
			case kDaily:
				// Bareos: resets the weekdays to "all" and counts the day
				// of month as named (so later day numbers add to "all").
				p.haveMDay = true
				r.WDays = AllWDays
			case kMonthly:
				p.haveMonth = true
				r.Months = AllMonths
			}
		}
	}
	p.finish(&r)
	return r, nil
}

func (p *parser) finish(r *Run) {
	if r.WOMs == AllWOMs {
		r.Last = false // every week of the month already matches
	}
}

func overrideKey(lower string) string {
	switch lower {
	case "level":
		return "Level"
	case "pool":
		return "Pool"
	case "fullpool":
		return "FullPool"
	case "incrementalpool":
		return "IncrementalPool"
	case "differentialpool":
		return "DifferentialPool"
	case "storage":
		return "Storage"
	case "priority":
		return "Priority"
	}
	return ""
}

func setOverride(o *Overrides, key string, v token) *SyntaxError {
	if v.s == "" {
		return errAt(v, "a non-empty value for `"+key+"=`")
	}
	switch key {
	case "Level":
		lv, ok := levels[strings.ToLower(v.s)]
		if !ok || v.kind != tWord {
			return errAt(v, "a level after `Level=`: Full, Incremental or Differential")
		}
		o.Level = lv
	case "Priority":
		n, err := strconv.ParseInt(v.s, 10, 32)
		if err != nil || n < 1 || !isDigits(v.s) {
			return errAt(v, "a priority after `Priority=`: a whole number from 1 to 2147483647")
		}
		o.Priority, o.HasPriority = int(n), true
	case "Pool":
		o.Pool = v.s
	case "FullPool":
		o.FullPool = v.s
	case "IncrementalPool":
		o.IncrementalPool = v.s
	case "DifferentialPool":
		o.DifferentialPool = v.s
	case "Storage":
		o.Storage = v.s
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isWeek(s string) bool {
	return len(s) == 3 && (s[0] == 'w' || s[0] == 'W') && isDigits(s[1:])
}

func (p *parser) setMDay(r *Run, bit int) {
	if !p.haveMDay {
		r.MDays, p.haveMDay = 0, true
	}
	r.MDays |= 1 << bit
}

func (p *parser) setWDay(r *Run, bit int) {
	if !p.haveWDay {
		r.WDays, p.haveWDay = 0, true
	}
	r.WDays |= 1 << bit
}

func (p *parser) setMonth(r *Run, bit int) {
	if !p.haveMonth {
		r.Months, p.haveMonth = 0, true
	}
	r.Months |= 1 << bit
}

func (p *parser) clearWOM(r *Run) {
	if !p.haveWOM {
		r.WOMs, p.haveWOM = 0, true
	}
}

func (p *parser) setWOM(r *Run, bit int) {
	p.clearWOM(r)
	r.WOMs |= 1 << bit
}

func (p *parser) setWOY(r *Run, bit int) {
	if !p.haveWOY {
		r.WOYs, p.haveWOY = 0, true
	}
	r.WOYs |= 1 << bit
}

// timeTok: HH:MM (24 h), H:MMam / H:MMpm (12am = 00:00, 12pm = 12:00),
// and :MM only on an hourly line. One minute per line.
func (p *parser) timeTok(r *Run, t token, hasHourly bool) *SyntaxError {
	if !p.haveAt {
		return errAt(t, "`at` before a time (at "+t.s+")")
	}
	hs, rest, _ := strings.Cut(t.s, ":")
	if len(rest) < 2 || !isDigits(rest[:2]) {
		return errAt(t, "a time as HH:MM, H:MMam or H:MMpm (two-digit minutes)")
	}
	mins, _ := strconv.Atoi(rest[:2])
	suffix := strings.ToLower(rest[2:])
	if suffix != "" && suffix != "am" && suffix != "pm" {
		return errAt(t, "a time as HH:MM, H:MMam or H:MMpm (only am or pm may follow the minutes)")
	}
	if mins > 59 {
		return errAt(t, "minutes 00-59")
	}
	var hour int
	switch {
	case hs == "":
		if !hasHourly || suffix != "" {
			return errAt(t, "an hour before the minutes (Bareos reads `at :MM` as 00:MM; write `hourly at :MM` for every hour, `at 0:MM` for midnight)")
		}
	case len(hs) > 2 || !isDigits(hs):
		return errAt(t, "a time as HH:MM, H:MMam or H:MMpm (one- or two-digit hour)")
	default:
		hour, _ = strconv.Atoi(hs)
		if suffix == "" {
			if hour > 23 {
				return errAt(t, "an hour 0-23")
			}
		} else {
			if hour < 1 || hour > 12 {
				return errAt(t, "an hour 1-12 before am/pm")
			}
			if hour == 12 {
				hour = 0 // 12am = 00:xx, 12pm = 12:xx
			}
			if suffix == "pm" {
				hour += 12
			}
		}
	}
	if p.timed && mins != r.Minute {
		return errAt(t, fmt.Sprintf("the same minute as the time at column %d (:%02d): a Run line has one minute (Bareos would move every time of the line to the last one); write a second Run line", p.minuteCol, r.Minute))
	}
	if !p.haveHour {
		r.Hours = 0
	}
	p.haveHour = true
	r.Hours |= 1 << hour
	r.Minute = mins
	if hour != 0 && p.hourTok == nil {
		p.hourTok = &t
	}
	if !p.timed {
		p.timed, p.minuteCol = true, t.col
	}
	return nil
}

func (p *parser) moduloTok(r *Run, t token) *SyntaxError {
	a, b, _ := strings.Cut(t.s, "/")
	switch {
	case isDigits(a) && isDigits(b):
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || x < 1 || x > 31 || y < 1 || y > 30 {
			return errAt(t, "a day modulo a/b with a day a of 1-31 and a step b of 1-30 (1/2 = odd days)")
		}
		if x-1 > y {
			return errAt(t, "a day modulo a/b whose first day a is at most b+1 (Bareos: the offset may not exceed the modulo)")
		}
		if !p.haveMDay {
			r.MDays, p.haveMDay = 0, true
		}
		for d := x - 1; d <= 30; d += y {
			r.MDays |= 1 << d
		}
	case isWeek(a) && isWeek(b):
		x, _ := strconv.Atoi(a[1:])
		y, _ := strconv.Atoi(b[1:])
		if x > 53 || y < 1 || y > 53 {
			return errAt(t, "a week modulo wA/wB with a week A of w00-w53 and a step B of w01-w53")
		}
		if x > y {
			return errAt(t, "a week modulo wA/wB with A at most B (Bareos: the offset may not exceed the modulo)")
		}
		if !p.haveWOY {
			r.WOYs, p.haveWOY = 0, true
		}
		for w := x; w <= 53; w += y {
			r.WOYs |= 1 << w
		}
	default:
		return errAt(t, "a modulo of days (1/2) or of weeks (w01/w02)")
	}
	return nil
}

func (p *parser) rangeTok(r *Run, t token) *SyntaxError {
	a, b, _ := strings.Cut(t.s, "-")
	const expect = "a range of days (1-15), weeks (w01-w10), weekdays (mon-fri), months (jan-mar) or positions (2nd-5th)"
	switch {
	case isDigits(a) && isDigits(b):
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || x < 1 || x > 31 || y < 1 || y > 31 {
			return errAt(t, "a range of days of the month 1-31")
		}
		if !p.haveMDay {
			r.MDays, p.haveMDay = 0, true
		}
		if x == y {
			p.equalRanges = append(p.equalRanges, t)
		}
		r.MDays |= uint32(rangeBits(x-1, y-1, 31))
	case isWeek(a) && isWeek(b):
		x, _ := strconv.Atoi(a[1:])
		y, _ := strconv.Atoi(b[1:])
		if x > 53 || y > 53 {
			return errAt(t, "a range of weeks w00-w53")
		}
		if !p.haveWOY {
			r.WOYs, p.haveWOY = 0, true
		}
		if x == y {
			p.equalRanges = append(p.equalRanges, t)
		}
		r.WOYs |= rangeBits(x, y, 54)
	default:
		ka, ok1 := lookup(a)
		kb, ok2 := lookup(b)
		if !ok1 || !ok2 || (ka.kind != kWDay && ka.kind != kMonth && ka.kind != kWOM) {
			return errAt(t, expect)
		}
		if ka.kind != kb.kind {
			return errAt(t, "both ends of a range of the same kind (mon-fri, jan-mar, 2nd-5th)")
		}
		if ka.code == kb.code {
			return errAt(t, "a range whose ends differ (Bareos refuses mon-mon; write the one name)")
		}
		switch ka.kind {
		case kWDay:
			if !p.haveWDay {
				r.WDays, p.haveWDay = 0, true
			}
			r.WDays |= uint8(rangeBits(ka.code, kb.code, 7))
		case kMonth:
			if !p.haveMonth {
				r.Months, p.haveMonth = 0, true
			}
			r.Months |= uint16(rangeBits(ka.code, kb.code, 12))
		case kWOM:
			p.clearWOM(r)
			r.WOMs |= uint8(rangeBits(ka.code, kb.code, 5))
		}
	}
	return nil
}

// rangeBits is Bareos' range: a..b, or a..n-1 and 0..b when it wraps
// (a >= b: so equal ends cover everything).
func rangeBits(a, b, n int) uint64 {
	var m uint64
	if a < b {
		for i := a; i <= b; i++ {
			m |= 1 << i
		}
		return m
	}
	for i := a; i < n; i++ {
		m |= 1 << i
	}
	for i := 0; i <= b; i++ {
		m |= 1 << i
	}
	return m
}

// warnings lists the traps of a parsed line.
func (p *parser) warnings(toks []token, r *Run, end int) []Warning {
	var ws []Warning
	timed, hourly := p.timed, p.hourly
	for _, t := range p.equalRanges {
		ws = append(ws, Warning{Col: t.col, Msg: fmt.Sprintf("the range %s has equal ends, which Bareos reads as a full wrap: it matches everything; write the single value", t.s)})
	}
	for i := p.specStart; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tWord {
			continue
		}
		k, ok := lookup(t.s)
		if !ok {
			continue
		}
		switch k.kind {
		case kWeekly:
			ws = append(ws, Warning{Col: t.col, Msg: "`weekly` restricts nothing (it only resets day of month, week of month and week of year to all): " +
				"this line fires " + dayPhrase(r) + "; name a weekday (sun) to run once a week"})
		case kMonthly:
			ws = append(ws, Warning{Col: t.col, Msg: "`monthly` restricts nothing (it only resets the months to all): " +
				"this line fires " + dayPhrase(r) + "; name a day (1) or a position (1st sun) to run once a month"})
		case kDaily:
			var q parser
			without, err := q.parse(toks, i, end)
			if err == nil && without != *r {
				ws = append(ws, Warning{Col: t.col, Msg: "`daily` here undoes a restriction (Bareos: it resets the weekdays to all and makes later day numbers add to all days): " +
					"this line fires " + dayPhrase(r) + "; without `daily` it would fire on fewer days"})
			}
		}
	}
	if hourly && p.hourTok != nil {
		ws = append(ws, Warning{Col: p.hourTok.col, Msg: fmt.Sprintf("`hourly` fires every hour: the hour of %s is ignored, only its minute counts (write `hourly at :%02d`)", p.hourTok.s, r.Minute)})
	}
	if !timed && !hourly {
		ws = append(ws, Warning{Msg: "no time: this line fires at the start of every hour (write `at HH:MM` for one time a day, or `hourly` to mean every hour)"})
	}
	if neverFires(r) {
		ws = append(ws, Warning{Msg: "this line never fires (no date matches all of its fields, e.g. 31 in a 30-day month, 30 feb, w53 in January)"})
	}
	return ws
}

// dayPhrase is a short description for warnings.
func dayPhrase(r *Run) string {
	if r.MDays == AllMDays && r.WDays == AllWDays && r.WOMs == AllWOMs && r.WOYs == AllWOYs {
		if r.Months == AllMonths {
			return "every day"
		}
		return "every day of the months it names"
	}
	return "on every day its other fields allow"
}
