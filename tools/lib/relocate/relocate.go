// Package relocate maps the paths a restore reads from the catalog (a
// member's stored path: absolute, a directory's ending in '/') to the
// paths it writes, as Bareos users know it (shared/docs/jobs.md §5):
// where= (a prefix, the target directory), strip_prefix=, add_prefix=,
// add_suffix= (appended to file names) and regexwhere= (sed-like rules
// that replace the others).
//
// filed writes with it, and the director lists with it for a dryrun, so
// both say the same. It is pure: the standard library only, no file
// system access. Every path it returns is absolute, cleaned, under Root
// and free of ".." elements and NUL; a stored path that is empty, holds
// a NUL or a ".." element is refused.
package relocate

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Rules are a restore's relocation settings (proto Relocation).
type Rules struct {
	// Where is prepended to every path: the target directory ("" and
	// "/" : the paths as stored).
	Where string
	// StripPrefix is removed from the start of every path that has it
	// (on a path-element boundary: strip_prefix=/srv changes /srv/a and
	// /srv, not /srvx/a).
	StripPrefix string
	// AddPrefix is prepended after StripPrefix is removed (and before
	// Where).
	AddPrefix string
	// AddSuffix is appended to the name of every path that is not a
	// directory (a stored path not ending in '/').
	AddSuffix string
	// RegexWhere: sed-like rules "!from!to!" (the first character is the
	// separator; a backslash escapes it; flags after the last separator:
	// i ignores case, g replaces every match), several separated by ','.
	// $0…$9 in "to" are the match and its groups. When set, Where,
	// StripPrefix, AddPrefix and AddSuffix are not used (Bareos).
	RegexWhere string
}

// Relocator applies Rules; it is safe for concurrent use.
type Relocator struct {
	rules Rules
	where string // cleaned, "/" when unset
	strip string // cleaned, without trailing '/'; "" : none
	add   string // cleaned add_prefix, "" : none
	rx    []rule
}

type rule struct {
	n      int // 1-based, for errors
	text   string
	re     *regexp.Regexp
	to     string
	global bool
}

// New checks r and returns its Relocator. An error names the bad rule.
func New(r Rules) (*Relocator, error) {
	rl := &Relocator{rules: r, where: "/"}
	if r.RegexWhere != "" {
		rx, err := parseRegexWhere(r.RegexWhere)
		if err != nil {
			return nil, err
		}
		rl.rx = rx
		return rl, nil
	}
	var err error
	if rl.where, err = cleanRule("where", r.Where); err != nil {
		return nil, err
	}
	if r.StripPrefix != "" {
		if rl.strip, err = cleanRule("strip_prefix", r.StripPrefix); err != nil {
			return nil, err
		}
		if rl.strip == "/" {
			rl.strip = ""
		}
	}
	if r.AddPrefix != "" {
		if rl.add, err = cleanRule("add_prefix", r.AddPrefix); err != nil {
			return nil, err
		}
		if rl.add == "/" {
			rl.add = ""
		}
	}
	if strings.ContainsAny(r.AddSuffix, "/\x00") || r.AddSuffix == "." || r.AddSuffix == ".." {
		return nil, fmt.Errorf("add_suffix %q: a suffix is appended to file names; it cannot hold '/' or NUL", r.AddSuffix)
	}
	return rl, nil
}

// cleanRule checks a where/strip_prefix/add_prefix value: absolute (a
// relative one is taken from "/"), no NUL, no ".." element.
func cleanRule(name, v string) (string, error) {
	if v == "" {
		return "/", nil
	}
	if strings.IndexByte(v, 0) >= 0 {
		return "", fmt.Errorf("%s %q: holds a NUL byte", name, v)
	}
	if hasDotDot(v) {
		return "", fmt.Errorf("%s %q: a \"..\" element is not allowed (give the directory itself)", name, v)
	}
	return path.Clean("/" + v), nil
}

// Rules returns the rules r was made from.
func (r *Relocator) Rules() Rules { return r.rules }

// Root is the directory every Target lies under: Where (cleaned), or
// "/" (no Where, or RegexWhere rules). A restore confines its writes to
// it.
func (r *Relocator) Root() string { return r.where }

// Target maps a stored member path to the path to write: absolute,
// cleaned (no trailing '/'), under Root. A stored path that is empty,
// holds a NUL or a ".." element, or rules that map it outside the root,
// to a relative path or to a ".." element, are refused with an error
// naming the path.
func (r *Relocator) Target(stored string) (string, error) {
	if stored == "" {
		return "", fmt.Errorf("stored path is empty")
	}
	if strings.IndexByte(stored, 0) >= 0 {
		return "", fmt.Errorf("stored path %q holds a NUL byte", stored)
	}
	if hasDotDot(stored) {
		return "", fmt.Errorf("stored path %q has a \"..\" element: refused (it could reach outside the target)", stored)
	}
	dir := strings.HasSuffix(stored, "/")
	if r.rx != nil {
		p := stored
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		for _, x := range r.rx {
			p = x.apply(p)
		}
		if strings.IndexByte(p, 0) >= 0 || !strings.HasPrefix(p, "/") || hasDotDot(p) {
			return "", fmt.Errorf("regexwhere maps %q to %q: refused (the result must be an absolute path without \"..\" elements)", stored, p)
		}
		return path.Clean(p), nil
	}
	p := path.Clean("/" + stored)
	if r.strip != "" {
		if p == r.strip {
			p = "/"
		} else if strings.HasPrefix(p, r.strip+"/") {
			p = p[len(r.strip):]
		}
	}
	if r.add != "" {
		p = r.add + p
	}
	if r.rules.AddSuffix != "" && !dir && p != "/" {
		p += r.rules.AddSuffix
	}
	if r.where != "/" {
		p = r.where + p
	}
	return path.Clean(p), nil
}

// hasDotDot reports whether p has a ".." element.
func hasDotDot(p string) bool {
	for p != "" {
		i := strings.IndexByte(p, '/')
		el := p
		if i >= 0 {
			el, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if el == ".." {
			return true
		}
	}
	return false
}

// parseRegexWhere parses "!from!to![flags],…".
func parseRegexWhere(s string) ([]rule, error) {
	var out []rule
	for n := 1; s != ""; n++ {
		x, rest, err := parseRule(n, s)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
		s = rest
		if s != "" { // parseRule stops at the ',' that ends the rule
			s = s[1:]
			if s == "" {
				return nil, fmt.Errorf("regexwhere: a ',' ends the rules; remove it or add a rule after it")
			}
		}
	}
	return out, nil
}

// parseRule parses one rule at the start of s and returns the rest.
func parseRule(n int, s string) (rule, string, error) {
	sep := s[0]
	bad := func(text, why string, a ...any) error {
		return fmt.Errorf("regexwhere rule %d `%s`: %s", n, text, fmt.Sprintf(why, a...))
	}
	if sep == '\\' || sep == ',' || sep == 0 || sep >= 0x80 || isAlnum(sep) {
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		return rule{}, "", bad(s[:end], "a rule is !from!to! (its first character, here %q, is the separator: a punctuation character other than ',' and '\\')", sep)
	}
	fields := [2]string{}
	i := 1
	for f := 0; f < 2; f++ {
		var b strings.Builder
		for {
			if i >= len(s) {
				end := strings.IndexByte(s, ',')
				if end < 0 {
					end = len(s)
				}
				return rule{}, "", bad(s[:end], "unterminated: a rule is %cfrom%cto%c", sep, sep, sep)
			}
			c := s[i]
			if c == '\\' && i+1 < len(s) && s[i+1] == sep {
				b.WriteByte(sep)
				i += 2
				continue
			}
			i++
			if c == sep {
				break
			}
			b.WriteByte(c)
		}
		fields[f] = b.String()
	}
	j := i
	for j < len(s) && s[j] != ',' {
		j++
	}
	text, flags := s[:j], s[i:j]
	if fields[0] == "" {
		return rule{}, "", bad(text, "the expression to match is empty")
	}
	x := rule{n: n, text: text, to: fields[1]}
	expr := fields[0]
	for _, f := range flags {
		switch f {
		case 'i':
			expr = "(?i)" + expr
		case 'g':
			x.global = true
		default:
			return rule{}, "", bad(text, "unknown flag %q (i: ignore case, g: every match)", f)
		}
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return rule{}, "", bad(text, "%v", err)
	}
	x.re = re
	for k := 0; k+1 < len(x.to); k++ {
		if x.to[k] == '$' && isDigit(x.to[k+1]) {
			if g := int(x.to[k+1] - '0'); g > re.NumSubexp() {
				return rule{}, "", bad(text, "$%d names a group the expression does not have (it has %d)", g, re.NumSubexp())
			}
		}
	}
	return x, s[j:], nil
}

func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// apply replaces the first match (every match with g) of the rule in p.
func (x *rule) apply(p string) string {
	var b strings.Builder
	last := 0
	for _, m := range x.re.FindAllStringSubmatchIndex(p, limit(x.global)) {
		b.WriteString(p[last:m[0]])
		x.expand(&b, p, m)
		last = m[1]
	}
	b.WriteString(p[last:])
	return b.String()
}

func limit(global bool) int {
	if global {
		return -1
	}
	return 1
}

// expand writes the replacement: $0…$9 are the match and its groups.
func (x *rule) expand(b *strings.Builder, p string, m []int) {
	to := x.to
	for k := 0; k < len(to); k++ {
		if to[k] == '$' && k+1 < len(to) && isDigit(to[k+1]) {
			g := int(to[k+1] - '0')
			if 2*g+1 < len(m) && m[2*g] >= 0 {
				b.WriteString(p[m[2*g]:m[2*g+1]])
			}
			k++
			continue
		}
		b.WriteByte(to[k])
	}
}

// String describes the rules as an operator wrote them (for logs).
func (r Rules) String() string {
	if r.RegexWhere != "" {
		return "regexwhere=" + strconv.Quote(r.RegexWhere)
	}
	var parts []string
	for _, f := range []struct{ k, v string }{{"where", r.Where}, {"strip_prefix", r.StripPrefix}, {"add_prefix", r.AddPrefix}, {"add_suffix", r.AddSuffix}} {
		if f.v != "" {
			parts = append(parts, f.k+"="+strconv.Quote(f.v))
		}
	}
	if len(parts) == 0 {
		return "where=/"
	}
	return strings.Join(parts, " ")
}
