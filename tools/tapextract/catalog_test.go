package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/storaged/jobtape"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
)

// dumpRows runs query and renders its rows, one line each, in order.
func dumpRows(t *testing.T, conn *pgx.Conn, query string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		var f []string
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				f = append(f, hex.EncodeToString(x))
			default:
				f = append(f, fmt.Sprint(x))
			}
		}
		out = append(out, strings.Join(f, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// catalogDump is everything tapextract catalog writes, without the ids
// of the rows it numbers itself and the times of the rebuild.
func catalogDump(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT p.name, p.encrypt FROM pools p ORDER BY name`,
		`SELECT m.volume_name, m.barcode, p.name, m.slot, m.status, m.bytes_written, m.blocks_written, m.label_time, m.first_written,
			m.encrypted, m.key_string, m.key_scheme, m.kek_id, m.key_fingerprint FROM media m JOIN pools p ON p.id = m.pool_id ORDER BY volume_name`,
		`SELECT id, name, job_type, level, status, client, fileset, started_at, ended_at, files_count, bytes_count, flushed_offset, error_reason FROM jobs ORDER BY id`,
		`SELECT jm.job_id, m.volume_name, jm.volume_index, jm.part, jm.kind, jm.tape_file, jm.first_block, jm.last_block, jm.bytes, jm.first_stream_offset, jm.complete
			FROM job_media jm JOIN media m ON m.id = jm.media_id ORDER BY job_id, part`,
		`SELECT f.job_id, f.path, f.type, f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime_ns, f.link, f.sha256, m.volume_name,
			f.tape_file, f.block, f.block_offset, f.stream_offset, f.parts FROM files f JOIN media m ON m.id = f.media_id ORDER BY job_id, stream_offset`,
		`SELECT fp.job_id, fp.stream_offset, fp.part, m.volume_name, fp.tape_file, fp.block, fp.block_offset, fp.data_offset
			FROM file_parts fp JOIN media m ON m.id = fp.media_id ORDER BY job_id, stream_offset, part`,
		`SELECT volume_name, actor, new_status, reason FROM volume_events ORDER BY volume_name, id`,
		`SELECT volume_name, event, actor, kek_id FROM key_events ORDER BY volume_name, id`,
	} {
		out = append(out, q)
		out = append(out, dumpRows(t, conn, q)...)
	}
	return out
}

// TestCatalogRebuild: tapes written as storaged writes them — job 42 over
// two volumes, job 43 appended to the second, job 44 on a third volume
// whose key is not in the cache — rebuilt into an empty catalog: every
// job_media and file row is the one the director would have written from
// storaged's reports (parts, blocks, byte counts, exact addresses, stream
// offsets, continuations), keys as the cache holds them; the volume
// without its key is named and skipped; a second run changes nothing;
// with the key, a third run adds the volume and its job.
func TestCatalogRebuild(t *testing.T) {
	w := newWorld(t, "20MiB")
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 2, 12<<20)
	small := filepath.Join(w.dir, "small")
	makeTree(t, small, 0, 0)
	ks := map[int]tapeKey{1: w.v1Key(), 2: w.v1Key(), 3: w.v1Key()}
	tp := w.openTapes(func(slot int) tapeKey { return ks[slot] })
	placed := map[int64]*[]jobtape.Placed{42: {}, 43: {}, 44: {}}
	sums := map[int64]jobtape.Summary{}
	for _, j := range []struct {
		id    int64
		root  string
		slots []int
	}{{42, src, []int{1, 2}}, {43, small, []int{2}}, {44, small, []int{3}}} {
		tp.placed = placed[j.id]
		sums[j.id] = tp.backup(j.id, j.root, j.slots...)
	}
	tp.close()
	if s := sums[42]; len(s.Parts) != 2 || s.Parts[1].Volume != barcode(2) {
		t.Fatalf("job 42 should span two volumes: %+v", s.Parts)
	}
	w.putCache(w.cache, map[int]tapeKey{1: ks[1], 2: ks[2]})

	dsn := pgtest.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	cmd := args([]string{"catalog", "--dsn", dsn}, w.lib(), w.keysV1())
	out, errs, code := w.run(cmd...)
	wantMsg := "volume TW0003L6 (slot 3): NOT REBUILT: no key for TW0003L6 in the cache or keys file (the cache " + w.cache + "); its label names KEK " +
		ks[3].stored.KEKID + " and fingerprint " + keys.Fingerprint(ks[3].drive) + ". Without its key only the clear label can be read"
	if code != 1 || !strings.Contains(out, wantMsg) || !strings.Contains(errs, "incomplete: 1 volumes not rebuilt (TW0003L6)") {
		t.Fatalf("catalog with a volume's key missing: exit %d, want 1 and %q\nstdout:\n%s\nstderr:\n%s", code, wantMsg, out, errs)
	}
	t.Logf("tapextract catalog:\n%s", out)
	w.vtl.RequireNoKey(t)

	// Media: the keys as the cache holds them, counters from the tape.
	written := map[string][2]int64{}
	for _, id := range []int64{42, 43} {
		for _, p := range append(sums[id].Parts, sums[id].Index) {
			c := written[p.Volume]
			written[p.Volume] = [2]int64{c[0] + p.Bytes, c[1] + int64(p.Blocks)}
		}
	}
	var want []string
	for slot, status := range map[int]string{1: "Full", 2: "Append"} {
		sk := ks[slot].stored
		want = append(want, fmt.Sprintf("%s|%s|Offsite|%d|%s|%d|%d|true|%s|%s|%s|%s", barcode(slot), barcode(slot), slot, status,
			written[barcode(slot)][0], written[barcode(slot)][1], sk.Value, sk.Scheme, sk.KEKID, keys.Fingerprint(ks[slot].drive)))
	}
	sort.Strings(want)
	got := dumpRows(t, conn, `SELECT volume_name, barcode, p.name, slot, status, bytes_written, blocks_written, encrypted, key_string, key_scheme, kek_id, key_fingerprint
		FROM media m JOIN pools p ON p.id = m.pool_id ORDER BY volume_name`)
	compareLines(t, "media", got, want)

	// Jobs and job media: as RecordPart and CompletePart record storaged's
	// parts.
	want = nil
	for _, id := range []int64{42, 43} {
		for _, p := range append(sums[id].Parts, sums[id].Index) {
			kind := "data"
			if p.Index {
				kind = "index"
			}
			want = append(want, fmt.Sprintf("%d|%s|%d|%d|%s|%d|%d|%d|%d|%d|true", id, p.Volume, p.VolumeSeq, p.Part, kind, p.TapeFile, p.FirstBlock, p.LastBlock, p.Bytes, p.StreamOffset))
		}
	}
	got = dumpRows(t, conn, `SELECT jm.job_id, m.volume_name, jm.volume_index, jm.part, jm.kind, jm.tape_file, jm.first_block, jm.last_block, jm.bytes, jm.first_stream_offset, jm.complete
		FROM job_media jm JOIN media m ON m.id = jm.media_id ORDER BY job_id, part`)
	compareLines(t, "job_media", got, want)
	got = dumpRows(t, conn, `SELECT id, name, status, client, fileset, level, files_count FROM jobs ORDER BY id`)
	compareLines(t, "jobs", got, []string{
		fmt.Sprintf("42|nightly|T|ann-fd|home|Full|%d", len(*placed[42])),
		fmt.Sprintf("43|nightly|T|ann-fd|home|Full|%d", len(*placed[43])),
	})

	// Files: what the director's FileBatch writes from storaged's
	// records (run.go fileRow).
	want = nil
	var wantParts []string
	cont := 0
	for _, id := range []int64{42, 43} {
		for _, p := range *placed[id] {
			r := p.Record
			sum := "<nil>"
			if r.SHA256 != ([32]byte{}) {
				sum = hex.EncodeToString(r.SHA256[:])
			}
			link := "<nil>"
			if r.Linkname != "" {
				link = hex.EncodeToString([]byte(r.Linkname))
			}
			want = append(want, fmt.Sprintf("%d|%s|%s|%d|%d|%d|%d|%s|%s|%d|%s|%s|%s|%d|%d|%d|%d|%d", id, hex.EncodeToString([]byte(r.Path)), r.Type, r.Size, r.Mode,
				r.UID, r.GID, r.Uname, r.Gname, r.Mtime, link, sum, p.Address.Volume, p.Address.TapeFile, p.Address.Block, p.Address.Offset, r.HeaderOffset, len(p.Parts)))
			for _, pa := range p.Parts {
				cont++
				wantParts = append(wantParts, fmt.Sprintf("%d|%d|%d|%s|%d|%d|%d|%d", id, r.HeaderOffset, pa.Part, pa.Volume, pa.TapeFile, pa.Block, pa.Offset, pa.DataOffset))
			}
		}
	}
	if cont == 0 {
		t.Fatal("no member of job 42 was cut by the end of volume 1: the test does not cover continuations")
	}
	got = dumpRows(t, conn, `SELECT f.job_id, f.path, f.type, f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime_ns, f.link, f.sha256, m.volume_name,
		f.tape_file, f.block, f.block_offset, f.stream_offset, f.parts FROM files f JOIN media m ON m.id = f.media_id ORDER BY job_id, stream_offset`)
	compareLines(t, "files", got, want)
	got = dumpRows(t, conn, `SELECT fp.job_id, fp.stream_offset, fp.part, m.volume_name, fp.tape_file, fp.block, fp.block_offset, fp.data_offset
		FROM file_parts fp JOIN media m ON m.id = fp.media_id ORDER BY job_id, stream_offset, part`)
	compareLines(t, "file_parts", got, wantParts)

	// Pruning counts from the rebuild; the job id sequence is past 43.
	got = dumpRows(t, conn, `SELECT volume_name, actor, reason, last_written = at FROM volume_events JOIN media USING (volume_name) ORDER BY volume_name`)
	compareLines(t, "volume_events", got, []string{"TW0001L6|tapextract|rebuilt from tape by tapextract|true", "TW0002L6|tapextract|rebuilt from tape by tapextract|true"})
	var next int64
	if err := conn.QueryRow(context.Background(), `INSERT INTO jobs (name, job_type) VALUES ('after', 'Backup') RETURNING id`).Scan(&next); err != nil || next <= 43 {
		t.Fatalf("a new job after the rebuild got id %d (%v); want > 43", next, err)
	}
	if _, err := conn.Exec(context.Background(), `DELETE FROM jobs WHERE id = $1`, next); err != nil {
		t.Fatal(err)
	}

	// Again: nothing changes.
	before := catalogDump(t, conn)
	out, _, code = w.run(cmd...)
	if code != 1 || !strings.Contains(out, "volume TW0001L6 (slot 1): in the catalog already, same label and key; kept as it is") ||
		!strings.Contains(out, fmt.Sprintf("job 42 (nightly, client ann-fd, home, level Full): %d file rows in the catalog already; kept", len(*placed[42]))) {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	compareLines(t, "the catalog after a second run", catalogDump(t, conn), before)

	// With the third volume's key: it and its job are added, the rest kept.
	w.putCache(w.cache, map[int]tapeKey{3: ks[3]})
	out = w.ok(cmd...)
	if !strings.Contains(out, "volume TW0003L6 (slot 3): added to pool Offsite") || !strings.Contains(out, "catalog rebuilt from 3 volumes: 3 jobs") {
		t.Fatalf("third run:\n%s", out)
	}
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM files f JOIN media m ON m.id = f.media_id WHERE f.job_id = 44 AND m.volume_name = 'TW0003L6'`).Scan(&n); err != nil || n != int64(len(*placed[44])) {
		t.Fatalf("job 44's files: %d rows (%v), want %d", n, err, len(*placed[44]))
	}
	w.vtl.RequireNoKey(t)

	// Only the second volume: job 42's index is there but half its
	// members are on the first, so its file rows wait for it; job 43 is
	// whole.
	dsn2 := pgtest.NewDB(t)
	out, errs, code = w.run(args([]string{"catalog", "--dsn", dsn2, "--volume", barcode(2)}, w.lib(), w.keysV1())...)
	if code != 1 || !strings.Contains(out, "job 42 (nightly, client ann-fd): job and 2 tape files rebuilt, but not its file rows: its members are also on TW0001L6, not read in this run") ||
		!strings.Contains(errs, "incomplete: 1 jobs without their file rows (see above)") {
		t.Fatalf("catalog of the second volume alone: exit %d\n%s\n%s", code, out, errs)
	}
	conn2 := pgtest.Connect(t, dsn2)
	got = dumpRows(t, conn2, `SELECT j.id, j.status, count(f.*) FROM jobs j LEFT JOIN files f ON f.job_id = j.id GROUP BY j.id ORDER BY j.id`)
	compareLines(t, "jobs from the second volume alone", got, []string{"42|T|0", fmt.Sprintf("43|T|%d", len(*placed[43]))})
}

func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("%s row %d:\n got %s\nwant %s", what, i, got[i], want[i])
			if bad++; bad > 5 {
				break
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// BenchmarkCatalogRebuild: tapextract catalog of one volume holding a job
// of $TAPEWARD_BENCH_FILES members (default 100,000; TAPEWARD_BENCH_SMALL=1
// for a tenth), into an empty catalog each iteration: the label, the part
// header, the index (read whole) and the COPY of the file rows. Reports
// file rows per second of the whole command.
//
//	TAPEWARD_BENCH_SMALL=1 go test -run '^$' -bench CatalogRebuild -benchtime 1x ./tools/tapextract/
func BenchmarkCatalogRebuild(b *testing.B) {
	files := 100000
	if v := os.Getenv("TAPEWARD_BENCH_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("TAPEWARD_BENCH_FILES=%q is not a positive number", v)
		}
		files = n
	}
	if os.Getenv("TAPEWARD_BENCH_SMALL") != "" {
		files /= 10
	}
	w := newWorld(b, "1GiB")
	ks := map[int]tapeKey{1: w.v1Key()}
	tp := w.openTapes(func(slot int) tapeKey { return ks[slot] })
	d, name := tp.mount(1)
	jw, err := jobtape.New(d, jobtape.JobInfo{JobID: 7, Job: "many", Client: "ann-fd", FileSet: "home", Level: "Full", Volume: name, Created: time.Now()},
		jobtape.Options{BlockSize: blockSize, SpoolDir: b.TempDir(), NextVolume: func(context.Context, error) (*scsi.Device, string, error) {
			return nil, "", fmt.Errorf("the benchmark's job fits on one volume")
		}})
	if err != nil {
		b.Fatal(err)
	}
	aw := archive.NewWriter(jw)
	data := bytes.Repeat([]byte("tapeward"), 64)
	mtime := time.Now()
	for i := 0; i < files; i++ {
		m := archive.Member{Path: fmt.Sprintf("home/ann/d%03d/file-%07d.txt", i/1000, i), Type: archive.TypeReg, Mode: 0o644, UID: 1000, GID: 1000,
			Uname: "ann", Gname: "ann", Mtime: mtime, Size: int64(i % len(data))}
		rec, err := aw.WriteMember(m, bytes.NewReader(data[:m.Size]))
		if err != nil {
			b.Fatal(err)
		}
		if err := jw.AddRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	if _, err := jw.Close(); err != nil {
		b.Fatal(err)
	}
	tp.close()
	w.putCache(w.cache, ks)
	cmd := append(w.lib(), w.keysV1()...)
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dsn := pgtest.NewDB(b)
		b.StartTimer()
		start := time.Now()
		out := w.ok(args([]string{"catalog", "--dsn", dsn, "--volume", barcode(1)}, cmd)...)
		elapsed += time.Since(start)
		if !strings.Contains(out, fmt.Sprintf("%d file rows written", files)) {
			b.Fatalf("catalog:\n%s", out)
		}
	}
	b.ReportMetric(float64(files)*float64(b.N)/elapsed.Seconds(), "rows/s")
}

// TestCatalogNeedsMigratedCatalog: a catalog without the schema is
// refused before any cartridge moves, saying what to run.
func TestCatalogNeedsMigratedCatalog(t *testing.T) {
	w := &world{t: t}
	dsn := pgtest.NewEmptyDB(t)
	_, errs, code := w.run("catalog", "--dsn", dsn, "--changer", "vtl:/nonexistent.sock#changer")
	want := "tapextract catalog: the catalog has schema version 0, tapextract writes version " + strconv.Itoa(int(migrations.Latest())) +
		": run `director migrate -c director.toml` (same release) on it first"
	if code != 1 || !strings.Contains(errs, want) {
		t.Fatalf("catalog into an empty database: exit %d, want 1 and %q:\n%s", code, want, errs)
	}
}
