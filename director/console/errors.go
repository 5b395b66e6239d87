package console

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrEmpty is returned by Parse for a line that holds no command: blank, only
// spaces and tabs, or a comment (first non-blank character '#'). Consoles
// skip such lines silently.
var ErrEmpty = errors.New("empty command line")

// SyntaxError is a line that cannot be split into a command and its
// keywords: an unterminated quote, a control character, a keyword given
// twice, a line over MaxLineLen bytes. Pos is the 0-based byte offset in the
// line where the problem was found; Error reports it as a 1-based column.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at column %d: %s", e.Pos+1, e.Msg)
}

// UnknownCommandError is a command word (or two words, e.g. "list volume")
// that names no command. Suggestion is the closest command name when one is
// close enough ("" otherwise). Choices lists the full names of the commands
// that start with the same first word when that word alone is not a command
// (e.g. "list volumes", "list keyevents" for "list volume" or a bare "list").
type UnknownCommandError struct {
	Word       string
	Suggestion string
	Choices    []string
}

func (e *UnknownCommandError) Error() string {
	var b strings.Builder
	if len(e.Choices) > 0 && !strings.Contains(e.Word, " ") {
		fmt.Fprintf(&b, "incomplete command %s: say %s", echo(e.Word), orList(e.Choices))
		return b.String()
	}
	fmt.Fprintf(&b, "unknown command %s", echo(e.Word))
	if e.Suggestion != "" {
		fmt.Fprintf(&b, " — did you mean %q?", e.Suggestion)
	}
	if len(e.Choices) > 0 {
		fmt.Fprintf(&b, " (one of %s)", strings.Join(e.Choices, ", "))
	} else {
		b.WriteString(` (type "help" for the list of commands)`)
	}
	return b.String()
}

// UnknownKeywordError is a keyword the command does not take. Allowed lists
// every keyword the command takes, in table order; Suggestion is the closest
// of them when close enough ("" otherwise).
type UnknownKeywordError struct {
	Command    string
	Keyword    string
	Suggestion string
	Allowed    []string
}

func (e *UnknownKeywordError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: unknown keyword %s", e.Command, echo(e.Keyword))
	if e.Suggestion != "" {
		fmt.Fprintf(&b, " — did you mean %q?", e.Suggestion)
	}
	if len(e.Allowed) == 0 {
		fmt.Fprintf(&b, " (%s takes no keywords)", e.Command)
	} else {
		fmt.Fprintf(&b, " (%s takes %s)", e.Command, strings.Join(e.Allowed, ", "))
	}
	return b.String()
}

// MissingKeywordError is a required keyword that was not given. Keywords
// holds what is missing, each written as in the usage ("storage=NAME",
// "barcodes"); more than one means "any one of these". Hint says why, when
// the rule is not plain "required" (may be ""). Usage is the command's syntax.
// More lists what else is missing, each entry as written in the usage
// (alternatives joined with " or "): a line missing several keywords
// names them all at once.
type MissingKeywordError struct {
	Command  string
	Keywords []string
	Hint     string
	Usage    string
	More     []string
}

func (e *MissingKeywordError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: missing %s", e.Command, strings.Join(e.Keywords, " or "))
	if e.Hint != "" {
		fmt.Fprintf(&b, " — %s", e.Hint)
	}
	for _, m := range e.More {
		fmt.Fprintf(&b, "; missing %s", m)
	}
	fmt.Fprintf(&b, " (usage: %s)", e.Usage)
	return b.String()
}

// ConflictError is two keywords that cannot be given together, such as
// slots= (many volumes named by barcode) and volume= (one named volume).
type ConflictError struct {
	Command  string
	Keywords []string
	Usage    string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %s cannot be used together (usage: %s)", e.Command, strings.Join(e.Keywords, " and "), e.Usage)
}

// BadValueError is a keyword whose value does not fit its type. Value is the
// value as given; NoValue is set when the keyword was written bare but needs
// a value (or was given a value but is a bare flag: then Value is set and
// Problem says so). Want describes what the keyword takes; Problem, when
// not "", says exactly what is wrong (e.g. "descending range 5-1 (write
// 1-5)").
type BadValueError struct {
	Command string // "" from ParseSlots
	Keyword string
	Value   string
	Want    string
	Problem string
	NoValue bool
}

func (e *BadValueError) Error() string {
	if e.Command == "" {
		// From ParseSlots, outside any command.
		c := *e
		c.Command = "slot list"
		return c.Error()
	}
	if e.NoValue {
		if e.Problem != "" {
			return fmt.Sprintf("%s: %s needs a value: %s", e.Command, e.Keyword, e.Problem)
		}
		return fmt.Sprintf("%s: %s needs a value: want %s", e.Command, e.Keyword, e.Want)
	}
	if e.Problem != "" {
		return fmt.Sprintf("%s: bad %s=%s: %s", e.Command, e.Keyword, echo(e.Value), e.Problem)
	}
	return fmt.Sprintf("%s: bad %s=%s: want %s", e.Command, e.Keyword, echo(e.Value), e.Want)
}

// maxEcho is the longest user-supplied text (in runes) quoted back in an
// error message.
const maxEcho = 40

// echo quotes user input for an error message: short printable text is
// shown with %q, long text is cut to maxEcho runes, and text holding a
// non-printing character (or invalid UTF-8) is not shown at all.
func echo(s string) string {
	if !utf8.ValidString(s) {
		return fmt.Sprintf("(%d bytes, not shown)", len(s))
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("(%d bytes with non-printing characters, not shown)", len(s))
		}
	}
	if n := utf8.RuneCountInString(s); n > maxEcho {
		i := 0
		for k := range s {
			if i == maxEcho {
				return fmt.Sprintf("%q… (%d characters)", s[:k], n)
			}
			i++
		}
	}
	return fmt.Sprintf("%q", s)
}

// orList writes "a, b or c".
func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
