package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// rebuiltReason is the reason of the volume_events row (and the error
// reason of a job whose index was not found) a rebuild writes.
const rebuiltReason = "rebuilt from tape by tapextract"

// catVolume is one volume read for the catalog.
type catVolume struct {
	v       *volume
	mediaID int64
}

func cmdCatalog(ctx context.Context, c *cli, f *flags, args []string) (err error) {
	dsn := f.String("dsn", "", "the catalog's PostgreSQL connection string (postgres://USER@HOST/DB), migrated to this tapextract's schema version")
	var only multiFlag
	f.Var(&only, "volume", "only this volume (its barcode); repeatable (default: every cartridge in the library)")
	kf := addKeyFlags(f)
	lf := addLibFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return usagef("%s needs --dsn postgres://USER@HOST/DB (a catalog migrated with `director migrate -c director.toml`)", f.path)
	}
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("connecting to the catalog: %w", err)
	}
	defer conn.Close(context.Background())
	st, err := migrations.Status(ctx, conn)
	if err != nil {
		return fmt.Errorf("the catalog's schema version: %w", err)
	}
	if !st.UpToDate() {
		return fmt.Errorf("the catalog has schema version %d, tapextract writes version %d: run `director migrate -c director.toml` (same release) on it first", st.Current, st.Latest)
	}

	s, err := openSession(c, kf, lf)
	if err != nil {
		return err
	}
	defer s.close(&err)
	s.lib.measure = true
	carts, err := s.lib.cartridges()
	if err != nil {
		return err
	}
	if len(only) > 0 {
		var sel []cartridge
		for _, v := range only {
			found := false
			for _, ct := range carts {
				if ct.Barcode == v {
					sel, found = append(sel, ct), true
				}
			}
			if !found {
				return fmt.Errorf("volume %s is not in the library (barcode %s); put it in a slot and run again (nothing was written)", v, v)
			}
		}
		carts = sel
	}

	// Read every volume first (labels, part headers, indexes), then
	// write: a job's rows need the media rows of all its volumes.
	var vols []*catVolume
	var skipped []string
	for _, ct := range carts {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, merr := s.lib.mount(ctx, ct)
		switch {
		case v == nil:
			fmt.Fprintf(c.stdout, "slot %d (barcode %s): skipped: %s\n", ct.Slot, dash(ct.Barcode), shortErr(merr))
		case merr != nil:
			var nk *NoKeyError
			if !errors.As(merr, &nk) {
				return merr
			}
			msg := fmt.Sprintf("volume %s (slot %d): NOT REBUILT: %v. Without its key only the clear label can be read: its part headers and "+
				"index files are encrypted, so its jobs and files are not known, and the catalog holds no encrypted volume without its "+
				"wrapped key; no media row, its jobs are skipped", v.Label.Volume, ct.Slot, merr)
			fmt.Fprintln(c.stdout, msg)
			skipped = append(skipped, v.Label.Volume)
		case v.Label.Encryption.Encrypted && v.Stored.Value == "":
			// Read through its label's escrow envelope: no wrapped key
			// exists to put in the catalog.
			fmt.Fprintf(c.stdout, "volume %s (slot %d): NOT REBUILT: its key came from the label's escrow envelope (--escrow-key); the catalog "+
				"holds no encrypted volume without its wrapped key: give its crypto cache or keys file with --kek too\n", v.Label.Volume, ct.Slot)
			skipped = append(skipped, v.Label.Volume)
		default:
			if err := s.lib.scan(ctx, v, true, nil); err != nil {
				return err
			}
			vols = append(vols, &catVolume{v: v})
		}
		if err := s.lib.unload(); err != nil {
			return err
		}
	}

	now := time.Now().UTC()
	for _, cv := range vols {
		note, err := rebuildMedia(ctx, conn, cv, now)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, note)
	}
	jobs, rows, problems, err := rebuildJobs(ctx, conn, vols, now, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "catalog rebuilt from %d volumes: %d jobs, %d file rows written\n", len(vols), jobs, rows)
	if len(skipped) > 0 || problems > 0 {
		var what []string
		if len(skipped) > 0 {
			what = append(what, fmt.Sprintf("%d volumes not rebuilt (%s)", len(skipped), strings.Join(skipped, ", ")))
		}
		if problems > 0 {
			what = append(what, fmt.Sprintf("%d jobs without their file rows", problems))
		}
		return fmt.Errorf("incomplete: %s (see above); put what is missing in the library and run again (what is there is kept)", strings.Join(what, ", "))
	}
	return nil
}

// volumeCounters are a volume's counters as storaged reports them (the
// bytes and blocks of every tape file of its jobs, part header included),
// when it was first written, and its status: Full when its last tape file
// is a data part (a job went on to another volume), else Append.
func volumeCounters(v *volume) (bytes, blocks int64, first *time.Time, status string) {
	status = "Append"
	for _, tf := range v.Files {
		if tf.Foreign != "" {
			continue
		}
		bytes += tf.Bytes
		if tf.LastBlock >= tf.FirstBlock && tf.Bytes > 0 {
			blocks += int64(tf.LastBlock-tf.FirstBlock) + 1
		}
		if c := tf.Header.Created.UTC(); !tf.Header.Created.IsZero() && (first == nil || c.Before(*first)) {
			first = &c
		}
	}
	for i := len(v.Files) - 1; i >= 0; i-- {
		if tf := v.Files[i]; tf.Foreign == "" {
			if tf.Header.Kind != archive.KindIndex {
				status = "Full"
			}
			break
		}
	}
	return bytes, blocks, first, status
}

// rebuildMedia writes the volume's pool and media row, or compares the
// row the catalog has.
func rebuildMedia(ctx context.Context, conn *pgx.Conn, cv *catVolume, now time.Time) (string, error) {
	v := cv.v
	l := v.Label
	enc := l.Encryption
	var (
		id          int64
		encrypted   bool
		fp, barcode *string
		pool        string
	)
	err := conn.QueryRow(ctx, `SELECT m.id, m.encrypted, m.key_fingerprint, m.barcode, p.name FROM media m JOIN pools p ON p.id = m.pool_id WHERE m.volume_name = $1`,
		l.Volume).Scan(&id, &encrypted, &fp, &barcode, &pool)
	switch {
	case err == nil:
		cv.mediaID = id
		var diffs []string
		if encrypted != enc.Encrypted {
			diffs = append(diffs, fmt.Sprintf("encrypted %t in the catalog, %t on the label", encrypted, enc.Encrypted))
		}
		if enc.Encrypted && (fp == nil || *fp != enc.Fingerprint) {
			diffs = append(diffs, fmt.Sprintf("key fingerprint %s in the catalog, %s on the label", dash(deref(fp)), enc.Fingerprint))
		}
		if l.Pool != "" && pool != l.Pool {
			diffs = append(diffs, fmt.Sprintf("pool %s in the catalog, %s on the label", pool, l.Pool))
		}
		if len(diffs) > 0 {
			return "", fmt.Errorf("volume %s is in the catalog already and differs from its label (%s); nothing was changed (a wrapped key is never overwritten): "+
				"check which is right, and relabel or remove the catalog's row by hand", l.Volume, strings.Join(diffs, "; "))
		}
		return fmt.Sprintf("volume %s (slot %d): in the catalog already, same label and key; kept as it is", l.Volume, v.Cart.Slot), nil
	case !errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("reading volume %s from the catalog: %w", l.Volume, err)
	}
	poolName := l.Pool
	if poolName == "" {
		poolName = "Default"
	}
	bytes, blocks, first, status := volumeCounters(v)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	// The storage daemon that labelled the volume, as the label names it
	// (its address is learnt when the director dials it).
	var storageID *int64
	if l.Storage != "" {
		var sid int64
		if err := tx.QueryRow(ctx, `
			WITH ins AS (INSERT INTO storages (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id)
			SELECT id FROM ins UNION ALL SELECT id FROM storages WHERE name = $1`, l.Storage).Scan(&sid); err != nil {
			return "", fmt.Errorf("storage %s of volume %s: %w", l.Storage, l.Volume, err)
		}
		storageID = &sid
	}
	var poolID int64
	// The pool as the label names it; created with the defaults when the
	// catalog lacks it (the director's configuration sets its limits at
	// the next start).
	if err := tx.QueryRow(ctx, `
		WITH ins AS (INSERT INTO pools (name, encrypt, storage_id) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING id)
		SELECT id FROM ins UNION ALL SELECT id FROM pools WHERE name = $1`, poolName, enc.Encrypted, storageID).Scan(&poolID); err != nil {
		return "", fmt.Errorf("pool %s of volume %s: %w", poolName, l.Volume, err)
	}
	var bc *string
	if v.Cart.Barcode != "" {
		b := v.Cart.Barcode
		bc = &b
		var holder string
		err := tx.QueryRow(ctx, `SELECT volume_name FROM media WHERE barcode = $1`, b).Scan(&holder)
		if err == nil {
			return "", fmt.Errorf("volume %s (slot %d) has barcode %s, which the catalog gives to volume %s; nothing was written for it: check the cartridges' labels", l.Volume, v.Cart.Slot, b, holder)
		}
	}
	var keyString, scheme, kekID, keyFP *string
	var verified *time.Time
	if enc.Encrypted {
		sk := v.Stored
		kid := sk.KEKID
		if kid == "" {
			kid = enc.KEKID
		}
		ks, sc, f := sk.Value, string(sk.Scheme), enc.Fingerprint
		keyString, scheme, kekID, keyFP = &ks, &sc, &kid, &f
		// The key just decrypted this volume's part headers.
		verified = &now
	}
	// The label's escrow envelope (if any) goes back beside its key.
	var escrowID, escrowEnv *string
	if enc.Encrypted && enc.EscrowEnvelope != "" {
		id, e := enc.EscrowKeyID, enc.EscrowEnvelope
		escrowID, escrowEnv = &id, &e
	}
	// Whole seconds, as the director records the label time storaged
	// reports.
	lt := l.LabelTime.UTC().Truncate(time.Second)
	err = tx.QueryRow(ctx, `
		INSERT INTO media (storage_id, volume_name, barcode, pool_id, slot, status, bytes_written, blocks_written,
			label_time, first_written, last_written, data_since, key_valid_from,
			encrypted, key_string, key_scheme, kek_id, key_fingerprint, encryption_verified_at, created_at, updated_at,
			escrow_key_id, escrow_envelope)
		VALUES ($17, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9, $8, $11, $12, $13, $14, $15, $16, $10, $10, $18, $19)
		RETURNING id`,
		l.Volume, bc, poolID, v.Cart.Slot, status, bytes, blocks, lt, first, now,
		enc.Encrypted, keyString, scheme, kekID, keyFP, verified, storageID, escrowID, escrowEnv).Scan(&cv.mediaID)
	if err != nil {
		return "", fmt.Errorf("writing volume %s: %w", l.Volume, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO volume_events (at, volume_name, media_id, actor, old_status, new_status, reason)
		VALUES ($1, $2, $3, 'tapextract', '', $4, $5)`, now, l.Volume, cv.mediaID, status, rebuiltReason); err != nil {
		return "", fmt.Errorf("recording the rebuild of volume %s: %w", l.Volume, err)
	}
	if enc.Encrypted {
		if _, err := tx.Exec(ctx, `INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
			VALUES ($1, $2, $3, 'imported', 'tapextract', $4, $5)`, now, l.Volume, cv.mediaID, *kekID,
			fmt.Sprintf("%s; fingerprint %s, checked against the label", rebuiltReason, enc.Fingerprint)); err != nil {
			return "", fmt.Errorf("recording the key of volume %s: %w", l.Volume, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("writing volume %s: %w", l.Volume, err)
	}
	keyNote := "not encrypted"
	if enc.Encrypted {
		keyNote = fmt.Sprintf("key %s (KEK %s, scheme %s)", enc.Fingerprint, *kekID, *scheme)
	}
	return fmt.Sprintf("volume %s (slot %d): added to pool %s, %s, status %s, %d bytes in %d tape files", l.Volume, v.Cart.Slot, poolName, keyNote, status, bytes, len(v.Files)), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// jobPart is one tape file of a job, on a volume read.
type jobPart struct {
	cv *catVolume
	tf tapeFile
}

// rebuildJobs writes the jobs found on vols: job, job_media and (from the
// job's index) files and file_parts rows. It returns the jobs written, the
// file rows written and how many jobs could not have their file rows.
func rebuildJobs(ctx context.Context, conn *pgx.Conn, vols []*catVolume, now time.Time, c *cli) (int, int64, int, error) {
	parts := map[int64][]jobPart{}
	indexes := map[int64]*jobIndex{}
	for _, cv := range vols {
		for _, tf := range cv.v.Files {
			if tf.Foreign != "" {
				continue
			}
			parts[tf.Header.JobID] = append(parts[tf.Header.JobID], jobPart{cv, tf})
		}
		for id, ix := range cv.v.Indexes {
			indexes[id] = ix
		}
	}
	ids := make([]int64, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var rows int64
	problems := 0
	for _, id := range ids {
		n, note, err := rebuildJob(ctx, conn, id, parts[id], indexes[id], vols, now)
		if err != nil {
			return 0, 0, 0, err
		}
		if n < 0 {
			problems++
		} else {
			rows += n
		}
		fmt.Fprintln(c.stdout, note)
	}
	// New jobs get ids after the tape's.
	if _, err := conn.Exec(ctx, `
		SELECT setval(pg_get_serial_sequence('jobs', 'id'), j.m) FROM (SELECT max(id) AS m FROM jobs) j
		WHERE j.m IS NOT NULL AND j.m > COALESCE((SELECT last_value FROM pg_sequences
			WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence('jobs', 'id')), 0)`); err != nil {
		return 0, 0, 0, fmt.Errorf("moving the job id sequence past the rebuilt jobs: %w", err)
	}
	return len(ids), rows, problems, nil
}

// rebuildJob writes one job's rows in one transaction. n is the file rows
// written (-1: the job's file rows could not be rebuilt; note says why).
func rebuildJob(ctx context.Context, conn *pgx.Conn, id int64, ps []jobPart, ix *jobIndex, vols []*catVolume, now time.Time) (n int64, note string, err error) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i].tf.Header, ps[j].tf.Header
		if (a.Kind == archive.KindIndex) != (b.Kind == archive.KindIndex) {
			return b.Kind == archive.KindIndex
		}
		return a.Part < b.Part
	})
	h := ps[0].tf.Header
	op := fmt.Sprintf("job %d (%s)", id, dash(h.Job))
	// Where each tape file of the job starts in its stream, for the
	// members' stream offsets.
	type partInfo struct {
		mediaID   int64
		streamOff int64
		headerLen int64
		bs        int64
	}
	byFile := map[string]partInfo{}
	for _, p := range ps {
		if p.tf.Header.Kind == archive.KindIndex {
			continue
		}
		b, err := p.tf.Header.Encode()
		if err != nil {
			return 0, "", fmt.Errorf("%s: the part header of tape file %d of %s: %w", op, p.tf.File, p.cv.v.Label.Volume, err)
		}
		byFile[fmt.Sprintf("%s#%d", p.cv.v.Label.Volume, p.tf.File)] = partInfo{p.cv.mediaID, p.tf.Header.StreamOffset, int64(len(b)), int64(p.tf.Header.BlockSize)}
	}
	// The job's file rows need every volume its members are on.
	var missing []string
	var files int64
	var bytes int64
	if ix != nil {
		miss := map[string]bool{}
		for _, e := range ix.Entries {
			if _, ok := byFile[fmt.Sprintf("%s#%d", e.Address.Volume, e.Address.TapeFile)]; !ok {
				miss[e.Address.Volume] = true
			}
			for _, p := range e.Parts {
				if _, ok := byFile[fmt.Sprintf("%s#%d", p.Volume, p.TapeFile)]; !ok {
					miss[p.Volume] = true
				}
			}
			files++
			if e.Type == archive.TypeReg {
				bytes += e.Size
			}
		}
		missing = sortedKeys(miss)
	}
	status, reason := "T", ""
	var poolID, storageID *int64
	if err := conn.QueryRow(ctx, `SELECT pool_id, storage_id FROM media WHERE id = $1`, ps[0].cv.mediaID).Scan(&poolID, &storageID); err != nil {
		return 0, "", fmt.Errorf("%s: %w", op, err)
	}
	if ix == nil {
		status, reason = "E", rebuiltReason+": the job's index tape file is on no volume read (the job did not finish, or its last volume was not in the library)"
	}
	created := h.Created.UTC()
	var flushed int64
	if ix != nil {
		flushed = ix.Header.StreamOffset
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, "", err
	}
	defer tx.Rollback(context.Background())
	var haveName, haveStatus string
	var haveClient *string
	err = tx.QueryRow(ctx, `SELECT name, client, status FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&haveName, &haveClient, &haveStatus)
	switch {
	case err == nil:
		if haveName != h.Job || deref(haveClient) != h.Client {
			return 0, "", fmt.Errorf("%s: the catalog has job %d as job %s of client %s, not %s of client %s as the tape says; nothing was changed: this catalog holds other jobs, rebuild into an empty one",
				op, id, haveName, dash(deref(haveClient)), dash(h.Job), dash(h.Client))
		}
		if ix == nil && haveStatus != "E" {
			// Rebuilt with its index earlier: keep that.
			status, reason = haveStatus, ""
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET status = $2, error_reason = NULLIF($3, ''),
			files_count = CASE WHEN $4 > 0 THEN $4 ELSE files_count END,
			bytes_count = CASE WHEN $4 > 0 THEN $5 ELSE bytes_count END,
			flushed_offset = GREATEST(flushed_offset, $6) WHERE id = $1`, id, status, reason, files, bytes, flushed)
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `
			INSERT INTO jobs (id, name, job_type, level, status, client, fileset, pool_id, started_at, ended_at,
				files_count, bytes_count, flushed_offset, error_reason, created_at, storage_id)
			OVERRIDING SYSTEM VALUE
			VALUES ($1, $2, 'Backup', NULLIF($3, ''), $4, NULLIF($5, ''), NULLIF($6, ''), $7, $8, $8, $9, $10, $11, NULLIF($12, ''), $8, $13)`,
			id, h.Job, h.Level, status, h.Client, h.FileSet, poolID, created, files, bytes, flushed, reason, storageID)
	}
	if err != nil {
		return 0, "", fmt.Errorf("%s: writing the job: %w", op, err)
	}
	for _, p := range ps {
		ph := p.tf.Header
		part, kind := ph.Part, "data"
		if ph.Kind == archive.KindIndex {
			part, kind = ph.Part+1, "index"
		}
		var last *int64
		if !p.tf.Open && p.tf.LastBlock >= p.tf.FirstBlock && p.tf.Bytes > 0 {
			lb := int64(p.tf.LastBlock)
			last = &lb
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO job_media (job_id, media_id, volume_index, part, kind, tape_file, first_block, last_block, bytes, first_stream_offset, complete)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (job_id, part) DO UPDATE SET media_id = EXCLUDED.media_id, volume_index = EXCLUDED.volume_index, kind = EXCLUDED.kind,
				tape_file = EXCLUDED.tape_file, first_block = EXCLUDED.first_block, last_block = EXCLUDED.last_block, bytes = EXCLUDED.bytes,
				first_stream_offset = EXCLUDED.first_stream_offset, complete = EXCLUDED.complete`,
			id, p.cv.mediaID, ph.VolumeSeq, part, kind, int64(p.tf.File), int64(p.tf.FirstBlock), last, p.tf.Bytes, ph.StreamOffset, !p.tf.Open); err != nil {
			return 0, "", fmt.Errorf("%s: recording part %d (tape file %d of %s): %w", op, part, p.tf.File, p.cv.v.Label.Volume, err)
		}
	}
	where := fmt.Sprintf("%d tape files", len(ps))
	switch {
	case ix == nil:
		n, note = -1, fmt.Sprintf("job %d (%s, client %s): job and %s rebuilt, status E: its index tape file is on no volume read, so its file rows are not known; put its last volume in the library and run again", id, dash(h.Job), dash(h.Client), where)
	case len(missing) > 0:
		n, note = -1, fmt.Sprintf("job %d (%s, client %s): job and %s rebuilt, but not its file rows: its members are also on %s, not read in this run (not in the library, not selected with --volume, or without its key); put it in the library and run again",
			id, dash(h.Job), dash(h.Client), where, strings.Join(missing, ", "))
	default:
		var have int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM files WHERE job_id = $1`, id).Scan(&have); err != nil {
			return 0, "", fmt.Errorf("%s: %w", op, err)
		}
		if have == files {
			note = fmt.Sprintf("job %d (%s, client %s, %s, level %s): %d file rows in the catalog already; kept", id, dash(h.Job), dash(h.Client), dash(h.FileSet), dash(h.Level), have)
			break
		}
		if _, err := tx.Exec(ctx, `DELETE FROM file_parts WHERE job_id = $1`, id); err != nil {
			return 0, "", fmt.Errorf("%s: %w", op, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM files WHERE job_id = $1`, id); err != nil {
			return 0, "", fmt.Errorf("%s: %w", op, err)
		}
		src := &entryRows{jobID: id, entries: ix.Entries, byFile: func(vol string, file int64) (int64, int64, int64, bool) {
			pi, ok := byFile[fmt.Sprintf("%s#%d", vol, file)]
			return pi.mediaID, pi.streamOff - pi.headerLen, pi.bs, ok
		}}
		cnt, err := tx.CopyFrom(ctx, pgx.Identifier{"files"}, fileColumns, src)
		if err != nil {
			return 0, "", fmt.Errorf("%s: loading its file rows: %w", op, err)
		}
		if len(src.parts) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"file_parts"},
				[]string{"job_id", "stream_offset", "part", "media_id", "tape_file", "block", "block_offset", "data_offset"},
				pgx.CopyFromRows(src.parts)); err != nil {
				return 0, "", fmt.Errorf("%s: loading its continuation rows: %w", op, err)
			}
		}
		n = cnt
		note = fmt.Sprintf("job %d (%s, client %s, %s, level %s): %d file rows, %d bytes, %s", id, dash(h.Job), dash(h.Client), dash(h.FileSet), dash(h.Level), cnt, bytes, where)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, "", fmt.Errorf("%s: %w", op, err)
	}
	return n, note, nil
}

// fileColumns are the COPY columns of files (as the director's
// catalog.FileBatch loads them).
var fileColumns = []string{"job_id", "path", "type", "size", "mode", "uid", "gid", "uname", "gname", "mtime_ns",
	"link", "sha256", "media_id", "tape_file", "block", "block_offset", "stream_offset", "parts"}

// entryRows feeds index entries to COPY, collecting their continuation
// rows.
type entryRows struct {
	jobID   int64
	entries []archive.IndexEntry
	// byFile: the media id of a tape file, the stream offset of its
	// first byte (the part's stream offset less its header's length) and
	// its block size.
	byFile func(volume string, file int64) (mediaID, base, bs int64, ok bool)
	i      int
	vals   []any
	parts  [][]any
}

func (s *entryRows) Next() bool { s.i++; return s.i <= len(s.entries) }
func (s *entryRows) Err() error { return nil }
func (s *entryRows) Values() ([]any, error) {
	e := &s.entries[s.i-1]
	mediaID, base, bs, ok := s.byFile(e.Address.Volume, e.Address.TapeFile)
	if !ok {
		return nil, fmt.Errorf("%q: tape file %d of %s is not a part of the job", e.Path, e.Address.TapeFile, e.Address.Volume)
	}
	streamOff := base + e.Address.Block*bs + e.Address.Offset
	if s.vals == nil {
		s.vals = make([]any, len(fileColumns))
	}
	var link, sum []byte
	if e.Linkname != "" {
		link = []byte(e.Linkname)
	}
	if e.SHA256 != ([32]byte{}) {
		sum = append([]byte(nil), e.SHA256[:]...)
	}
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] = s.jobID, []byte(e.Path), e.Type.String(), e.Size, int32(e.Mode), e.UID, e.GID, e.Uname, e.Gname, e.Mtime
	v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17] = link, sum, mediaID, int32(e.Address.TapeFile), e.Address.Block, int32(e.Address.Offset), streamOff, int16(len(e.Parts))
	for _, p := range e.Parts {
		pm, _, _, ok := s.byFile(p.Volume, p.TapeFile)
		if !ok {
			return nil, fmt.Errorf("%q: tape file %d of %s is not a part of the job", e.Path, p.TapeFile, p.Volume)
		}
		s.parts = append(s.parts, []any{s.jobID, streamOff, int32(p.Part), pm, int32(p.TapeFile), p.Block, int32(p.Offset), p.DataOffset})
	}
	return v, nil
}
