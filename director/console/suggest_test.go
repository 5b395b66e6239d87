package console

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"label", "label", 0},
		{"lable", "label", 1}, // transposition
		{"slot", "slots", 1},
		{"slto", "slot", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // OSA, not full Damerau (which gives 2)
		{"encrpyt", "encrypt", 1},
		{"volume", "volumes", 1},
		{"pool", "volume", 5},
	} {
		if got := distance(tc.a, tc.b); got != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
		if got := distance(tc.b, tc.a); got != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.d)
		}
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"storage", "pool", "slots", "slot", "volume", "barcodes", "encrypt", "drive"}
	for word, want := range map[string]string{
		"slto":     "slot",
		"SLOTS":    "", // exact (case-insensitive) is no typo
		"sltos":    "slots",
		"stroage":  "storage",
		"pol":      "pool",
		"barcode":  "barcodes",
		"brcodes":  "barcodes",
		"driev":    "drive",
		"xyz":      "",
		"p":        "", // too short to guess
		"po":       "", // 2 edits from pool: more than half the word
		"volumes":  "volume",
		"vol":      "",
		"encrypts": "encrypt",
		"":         "",
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz": "",
	} {
		if got := suggest(word, cands); got != want {
			t.Errorf("suggest(%q) = %q, want %q", word, got, want)
		}
	}
	// Ties go to the earlier candidate.
	if got := suggest("sloz", []string{"slot", "slow"}); got != "slot" {
		t.Errorf("tie: %q", got)
	}
}
