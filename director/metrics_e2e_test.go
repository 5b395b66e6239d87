package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// The director with metrics_listen serves the job runner's metrics in
// Prometheus text format.
func TestMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	pc, err := pgx.ParseConfig(pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewPKI(t, dir)
	kek := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kek)
	dc := testenv.Director{Name: "director", Listen: "127.0.0.1:0", TLS: p.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kek},
		Storages: map[string]string{"sd1": testenv.FreeAddr(t)}}
	path := filepath.Join(dir, "director.toml")
	dc.Write(t, path)
	metricsAddr := testenv.FreeAddr(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte("metrics_listen = \""+metricsAddr+"\"\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.StartServing(t, "director", filepath.Join(dir, "director.log"), "director ready", directorBin, "-c", path)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tapeward_director_jobs_ended_total{status="T"} 0`,
		`tapeward_director_jobs_active{state="running"} 0`,
		`tapeward_director_catalog_rows_copied_total 0`,
		`tapeward_director_job_bytes_written_total 0`,
		`tapeward_director_job_files_written_total 0`,
		`tapeward_director_job_errors_total{origin="storage"} 0`,
		`# TYPE tapeward_director_job_duration_seconds histogram`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
