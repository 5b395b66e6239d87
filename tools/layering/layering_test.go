package layering

import (
	"go/build"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/tapeward/tapeward"

// rule constrains the non-test imports, inside the module, of the
// packages matching pkgs ("x/..." is x and everything under it).
type rule struct {
	pkgs string
	// only, if non-nil, lists everything in the module they may import
	// (besides themselves); never lists what they must not import.
	only, never []string
	why         string
}

// daemonsAndTools are the binaries' own packages: no daemon or tool
// imports another's (§2: shared pieces live in proto/, configs/ or a
// shared package).
var otherBinaries = []string{"tools/vtl/...", "tools/tapectl/...", "tools/tapekey/...", "tools/filed/...", "tools/tapextract/...", "tools/demo/...", "tools/composecheck/..."}

// libraryLayer is what the tape library layer (label, data path, crypto
// cache) may import: the SCSI initiator (not its transports), keys, and
// each other.
// tools/lib/archive is in it because the layer writes the on-tape format
// v2 itself (storaged/jobtape: part headers, continuations of cut
// members, the index tape file); archive imports only the standard
// library, so this brings in no catalog, network or daemon code.
var libraryLayer = []string{"storaged/scsi", "tools/lib/keys", "storaged/label", "storaged/tapeio", "storaged/cryptocache", "storaged/jobtape", "tools/lib/archive"}

const libraryWhy = "the tape library layer knows the SCSI initiator, keys and the archive format (pure standard library), never sd, proto, configs or a transport"

// rules is the import table of architecture §2, as the code keeps it.
// Test files are not constrained (a storaged test may start a vtl
// in process).
var rules = []rule{
	{pkgs: "proto/...", only: []string{"proto/..."},
		why: "the wire protocol knows nothing else in the repo"},
	{pkgs: "tools/lib/keys", only: []string{},
		why: "key material is crypto only"},
	{pkgs: "tools/lib/archive", only: []string{},
		why: "the archive format is archive/tar, io and the standard library: never SCSI, catalog or network"},
	{pkgs: "tools/lib/relocate", only: []string{},
		why: "restore relocation (where=, strip_prefix=, regexwhere=…) is pure: filed writes with it and the director lists a dryrun with it"},
	{pkgs: "tools/lib/extract", only: []string{"tools/lib/archive", "tools/lib/relocate"},
		why: "the safe extractor is the archive format's wing (architecture §2): archive, relocation, the standard library and x/sys; filed's restore and tapextract both write with it"},
	{pkgs: "migrations", only: []string{},
		why: "migrations are SQL files"},
	{pkgs: "configs", only: []string{"configs/schedule"},
		why: "configuration is shared by every binary and depends on none (only on the pure Run grammar, to check [[schedule]] run lines at load)"},
	{pkgs: "storaged/scsi/...", only: []string{"storaged/scsi/..."},
		why: "the SCSI initiator knows bytes and devices, not keys' storage, the catalog or the daemon"},
	{pkgs: "storaged/label", only: libraryLayer, why: libraryWhy},
	{pkgs: "storaged/tapeio", only: libraryLayer, why: libraryWhy},
	{pkgs: "storaged/cryptocache", only: libraryLayer, why: libraryWhy},
	{pkgs: "storaged/jobtape", only: libraryLayer, why: libraryWhy + " (the job tape writer lays out format v2 on tape: it needs tapeio and archive, and is handed ready devices)"},
	{pkgs: "storaged/...", never: append([]string{"director/...", "tools/lib/testenv", "tools/lib/pgtest"}, otherBinaries...),
		why: "storaged never imports the director's packages, another binary's, or a test harness outside tests (vtl only in tests)"},
	{pkgs: "configs/schedule", only: []string{},
		why: "scheduling (the Run grammar, next-run computation) is pure: time only, the standard library; it sits under configs/ because director.toml's loader checks run lines with it, and configs is shared by every binary"},
	{pkgs: "director/...", never: append([]string{"storaged/...", "tools/lib/testenv", "tools/lib/pgtest"}, otherBinaries...),
		why: "the director never imports storaged's packages (no SCSI), another binary's, or a test harness outside tests"},
	{pkgs: "tools/vtl/...", only: []string{"tools/vtl/...", "storaged/scsi", "storaged/scsi/vtlwire", "storaged/scsi/iscsiwire", "tools/lib/keys"},
		why: "vtl knows SCSI constants, the wire protocols (vtl socket, iSCSI PDUs) and its own cartridge store, never director or storaged logic"},
	{pkgs: "tools/tapectl/...", never: append([]string{"storaged/...", "director", "director/core", "director/catalog"}, except(otherBinaries, "tools/tapectl/...")...),
		why: "tapectl talks to the director over proto; it shares only the console command table"},
	{pkgs: "tools/tapekey/...", never: append([]string{"director/..."}, except(otherBinaries, "tools/tapekey/...")...),
		why: "tapekey serves keys, caches and drives; never the director or another tool"},
	{pkgs: "tools/tapextract/...", never: append([]string{"director/...", "proto/..."}, except(otherBinaries, "tools/tapextract/...")...),
		why: "tapextract restores with no director, no catalog and no protocol"},
	{pkgs: "tools/filed/fileset", only: []string{},
		why: "the fileset walker knows the file system only (standard library, x/sys): no archive format, proto or configs"},
	{pkgs: "tools/filed/...", never: append([]string{"director/...", "storaged/..."}, except(otherBinaries, "tools/filed/...")...),
		why: "filed knows the archive format, proto and configs"},
	{pkgs: "tools/composecheck", never: append([]string{"director/...", "storaged/..."}, except(otherBinaries, "tools/composecheck/...")...),
		why: "composecheck reads the compose files and configs, no daemon"},
	{pkgs: "tools/lib/...", never: append([]string{"director/core", "director/catalog", "storaged/sd"}, otherBinaries...),
		why: "shared tool libraries depend on no binary and no daemon internals"},
}

func except(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

func match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchAny(patterns []string, pkg string) bool {
	for _, p := range patterns {
		if match(p, pkg) {
			return true
		}
	}
	return false
}

// violations checks an import graph (module-relative package → its
// module-relative non-test imports) against rules.
func violations(graph map[string][]string, rules []rule) []string {
	var out []string
	for pkg, imps := range graph {
		for _, r := range rules {
			if !match(r.pkgs, pkg) {
				continue
			}
			for _, imp := range imps {
				bad := matchAny(r.never, imp)
				if r.only != nil && !match(r.pkgs, imp) && !matchAny(r.only, imp) {
					bad = true
				}
				if bad {
					out = append(out, pkg+" imports "+imp+": "+r.why+" (rule "+r.pkgs+", architecture §2)")
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// moduleGraph reads every package of the module with go/build (the
// files this platform builds; test files excluded).
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module "+module+"\n") {
		t.Fatalf("module root %s: %v", root, err)
	}
	graph := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.Default.ImportDir(path, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		var imps []string
		for _, imp := range p.Imports {
			if in, ok := strings.CutPrefix(imp, module+"/"); ok {
				imps = append(imps, in)
			}
		}
		graph[rel] = imps
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return graph
}

// TestLayering enforces the import table on the module.
func TestLayering(t *testing.T) {
	graph := moduleGraph(t)
	for _, want := range []string{"proto/tapewardpb", "storaged/scsi", "storaged/sd", "tools/vtl/emu", "director/core"} {
		if _, ok := graph[want]; !ok {
			t.Fatalf("package %s not found: the walk is broken (found %d packages)", want, len(graph))
		}
	}
	for _, v := range violations(graph, rules) {
		t.Error(v)
	}
	// Every package is covered by some rule, so a new wing gets a row.
	for pkg := range graph {
		covered := false
		for _, r := range rules {
			covered = covered || match(r.pkgs, pkg)
		}
		if !covered && !matchAny([]string{"tools/demo/...", "tools/layering"}, pkg) {
			t.Errorf("package %s is in no row of the layering table: add one (tools/layering/layering_test.go)", pkg)
		}
	}
}

// TestRulesCatchViolations: the checker reports each forbidden import
// with the importing package and the rule (so TestLayering can fail).
func TestRulesCatchViolations(t *testing.T) {
	graph := map[string][]string{
		"proto/tapewardpb":    {"storaged/scsi"},
		"storaged/tapeio":     {"storaged/scsi", "storaged/sd"},
		"storaged/sd":         {"tools/vtl/emu", "storaged/label"},
		"director/core":       {"storaged/scsi"},
		"configs/schedule":    {"director/catalog"},
		"tools/vtl/emu":       {"storaged/scsi", "storaged/tapeio"},
		"tools/tapextract":    {"proto/tlsconf"},
		"tools/tapekey":       {"tools/vtl/cart"},
		"storaged/scsi/foo":   {"storaged/cryptocache"},
		"tools/lib/keys":      {"storaged/scsi"},
		"tools/filed/fileset": {"configs"},
		"storaged/jobtape":    {"tools/lib/archive", "storaged/sd"},
	}
	got := violations(graph, rules)
	want := []string{
		"configs/schedule imports director/catalog",
		"director/core imports storaged/scsi",
		"proto/tapewardpb imports storaged/scsi",
		"storaged/jobtape imports storaged/sd",
		"storaged/scsi/foo imports storaged/cryptocache",
		"storaged/sd imports tools/vtl/emu",
		"storaged/tapeio imports storaged/sd",
		"tools/filed/fileset imports configs",
		"tools/lib/keys imports storaged/scsi",
		"tools/tapekey imports tools/vtl/cart",
		"tools/tapextract imports proto/tlsconf",
		"tools/vtl/emu imports storaged/tapeio",
	}
	if len(got) != len(want) {
		t.Fatalf("violations:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+": ") || !strings.Contains(got[i], "architecture §2") {
			t.Errorf("violation %d: %q, want it to start with %q", i, got[i], want[i])
		}
	}
	if v := violations(map[string][]string{"storaged/sd": {"storaged/scsi/dial", "proto/link", "configs"}, "tools/vtl/emu": {"storaged/scsi/vtlwire"}}, rules); len(v) != 0 {
		t.Fatalf("allowed imports reported: %v", v)
	}
}
