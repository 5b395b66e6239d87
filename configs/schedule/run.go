package schedule

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Overrides are the job settings a Run line replaces for the jobs it
// starts. An empty string (and HasPriority false) means "not overridden":
// the job's own setting applies.
type Overrides struct {
	// Level is "Full", "Incremental", "Differential" or "".
	Level            string
	Pool             string
	FullPool         string
	IncrementalPool  string
	DifferentialPool string
	Storage          string
	// Priority is 1 or more when HasPriority (Bareos: a lower number
	// runs first; 0 means "not set" there, so it is refused here).
	Priority    int
	HasPriority bool
}

// Bit masks of a Run. A run fires at a minute when every mask matches
// (the week-of-month mask or the Last flag, see Run).
const (
	AllHours  uint32 = 1<<24 - 1 // bit h: hour h, 0..23
	AllMDays  uint32 = 1<<31 - 1 // bit d-1: day of month d, 1..31
	AllMonths uint16 = 1<<12 - 1 // bit m-1: month m, 1 = January
	AllWDays  uint8  = 1<<7 - 1  // bit w: weekday w, 0 = Sunday
	AllWOMs   uint8  = 1<<5 - 1  // bit n-1: days 7(n-1)+1 .. 7n of the month (1st..5th)
	AllWOYs   uint64 = 1<<54 - 1 // bit w: week of year w, 0..53
)

// Run is one parsed `Run` line: overrides and the masks it fires on.
// The zero Run never fires; Parse returns a Run whose unnamed fields are
// "all".
type Run struct {
	Overrides
	Hours  uint32 // AllHours layout
	Minute int    // 0..59: the one minute of every hour in Hours
	MDays  uint32 // AllMDays layout
	Months uint16 // AllMonths layout
	WDays  uint8  // AllWDays layout
	WOMs   uint8  // AllWOMs layout
	// Last adds the last 7 days of the month to WOMs (Bareos `last`):
	// a day matches the week-of-month field when its WOMs bit is set or
	// Last is set and it is one of the month's last 7 days.
	Last bool
	WOYs uint64 // AllWOYs layout; week 1 contains 4 January, w00 is before it
}

var (
	monthNames = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	wdayNames  = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	womNames   = [5]string{"1st", "2nd", "3rd", "4th", "5th"}
)

// String is the canonical form of the line: overrides, then months,
// week of month, weekdays, days of month, weeks of year and the time,
// each field omitted when it is "all". Parse(r.String()) gives r back
// (for any r Parse returned).
func (r Run) String() string {
	var b strings.Builder
	b.Grow(64)
	sp := func() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
	}
	o := &r.Overrides
	if o.Level != "" {
		sp()
		b.WriteString("Level=" + o.Level)
	}
	for _, kv := range [...]struct{ k, v string }{
		{"Pool", o.Pool}, {"FullPool", o.FullPool}, {"IncrementalPool", o.IncrementalPool},
		{"DifferentialPool", o.DifferentialPool}, {"Storage", o.Storage},
	} {
		if kv.v != "" {
			sp()
			b.WriteString(kv.k + "=" + quoteName(kv.v))
		}
	}
	if o.HasPriority {
		sp()
		b.WriteString("Priority=" + strconv.Itoa(o.Priority))
	}
	if r.Months != AllMonths {
		sp()
		writeRuns(&b, uint64(r.Months), 12, func(i int) string { return monthNames[i] })
	}
	if r.WOMs != AllWOMs {
		if r.WOMs != 0 {
			sp()
			writeRuns(&b, uint64(r.WOMs), 5, func(i int) string { return womNames[i] })
		}
		if r.Last {
			sp()
			b.WriteString("last")
		}
	}
	if r.WDays != AllWDays {
		sp()
		writeRuns(&b, uint64(r.WDays), 7, func(i int) string { return wdayNames[i] })
	}
	if r.MDays != AllMDays {
		sp()
		if a, step, ok := progression(uint64(r.MDays), 31); ok && a <= step {
			// bits a, a+step, ... : Bareos' day modulo "a+1/step"
			// (its offset, a, may not exceed the step).
			fmt.Fprintf(&b, "%d/%d", a+1, step)
		} else {
			writeRuns(&b, uint64(r.MDays), 31, func(i int) string { return strconv.Itoa(i + 1) })
		}
	}
	if r.WOYs != AllWOYs {
		sp()
		if a, step, ok := progression(r.WOYs, 54); ok && a <= step {
			fmt.Fprintf(&b, "w%02d/w%02d", a, step)
		} else {
			writeRuns(&b, r.WOYs, 54, func(i int) string { return fmt.Sprintf("w%02d", i) })
		}
	}
	sp()
	if r.Hours == AllHours {
		fmt.Fprintf(&b, "hourly at 0:%02d", r.Minute)
	} else {
		b.WriteString("at")
		for h := range 24 {
			if r.Hours&(1<<h) != 0 {
				fmt.Fprintf(&b, " %02d:%02d", h, r.Minute)
			}
		}
	}
	return b.String()
}

// writeRuns writes the set bits of mask (n bits, circular) as names and
// ranges "a-b"; a run that wraps past the last bit is written as one
// wrapping range (fri-mon), as Bareos reads it.
func writeRuns(b *strings.Builder, mask uint64, n int, name func(int) string) {
	full := uint64(1)<<n - 1
	mask &= full
	if mask == 0 || mask == full {
		return
	}
	// Start at a set bit whose predecessor (circularly) is clear.
	start := 0
	for i := range n {
		prev := (i + n - 1) % n
		if mask&(1<<i) != 0 && mask&(1<<prev) == 0 {
			start = i
			break
		}
	}
	first := true
	for k := 0; k < n; {
		i := (start + k) % n
		if mask&(1<<i) == 0 {
			k++
			continue
		}
		j := k
		for j+1 < n && mask&(1<<((start+j+1)%n)) != 0 {
			j++
		}
		if !first {
			b.WriteByte(' ')
		}
		first = false
		b.WriteString(name(i))
		if j > k {
			b.WriteByte('-')
			b.WriteString(name((start + j) % n))
		}
		k = j + 1
	}
}

// progression reports whether mask (n bits) is exactly the bits a,
// a+step, a+2*step, ... below n, with step >= 2 and at least 3 bits (so
// shorter sets print as plain lists).
func progression(mask uint64, n int) (a, step int, ok bool) {
	if bits.OnesCount64(mask) < 3 {
		return 0, 0, false
	}
	a = bits.TrailingZeros64(mask)
	rest := mask &^ (1 << a)
	step = bits.TrailingZeros64(rest) - a
	if step < 2 {
		return 0, 0, false
	}
	var want uint64
	for i := a; i < n; i += step {
		want |= 1 << i
	}
	return a, step, want == mask
}

// quoteName writes an override value so the tokenizer reads it back:
// bare when it has no separator, quoted otherwise.
func quoteName(s string) string {
	if strings.ContainsFunc(s, isSeparator) {
		return `"` + s + `"`
	}
	return s
}
