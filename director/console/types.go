package console

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kind is what a keyword's value is.
type Kind int

const (
	// Flag is a bare keyword with no value (barcodes, encrypt, yes).
	Flag Kind = iota
	// Name is a resource name from the configuration (storage, pool):
	// 1–127 letters, digits, '-', '_' and '.'.
	Name
	// Volume is a volume name as written in the tape label: 1–127 letters,
	// digits, '.', '_', ':', '+' and '-' (the catalog's rule).
	Volume
	// Int is a whole number from Type.Min to Type.Max (decimal digits only;
	// leading zeros are dropped in the canonical form).
	Int
	// SlotList is a list of changer slots: comma-separated numbers and
	// ascending ranges ("1-5", "1,3,7-9"), at most MaxSlots slots, no slot
	// twice, slots from 1 to MaxSlot. Canonical form: ascending, runs
	// compressed ("7,1-3" → "1-3,7").
	SlotList
	// Enum is one of Type.Values, compared case-insensitively; canonical
	// form is the table's spelling.
	Enum
	// Path is a file path (any printable text, 1–4096 bytes).
	Path
)

// Type describes a keyword's value. Min and Max bound Int; Values lists the
// choices of an Enum; Arg is the placeholder shown in usage lines ("NAME",
// "N", "LIST", "FILE"; for Enum "a|b|c").
type Type struct {
	Kind   Kind
	Min    int
	Max    int
	Values []string
	Arg    string
}

const (
	// MaxSlot is the highest slot number accepted (SCSI element addresses
	// are 16 bits).
	MaxSlot = 65535
	// MaxSlots is the most slots one slot list may name.
	MaxSlots = 10000
	maxName  = 127
	maxPath  = 4096
)

// Value types used by the table.
var (
	TFlag    = Type{Kind: Flag}
	TName    = Type{Kind: Name, Arg: "NAME"}
	TVolume  = Type{Kind: Volume, Arg: "NAME"}
	TSlots   = Type{Kind: SlotList, Arg: "LIST"}
	TPath    = Type{Kind: Path, Arg: "FILE"}
	TSlot    = TInt(1, MaxSlot)
	TDrive   = TInt(0, 255)
	TLimit   = TInt(1, 1000000)
	TEncrypt = TEnum("yes", "no", "rotate")
	// TVolStatus is a status an operator may give a volume.
	TVolStatus = TEnum("Append", "Full", "Used", "Read-Only", "Disabled", "Archive", "Error")
	// TLevel is a backup level (any case; canonical: Full, …).
	TLevel = TEnum("Full", "Incremental", "Differential")
	// TJobID is a JobId.
	TJobID = Type{Kind: Int, Min: 1, Max: 1<<31 - 1, Arg: "N"}
	// TJobStatus is a job status letter (case matters: t is not T); the
	// director checks the letter.
	TJobStatus = Type{Kind: Name, Arg: "LETTER"}
	// TJobType is a job type.
	TJobType = TEnum("Backup", "Restore", "Admin", "Catalog")
	// TJobIDs is a JobId list ("41,42"); the director checks it.
	TJobIDs = Type{Kind: Path, Arg: "LIST"}
	// TTime is a point in time ("2026-11-30 12:00", "2026-11-30",
	// "2026-11"); the director reads it in its time zone.
	TTime = Type{Kind: Path, Arg: "TIME"}
	// TText is free text (a regular expression, a prefix).
	TText = Type{Kind: Path, Arg: "TEXT"}
	// TDir is a directory path.
	TDir = Type{Kind: Path, Arg: "DIR"}
	// TReplace is restore's replace= (Bareos' four).
	TReplace = TEnum("always", "ifnewer", "ifolder", "never")
)

// TInt is a whole number from min to max.
func TInt(min, max int) Type { return Type{Kind: Int, Min: min, Max: max, Arg: "N"} }

// TEnum is one of values.
func TEnum(values ...string) Type {
	return Type{Kind: Enum, Values: values, Arg: strings.Join(values, "|")}
}

// Want describes the values the type accepts, for error messages.
func (t Type) Want() string {
	switch t.Kind {
	case Flag:
		return "no value"
	case Name:
		return fmt.Sprintf("a name of letters, digits, '-', '_' and '.' (at most %d)", maxName)
	case Volume:
		return fmt.Sprintf("a volume name of letters, digits, '.', '_', ':', '+' and '-' (at most %d)", maxName)
	case Int:
		return fmt.Sprintf("a whole number from %d to %d", t.Min, t.Max)
	case SlotList:
		return "a slot list such as 1-5 or 1,3,7-9"
	case Enum:
		return orList(t.Values)
	case Path:
		return fmt.Sprintf("a file path (at most %d bytes)", maxPath)
	}
	return "?"
}

// canon checks v and returns its canonical form, or a problem ("" to use
// the generic "want ..." message).
func (t Type) canon(v string) (string, string, bool) {
	switch t.Kind {
	case Name, Volume:
		if v == "" {
			return "", "empty name", false
		}
		if len(v) > maxName {
			return "", fmt.Sprintf("name is %d characters; at most %d", len(v), maxName), false
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.'
			if t.Kind == Volume {
				ok = ok || c == ':' || c == '+'
			}
			if !ok {
				return "", "", false
			}
		}
		return v, "", true
	case Int:
		n, ok := atoi(v)
		if !ok || n < t.Min || n > t.Max {
			return "", "", false
		}
		return strconv.Itoa(n), "", true
	case SlotList:
		rs, problem := parseSlotRanges(v)
		if problem != "" {
			return "", problem, false
		}
		return formatSlots(rs), "", true
	case Enum:
		lv := lower(v)
		for _, x := range t.Values {
			if lv == lower(x) {
				return x, "", true
			}
		}
		return "", "", false
	case Path:
		if v == "" {
			return "", "empty path", false
		}
		if len(v) > maxPath {
			return "", fmt.Sprintf("path is %d bytes; at most %d", len(v), maxPath), false
		}
		return v, "", true
	}
	return "", "", false
}

// atoi parses 1–9 decimal digits (no sign), so it cannot overflow.
func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// ParseSlots parses a slot list ("1-5", "1,3,7-9"; spaces around items are
// allowed) into ascending slot numbers. It rejects empty items, slot 0,
// slots above MaxSlot, descending ranges, a slot named twice and lists of
// more than MaxSlots slots.
func ParseSlots(s string) ([]int, error) {
	slots, problem := parseSlots(s)
	if problem != "" {
		return nil, &BadValueError{Keyword: "slots", Value: s, Want: TSlots.Want(), Problem: problem}
	}
	return slots, nil
}

// slotRange is lo-hi inclusive.
type slotRange struct{ lo, hi int }

// parseSlots parses and expands a slot list.
func parseSlots(s string) ([]int, string) {
	rs, problem := parseSlotRanges(s)
	if problem != "" {
		return nil, problem
	}
	var out []int
	for _, r := range rs {
		for n := r.lo; n <= r.hi; n++ {
			out = append(out, n)
		}
	}
	return out, ""
}

// parseSlotRanges parses a slot list into ascending, disjoint, merged
// ranges without expanding them.
func parseSlotRanges(s string) ([]slotRange, string) {
	if strings.TrimSpace(s) == "" {
		return nil, "empty slot list"
	}
	num := func(x string) (int, string) {
		x = strings.TrimSpace(x)
		if x == "" {
			return 0, "missing number"
		}
		n, ok := atoi(x)
		if !ok || n > MaxSlot {
			if strings.Trim(x, "0123456789") == "" {
				return 0, fmt.Sprintf("slot %s is too high (at most %d)", trunc(x), MaxSlot)
			}
			return 0, fmt.Sprintf("%s is not a slot number", echo(x))
		}
		if n == 0 {
			return 0, "slot 0 does not exist (slots count from 1)"
		}
		return n, ""
	}
	var rs []slotRange
	count := 0
	for _, item := range strings.Split(s, ",") {
		var r slotRange
		var p string
		if a, b, ok := strings.Cut(item, "-"); ok {
			if r.lo, p = num(a); p != "" {
				return nil, p
			}
			if r.hi, p = num(b); p != "" {
				return nil, p
			}
			if r.hi < r.lo {
				return nil, fmt.Sprintf("descending range %d-%d (write %d-%d)", r.lo, r.hi, r.hi, r.lo)
			}
		} else {
			if r.lo, p = num(item); p != "" {
				if strings.TrimSpace(item) == "" {
					return nil, "empty item (two commas, or a comma at an end)"
				}
				return nil, p
			}
			r.hi = r.lo
		}
		if count += r.hi - r.lo + 1; count > MaxSlots {
			return nil, fmt.Sprintf("more than %d slots in one list", MaxSlots)
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	merged := rs[:1]
	for _, r := range rs[1:] {
		last := &merged[len(merged)-1]
		switch {
		case r.lo <= last.hi:
			return nil, fmt.Sprintf("slot %d named twice", r.lo)
		case r.lo == last.hi+1:
			last.hi = r.hi
		default:
			merged = append(merged, r)
		}
	}
	return merged, ""
}

// formatSlots writes ascending, merged ranges: 1-3,7.
func formatSlots(rs []slotRange) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.lo))
		if r.hi > r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.hi))
		}
	}
	return b.String()
}

// trunc cuts a long run of digits for a message.
func trunc(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// FormatSlots writes ascending slot numbers as a slot list with runs
// compressed ("1-3,7"), the form slots= takes.
func FormatSlots(slots []int) string {
	var rs []slotRange
	for _, n := range slots {
		if len(rs) > 0 && rs[len(rs)-1].hi+1 == n {
			rs[len(rs)-1].hi = n
			continue
		}
		rs = append(rs, slotRange{n, n})
	}
	return formatSlots(rs)
}
