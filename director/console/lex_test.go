package console

import (
	"reflect"
	"testing"
)

func TestLex(t *testing.T) {
	for _, tc := range []struct {
		line string
		toks []token
	}{
		{"a", []token{{key: "a"}}},
		{"a b=c", []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, val: "c", valPos: 4}}},
		{"a  b =  c", []token{{key: "a"}, {key: "b", pos: 3, hasVal: true, val: "c", valPos: 8}}},
		{`a b="x \"y\" \\z"`, []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, val: `x "y" \z`, valPos: 4, quoted: true}}},
		{`a b=""`, []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, val: "", valPos: 4, quoted: true}}},
		{"a b=", []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, valPos: 4}}},
		{"a b= c=d", []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, valPos: 5}, {key: "c", pos: 5, hasVal: true, val: "d", valPos: 7}}},
		{"a b= c", []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, val: "c", valPos: 5}}},
		{`a b=x\y`, []token{{key: "a"}, {key: "b", pos: 2, hasVal: true, val: `x\y`, valPos: 4}}},
		{"\ta\t", []token{{key: "a", pos: 1}}},
		{"a #b", []token{{key: "a"}, {key: "#b", pos: 2}}},
		{"a\r\n", []token{{key: "a"}}},
	} {
		got, err := lex(tc.line)
		if err != nil || !reflect.DeepEqual(got, tc.toks) {
			t.Errorf("lex(%q) = %+v, %v; want %+v", tc.line, got, err, tc.toks)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "plain",
		"":           `""`,
		"a b":        `"a b"`,
		"a\tb":       "\"a\tb\"",
		`a"b`:        `"a\"b"`,
		`a\b`:        `"a\\b"`,
		"a=b":        `"a=b"`,
		"#x":         "#x",
		"ключи":      "ключи",
		`\"`:         `"\\\""`,
		"trailing\\": `"trailing\\"`,
	} {
		got := quote(in)
		if got != want {
			t.Errorf("quote(%q) = %q, want %q", in, got, want)
		}
		toks, err := lex("k v=" + got)
		if err != nil || len(toks) != 2 || toks[1].val != in {
			t.Errorf("lex(quote(%q)) = %+v, %v", in, toks, err)
		}
	}
}

func TestLower(t *testing.T) {
	for in, want := range map[string]string{"ABC": "abc", "abc": "abc", "MiXeD-1_": "mixed-1_", "\u212a": "\u212a", "ÉA": "Éa"} {
		if got := lower(in); got != want {
			t.Errorf("lower(%q) = %q, want %q", in, got, want)
		}
	}
}
