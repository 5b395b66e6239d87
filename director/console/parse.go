package console

import (
	"fmt"
	"sort"
	"strings"
)

// Command is a parsed, validated command line.
//
// Name is the canonical command name ("label", "list volumes", "update
// volume", "status storage", "quit" for exit). Args maps each given keyword
// (lower case) to its canonical value: flags map to "", slot lists are
// ascending with runs compressed ("1-3,7"), numbers have no leading zeros,
// enum values are lower case; names and paths are as given. For help, the
// topic is under "topic". Args is never nil for a parsed Command.
type Command struct {
	Name string
	Args map[string]string
	spec *Spec
	// more holds the values after the first of a Repeat keyword given
	// several times (nil when none was).
	more map[string][]string
}

// Parse turns one console line into a validated Command. It never panics.
// Errors are *SyntaxError, *UnknownCommandError, *UnknownKeywordError,
// *MissingKeywordError, *ConflictError, *BadValueError, or ErrEmpty for a
// blank or comment line. A trailing "\n" or "\r\n" is ignored.
func Parse(line string) (Command, error) { return std.parse(line) }

func (t *table) parse(line string) (Command, error) {
	toks, err := lex(line)
	if err != nil {
		return Command{}, err
	}
	s, rest, err := t.resolve(toks)
	if err != nil {
		return Command{}, err
	}
	c := Command{Name: s.Name, Args: map[string]string{}, spec: s}
	if s.Topic {
		if len(rest) == 0 {
			return c, nil
		}
		words := make([]string, len(rest))
		for i, tok := range rest {
			if tok.hasVal {
				return Command{}, &SyntaxError{Pos: tok.pos, Msg: fmt.Sprintf("%s takes a command name, not keyword=value", s.Name)}
			}
			words[i] = tok.key
		}
		topic, err := t.topic(words)
		if err != nil {
			return Command{}, err
		}
		c.Args["topic"] = topic
		return c, nil
	}
	for _, tok := range rest {
		name := lower(tok.key)
		k := s.Keyword(name)
		if k == nil {
			var names []string
			for i := range s.Keywords {
				names = append(names, s.Keywords[i].Name)
			}
			return Command{}, &UnknownKeywordError{Command: s.Name, Keyword: tok.key, Suggestion: suggest(name, names), Allowed: names}
		}
		_, dup := c.Args[name]
		if dup && !k.Repeat {
			return Command{}, &SyntaxError{Pos: tok.pos, Msg: fmt.Sprintf("%s: %s given twice", s.Name, name)}
		}
		if k.Type.Kind == Flag {
			if tok.hasVal {
				return Command{}, &BadValueError{Command: s.Name, Keyword: name, Value: tok.val, Want: k.Type.Want(),
					Problem: fmt.Sprintf("%s takes no value (write %s on its own)", name, name)}
			}
			c.Args[name] = ""
			continue
		}
		if !tok.hasVal || tok.val == "" && !tok.quoted {
			return Command{}, &BadValueError{Command: s.Name, Keyword: name, Want: k.Type.Want(), NoValue: true,
				Problem: "write " + kwUsage(k)}
		}
		v, problem, ok := k.Type.canon(tok.val)
		if !ok {
			return Command{}, &BadValueError{Command: s.Name, Keyword: name, Value: tok.val, Want: k.Type.Want(), Problem: problem}
		}
		if dup {
			if c.more == nil {
				c.more = map[string][]string{}
			}
			c.more[name] = append(c.more[name], v)
			continue
		}
		c.Args[name] = v
	}
	if err := c.check(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// check applies the Required and Choice rules. Every missing keyword is
// named at once (a user fixes the line in one go).
func (c *Command) check() error {
	s := c.spec
	var missing *MissingKeywordError
	add := func(keywords []string, hint string) {
		if missing == nil {
			missing = &MissingKeywordError{Command: s.Name, Keywords: keywords, Hint: hint, Usage: s.Usage()}
			return
		}
		missing.More = append(missing.More, strings.Join(keywords, " or "))
	}
	for i := range s.Keywords {
		k := &s.Keywords[i]
		if _, ok := c.Args[k.Name]; k.Required && !ok {
			add([]string{kwUsage(k)}, "")
		}
	}
	var touched []int
	var present []string // first present keyword of each touched group
	for gi, g := range s.Choice {
		for _, n := range g {
			if _, ok := c.Args[n]; ok {
				touched = append(touched, gi)
				present = append(present, kwRef(s.Keyword(n)))
				break
			}
		}
	}
	switch {
	case len(s.Choice) == 0:
	case len(touched) == 0:
		var alts []string
		for _, g := range s.Choice {
			var ws []string
			for _, n := range g {
				ws = append(ws, kwUsage(s.Keyword(n)))
			}
			alts = append(alts, strings.Join(ws, " "))
		}
		add(alts, "")
	case len(touched) == 1:
		g := s.Choice[touched[0]]
		for _, n := range g {
			if _, ok := c.Args[n]; !ok {
				k := s.Keyword(n)
				add([]string{kwUsage(k)}, fmt.Sprintf("%s goes with %s", present[0], kwRef(k)))
			}
		}
	default:
		if missing == nil {
			return &ConflictError{Command: s.Name, Keywords: present, Usage: s.Usage()}
		}
	}
	if missing != nil {
		return missing
	}
	return nil
}

// kwRef names a keyword in a message: "slots=" or "barcodes".
func kwRef(k *Keyword) string {
	if k.Type.Kind == Flag {
		return k.Name
	}
	return k.Name + "="
}

// resolve finds the command named by the first one or two tokens and
// returns the tokens that carry its keywords.
func (t *table) resolve(toks []token) (*Spec, []token, error) {
	t0 := toks[0]
	if t0.hasVal {
		return nil, nil, &SyntaxError{Pos: t0.pos, Msg: fmt.Sprintf("a line starts with a command, not %s=…; type help for the commands", echo(t0.key))}
	}
	w1 := lower(t0.key)
	if fam, ok := t.families[w1]; ok {
		if len(toks) == 1 {
			return nil, nil, &UnknownCommandError{Word: t0.key, Choices: names(fam)}
		}
		t1 := toks[1]
		w2 := lower(t1.key)
		if s, ok := t.byName[w1+" "+w2]; ok {
			if !t1.hasVal {
				return s, toks[2:], nil
			}
			if s.Keyword(w2) == nil {
				return nil, nil, &SyntaxError{Pos: t1.pos, Msg: fmt.Sprintf("%q is part of the command %q and takes no value", w2, s.Name)}
			}
			return s, toks[1:], nil
		}
		var seconds []string
		for _, s := range fam {
			_, w, _ := strings.Cut(s.Name, " ")
			seconds = append(seconds, w)
		}
		e := &UnknownCommandError{Word: t0.key + " " + t1.key, Choices: names(fam)}
		if w := suggest(w2, seconds); w != "" {
			e.Suggestion = w1 + " " + w
		}
		return nil, nil, e
	}
	if s, ok := t.byName[w1]; ok {
		return s, toks[1:], nil
	}
	return nil, nil, &UnknownCommandError{Word: t0.key, Suggestion: suggest(w1, t.firstWords())}
}

// topic resolves the words of "help WORDS" to a canonical command name or a
// family's first word ("list").
func (t *table) topic(words []string) (string, error) {
	w1 := lower(words[0])
	if fam, ok := t.families[w1]; ok {
		if len(words) == 1 {
			return w1, nil
		}
		w2 := lower(words[1])
		if s, ok := t.byName[w1+" "+w2]; ok && len(words) == 2 {
			return s.Name, nil
		}
		var seconds []string
		for _, s := range fam {
			_, w, _ := strings.Cut(s.Name, " ")
			seconds = append(seconds, w)
		}
		e := &UnknownCommandError{Word: strings.Join(words, " "), Choices: names(fam)}
		if w := suggest(w2, seconds); w != "" && len(words) == 2 {
			e.Suggestion = w1 + " " + w
		}
		return "", e
	}
	if s, ok := t.byName[w1]; ok {
		if len(words) == 1 {
			return s.Name, nil
		}
		return "", &UnknownCommandError{Word: strings.Join(words, " "), Suggestion: s.Name}
	}
	return "", &UnknownCommandError{Word: strings.Join(words, " "), Suggestion: suggest(w1, t.firstWords())}
}

// firstWords lists every first word a line may start with, in table order.
func (t *table) firstWords() []string {
	var ws []string
	seen := map[string]bool{}
	for _, s := range t.specs {
		for _, n := range append([]string{s.Name}, s.Aliases...) {
			w, _, _ := strings.Cut(n, " ")
			if !seen[w] {
				seen[w] = true
				ws = append(ws, w)
			}
		}
	}
	return ws
}

func names(specs []*Spec) []string {
	ns := make([]string, len(specs))
	for i, s := range specs {
		ns[i] = s.Name
	}
	return ns
}

// Spec returns the command's table entry (nil for a Command not made by
// Parse whose Name is not a command).
func (c Command) Spec() *Spec {
	if c.spec != nil {
		return c.spec
	}
	return std.byName[c.Name]
}

// Has reports whether keyword k was given.
func (c Command) Has(k string) bool {
	_, ok := c.Args[lower(k)]
	return ok
}

// Str returns keyword k's canonical value, or "" when it was not given (or
// is a flag).
func (c Command) Str(k string) string { return c.Args[lower(k)] }

// Strs returns every value of keyword k in the order given (a Repeat
// keyword may be given several times), or nil.
func (c Command) Strs(k string) []string {
	v, ok := c.Args[lower(k)]
	if !ok {
		return nil
	}
	return append([]string{v}, c.more[lower(k)]...)
}

// With returns a copy of c whose keyword k has the values vs (several
// only for a Repeat keyword; none removes k). The values are not checked:
// the line it prints is parsed again by whoever reads it.
func (c Command) With(k string, vs []string) Command {
	k = lower(k)
	out := Command{Name: c.Name, Args: make(map[string]string, len(c.Args)), spec: c.spec}
	for x, v := range c.Args {
		out.Args[x] = v
	}
	for x, v := range c.more {
		if x != k {
			if out.more == nil {
				out.more = map[string][]string{}
			}
			out.more[x] = v
		}
	}
	delete(out.Args, k)
	if len(vs) > 0 {
		out.Args[k] = vs[0]
		if len(vs) > 1 {
			if out.more == nil {
				out.more = map[string][]string{}
			}
			out.more[k] = append([]string(nil), vs[1:]...)
		}
	}
	return out
}

// Int returns keyword k's value as a number; ok is false when k was not
// given or is not a number.
func (c Command) Int(k string) (n int, ok bool) {
	v, ok := c.Args[lower(k)]
	if !ok {
		return 0, false
	}
	return atoi(v)
}

// Bool reports whether flag k was given, or whether keyword k's value is
// "yes".
func (c Command) Bool(k string) bool {
	v, ok := c.Args[lower(k)]
	return ok && (v == "" || v == "yes")
}

// Slots returns the slots of slots=LIST in ascending order, or nil when
// slots= was not given.
func (c Command) Slots() []int {
	v, ok := c.Args["slots"]
	if !ok {
		return nil
	}
	slots, _ := parseSlots(v)
	return slots
}

// Local reports whether the console handles the command itself (help,
// quit) rather than sending it to the director.
func (c Command) Local() bool {
	s := c.Spec()
	return s != nil && s.Local
}

// ConsoleArgs lists the given keywords whose values only the console uses
// (e.g. out for export keys). The director must not act on them: for
// export keys it returns the rows and tapectl writes them to Str("out").
func (c Command) ConsoleArgs() []string {
	s := c.Spec()
	if s == nil {
		return nil
	}
	var ks []string
	for _, k := range s.Keywords {
		if _, ok := c.Args[k.Name]; ok && k.Console {
			ks = append(ks, k.Name)
		}
	}
	return ks
}

// String is the command's canonical line, which Parse reads back as an
// equal Command: canonical name, keywords in table order, values quoted
// when needed ("update volume=Vol1 encrypt=yes").
func (c Command) String() string {
	s := c.Spec()
	parts := []string{c.Name}
	used := map[string]bool{}
	if s != nil {
		if _, second, two := strings.Cut(c.Name, " "); two && s.Keyword(second) != nil {
			if v, ok := c.Args[second]; ok {
				parts[0] = c.Name + "=" + quote(v)
				used[second] = true
			}
		}
		if s.Topic {
			if v, ok := c.Args["topic"]; ok {
				parts = append(parts, v)
				used["topic"] = true
			}
		}
		for _, k := range s.Keywords {
			if v, ok := c.Args[k.Name]; ok && !used[k.Name] {
				used[k.Name] = true
				if k.Type.Kind == Flag {
					parts = append(parts, k.Name)
				} else {
					parts = append(parts, k.Name+"="+quote(v))
					for _, m := range c.more[k.Name] {
						parts = append(parts, k.Name+"="+quote(m))
					}
				}
			}
		}
	}
	var rest []string
	for k := range c.Args {
		if !used[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		if v := c.Args[k]; v == "" {
			parts = append(parts, k)
		} else {
			parts = append(parts, k+"="+quote(v))
		}
	}
	return strings.Join(parts, " ")
}
