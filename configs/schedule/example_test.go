package schedule_test

import (
	"fmt"
	"time"

	"github.com/tapeward/tapeward/configs/schedule"
)

// The classic rotation, previewed for a week in UTC.
func ExampleSchedule_Between() {
	s, warns, err := schedule.ParseSchedule("WeeklyCycle", []string{
		"Level=Full Pool=Full 1st sat at 21:00",
		"Level=Differential Pool=Diff 2nd-5th sat at 21:00",
		"Level=Incremental Pool=Inc mon-fri at 21:00",
	})
	if err != nil || len(warns) > 0 {
		fmt.Println(err, warns)
		return
	}
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for f := range s.Between(from, from.AddDate(0, 0, 7), time.UTC) {
		fmt.Printf("%s %s into %s (line %d)\n", f.At.Format("Mon 2006-01-02 15:04"), f.Level, f.Pool, f.Line)
	}
	// Output:
	// Tue 2026-12-01 21:00 Incremental into Inc (line 3)
	// Wed 2026-12-02 21:00 Incremental into Inc (line 3)
	// Thu 2026-12-03 21:00 Incremental into Inc (line 3)
	// Fri 2026-12-04 21:00 Incremental into Inc (line 3)
	// Sat 2026-12-05 21:00 Full into Full (line 1)
	// Mon 2026-12-07 21:00 Incremental into Inc (line 3)
}

// A line that does not parse names the line, the column and what was
// expected; traps parse with warnings.
func ExampleParseSchedule() {
	_, _, err := schedule.ParseSchedule("Nightly", []string{"Full 1st sun at 2:05", "Incremental mon-sat at"})
	fmt.Println(err)
	_, warns, _ := schedule.ParseSchedule("Oops", []string{"Full weekly at 2:00"})
	for _, w := range warns {
		fmt.Println(w)
	}
	// Output:
	// schedule "Nightly": run line 2, column 23: a time must follow "at" (HH:MM, H:MMam or H:MMpm); the line ends there
	// schedule "Oops": run line 1, column 6: `weekly` restricts nothing (it only resets day of month, week of month and week of year to all): this line fires every day; name a weekday (sun) to run once a week
}
