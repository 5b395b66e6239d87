package relocate

import (
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, c := range []struct {
		name   string
		rules  Rules
		stored string
		want   string
		root   string
	}{
		{"as stored", Rules{}, "/home/ann/x", "/home/ann/x", "/"},
		{"where slash", Rules{Where: "/"}, "/home/ann/x", "/home/ann/x", "/"},
		{"directory", Rules{}, "/home/ann/", "/home/ann", "/"},
		{"where", Rules{Where: "/tmp/r"}, "/home/ann/x", "/tmp/r/home/ann/x", "/tmp/r"},
		{"where trailing slash", Rules{Where: "/tmp/r/"}, "/etc/", "/tmp/r/etc", "/tmp/r"},
		{"where relative is from /", Rules{Where: "tmp/r"}, "/etc/hosts", "/tmp/r/etc/hosts", "/tmp/r"},
		{"where root member", Rules{Where: "/tmp/r"}, "/", "/tmp/r", "/tmp/r"},
		{"dot and double slash cleaned", Rules{Where: "/tmp/r"}, "/home//ann/./x", "/tmp/r/home/ann/x", "/tmp/r"},
		{"relative stored taken from /", Rules{Where: "/tmp/r"}, "home/x", "/tmp/r/home/x", "/tmp/r"},
		{"strip", Rules{StripPrefix: "/srv"}, "/srv/www/index.html", "/www/index.html", "/"},
		{"strip the directory itself", Rules{StripPrefix: "/srv/"}, "/srv/", "/", "/"},
		{"strip on element boundary only", Rules{StripPrefix: "/srv"}, "/srvx/a", "/srvx/a", "/"},
		{"strip not a prefix", Rules{StripPrefix: "/srv"}, "/etc/hosts", "/etc/hosts", "/"},
		{"strip and add", Rules{StripPrefix: "/srv", AddPrefix: "/restore"}, "/srv/a.pdf", "/restore/a.pdf", "/"},
		{"add prefix", Rules{AddPrefix: "/restore"}, "/etc/hosts", "/restore/etc/hosts", "/"},
		{"add prefix to a directory", Rules{AddPrefix: "/restore/"}, "/etc/", "/restore/etc", "/"},
		{"suffix on a file", Rules{AddSuffix: ".old"}, "/etc/hosts", "/etc/hosts.old", "/"},
		{"no suffix on a directory", Rules{AddSuffix: ".old"}, "/etc/", "/etc", "/"},
		{"all four", Rules{Where: "/tmp/r", StripPrefix: "/home", AddPrefix: "/users", AddSuffix: ".bak"},
			"/home/ann/notes.txt", "/tmp/r/users/ann/notes.txt.bak", "/tmp/r"},
		{"regexwhere", Rules{RegexWhere: "!/prod!/rect!"}, "/prod/u/a", "/rect/u/a", "/"},
		{"regexwhere replaces the others", Rules{Where: "/tmp/r", AddSuffix: ".x", RegexWhere: "!/prod!/rect!"}, "/prod/a", "/rect/a", "/"},
		{"regexwhere groups", Rules{RegexWhere: `!([^/]+)\.pdf$!$1.bkp.pdf!`}, "/doc/a.pdf", "/doc/a.bkp.pdf", "/"},
		{"regexwhere several rules", Rules{RegexWhere: "!^/home!/tmp/r/home!,!\\.txt$!.text!"}, "/home/ann/a.txt", "/tmp/r/home/ann/a.text", "/"},
		{"regexwhere first match only", Rules{RegexWhere: "!a!b!"}, "/a/a/a", "/b/a/a", "/"},
		{"regexwhere global", Rules{RegexWhere: "!a!b!g"}, "/a/a/a", "/b/b/b", "/"},
		{"regexwhere ignore case", Rules{RegexWhere: "!/HOME!/h!i"}, "/home/x", "/h/x", "/"},
		{"regexwhere other separator and escape", Rules{RegexWhere: `#/a\#b#/c#`}, "/a#b/x", "/c/x", "/"},
		{"regexwhere no match", Rules{RegexWhere: "!/nowhere!/x!"}, "/etc/hosts", "/etc/hosts", "/"},
		{"regexwhere comma inside a rule", Rules{RegexWhere: "!a,b!c!"}, "/a,b", "/c", "/"},
		{"regexwhere directory keeps its slash until cleaned", Rules{RegexWhere: "!/$!.d/!"}, "/etc/", "/etc.d", "/"},
		{"odd bytes kept", Rules{Where: "/tmp/r"}, "/names/new\nline\xff", "/tmp/r/names/new\nline\xff", "/tmp/r"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(c.rules)
			if err != nil {
				t.Fatalf("New(%+v): %v", c.rules, err)
			}
			got, err := r.Target(c.stored)
			if err != nil {
				t.Fatalf("Target(%q): %v", c.stored, err)
			}
			if got != c.want {
				t.Errorf("Target(%q) with %s = %q, want %q", c.stored, c.rules, got, c.want)
			}
			if r.Root() != c.root {
				t.Errorf("Root() = %q, want %q", r.Root(), c.root)
			}
		})
	}
}

func TestTargetRefused(t *testing.T) {
	for _, c := range []struct {
		rules  Rules
		stored string
		want   string // in the error
	}{
		{Rules{Where: "/tmp/r"}, "../../x", `"../../x" has a ".." element`},
		{Rules{Where: "/tmp/r"}, "/home/../../etc/passwd", `"/home/../../etc/passwd" has a ".." element`},
		{Rules{Where: "/tmp/r"}, "/a/..", `".." element`},
		{Rules{}, "", "empty"},
		{Rules{}, "/a\x00b", "NUL"},
		{Rules{RegexWhere: "!^/etc!etc!"}, "/etc/passwd", `regexwhere maps "/etc/passwd" to "etc/passwd"`},
		{Rules{RegexWhere: "!^/home!/tmp/../etc!"}, "/home/x", `regexwhere maps "/home/x" to "/tmp/../etc/x"`},
	} {
		r, err := New(c.rules)
		if err != nil {
			t.Fatalf("New(%+v): %v", c.rules, err)
		}
		got, err := r.Target(c.stored)
		if err == nil {
			t.Errorf("Target(%q) with %s = %q, want an error", c.stored, c.rules, got)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Target(%q): error %q does not say %q", c.stored, err, c.want)
		}
	}
}

func TestNewRefused(t *testing.T) {
	for _, c := range []struct {
		rules Rules
		want  string
	}{
		{Rules{RegexWhere: "!a(!b!"}, "regexwhere rule 1 `!a(!b!`: error parsing regexp"},
		{Rules{RegexWhere: "!a!b!,!a(!b!"}, "regexwhere rule 2 `!a(!b!`: error parsing regexp"},
		{Rules{RegexWhere: "!a!b"}, "regexwhere rule 1 `!a!b`: unterminated"},
		{Rules{RegexWhere: "!a!b!x"}, "regexwhere rule 1 `!a!b!x`: unknown flag 'x'"},
		{Rules{RegexWhere: "!!b!"}, "regexwhere rule 1 `!!b!`: the expression to match is empty"},
		{Rules{RegexWhere: "a!b!"}, "regexwhere rule 1 `a!b!`: a rule is !from!to!"},
		{Rules{RegexWhere: "!a!$1!"}, "regexwhere rule 1 `!a!$1!`: $1 names a group"},
		{Rules{RegexWhere: "!a!b!,"}, "a ',' ends the rules"},
		{Rules{RegexWhere: "!a!b!;!c!d!"}, "unknown flag ';'"},
		{Rules{Where: "/tmp/../etc"}, `where "/tmp/../etc": a ".." element`},
		{Rules{StripPrefix: "/a/.."}, `strip_prefix "/a/.."`},
		{Rules{AddPrefix: "/x\x00"}, `add_prefix "/x\x00": holds a NUL`},
		{Rules{AddSuffix: "/x"}, `add_suffix "/x"`},
		{Rules{AddSuffix: ".."}, `add_suffix ".."`},
	} {
		_, err := New(c.rules)
		if err == nil {
			t.Errorf("New(%+v): no error, want %q", c.rules, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): error %q does not say %q", c.rules, err, c.want)
		}
	}
}

// checkTarget is the package's promise for any accepted result.
func checkTarget(t *testing.T, r *Relocator, stored, got string) {
	t.Helper()
	if !strings.HasPrefix(got, "/") {
		t.Fatalf("Target(%q) = %q: not absolute", stored, got)
	}
	if strings.IndexByte(got, 0) >= 0 || hasDotDot(got) {
		t.Fatalf("Target(%q) = %q: NUL or '..'", stored, got)
	}
	if got != "/" && (strings.HasSuffix(got, "/") || strings.Contains(got, "//") || strings.Contains(got, "/./") || strings.HasSuffix(got, "/.")) {
		t.Fatalf("Target(%q) = %q: not clean", stored, got)
	}
	if root := r.Root(); root != "/" && got != root && !strings.HasPrefix(got, root+"/") {
		t.Fatalf("Target(%q) = %q: not under the root %q", stored, got, root)
	}
}

func FuzzTarget(f *testing.F) {
	f.Add("/tmp/r", "/srv", "/restore", ".bak", "", "/srv/a/b.txt")
	f.Add("/tmp/r", "", "", "", "", "../../x")
	f.Add("", "", "", "", "!^/home!/tmp/r!,!([^/]+)$!$1.x!g", "/home/ann/")
	f.Add("", "", "", "", "!/!/..!g", "/a/b")
	f.Add("/r", "/", "/", "x", "", "/./a//..b/")
	f.Fuzz(func(t *testing.T, where, strip, add, suffix, regex, stored string) {
		r, err := New(Rules{Where: where, StripPrefix: strip, AddPrefix: add, AddSuffix: suffix, RegexWhere: regex})
		if err != nil {
			return
		}
		got, err := r.Target(stored)
		if err != nil {
			if strings.IndexByte(stored, 0) < 0 && !hasDotDot(stored) && stored != "" && regex == "" {
				t.Fatalf("Target(%q) with where/strip/add/suffix refused a clean path: %v", stored, err)
			}
			return
		}
		if stored == "" || strings.IndexByte(stored, 0) >= 0 || hasDotDot(stored) {
			t.Fatalf("Target(%q) = %q: a refused stored path was accepted", stored, got)
		}
		checkTarget(t, r, stored, got)
	})
}
