package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var wantTables = []string{"cache_pushes", "file_deletions", "file_parts", "files", "job_log", "job_media", "jobs", "key_events", "media", "media_keys", "pools", "scheduler_missed", "scheduler_state", "shred_pushes", "storages", "volume_events"}

func tables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'tapeward_schema_version' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestListMatchesEmbeddedFiles(t *testing.T) {
	all, err := migrations.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "001_initial.sql" {
		t.Fatalf("List() = %+v, want 001_initial.sql first", all)
	}
	for i, m := range all {
		if m.Version != int32(i+1) {
			t.Errorf("migration %d has version %d", i, m.Version)
		}
	}
	if migrations.Latest() != all[len(all)-1].Version {
		t.Errorf("Latest() = %d, want %d", migrations.Latest(), all[len(all)-1].Version)
	}
}

func TestApplyOnEmptyThenNoOp(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.Connect(t, pgtest.NewEmptyDB(t))

	before, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if before.Current != 0 || before.Latest != migrations.Latest() || len(before.Pending) != int(before.Latest) || before.UpToDate() {
		t.Fatalf("status of an empty database = %+v", before)
	}
	// Status only reads: still no tables at all.
	var n int
	conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n)
	if n != 0 {
		t.Fatalf("Status created %d tables", n)
	}

	var started []string
	if err := migrations.ApplyNotify(ctx, conn, func(m migrations.Migration) { started = append(started, m.Name) }); err != nil {
		t.Fatal(err)
	}
	if len(started) != len(before.Pending) || started[0] != before.Pending[0].Name {
		t.Fatalf("applied %v, want %v", started, before.Pending)
	}
	if got := tables(t, conn); strings.Join(got, ",") != strings.Join(wantTables, ",") {
		t.Fatalf("tables after Apply = %v, want %v", got, wantTables)
	}
	after, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if after.Current != after.Latest || len(after.Pending) != 0 || !after.UpToDate() {
		t.Fatalf("status after Apply = %+v", after)
	}

	// Second run: nothing started, nothing changed.
	started = nil
	if err := migrations.ApplyNotify(ctx, conn, func(m migrations.Migration) { started = append(started, m.Name) }); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if len(started) != 0 {
		t.Fatalf("second Apply ran %v", started)
	}
}

func TestConcurrentApplyAppliesOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewEmptyDB(t)
	const workers = 4
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		conns[i] = pgtest.Connect(t, dsn)
	}
	// Count how many times any worker starts a migration: each must run once.
	var mu sync.Mutex
	runs := map[string]int{}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = migrations.ApplyNotify(ctx, conns[i], func(m migrations.Migration) {
				mu.Lock()
				runs[m.Name]++
				mu.Unlock()
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply on connection %d: %v", i, err)
		}
	}
	all, _ := migrations.List()
	for _, m := range all {
		if runs[m.Name] != 1 {
			t.Errorf("%s ran %d times, want 1", m.Name, runs[m.Name])
		}
	}
	st, err := migrations.Status(ctx, conns[0])
	if err != nil || !st.UpToDate() {
		t.Fatalf("status after concurrent Apply = %+v, %v", st, err)
	}
	var versionRows int
	conns[0].QueryRow(ctx, "SELECT count(*) FROM "+migrations.VersionTable).Scan(&versionRows)
	if versionRows != 1 {
		t.Fatalf("version table has %d rows, want 1", versionRows)
	}
}

func TestStatusRefusesNewerCatalog(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.NewConn(t)
	if _, err := conn.Exec(ctx, "UPDATE "+migrations.VersionTable+" SET version = version + 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Status(ctx, conn); err == nil || !strings.Contains(err.Error(), "run a newer Tapeward") {
		t.Fatalf("Status on a newer catalog: %v", err)
	}
	if err := migrations.Apply(ctx, conn); err == nil || !strings.Contains(err.Error(), "run a newer Tapeward") {
		t.Fatalf("Apply on a newer catalog: %v", err)
	}
}

// constraintOf returns the name of the constraint err violated ("" if none).
func constraintOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

func TestMediaEncryptionConstraints(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.NewConn(t)
	var pool int64
	if err := conn.QueryRow(ctx, "INSERT INTO pools (name) VALUES ('Offsite') RETURNING id").Scan(&pool); err != nil {
		t.Fatal(err)
	}
	ins := func(vol string, encrypted bool, key, scheme, kek, fp any) error {
		_, err := conn.Exec(ctx, `INSERT INTO media (volume_name, pool_id, encrypted, key_string, key_scheme, kek_id, key_fingerprint)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, vol, pool, encrypted, key, scheme, kek, fp)
		return err
	}
	// A complete encrypted row and a clear row are fine.
	if err := ins("A00001", true, "d3JhcHBlZA", "v1", "kek-1234", "fp-abcd"); err != nil {
		t.Fatalf("complete encrypted row rejected: %v", err)
	}
	if err := ins("A00002", false, nil, nil, nil, nil); err != nil {
		t.Fatalf("clear row rejected: %v", err)
	}
	// Half-encrypted rows are not.
	for _, tc := range []struct {
		name                 string
		key, scheme, kek, fp any
		encrypted            bool
		wantConstraint       string
	}{
		{"no key string", nil, "v1", "kek-1234", "fp", true, "media_encrypted_has_key"},
		{"empty key string", "", "v1", "kek-1234", "fp", true, "media_encrypted_has_key"},
		{"no scheme", "k", nil, "kek-1234", "fp", true, "media_encrypted_has_key"},
		{"no kek id", "k", "v1", nil, "fp", true, "media_encrypted_has_key"},
		{"no fingerprint", "k", "v1", "kek-1234", nil, true, "media_encrypted_has_key"},
		{"clear row with a key", "k", "v1", "kek-1234", "fp", false, "media_clear_has_no_key"},
	} {
		err := ins("B"+strings.ReplaceAll(tc.name, " ", ""), tc.encrypted, tc.key, tc.scheme, tc.kek, tc.fp)
		if got := constraintOf(err); got != tc.wantConstraint {
			t.Errorf("%s: err = %v (constraint %q), want a violation of %s", tc.name, err, got, tc.wantConstraint)
		}
	}
	// Unknown scheme, unknown status, Error without a reason, duplicate name/barcode.
	if err := ins("C00001", true, "k", "v2", "kek", "fp"); constraintOf(err) == "" {
		t.Errorf("scheme v2 accepted: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE media SET status = 'Lost' WHERE volume_name = 'A00001'"); constraintOf(err) == "" {
		t.Errorf("status Lost accepted: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE media SET status = 'Error' WHERE volume_name = 'A00001'"); constraintOf(err) != "media_error_has_reason" {
		t.Errorf("Error without a reason accepted: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE media SET status = 'Error', error_reason = 'drive wrote clear' WHERE volume_name = 'A00001'"); err != nil {
		t.Errorf("Error with a reason rejected: %v", err)
	}
	if err := ins("A00001", false, nil, nil, nil, nil); constraintOf(err) != "media_volume_name_key" {
		t.Errorf("duplicate volume name: %v", err)
	}
}

func TestKeyEventsAndFileRows(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.NewConn(t)
	var pool, media, job int64
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.QueryRow(ctx, "INSERT INTO pools (name) VALUES ('Full') RETURNING id").Scan(&pool))
	must(conn.QueryRow(ctx, "INSERT INTO media (volume_name, barcode, pool_id) VALUES ('V1', 'BC0001L8', $1) RETURNING id", pool).Scan(&media))
	if _, err := conn.Exec(ctx, "INSERT INTO media (volume_name, barcode, pool_id) VALUES ('V2', 'BC0001L8', $1)", pool); constraintOf(err) != "media_barcode_key" {
		t.Errorf("duplicate barcode: %v", err)
	}
	for _, ev := range []string{"generated", "fetched", "loaded", "verified", "cleared", "rotated", "rekeyed", "exported", "imported"} {
		_, err := conn.Exec(ctx, "INSERT INTO key_events (volume_name, media_id, event, actor, kek_id) VALUES ('V1', $1, $2, 'director', 'kek-1')", media, ev)
		must(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO key_events (volume_name, event, actor) VALUES ('V1', 'deleted', 'x')"); constraintOf(err) == "" {
		t.Errorf("event 'deleted' accepted: %v", err)
	}
	must(conn.QueryRow(ctx, "INSERT INTO jobs (name, job_type, level) VALUES ('nightly', 'Backup', 'Full') RETURNING id").Scan(&job))
	_, err := conn.Exec(ctx, "INSERT INTO job_media (job_id, media_id, volume_index, part, tape_file, first_block) VALUES ($1, $2, 1, 1, 2, 0)", job, media)
	must(err)
	_, err = conn.Exec(ctx, `INSERT INTO files (job_id, path, type, size, mode, uid, gid, uname, gname, mtime_ns, sha256, media_id, tape_file, block, block_offset, stream_offset)
		VALUES ($1, '\x2f6574632f686f737473'::bytea, 'file', 220, 420, 0, 0, 'root', 'root', 1, decode(repeat('ab', 32), 'hex'), $2, 2, 3, 1536, 0)`, job, media)
	must(err)
	// A path that is not UTF-8 (and holds a newline) is kept byte for byte.
	odd := []byte("/tmp/\xff\n")
	_, err = conn.Exec(ctx, `INSERT INTO files (job_id, path, type, size, mode, uid, gid, uname, gname, mtime_ns, media_id, tape_file, block, block_offset, stream_offset)
		VALUES ($1, $2, 'dir', 0, 493, 0, 0, '', '', 1, $3, 2, 3, 2048, 512)`, job, odd, media)
	must(err)
	var back []byte
	must(conn.QueryRow(ctx, "SELECT path FROM files WHERE job_id = $1 AND stream_offset = 512", job).Scan(&back))
	if string(back) != string(odd) {
		t.Errorf("path read back as %q, want %q", back, odd)
	}
	// A short digest, an unknown type.
	for name, q := range map[string]string{
		"files_sha256_check": `INSERT INTO files (job_id, path, type, size, mode, uid, gid, uname, gname, mtime_ns, sha256, media_id, tape_file, block, block_offset, stream_offset) VALUES ($1, '\x2f78', 'file', 0, 0, 0, 0, '', '', 0, '\x00', 1, 2, 0, 0, 9999)`,
		"files_type_check":   `INSERT INTO files (job_id, path, type, size, mode, uid, gid, uname, gname, mtime_ns, media_id, tape_file, block, block_offset, stream_offset) VALUES ($1, '\x2f78', 'socket', 0, 0, 0, 0, '', '', 0, 1, 2, 0, 0, 9999)`,
	} {
		if _, err := conn.Exec(ctx, q, job); constraintOf(err) != name {
			t.Errorf("want a violation of %s, got %v", name, err)
		}
	}
	// Job statuses are Bareos' letters; the words of schema 1 are gone.
	if _, err := conn.Exec(ctx, "UPDATE jobs SET status = 'W' WHERE id = $1", job); err != nil {
		t.Errorf("status W rejected: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE jobs SET status = 'Terminated' WHERE id = $1", job); constraintOf(err) != "jobs_status_check" {
		t.Errorf("status Terminated accepted: %v", err)
	}
	// An upgrade says why.
	if _, err := conn.Exec(ctx, "UPDATE jobs SET upgraded_from = 'Incremental' WHERE id = $1", job); constraintOf(err) != "jobs_upgrade_has_reason" {
		t.Errorf("upgrade without a reason accepted: %v", err)
	}
	// Deleting the job removes its job_media and deletion rows (its file
	// rows have no foreign key: the catalog deletes them first).
	_, err = conn.Exec(ctx, "INSERT INTO file_deletions (job_id, path) VALUES ($1, '\x2f67'::bytea)", job)
	must(err)
	_, err = conn.Exec(ctx, "DELETE FROM files WHERE job_id = $1", job)
	must(err)
	_, err = conn.Exec(ctx, "DELETE FROM jobs WHERE id = $1", job)
	must(err)
	var n int
	must(conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM file_deletions) + (SELECT count(*) FROM job_media)").Scan(&n))
	if n != 0 {
		t.Errorf("%d deletion/job_media rows survived their job", n)
	}
}

// TestDownFrom3 applies schema 3's way back on a catalog with a job in it
// and checks the schema 2 tables and the job's status word.
func TestDownFrom3(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.NewConn(t)
	b, err := fs.ReadFile(migrations.FS(), "003_jobs_files.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, down, ok := strings.Cut(string(b), "---- create above / drop below ----")
	if !ok {
		t.Fatal("003 has no down part")
	}
	if _, err := conn.Exec(ctx, "INSERT INTO jobs (name, job_type, level, status) VALUES ('n', 'Backup', 'Full', 'W')"); err != nil {
		t.Fatal(err)
	}
	// Schema 10 first (crypto-shredding), then 6 (pool limits), 5 (the
	// scheduler), 4 (the job log), then 3.
	b10, err := fs.ReadFile(migrations.FS(), "010_shred.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, down10, ok := strings.Cut(string(b10), "---- create above / drop below ----")
	if !ok {
		t.Fatal("010 has no down part")
	}
	if _, err := conn.Exec(ctx, down10); err != nil {
		t.Fatalf("down part of 010: %v", err)
	}
	b6, err := fs.ReadFile(migrations.FS(), "006_pool_limits.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, down6, ok := strings.Cut(string(b6), "---- create above / drop below ----")
	if !ok {
		t.Fatal("006 has no down part")
	}
	if _, err := conn.Exec(ctx, down6); err != nil {
		t.Fatalf("down part of 006: %v", err)
	}
	b5, err := fs.ReadFile(migrations.FS(), "005_scheduler.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, down5, ok := strings.Cut(string(b5), "---- create above / drop below ----")
	if !ok {
		t.Fatal("005 has no down part")
	}
	if _, err := conn.Exec(ctx, down5); err != nil {
		t.Fatalf("down part of 005: %v", err)
	}
	b4, err := fs.ReadFile(migrations.FS(), "004_job_log.sql")
	if err != nil {
		t.Fatal(err)
	}
	_, down4, ok := strings.Cut(string(b4), "---- create above / drop below ----")
	if !ok {
		t.Fatal("004 has no down part")
	}
	if _, err := conn.Exec(ctx, down4); err != nil {
		t.Fatalf("down part of 004: %v", err)
	}
	if _, err := conn.Exec(ctx, down); err != nil {
		t.Fatalf("down part of 003: %v", err)
	}
	var status string
	if err := conn.QueryRow(ctx, "SELECT status FROM jobs").Scan(&status); err != nil || status != "Terminated" {
		t.Fatalf("status after the down part = %q, %v", status, err)
	}
	got := strings.Join(tables(t, conn), ",")
	if got != "cache_pushes,files,job_media,jobs,key_events,media,media_keys,pools,storages" {
		t.Fatalf("tables after the down part: %s", got)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO files (job_id, path, media_id, tape_file, block_address) VALUES (1, '/x', 1, 0, 0)"); constraintOf(err) != "files_media_id_fkey" {
		t.Fatalf("schema 1 files after the down part: %v", err)
	}
}

// TestUpgrade2To3WithRows applies 001–002, writes a job in schema 1's
// words with a job_media row, then applies 003: the status becomes its
// letter and the job_media row becomes part 1, complete (a tape file
// recorded before 003 is never written over).
func TestUpgrade2To3WithRows(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.Connect(t, pgtest.NewEmptyDB(t))
	m, err := migrate.NewMigrator(ctx, conn, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS()); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `
		INSERT INTO pools (name) VALUES ('P');
		INSERT INTO media (volume_name, pool_id) SELECT 'V1', id FROM pools;
		INSERT INTO jobs (name, job_type, level, status) VALUES ('a', 'Backup', 'Full', 'Terminated'), ('b', 'Backup', 'Full', 'Running'), ('c', 'Admin', NULL, 'Canceled');
		INSERT INTO job_media (job_id, media_id, volume_index, tape_file, first_block)
			SELECT j.id, m.id, 1, 2, 0 FROM jobs j, media m WHERE j.name = 'a';`)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT name || '=' || status FROM jobs ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(got, ",") != "a=T,b=R,c=A" {
		t.Fatalf("statuses after 003: %v, %v", got, err)
	}
	var part, tf int
	var complete bool
	if err := conn.QueryRow(ctx, "SELECT part, tape_file, complete FROM job_media").Scan(&part, &tf, &complete); err != nil || part != 1 || tf != 2 || !complete {
		t.Fatalf("job_media after 003: part %d tape file %d complete %v, %v", part, tf, complete, err)
	}
}

// TestPoolLimitsCopiedAtLabel checks schema 6: a new volume takes its
// pool's limits, a later pool change leaves it alone, and the new
// statuses pass the CHECK while an unknown one does not.
func TestPoolLimitsCopiedAtLabel(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.NewConn(t)
	if err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO pools (name, encrypt, max_volume_bytes, max_volume_jobs, volume_use_duration, recycle)
		VALUES ('P', false, 1000, 3, '2 days', false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO media (volume_name, pool_id) SELECT 'V1', id FROM pools WHERE name = 'P'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE pools SET max_volume_bytes = 5000`); err != nil {
		t.Fatal(err)
	}
	var (
		maxBytes int64
		maxJobs  int
		recycle  bool
	)
	if err := conn.QueryRow(ctx, `SELECT max_volume_bytes, max_volume_jobs, recycle FROM media WHERE volume_name = 'V1'`).
		Scan(&maxBytes, &maxJobs, &recycle); err != nil {
		t.Fatal(err)
	}
	if maxBytes != 1000 || maxJobs != 3 || recycle {
		t.Fatalf("volume limits = %d bytes, %d jobs, recycle %t; want the pool's at label time: 1000, 3, false", maxBytes, maxJobs, recycle)
	}
	for _, st := range []string{"Read-Only", "Disabled", "Archive", "Recycle"} {
		if _, err := conn.Exec(ctx, `UPDATE media SET status = $1`, st); err != nil {
			t.Fatalf("status %s: %v", st, err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE media SET status = 'Lost'`); constraintOf(err) != "media_status_check" {
		t.Fatalf("status Lost: %v, want media_status_check", err)
	}
}

// TestKeyHistoryVerificationAt8: schema 8 adds media_keys'
// encryption_verified_at, both to a catalog whose 002 lacks it (as 002 was
// first released) and to one where an earlier build had put it in 002.
func TestKeyHistoryVerificationAt8(t *testing.T) {
	ctx := context.Background()
	for _, hadIt := range []bool{false, true} {
		conn := pgtest.Connect(t, pgtest.NewEmptyDB(t))
		m, err := migrate.NewMigrator(ctx, conn, migrations.VersionTable)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.LoadMigrations(migrations.FS()); err != nil {
			t.Fatal(err)
		}
		if err := m.MigrateTo(ctx, 7); err != nil {
			t.Fatal(err)
		}
		has := func() bool {
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
				WHERE table_name = 'media_keys' AND column_name = 'encryption_verified_at'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		if has() {
			t.Fatal("schema 7 already has media_keys.encryption_verified_at: 002 must stay as first released")
		}
		if hadIt {
			if _, err := conn.Exec(ctx, `ALTER TABLE media_keys ADD COLUMN encryption_verified_at timestamptz`); err != nil {
				t.Fatal(err)
			}
		}
		if err := migrations.Apply(ctx, conn); err != nil {
			t.Fatalf("applying 8 (column there before: %v): %v", hadIt, err)
		}
		if !has() {
			t.Fatalf("schema 8 lacks media_keys.encryption_verified_at (column there before: %v)", hadIt)
		}
	}
}
