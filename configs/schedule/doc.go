// Package schedule is the Bareos `Run` grammar and next-run computation
// for the director (shared/docs/jobs.md §3). It is pure: it knows time
// only and imports nothing but the standard library (architecture §2).
//
// # Grammar
//
// A schedule is a list of Run lines; the lines are OR-ed. A line is
//
//	[overrides] <date-time spec>
//
// Overrides come first, each at most once: Level=Full|Incremental|
// Differential (or the bare word Full, Incremental, Differential),
// Pool=, FullPool=, IncrementalPool=, DifferentialPool=, Storage=,
// Priority= (1 or more). Names are matched case-insensitively; a value
// with blanks, commas or '=' is written in double quotes. Bareos-only
// overrides (NextPool, Messages, SpoolData, Accurate, MaxRunSchedTime)
// and levels (Base, VirtualFull, …) are errors that say so.
//
// The date-time spec is a list of words, in any order ("on" and commas
// are noise):
//
//	month    jan..dec, january..december, ranges jan-mar, monthly
//	day      1..31, ranges 2-31, modulo a/b (days a, a+b, a+2b, … ≤ 31;
//	         1/2 = odd days, 2/2 = even days; Bareos: a ≤ b+1, b ≤ 30)
//	weekday  sun..sat, sunday..saturday, ranges mon-fri, daily
//	position 1st..5th, first..fifth, ranges 2nd-5th, last
//	week     w00..w53 (two digits), ranges w10-w20, modulo wA/wB
//	         (weeks A, A+B, …; A ≤ B), weekly
//	time     at HH:MM (24 h) or at H:MMam / H:MMpm (hour 1-12; 12am =
//	         00:MM, 12pm = 12:MM), hourly; on an hourly line `at :MM`
//
// # Meaning (exactly Bareos' run_conf.cc and scheduler)
//
// Each field is a mask that starts as "all" and becomes "only these"
// the first time the line names it; later names of the same field add
// to it. A line fires at minute Minute of every hour in its hour mask on
// every local date on which all day masks match:
//
//   - month, day of month and weekday: the date's.
//   - position: the week of the month, (day-1)/7: 1st = days 1-7, 2nd =
//     8-14, 3rd = 15-21, 4th = 22-28, 5th = 29-31. `last` = the last 7
//     days of the month (so `last fri` is the last Friday), OR-ed with
//     the named positions (`2nd last sun`).
//   - week of the year: week 1 is the Monday-Sunday week containing 4
//     January; days before it are w00 (unlike ISO, which puts them in the
//     previous year's last week); weeks run on to w52 or w53 on 31
//     December (no roll-over into next year's week 1).
//
// Ranges wrap: fri-mon = fri, sat, sun, mon; nov-feb; 25-5; w50-w02;
// 5th-1st. A numeric range with equal ends (5-5, w07-w07) is a full wrap
// in Bareos and matches everything (a warning says so); a named range
// with equal ends (mon-mon) is an error, as in Bareos.
//
// The keywords daily, weekly and monthly restrict nothing; as in
// Bareos they only reset masks to "all" and count them as named, so
// their position on the line matters: `daily` resets the weekdays and
// makes later day numbers add to "all days"; `weekly` resets day of
// month, position and week of year; `monthly` resets the months. So
// `weekly at 2:00` fires every day, `mon daily at 1:00` every day
// (warnings say so). `hourly` sets every hour, wherever it stands, so
// in `hourly at 2:15` only the minute counts (a warning says so).
//
// A line has one minute. `at 1:00 13:00` (times after an `at`) adds
// hours; times with different minutes on one line are an error here
// (Bareos would silently move all of them to the last minute). A line
// with no time and no `hourly` fires at minute 0 of every hour, as in
// Bareos (a warning says so). A line whose day fields no date can match
// (`31 apr`, `30 feb`, `w53 jan`) never fires (a warning says so); `31`
// alone fires only in 31-day months, `29 feb` only in leap years.
//
// Stricter than Bareos (each an error naming the line, the column and
// what was expected): `at` must be followed by a time; a time must come
// after an `at`; `at :15` without hourly (Bareos reads it as 00:15);
// 13:00pm and 0:30am; a modulo step of 0 (crashes Bareos); overrides or
// a level after the date-time spec; an override given twice (Bareos
// keeps the last); an empty line.
//
// # Time zones and DST
//
// Lines are evaluated on local wall-clock time in the zone passed to
// Next, NextFires and Between (nil: time.Local). A wall time that does
// not exist (clocks spring forward over it) fires once, at the first
// valid minute after it (the instant of the jump; Fire.Moved is set):
// `at 02:30` fires at 03:00 on the last Sunday of March in Europe/Berlin.
// A wall time that happens twice (clocks fall back) fires once, at its
// first occurrence. A line never fires twice at one instant (`at 2:00
// 3:00` on the spring-forward day fires once at 03:00). Bareos instead
// steps hours in UTC: it skips the missing hour and runs the repeated
// one twice.
//
// # Several lines at one minute
//
// Bareos queues one job per Run line that fires (AddJobToQueue per run
// resource), so NextFires and Between give one Fire per line, ordered by
// (At, Line); Next gives the lowest line. Whether two jobs of the same
// job at one minute both run is the job layer's duplicate policy, not
// the schedule's.
package schedule
