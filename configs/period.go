package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Period is a length of time for retentions, intervals and the job
// timeouts of director.toml: a quoted string, either Go's duration syntax
// ("90s", "30m", "1h30m", "12h") or amounts with units as Bareos writes
// them ("30 days", "6 months", "1 year", "1 year 6 months", "2 weeks";
// compact "30d", "2w", "1y" too). Units, case-insensitive:
//
//	ns, us, ms                              as in Go
//	s, sec, secs, second, seconds
//	m, min, mins, minute, minutes           "m" is MINUTES, as in Go
//	h, hour, hours
//	d, day, days
//	w, week, weeks                          7 days
//	mo, month, months                       30 days (as Bareos)
//	q, quarter, quarters                    91 days (as Bareos)
//	y, year, years                          365 days (as Bareos)
//
// Bareos reads a lone "m" as months; a retention written with "m"
// ("6m") is therefore refused with a message asking for "6 months" or
// "6 minutes" (see the keys that say so). "0" is zero; whether zero is
// allowed (and what it means) is said by each key. Negative periods are
// errors.
type Period struct {
	time.Duration
	// bareM: the text used the unit "m" (minutes here, months in
	// Bareos).
	bareM bool
	text  string // as written, for messages
}

// written is the period as the file wrote it (for messages).
func (p Period) written() string {
	if p.text != "" {
		return p.text
	}
	return p.String()
}

// Lengths of the calendar units (fixed, as Bareos counts them).
const (
	Day     = 24 * time.Hour
	Week    = 7 * Day
	Month   = 30 * Day
	Quarter = 91 * Day
	Year    = 365 * Day
)

var periodUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": Day, "day": Day, "days": Day,
	"w": Week, "week": Week, "weeks": Week,
	"mo": Month, "month": Month, "months": Month,
	"q": Quarter, "quarter": Quarter, "quarters": Quarter,
	"y": Year, "year": Year, "years": Year,
}

const periodHelp = `write e.g. "30 days", "6 months", "1 year", "2w" or a Go duration such as "12h" or "1h30m" (units: s, min, h, d, w, months, y)`

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Period) UnmarshalText(b []byte) error {
	d, bareM, err := parsePeriod(string(b))
	if err != nil {
		return err
	}
	p.Duration, p.bareM, p.text = d, bareM, strings.TrimSpace(string(b))
	return nil
}

// parsePeriod parses Period's syntax.
func parsePeriod(in string) (time.Duration, bool, error) {
	s := strings.TrimSpace(in)
	if s == "" {
		return 0, false, fmt.Errorf(`"" is not a period; %s`, periodHelp)
	}
	if s == "0" {
		return 0, false, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, false, fmt.Errorf("%q is negative; %s", s, periodHelp)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, false, fmt.Errorf("%s has no unit; write a quoted period such as \"%s days\" or \"%sh\" (units: s, min, h, d, w, months, y)", s, s, s)
	}
	var total float64
	bareM := false
	rest := s
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		n := 0
		for n < len(rest) && (rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.') {
			n++
		}
		num, err := strconv.ParseFloat(rest[:n], 64)
		if n == 0 || err != nil {
			return 0, false, fmt.Errorf("%q is not a period; %s", s, periodHelp)
		}
		rest = strings.TrimLeft(rest[n:], " \t")
		u := 0
		for u < len(rest) && !strings.ContainsRune(" \t,0123456789.", rune(rest[u])) {
			u++
		}
		unit := strings.ToLower(rest[:u])
		rest = rest[u:]
		if unit == "" {
			return 0, false, fmt.Errorf("%q: %s has no unit; %s", s, strconv.FormatFloat(num, 'f', -1, 64), periodHelp)
		}
		mult, ok := periodUnits[unit]
		if !ok {
			return 0, false, fmt.Errorf("%q is not a period: unknown unit %q; %s", s, unit, periodHelp)
		}
		if unit == "m" {
			bareM = true
		}
		total += num * float64(mult)
		if total > math.MaxInt64 {
			return 0, false, fmt.Errorf("%q is too long (at most about 290 years)", s)
		}
	}
	return time.Duration(total), bareM, nil
}

// String shows the period in days when it is a whole number of days,
// else as a Go duration.
func (p Period) String() string { return periodString(p.Duration) }

func periodString(d time.Duration) string {
	switch {
	case d == Day:
		return "1 day"
	case d > 0 && d%Day == 0:
		return fmt.Sprintf("%d days", d/Day)
	}
	return d.String()
}

// MarshalText implements encoding.TextMarshaler.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
