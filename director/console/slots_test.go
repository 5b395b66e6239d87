package console

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSlots(t *testing.T) {
	seq := func(lo, hi int) []int {
		var s []int
		for n := lo; n <= hi; n++ {
			s = append(s, n)
		}
		return s
	}
	good := []struct {
		in    string
		slots []int
		canon string
	}{
		{"1", []int{1}, "1"},
		{"1-5", seq(1, 5), "1-5"},
		{"1,3,7-9", []int{1, 3, 7, 8, 9}, "1,3,7-9"},
		{"7-9,1,3", []int{1, 3, 7, 8, 9}, "1,3,7-9"},
		{"4-4", []int{4}, "4"},
		{"1,2,3", seq(1, 3), "1-3"},
		{"1-2,3-4", seq(1, 4), "1-4"},
		{" 1 , 2 - 3 ", seq(1, 3), "1-3"},
		{"007", []int{7}, "7"},
		{"65535", []int{65535}, "65535"},
		{"1-10000", seq(1, 10000), "1-10000"},
		{"55536-65535", seq(55536, 65535), "55536-65535"},
		{"1-9999,20000", append(seq(1, 9999), 20000), "1-9999,20000"},
	}
	for _, tc := range good {
		got, err := ParseSlots(tc.in)
		if err != nil {
			t.Errorf("ParseSlots(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.slots) {
			t.Errorf("ParseSlots(%q) = %v, want %v", tc.in, got, tc.slots)
		}
		rs, problem := parseSlotRanges(tc.in)
		if c := formatSlots(rs); problem != "" || c != tc.canon {
			t.Errorf("formatSlots(parseSlotRanges(%q)) = %q (%s), want %q", tc.in, c, problem, tc.canon)
		}
		again, err := ParseSlots(tc.canon)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("canonical %q does not parse back: %v %v", tc.canon, again, err)
		}
	}
	bad := []struct{ in, problem string }{
		{"", "empty slot list"},
		{"  ", "empty slot list"},
		{"0", "slot 0 does not exist (slots count from 1)"},
		{"0-5", "slot 0 does not exist (slots count from 1)"},
		{"000", "slot 0 does not exist (slots count from 1)"},
		{"5-1", "descending range 5-1 (write 1-5)"},
		{"1,3,10-2", "descending range 10-2 (write 2-10)"},
		{"1,1", "slot 1 named twice"},
		{"1-5,3", "slot 3 named twice"},
		{"1-5,4-8", "slot 4 named twice"},
		{"1-10001", "more than 10000 slots in one list"},
		{"1-10000,10001", "more than 10000 slots in one list"},
		{"65536", "slot 65536 is too high (at most 65535)"},
		{"1-99999999999999", "slot 999999999999… is too high (at most 65535)"},
		{"1,,2", "empty item (two commas, or a comma at an end)"},
		{"1,", "empty item (two commas, or a comma at an end)"},
		{",1", "empty item (two commas, or a comma at an end)"},
		{"-5", "missing number"},
		{"5-", "missing number"},
		{"1-2-3", `"2-3" is not a slot number`},
		{"a", `"a" is not a slot number`},
		{"1;2", `"1;2" is not a slot number`},
		{"+3", `"+3" is not a slot number`},
		{"1 2", `"1 2" is not a slot number`},
		{"\x00", "(1 bytes with non-printing characters, not shown) is not a slot number"},
	}
	for _, tc := range bad {
		got, err := ParseSlots(tc.in)
		var bv *BadValueError
		if !errors.As(err, &bv) {
			t.Errorf("ParseSlots(%q) = %v, %v; want a BadValueError", tc.in, got, err)
			continue
		}
		if bv.Problem != tc.problem || bv.Keyword != "slots" || bv.Value != tc.in || bv.Command != "" {
			t.Errorf("ParseSlots(%q): %#v, want problem %q", tc.in, bv, tc.problem)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "slot list: bad slots=") || !strings.HasSuffix(msg, tc.problem) {
			t.Errorf("ParseSlots(%q): message %q", tc.in, msg)
		}
	}
	// The problem reaches the user through Parse, too.
	_, err := Parse("label storage=sd1 pool=P barcodes slots=" + strings.Repeat("1,", 3) + "1")
	if err == nil || !strings.Contains(err.Error(), "slot 1 named twice") {
		t.Errorf("Parse with duplicate slots: %v", err)
	}
}
