package testenv

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// Filed describes a filed.toml.
type Filed struct {
	Name, Listen, WorkDir string
	MetricsListen         string // "" : none
	TLS                   tlsconf.Files
	DirectorName          string
	MaxBandwidthPerJob    string // max_bandwidth_per_job, e.g. "8MiB" ("": no limit)
}

// Write writes the configuration to path (mode 0600). An empty Listen is
// "127.0.0.1:0" (a port the kernel picks: start it with StartServing;
// filed logs "filed ready" when it serves).
func (f Filed) Write(t testing.TB, path string) {
	t.Helper()
	if f.Listen == "" {
		f.Listen = "127.0.0.1:0"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name = %q\nlisten = %q\nworking_directory = %q\n", f.Name, f.Listen, f.WorkDir)
	if f.MetricsListen != "" {
		fmt.Fprintf(&b, "metrics_listen = %q\n", f.MetricsListen)
	}
	if f.MaxBandwidthPerJob != "" {
		fmt.Fprintf(&b, "max_bandwidth_per_job = %q\n", f.MaxBandwidthPerJob)
	}
	b.WriteString("\n")
	writeTLS(&b, f.TLS)
	fmt.Fprintf(&b, "[director]\nname = %q\n", f.DirectorName)
	write(t, path, b.String())
}
