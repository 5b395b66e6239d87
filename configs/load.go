package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// file is one config file being loaded: what error messages need.
type file struct {
	path  string // as the caller gave it (messages show it like that)
	dir   string // relative paths in the file resolve against this
	lines []entry
	errs  []string
	src   string // the file's text
}

// entry is one key or table header of the file, with where it is.
type entry struct {
	path []string // full key path, e.g. [catalog port]
	line int
	// aot is the occurrence number (0-based) of the innermost [[array]]
	// header this entry is under, -1 if none.
	aot    int
	header bool
}

// decode reads path into v strictly: malformed TOML, a value of the wrong
// type and a key v does not have are errors naming file, line and key.
func decode(path string, v any) (*file, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such config file (give the right one with -c FILE; examples are in configs/ of the source tree)", path)
		}
		return nil, fmt.Errorf("%s: cannot read the config file: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &file{path: path, dir: filepath.Dir(abs), lines: scanKeys(string(data)), src: string(data)}
	// Syntax first (into a plain map), then types (into v): the two kinds
	// of error read differently.
	var generic map[string]any
	if _, err := toml.Decode(string(data), &generic); err != nil {
		return nil, f.syntaxError(err)
	}
	md, err := toml.Decode(string(data), v)
	if err != nil {
		return nil, f.valueError(err)
	}
	seen := map[string]int{}
	for _, k := range md.Undecoded() {
		// A table header is "undecoded" when the table is unknown; its keys
		// follow. Report only the outermost unknown thing.
		if len(k) > 1 && isUndecodedParent(md, k) {
			continue
		}
		id := strings.Join(k, "\x00")
		n := seen[id]
		seen[id]++
		line := f.nthLine(k, n)
		parent, last := k[:len(k)-1], k[len(k)-1]
		where := "at the top level"
		if len(parent) > 0 {
			where = "in " + tableName(parent)
		}
		msg := fmt.Sprintf("unknown key %q %s", last, where)
		if known := knownKeys(reflect.TypeOf(v).Elem(), parent); len(known) > 0 {
			msg += "; the keys allowed there are: " + strings.Join(known, ", ")
		}
		f.add(line, msg)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// isUndecodedParent reports whether a proper prefix of k is itself an
// undecoded key (so k is inside an unknown table).
func isUndecodedParent(md toml.MetaData, k toml.Key) bool {
	und := map[string]bool{}
	for _, u := range md.Undecoded() {
		und[strings.Join(u, "\x00")] = true
	}
	for i := 1; i < len(k); i++ {
		if und[strings.Join(k[:i], "\x00")] {
			return true
		}
	}
	return false
}

var tomlLineErr = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "(.*?)"\))?: (.*)$`)

// syntaxError rewrites a TOML syntax error as "file:line: malformed TOML".
func (f *file) syntaxError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: malformed TOML: %s (see https://toml.io for the syntax)", f.path, pe.Position.Line, pe.Message)
	}
	return fmt.Errorf("%s: malformed TOML: %v", f.path, err)
}

// valueError rewrites a type or value error of toml.Decode as
// "file:line: [table] key: what to write".
func (f *file) valueError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// A value one of our types refused (duration, size).
		if pe.LastKey != "" {
			return fmt.Errorf("%s:%d: %s: %s", f.path, pe.Position.Line, displayKey(pe.LastKey), pe.Message)
		}
		return fmt.Errorf("%s:%d: %s", f.path, pe.Position.Line, pe.Message)
	}
	if m := tomlLineErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		if strings.HasPrefix(msg, "incompatible types") {
			msg = typeHint(msg)
		}
		if m[2] != "" {
			return fmt.Errorf("%s:%d: %s: %s", f.path, line, displayKey(m[2]), msg)
		}
		return fmt.Errorf("%s:%d: %s", f.path, line, msg)
	}
	return fmt.Errorf("%s: %v", f.path, err)
}

var incompatible = regexp.MustCompile(`TOML value has type (\S+); destination has type (\S+)`)

func typeHint(msg string) string {
	m := incompatible.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	got := friendlyType(m[1])
	switch m[2] {
	case "integer":
		return fmt.Sprintf("must be a whole number (got %s); write it without quotes, e.g. port = 5432", got)
	case "string":
		return fmt.Sprintf("must be a string in double quotes (got %s)", got)
	case "boolean", "bool":
		return fmt.Sprintf("must be true or false, without quotes (got %s)", got)
	case "slice", "array":
		return fmt.Sprintf("must be a list, e.g. [\"a\", \"b\"] (or, for tables, [[tables]]); got %s", got)
	}
	return fmt.Sprintf("wrong type: got %s, want %s", got, m[2])
}

// friendlyType names a decoded TOML value's Go type the way a config
// writer thinks of it.
func friendlyType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "a number"
	case strings.HasPrefix(goType, "float"):
		return "a decimal number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true/false"
	case strings.HasPrefix(goType, "map"):
		return "a table"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.Contains(goType, "Time") || strings.Contains(goType, "Local"):
		return "a date/time"
	}
	return goType
}

// displayKey turns "catalog.port" into "[catalog] port".
func displayKey(dotted string) string {
	parts := splitKey(dotted)
	if len(parts) == 1 {
		return parts[0]
	}
	return tableName(parts[:len(parts)-1]) + " " + parts[len(parts)-1]
}

func tableName(parts []string) string {
	return "[" + strings.Join(parts, ".") + "]"
}

// add records one problem; line 0 means "no line".
func (f *file) add(line int, msg string) {
	if line > 0 {
		f.errs = append(f.errs, fmt.Sprintf("%s:%d: %s", f.path, line, msg))
	} else {
		f.errs = append(f.errs, fmt.Sprintf("%s: %s", f.path, msg))
	}
}

func (f *file) err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(f.errs, "\n"))
}

// nthLine returns the line of the n-th occurrence (0-based) of key k, or
// of its closest enclosing table, or 0.
func (f *file) nthLine(k []string, n int) int {
	for l := len(k); l > 0; l-- {
		seen := 0
		for _, e := range f.lines {
			if equal(e.path, k[:l]) {
				if seen == n || l < len(k) {
					return e.line
				}
				seen++
			}
		}
	}
	return 0
}

// lineOf returns the line of key k inside the aot-th element of the
// enclosing [[array]] (aot < 0: not in an array), falling back to the
// enclosing table's header, or 0.
func (f *file) lineOf(k []string, aot int) int {
	for l := len(k); l > 0; l-- {
		for _, e := range f.lines {
			if equal(e.path, k[:l]) && (aot < 0 || e.aot == aot) {
				return e.line
			}
		}
	}
	return 0
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// scanKeys lists the keys and table headers of a TOML text with their
// lines. It is not a TOML parser (toml.Decode has already accepted the
// text); it only needs to find where things are.
func scanKeys(text string) []entry {
	var out []entry
	var table []string
	aot := -1
	aotCount := map[string]int{}
	inMulti := "" // inside a multi-line string: its delimiter
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(line, "[["):
			end := strings.Index(line, "]]")
			if end < 0 {
				continue
			}
			table = splitKey(line[2:end])
			id := strings.Join(table, "\x00")
			aot = aotCount[id]
			aotCount[id]++
			out = append(out, entry{path: table, line: i + 1, aot: aot, header: true})
		case strings.HasPrefix(line, "["):
			end := strings.Index(line, "]")
			if end < 0 {
				continue
			}
			table = splitKey(line[1:end])
			aot = -1
			out = append(out, entry{path: table, line: i + 1, aot: aot, header: true})
		default:
			eq := keyEnd(line)
			if eq < 0 {
				continue
			}
			k := append(append([]string{}, table...), splitKey(line[:eq])...)
			out = append(out, entry{path: k, line: i + 1, aot: aot})
			rest := line[eq+1:]
			for _, d := range []string{`"""`, `'''`} {
				if strings.Count(rest, d)%2 == 1 {
					inMulti = d
				}
			}
		}
	}
	return out
}

// keyEnd returns the index of the '=' that ends the key part of a line.
func keyEnd(line string) int {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#': // a comment: a line of a multi-line array, `"x", # a = b`
			return -1
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key, honouring quoted parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// knownKeys lists the toml keys the struct type at path accepts.
func knownKeys(t reflect.Type, path []string) []string {
	for _, p := range path {
		t = deref(t)
		if t.Kind() != reflect.Struct {
			return nil
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			if tomlName(t.Field(i)) == p {
				t = t.Field(i).Type
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := tomlName(t.Field(i)); n != "" && n != "-" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if tag == "" {
		return ""
	}
	return tag
}

// resolve makes a relative path absolute against the config's directory.
func (f *file) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

// has reports whether the aot-th element of the [[array]] (aot < 0: no
// array) sets key k itself.
func (f *file) has(aot int, k ...string) bool {
	for _, e := range f.lines {
		if !e.header && equal(e.path, k) && (aot < 0 || e.aot == aot) {
			return true
		}
	}
	return false
}

// itemLines returns the line of each string of the array value of key k
// in the aot-th element of its [[array]] (run = ["…", "…"] over one or
// several lines), or nil when the key is not found. Like scanKeys it
// relies on toml.Decode having accepted the text.
func (f *file) itemLines(aot int, k ...string) []int {
	start := 0
	for _, e := range f.lines {
		if !e.header && equal(e.path, k) && (aot < 0 || e.aot == aot) {
			start = e.line
			break
		}
	}
	if start == 0 {
		return nil
	}
	text := strings.Split(f.src, "\n")
	var out []int
	depth := 0
	for i := start - 1; i < len(text); i++ {
		l := text[i]
		j := 0
		if i == start-1 {
			j = keyEnd(l) + 1
		}
		for ; j < len(l); j++ {
			switch c := l[j]; c {
			case '#':
				j = len(l)
			case '[':
				depth++
			case ']':
				depth--
				if depth <= 0 {
					return out
				}
			case '"', '\'':
				if depth == 1 {
					out = append(out, i+1)
				}
				for j++; j < len(l) && l[j] != c; j++ {
					if c == '"' && l[j] == '\\' {
						j++
					}
				}
			}
		}
		if depth <= 0 {
			return out
		}
	}
	return out
}
