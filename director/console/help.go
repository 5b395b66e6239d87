package console

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Help returns the help text for topic as a keyadmin console sees it
// (every command): "" gives the list of commands, one line each; a command
// name ("label", "list volumes", "exit") gives its usage, keywords, the
// role it needs, notes and examples; a first word shared by several
// commands ("list", "status") gives each of them. An unknown topic is an
// *UnknownCommandError with a suggestion. topic is what Parse stores under
// "topic" for "help COMMAND", but any spelling Parse accepts works.
func Help(topic string) (string, error) { return HelpFor(topic, RoleKeyAdmin) }

// HelpFor is Help as a console with role sees it: the list of commands
// holds only those it may run (and says how many it may not), and a
// command it may not run is shown as its summary and the role it needs.
func HelpFor(topic string, role Role) (string, error) {
	if len(topic) > MaxLineLen {
		return "", &SyntaxError{Pos: MaxLineLen, Msg: "help topic too long"}
	}
	words := strings.Fields(topic)
	if len(words) == 0 {
		return overview(role), nil
	}
	name, err := std.topic(words)
	if err != nil {
		return "", err
	}
	specs, ok := std.families[name]
	if !ok {
		specs = []*Spec{std.byName[name]}
	}
	var parts []string
	for _, s := range specs {
		if need, _ := MinRole(s); !role.Allows(need) {
			parts = append(parts, fmt.Sprintf("%s — %s\n\n%s needs role %s; this console has role %s, so the director refuses it.\n", s.Name, s.Summary, s.Name, need, role))
			continue
		}
		parts = append(parts, detail(s))
	}
	return strings.Join(parts, "\n"), nil
}

func overview(role Role) string {
	var b strings.Builder
	b.WriteString("Commands (help COMMAND shows its keywords and an example):\n")
	var shown []*Spec
	hidden := map[Role]int{}
	for _, s := range std.specs {
		if need, _ := MinRole(s); role.Allows(need) {
			shown = append(shown, s)
		} else {
			hidden[need]++
		}
	}
	width := 0
	for _, s := range shown {
		width = max(width, len(s.Name))
	}
	for _, s := range shown {
		line := s.Summary
		if len(s.Aliases) > 0 {
			line += " (also: " + strings.Join(s.Aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, s.Name, line)
	}
	b.WriteString("Keywords are written keyword=value (quote values with spaces: out=\"my keys.csv\") or bare (barcodes).\n")
	if len(hidden) > 0 {
		var needs []string
		n := 0
		for _, r := range slices.Sorted(maps.Keys(hidden)) {
			needs = append(needs, r.String())
			n += hidden[r]
		}
		fmt.Fprintf(&b, "This console has role %s: %d more commands need role %s (help COMMAND says which).\n", role, n, orList(needs))
	}
	return b.String()
}

func detail(s *Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s\n\nUsage:\n  %s\n", s.Name, s.Summary, s.Usage())
	need, _ := MinRole(s)
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
			if r := keywordRole(s.Name, k.Name); r > need {
				line += " (needs role " + r.String() + ")"
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width, kwUsage(k), line)
		}
	}
	fmt.Fprintf(&b, "\nNeeds role %s.\n", need)
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
