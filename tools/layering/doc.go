// Package layering holds the test that enforces the import rules of the
// architecture's wings (shared/docs/architecture.md §2): which packages of
// the module may import which. It has no code of its own; run
// `go test ./tools/layering/`. A failure names the importing package, the
// forbidden import and the rule.
package layering
