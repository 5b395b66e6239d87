package console

import (
	"fmt"
	"strings"
)

// Help returns the help text for topic: "" gives the list of commands, one
// line each; a command name ("label", "list volumes", "exit") gives its
// usage, keywords, notes and examples; a first word shared by several
// commands ("list", "status") gives each of them. An unknown topic is an
// *UnknownCommandError with a suggestion. topic is what Parse stores under
// "topic" for "help COMMAND", but any spelling Parse accepts works.
func Help(topic string) (string, error) {
	if len(topic) > MaxLineLen {
		return "", &SyntaxError{Pos: MaxLineLen, Msg: "help topic too long"}
	}
	words := strings.Fields(topic)
	if len(words) == 0 {
		return overview(), nil
	}
	name, err := std.topic(words)
	if err != nil {
		return "", err
	}
	if fam, ok := std.families[name]; ok {
		var parts []string
		for _, s := range fam {
			parts = append(parts, detail(s))
		}
		return strings.Join(parts, "\n"), nil
	}
	return detail(std.byName[name]), nil
}

func overview() string {
	var b strings.Builder
	b.WriteString("Commands (help COMMAND shows its keywords and an example):\n")
	width := 0
	for _, s := range std.specs {
		width = max(width, len(s.Name))
	}
	for _, s := range std.specs {
		line := s.Summary
		if len(s.Aliases) > 0 {
			line += " (also: " + strings.Join(s.Aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, s.Name, line)
	}
	b.WriteString("Keywords are written keyword=value (quote values with spaces: out=\"my keys.csv\") or bare (barcodes).\n")
	return b.String()
}

func detail(s *Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s\n\nUsage:\n  %s\n", s.Name, s.Summary, s.Usage())
	if len(s.Aliases) > 0 {
		fmt.Fprintf(&b, "  (also spelled: %s)\n", strings.Join(s.Aliases, ", "))
	}
	if len(s.Keywords) > 0 {
		b.WriteString("\nKeywords:\n")
		width := 0
		for i := range s.Keywords {
			width = max(width, len(kwUsage(&s.Keywords[i])))
		}
		for i := range s.Keywords {
			k := &s.Keywords[i]
			line := k.Help
			switch {
			case k.Required:
				line += " (required)"
			case k.Type.Kind == Enum:
				line += " (" + k.Type.Want() + ")"
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width, kwUsage(k), line)
		}
	}
	if s.Topic {
		b.WriteString("\nCOMMAND is a command name, e.g. label or list volumes.\n")
	}
	if s.Notes != "" {
		fmt.Fprintf(&b, "\n%s\n", s.Notes)
	}
	if len(s.Examples) == 1 {
		b.WriteString("\nExample:\n")
	} else {
		b.WriteString("\nExamples:\n")
	}
	for _, e := range s.Examples {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}
