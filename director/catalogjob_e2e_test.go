package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCatalogJobPgDumpFails: a Catalog job whose pg_dump fails ends E
// with pg_dump's stderr and the fix in the error; no dump and no
// bootstrap are left behind, and the arguments pg_dump got hold no
// password.
func TestCatalogJobPgDumpFails(t *testing.T) {
	w := newBackupWorld(t, backupOpts{volumes: 1})
	dumpDir, bsrDir := filepath.Join(w.dir, "catalog-dump"), filepath.Join(w.dir, "bootstrap")
	argv := filepath.Join(w.dir, "pg_dump.argv")
	fake := filepath.Join(w.dir, "pg_dump")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + strconv.Quote(argv) + "\necho 'pg_dump: error: server version: 99.0; pg_dump version: 15.0' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	w.dirConf.TopTOML = "catalog_dump_dir = " + strconv.Quote(dumpDir) + "\nbootstrap_dir = " + strconv.Quote(bsrDir) + "\npg_dump = " + strconv.Quote(fake)
	w.dirConf.ExtraTOML = "\n[[job]]\nname = \"BackupCatalog\"\ntype = \"Catalog\"\nclient = \"web1\"\npool = \"Backup\"\n"
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()

	id := w.runJob("BackupCatalog", "")
	j, _ := w.waitJob(id, time.Minute)
	if j.Status != "E" || !strings.Contains(j.ErrorReason, "server version: 99.0") || !strings.Contains(j.ErrorReason, "check pg_dump = ") {
		t.Fatalf("job %d: status %s, error %q; want E with pg_dump's stderr and the fix", id, j.Status, j.ErrorReason)
	}
	var jobType string
	if err := w.q(`SELECT job_type FROM jobs WHERE id = $1`, id).Scan(&jobType); err != nil || jobType != "Catalog" {
		t.Fatalf("job_type %q, %v", jobType, err)
	}
	args, err := os.ReadFile(argv)
	if err != nil {
		t.Fatalf("pg_dump was not run: %v", err)
	}
	for _, want := range []string{"--format=custom", "--no-password", "--dbname="} {
		if !strings.Contains(string(args), want) {
			t.Errorf("pg_dump arguments lack %s:\n%s", want, args)
		}
	}
	if strings.Contains(strings.ToLower(string(args)), "password=") {
		t.Errorf("a password in pg_dump's arguments:\n%s", args)
	}
	ents, _ := os.ReadDir(dumpDir)
	if len(ents) != 0 {
		t.Errorf("left in catalog_dump_dir: %v", ents)
	}
	if _, err := os.Stat(bsrDir); !os.IsNotExist(err) {
		t.Errorf("a bootstrap directory after a failed catalog job: %v", err)
	}
}
