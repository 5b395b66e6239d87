package console

import (
	"errors"
	"strings"
	"testing"
)

func TestHelpOverview(t *testing.T) {
	for _, topic := range []string{"", "  "} {
		h, err := Help(topic)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(h, "\n"), "\n")
		for _, s := range Commands() {
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "  "+s.Name+" ") && strings.Contains(l, s.Summary) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("help overview has %d lines for %q:\n%s", n, s.Name, h)
			}
		}
		if !strings.Contains(h, "(also: exit)") {
			t.Errorf("help overview does not mention exit:\n%s", h)
		}
	}
}

func TestHelpCommand(t *testing.T) {
	for _, s := range Commands() {
		h, err := Help(s.Name)
		if err != nil {
			t.Errorf("Help(%q): %v", s.Name, err)
			continue
		}
		if !strings.HasPrefix(h, s.Name+" — "+s.Summary+"\n") {
			t.Errorf("Help(%q) does not start with the summary:\n%s", s.Name, h)
		}
		if !strings.Contains(h, "\n  "+s.Usage()+"\n") {
			t.Errorf("Help(%q) lacks the usage %q:\n%s", s.Name, s.Usage(), h)
		}
		for _, k := range s.Keywords {
			if !strings.Contains(h, "\n  "+kwUsage(&k)+" ") || !strings.Contains(h, k.Help) {
				t.Errorf("Help(%q) lacks keyword %q:\n%s", s.Name, k.Name, h)
			}
		}
		for _, ex := range s.Examples {
			if !strings.Contains(h, "\n  "+ex+"\n") {
				t.Errorf("Help(%q) lacks example %q", s.Name, ex)
			}
		}
	}
	h, _ := Help("label")
	for _, want := range []string{
		"label (slots=LIST barcodes | slot=N volume=NAME) [storage=NAME] [pool=NAME] [encrypt] [drive=N]",
		"storage=NAME  the storage daemon whose changer holds the cartridges (default: the only [[storage]] configured)",
		"Examples:\n  label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("help label lacks %q:\n%s", want, h)
		}
	}
	h, _ = Help("update volume")
	if !strings.Contains(h, "(required)") || !strings.Contains(h, "update volume=NAME (encrypt=yes|no|rotate | status=Append|Full|Used|Read-Only|Disabled|Archive|Error)") {
		t.Errorf("help update volume:\n%s", h)
	}
}

func TestHelpTopics(t *testing.T) {
	// Any spelling Parse accepts works; a family shows each member.
	h, err := Help("LIST")
	if err != nil || !strings.Contains(h, "list volumes — ") || !strings.Contains(h, "list keyevents — ") {
		t.Errorf("Help(LIST) = %q, %v", h, err)
	}
	h, err = Help("exit")
	if err != nil || !strings.HasPrefix(h, "quit — ") || !strings.Contains(h, "also spelled: exit") {
		t.Errorf("Help(exit) = %q, %v", h, err)
	}
	// The topic Parse stores for "help X" is accepted by Help.
	for _, l := range []string{"help label", "help list keyevents", "help status", "help Exit"} {
		c, err := Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Help(c.Str("topic")); err != nil {
			t.Errorf("%q: Help(%q): %v", l, c.Str("topic"), err)
		}
	}
	var uc *UnknownCommandError
	if _, err := Help("lable"); !errors.As(err, &uc) || uc.Suggestion != "label" {
		t.Errorf("Help(lable) = %v", err)
	}
	if _, err := Help("list volume"); !errors.As(err, &uc) || uc.Suggestion != "list volumes" {
		t.Errorf("Help(list volume) = %v", err)
	}
	var se *SyntaxError
	if _, err := Help(strings.Repeat("x ", MaxLineLen)); !errors.As(err, &se) {
		t.Errorf("Help(huge) = %v", err)
	}
}

func TestNewTableRejects(t *testing.T) {
	ok := func() Spec {
		return Spec{Name: "x", Summary: "s", Examples: []string{"x"},
			Keywords: []Keyword{{Name: "a", Type: TName}, {Name: "b", Type: TFlag}}}
	}
	if _, err := newTable([]Spec{ok()}); err != nil {
		t.Fatalf("good spec rejected: %v", err)
	}
	for name, mod := range map[string]func(*Spec){
		"three words":       func(s *Spec) { s.Name = "a b c" },
		"upper case":        func(s *Spec) { s.Name = "X" },
		"no summary":        func(s *Spec) { s.Summary = "" },
		"no example":        func(s *Spec) { s.Examples = nil },
		"keyword twice":     func(s *Spec) { s.Keywords = append(s.Keywords, Keyword{Name: "a", Type: TFlag}) },
		"keyword with =":    func(s *Spec) { s.Keywords[0].Name = "a=b" },
		"no placeholder":    func(s *Spec) { s.Keywords[0].Type = Type{Kind: Name} },
		"choice unknown":    func(s *Spec) { s.Choice = [][]string{{"zz"}} },
		"choice required":   func(s *Spec) { s.Keywords[0].Required = true; s.Choice = [][]string{{"a"}} },
		"choice twice":      func(s *Spec) { s.Choice = [][]string{{"a"}, {"a", "b"}} },
		"choice empty":      func(s *Spec) { s.Choice = [][]string{{}} },
		"topic and keyword": func(s *Spec) { s.Topic = true },
	} {
		s := ok()
		mod(&s)
		if _, err := newTable([]Spec{s}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := newTable([]Spec{ok(), ok()}); err == nil {
		t.Error("duplicate command accepted")
	}
	fam := ok()
	fam.Name = "x y"
	if _, err := newTable([]Spec{ok(), fam}); err == nil {
		t.Error("a command that is also a family accepted")
	}
}
