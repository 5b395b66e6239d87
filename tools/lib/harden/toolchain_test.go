package harden

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// minPatch is the oldest Go 1.26 patch release whose crypto/x509,
// crypto/tls and net/http fixes the daemons need (README, Security:
// govulncheck found 8 reachable standard-library vulnerabilities in
// go1.26.8). go.mod says `go 1.26.0` so that any Go 1.26 can read the
// module (vet, editors), and `toolchain go1.26.11` so that the go
// command fetches the fixed release; `make` sets GOTOOLCHAIN=auto. This
// test is what keeps `make test` from passing with an older toolchain.
const minPatch = 10

func TestBuiltWithAFixedToolchain(t *testing.T) {
	v := runtime.Version() // e.g. "go1.26.11"
	rest, ok := strings.CutPrefix(v, "go1.26.")
	if !ok {
		if strings.HasPrefix(v, "go1.2") && v > "go1.26" {
			return // a later minor release carries the fixes
		}
		t.Fatalf("built with %s; Tapeward needs Go 1.26.%d or later: run `make test` (it sets GOTOOLCHAIN=auto) or export GOTOOLCHAIN=auto", v, minPatch)
	}
	patch, err := strconv.Atoi(strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })[0])
	if err != nil || patch < minPatch {
		t.Fatalf("built with %s; Tapeward needs go1.26.%d or later (crypto/x509, crypto/tls and net/http fixes): run `make test`, which sets GOTOOLCHAIN=auto, or export GOTOOLCHAIN=auto", v, minPatch)
	}
}
