package composecheck

// A reader for the plain YAML subset docker-compose.yml is kept in. go.mod
// has no YAML library and this test should not add one, so the compose file
// promises to stay in this subset and this reader refuses everything else
// (so a construct it does not understand fails the test instead of being
// misread):
//
//   - block mappings "key: value" (keys are plain words) and block lists
//     "- item", nested by indentation with spaces (no tabs); a list item may
//     start a mapping ("- key: value");
//   - scalars: plain, "double quoted" (Go escapes), 'single quoted';
//   - flow lists of scalars: ["a", "b"];
//   - literal and folded blocks: "|", "|-", ">", ">-" (the text is kept as
//     written, one line per line, for the checks);
//   - comments: "#" at the start or after a blank, outside quotes.
//
// Anchors, aliases, tags, flow mappings "{...}", several documents and
// duplicate keys are errors.

import (
	"fmt"
	"strconv"
	"strings"
)

type yKind int

const (
	yScalar yKind = iota
	yMap
	yList
	yNull // "key:" with nothing under it
)

type ynode struct {
	kind yKind
	line int
	str  string
	keys []string // mapping keys in order
	m    map[string]*ynode
	list []*ynode
}

type yline struct {
	n      int // 1-based
	indent int
	text   string // comment stripped, trimmed
	raw    string
}

type yparser struct {
	lines []yline
	i     int
}

func parseYAML(src string) (*ynode, error) {
	p := &yparser{}
	for i, raw := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		ind := len(raw) - len(strings.TrimLeft(raw, " "))
		if strings.HasPrefix(strings.TrimLeft(raw, " "), "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		p.lines = append(p.lines, yline{n: i + 1, indent: ind, raw: raw, text: strings.TrimSpace(stripComment(raw))})
	}
	root, err := p.node(0)
	if err != nil {
		return nil, err
	}
	if l, ok := p.peek(); ok {
		return nil, fmt.Errorf("line %d: unexpected %q (indentation?)", l.n, l.text)
	}
	if root == nil || root.kind != yMap {
		return nil, fmt.Errorf("the document is not a mapping")
	}
	return root, nil
}

// stripComment cuts a comment that starts outside quotes.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			if i == 0 || s[i-1] == ' ' || s[i-1] == '[' || s[i-1] == ',' || s[i-1] == '-' {
				q = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return s[:i]
		}
	}
	return s
}

// peek returns the next line that has content.
func (p *yparser) peek() (yline, bool) {
	for p.i < len(p.lines) && p.lines[p.i].text == "" {
		p.i++
	}
	if p.i == len(p.lines) {
		return yline{}, false
	}
	return p.lines[p.i], true
}

// node parses the block starting at the next line if it is indented at
// least min; nil when there is none.
func (p *yparser) node(min int) (*ynode, error) {
	l, ok := p.peek()
	if !ok || l.indent < min {
		return nil, nil
	}
	if l.text == "---" || l.text == "..." {
		return nil, fmt.Errorf("line %d: several documents are not supported", l.n)
	}
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return p.list(l.indent)
	}
	return p.mapping(l.indent)
}

// splitKey splits "key: value" / "key:"; ok is false if the line is not a
// mapping entry.
func splitKey(text string) (key, value string, ok bool) {
	if text == "" || strings.ContainsAny(text[:1], `"'[{&*!|>`) {
		return "", "", false
	}
	i := strings.Index(text, ":")
	for i >= 0 {
		if i == len(text)-1 || text[i+1] == ' ' {
			key = text[:i]
			for _, c := range key {
				if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
					return "", "", false
				}
			}
			return key, strings.TrimSpace(text[i+1:]), key != ""
		}
		j := strings.Index(text[i+1:], ":")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return "", "", false
}

func (p *yparser) mapping(ind int) (*ynode, error) {
	n := &ynode{kind: yMap, m: map[string]*ynode{}}
	for {
		l, ok := p.peek()
		if !ok || l.indent < ind {
			return n, nil
		}
		if n.line == 0 {
			n.line = l.n
		}
		if l.indent > ind {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		key, val, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not \"key: value\" (outside the supported YAML subset)", l.n, l.text)
		}
		if _, dup := n.m[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.n, key)
		}
		p.i++
		var child *ynode
		var err error
		switch {
		case val == "":
			child, err = p.node(ind + 1)
			if child == nil && err == nil {
				child = &ynode{kind: yNull, line: l.n}
			}
		case isBlockIndicator(val):
			child = p.block(ind, l.n)
		default:
			child, err = inline(val, l.n)
		}
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, key)
		n.m[key] = child
	}
}

func (p *yparser) list(ind int) (*ynode, error) {
	n := &ynode{kind: yList}
	for {
		l, ok := p.peek()
		if !ok || l.indent < ind {
			return n, nil
		}
		if n.line == 0 {
			n.line = l.n
		}
		if l.indent > ind || !(l.text == "-" || strings.HasPrefix(l.text, "- ")) {
			return nil, fmt.Errorf("line %d: expected a list item \"- ...\" at indentation %d", l.n, ind)
		}
		rest := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		var item *ynode
		var err error
		switch {
		case rest == "":
			p.i++
			item, err = p.node(ind + 1)
			if item == nil && err == nil {
				item = &ynode{kind: yNull, line: l.n}
			}
		case isBlockIndicator(rest):
			p.i++
			item = p.block(ind, l.n)
		default:
			if _, _, isMap := splitKey(rest); isMap {
				// "- key: value": a mapping indented past the dash.
				off := strings.Index(l.raw, rest)
				p.lines[p.i].indent, p.lines[p.i].text = off, rest
				item, err = p.mapping(off)
			} else {
				p.i++
				item, err = inline(rest, l.n)
			}
		}
		if err != nil {
			return nil, err
		}
		n.list = append(n.list, item)
	}
}

func isBlockIndicator(v string) bool {
	switch v {
	case "|", "|-", ">", ">-":
		return true
	}
	return false
}

// block reads a literal/folded block indented more than parent; the text
// keeps one line per line.
func (p *yparser) block(parent, at int) *ynode {
	var out []string
	bi := -1
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if strings.TrimSpace(l.raw) == "" {
			out = append(out, "")
			p.i++
			continue
		}
		if l.indent <= parent {
			break
		}
		if bi < 0 {
			bi = l.indent
		}
		if l.indent < bi {
			break
		}
		out = append(out, l.raw[bi:])
		p.i++
	}
	return &ynode{kind: yScalar, line: at, str: strings.TrimRight(strings.Join(out, "\n"), "\n")}
}

// inline parses a scalar or a flow list of scalars.
func inline(v string, line int) (*ynode, error) {
	switch v[0] {
	case '{', '&', '*', '!':
		return nil, fmt.Errorf("line %d: %q is outside the supported YAML subset (no flow mappings, anchors, aliases or tags)", line, v)
	case '[':
		if !strings.HasSuffix(v, "]") {
			return nil, fmt.Errorf("line %d: a flow list must end on its line: %q", line, v)
		}
		n := &ynode{kind: yList, line: line}
		body := strings.TrimSpace(v[1 : len(v)-1])
		if body == "" {
			return n, nil
		}
		for _, part := range splitFlow(body) {
			s, err := scalar(strings.TrimSpace(part), line)
			if err != nil {
				return nil, err
			}
			n.list = append(n.list, &ynode{kind: yScalar, line: line, str: s})
		}
		return n, nil
	}
	s, err := scalar(v, line)
	if err != nil {
		return nil, err
	}
	return &ynode{kind: yScalar, line: line, str: s}, nil
}

// splitFlow splits a flow list body at commas outside quotes.
func splitFlow(s string) []string {
	var parts []string
	var q byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == ',':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func scalar(s string, line int) (string, error) {
	if s == "" {
		return "", fmt.Errorf("line %d: empty flow list item", line)
	}
	switch s[0] {
	case '"':
		u, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("line %d: bad double-quoted string %s: %v", line, s, err)
		}
		return u, nil
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return "", fmt.Errorf("line %d: bad single-quoted string %s", line, s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case '[', '{', '&', '*', '!':
		return "", fmt.Errorf("line %d: nested %q is outside the supported YAML subset", line, s)
	}
	return s, nil
}

// get walks mapping keys; nil if any is missing.
func (n *ynode) get(path ...string) *ynode {
	for _, k := range path {
		if n == nil || n.kind != yMap {
			return nil
		}
		n = n.m[k]
	}
	return n
}

// strs returns a list of scalars (or one scalar as a list of one).
func (n *ynode) strs() []string {
	if n == nil {
		return nil
	}
	if n.kind == yScalar {
		return []string{n.str}
	}
	var out []string
	for _, it := range n.list {
		if it.kind == yScalar {
			out = append(out, it.str)
		}
	}
	return out
}

func (n *ynode) scalar() string {
	if n == nil || n.kind != yScalar {
		return ""
	}
	return n.str
}
