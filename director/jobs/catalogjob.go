package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/tools/lib/bootstrap"
)

// A Catalog job ([[job]] type = "Catalog", Bareos' BackupCatalog): the
// director dumps its catalog with pg_dump -Fc into catalog_dump_dir once
// the job has its turn (its priority, default 100, lets the nightly jobs
// end first), the job backs that one file up through its client (a filed
// on the director's host) like any backup, and after it ends T or W the
// director writes the bootstrap file (tools/lib/bootstrap) to
// bootstrap_dir and/or pipes it to bootstrap_command.

// dumpCatalog runs pg_dump with the director's [catalog] settings into
// CatalogDumpPath (0600, replaced atomically) and returns what the
// bootstrap records of it. The password goes in PGPASSWORD, never in argv.
func (r *Runner) dumpCatalog(j *job) (*catalog.BootstrapDump, error) {
	cfg := r.o.Config
	cc, err := catalog.ConnConfig(cfg.Catalog, cfg.Path)
	if err != nil {
		return nil, fail("director", "catalog dump: %v", err)
	}
	if err := os.MkdirAll(cfg.CatalogDumpDir, 0o700); err != nil {
		return nil, fail("director", "catalog dump: catalog_dump_dir: %v", err)
	}
	path := cfg.CatalogDumpPath()
	tmp := path + ".partial"
	os.Remove(tmp)
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fail("director", "catalog dump: %v", err)
	}
	fh.Close()
	defer os.Remove(tmp)
	cmd := exec.CommandContext(j.ctx, cfg.PgDump, "--format=custom", "--no-password", "--file="+tmp,
		"--host="+cc.Host, "--port="+strconv.Itoa(int(cc.Port)), "--username="+cc.User, "--dbname="+cc.Database)
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PG") {
			env = append(env, e)
		}
	}
	env = append(env, "PGSSLMODE="+cfg.Catalog.SSLMode, "PGCONNECT_TIMEOUT=10")
	if cfg.Catalog.SSLRootCert != "" {
		env = append(env, "PGSSLROOTCERT="+cfg.Catalog.SSLRootCert)
	}
	if cc.Password != "" {
		env = append(env, "PGPASSWORD="+cc.Password)
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r.logf(j, catalog.LogInfo, "Dumping the catalog (%s) with %s to %s", cfg.Catalog.Where(), cfg.PgDump, path)
	if err := cmd.Run(); err != nil {
		return nil, fail("director", "catalog dump: %s failed: %v: %s (check pg_dump = … in director.toml: its major version must be at least the server's)",
			cfg.PgDump, err, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	size, sum, err := fileDigest(tmp)
	if err != nil {
		return nil, fail("director", "catalog dump: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fail("director", "catalog dump: %v", err)
	}
	r.logf(j, catalog.LogInfo, "Catalog dump %s: %d bytes, SHA-256 %s", path, size, sum)
	return &catalog.BootstrapDump{Path: path, Database: cfg.Catalog.Database, Size: size, SHA256: sum}, nil
}

func fileDigest(path string) (int64, string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// writeBootstrap writes the bootstrap of catalog job j, about to end st
// (T or W), to bootstrap_dir and/or bootstrap_command. It returns the
// warnings to add: a destination that failed is a warning, not an error
// (the dump is on tape; the job log says what to fix).
func (r *Runner) writeBootstrap(ctx context.Context, j *job, dump *catalog.BootstrapDump, st catalog.JobStatus) int {
	cfg := r.o.Config
	bf, err := r.o.Catalog.Bootstrap(ctx, j.id, st, *dump)
	if err != nil {
		r.logf(j, catalog.LogWarning, "Warning: no bootstrap written: %v", err)
		return 1
	}
	warnings := 0
	if cfg.BootstrapDir != "" {
		if p, err := bootstrap.WriteDir(cfg.BootstrapDir, bf); err != nil {
			r.logf(j, catalog.LogWarning, "Warning: bootstrap_dir: %v", err)
			warnings++
		} else {
			r.logf(j, catalog.LogInfo, "Bootstrap written to %s and %s", p, filepath.Join(cfg.BootstrapDir, bootstrap.LatestName))
		}
	}
	if cfg.BootstrapCommand != "" {
		data, err := bootstrap.Marshal(bf)
		if err == nil {
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cfg.BootstrapCommand)
			cmd.Stdin = bytes.NewReader(data)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = io.Discard, &out
			err = cmd.Run()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, strings.TrimSpace(lastLines(out.String(), 5)))
			}
		}
		if err != nil {
			r.logf(j, catalog.LogWarning, "Warning: bootstrap_command %q: %v", cfg.BootstrapCommand, err)
			warnings++
		} else {
			r.logf(j, catalog.LogInfo, "Bootstrap piped to bootstrap_command %q", cfg.BootstrapCommand)
		}
	}
	return warnings
}
