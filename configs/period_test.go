package configs

import (
	"strings"
	"testing"
	"time"
)

func TestPeriodParsing(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"0": 0, "30s": 30 * time.Second, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, "1.5h": 90 * time.Minute,
		"30 days": 30 * day, "30d": 30 * day, "1 day": day, "6 months": 180 * day, "6 mo": 180 * day, "1 year": 365 * day,
		"1y": 365 * day, "2 weeks": 14 * day, "2w": 14 * day, "1 quarter": 91 * day, "1 year 6 months": 545 * day,
		"1 year, 6 months": 545 * day, "12 hours": 12 * time.Hour, "5 min": 5 * time.Minute, "10 seconds": 10 * time.Second,
		"30 Days": 30 * day, " 2h ": 2 * time.Hour, "1d12h": 36 * time.Hour, "250ms": 250 * time.Millisecond,
	} {
		var p Period
		if err := p.UnmarshalText([]byte(in)); err != nil || p.Duration != want {
			t.Errorf("Period(%q) = %v, %v; want %v", in, p.Duration, err, want)
		}
	}
	for in, msg := range map[string]string{
		"":            `"" is not a period`,
		"30":          `30 has no unit; write a quoted period such as "30 days" or "30h"`,
		"-5d":         `"-5d" is negative`,
		"6 monts":     `unknown unit "monts"`,
		"days":        `"days" is not a period`,
		"1 year 6":    `"1 year 6": 6 has no unit`,
		"soon":        `"soon" is not a period`,
		"300 years":   `too long`,
		"1.2.3 days":  `is not a period`,
		"3 fortnight": `unknown unit "fortnight"`,
	} {
		var p Period
		err := p.UnmarshalText([]byte(in))
		if err == nil {
			t.Errorf("Period(%q) accepted as %v", in, p.Duration)
			continue
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("Period(%q): %v; want %q", in, err, msg)
		}
	}
	// "m" is minutes, and remembered (retentions refuse it).
	var p Period
	if err := p.UnmarshalText([]byte("6m")); err != nil || p.Duration != 6*time.Minute || !p.bareM {
		t.Errorf("6m: %v %v %v", p.Duration, p.bareM, err)
	}
	if err := p.UnmarshalText([]byte("6 months")); err != nil || p.bareM {
		t.Errorf("6 months: bareM %v, %v", p.bareM, err)
	}
	for d, want := range map[time.Duration]string{24 * time.Hour: "1 day", 365 * 24 * time.Hour: "365 days", 90 * time.Minute: "1h30m0s", 0: "0s"} {
		if got := (Period{Duration: d}).String(); got != want {
			t.Errorf("Period(%v).String() = %q, want %q", d, got, want)
		}
	}
}

func TestSizeTiB(t *testing.T) {
	var s Size
	if err := s.UnmarshalText([]byte("12TiB")); err != nil || s != 12<<40 || s.String() != "12TiB" {
		t.Errorf("12TiB = %d (%s), %v", s, s, err)
	}
}
