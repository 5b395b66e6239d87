package configs

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Duration is a TOML string such as "30s", "5m" or "1h30m" (Go syntax:
// ns, us, ms, s, m, h). It must be positive.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("%s has no unit; write a quoted duration such as \"%ss\" (units: ms, s, m, h)", s, s)
		}
		return fmt.Errorf("%q is not a duration; write e.g. \"30s\", \"5m\" or \"1h30m\" (units: ms, s, m, h)", s)
	}
	if v <= 0 {
		return fmt.Errorf("%q must be longer than zero, e.g. \"30s\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Size is a byte count: a TOML integer (bytes) or a string with a binary
// unit, "512KiB", "1MiB", "2GiB", "10TiB" (or "B").
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	num, mult := str, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a size; write a whole number with a binary unit, e.g. \"1MiB\", \"256KiB\" (KiB, MiB, GiB, TiB) or plain bytes", str)
	}
	if n > (1<<62)/mult {
		return fmt.Errorf("%q is too large", str)
	}
	*s = Size(n * mult)
	return nil
}

// String shows the size with the largest exact binary unit.
func (s Size) String() string {
	for _, u := range sizeUnits {
		if int64(s)%u.mult == 0 && int64(s) >= u.mult {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ---- validation helpers ----

// loc names one key of the file for messages: its path and, inside an
// [[array]], which element (0-based; -1 outside arrays).
type loc struct {
	path []string
	aot  int
}

func at(aot int, path ...string) loc { return loc{path: path, aot: aot} }

func (l loc) String() string {
	if len(l.path) == 1 {
		return l.path[0]
	}
	table, key := l.path[:len(l.path)-1], l.path[len(l.path)-1]
	if l.aot >= 0 {
		return fmt.Sprintf("[[%s]] #%d %s", strings.Join(table, "."), l.aot+1, key)
	}
	return tableName(table) + " " + key
}

func (l loc) key() string { return l.path[len(l.path)-1] }

// problem records "l = value: msg" at l's line.
func (f *file) problem(l loc, value any, msg string, args ...any) {
	v := ""
	switch x := value.(type) {
	case nil:
	case string:
		v = fmt.Sprintf(" = %q", x)
	default:
		v = fmt.Sprintf(" = %v", x)
	}
	f.add(f.lineOf(l.path, l.aot), fmt.Sprintf("%s%s: %s", l, v, fmt.Sprintf(msg, args...)))
}

// missing records a required key that is not there, with what to write.
func (f *file) missing(l loc, example string) {
	f.add(f.lineOf(l.path, l.aot), fmt.Sprintf("%s is missing; add e.g. %s = %s", l, l.key(), example))
}

// requireString checks that a required string is set.
func (f *file) requireString(l loc, v, example string) bool {
	if strings.TrimSpace(v) == "" {
		f.missing(l, example)
		return false
	}
	return true
}

// port checks a TCP port number.
func (f *file) port(l loc, p int) {
	if p < 1 || p > 65535 {
		f.problem(l, p, "must be 1-65535 (PostgreSQL's default is 5432)")
	}
}

// hostPort checks "host:port" (host may be empty for "all interfaces"
// when allowEmptyHost). Listen addresses (allowEmptyHost) may use port 0:
// the kernel picks a port, which the daemon logs (and writes to its
// --addr-file).
func (f *file) hostPort(l loc, v, example string, allowEmptyHost bool) {
	if !f.requireString(l, v, example) {
		return
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		f.problem(l, v, "must be host:port, e.g. %s (IPv6: \"[::1]:9101\")", example)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !allowEmptyHost) {
		f.problem(l, v, "the port must be a number 1-65535, e.g. %s", example)
		return
	}
	if host == "" && !allowEmptyHost {
		f.problem(l, v, "give the host too, e.g. %s", example)
	}
	if strings.ContainsAny(host, " /") {
		f.problem(l, v, "%q is not a host name or IP address", host)
	}
}

// path checks a required path and returns it resolved against the config
// file's directory.
func (f *file) filePath(l loc, v, example string) string {
	if !f.requireString(l, v, example) {
		return ""
	}
	return f.resolve(v)
}

// name checks a required resource name: letters, digits, '-', '_', '.'.
func (f *file) name(l loc, v, example string) {
	if !f.requireString(l, v, example) {
		return
	}
	for _, c := range v {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			f.problem(l, v, "use only letters, digits, '-', '_' and '.', e.g. %s", example)
			return
		}
	}
}
