package catalog

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
)

func TestStoragesAndPools(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	a, err := f.s.EnsureStorage(ctx, "sd3", "old:1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.s.EnsureStorage(ctx, "sd3", "new:2")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || b.Address != "new:2" || b.Name != "sd3" {
		t.Fatalf("EnsureStorage upsert: first %+v, second %+v", a, b)
	}
	if got, err := f.s.GetStorage(ctx, "sd3"); err != nil || got.Address != "new:2" {
		t.Fatalf("GetStorage = %+v, %v", got, err)
	}
	if _, err := f.s.GetStorage(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetStorage(unknown) = %v", err)
	}
	var iv *InvalidError
	if _, err := f.s.EnsureStorage(ctx, "", "x"); !errors.As(err, &iv) {
		t.Fatalf("EnsureStorage(\"\") = %v", err)
	}

	spec := PoolSpec{Name: "Weekly", Type: PoolBackup, Encrypt: true, VolumeRetention: 30 * 24 * time.Hour,
		MaxVolumeBytes: 2 << 40, Storage: "sd3"}
	p1, err := f.s.EnsurePool(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Name != "Weekly" || p1.Type != PoolBackup || !p1.Encrypt || p1.VolumeRetention != 30*24*time.Hour ||
		p1.MaxVolumeBytes != 2<<40 || p1.Storage != "sd3" || p1.ID == 0 {
		t.Fatalf("EnsurePool = %+v", p1)
	}
	// Upsert: the spec wins, the id stays.
	p2, err := f.s.EnsurePool(ctx, PoolSpec{Name: "Weekly", Type: PoolScratch, Encrypt: false})
	if err != nil {
		t.Fatal(err)
	}
	if p2.ID != p1.ID || p2.Type != PoolScratch || p2.Encrypt || p2.VolumeRetention != 0 || p2.MaxVolumeBytes != 0 || p2.Storage != "" {
		t.Fatalf("EnsurePool update = %+v (first %+v)", p2, p1)
	}
	got, err := f.s.GetPool(ctx, "Weekly")
	if err != nil || got != p2 {
		t.Fatalf("GetPool = %+v, %v; want %+v", got, err, p2)
	}
	var nf *NotFoundError
	if _, err := f.s.GetPool(ctx, "Nope"); !errors.As(err, &nf) || nf.Kind != "pool" || nf.Name != "Nope" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPool(unknown) = %v", err)
	}
	if _, err := f.s.EnsurePool(ctx, PoolSpec{Name: "X", Storage: "ghost"}); !errors.As(err, &nf) || nf.Kind != "storage" {
		t.Fatalf("EnsurePool(unknown storage) = %v", err)
	}
	if _, err := f.s.GetPool(ctx, "X"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a pool with an unknown storage was created anyway: %v", err)
	}
	if _, err := f.s.EnsurePool(ctx, PoolSpec{Name: "Y", Type: "Archive"}); !errors.As(err, &iv) {
		t.Fatalf("EnsurePool(bad type) = %v", err)
	}
	pools, err := f.s.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pools {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "Local,Offsite,Weekly" {
		t.Fatalf("ListPools = %v", names)
	}
}

func TestCreateLabelingCommitsKeyAndEvent(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	m, sk := f.label(t, "OFF001", "OFF001L6", "sd1", 3, r)
	if m.Status != StatusLabeling || !m.Encrypted || m.KEKID != k.ID() || m.KeyFingerprint != sk.Fingerprint ||
		m.KeyScheme != keys.SchemeV1 || m.Pool != "Offsite" || m.Storage != "sd1" || m.Slot != 3 ||
		m.Barcode != "OFF001L6" || m.MediaType != "LTO" || !m.CreatedAt.Equal(t0) || m.EncryptionVerifiedAt != nil {
		t.Fatalf("CreateLabeling returned %+v", m)
	}

	// Committed: a brand-new connection sees the row, the key and the event.
	conn := pgtest.Connect(t, f.dsn)
	row := readKeyRow(t, conn, "OFF001")
	if !row.Encrypted || *row.Value != sk.Value || *row.KEKID != k.ID() || *row.Finger != sk.Fingerprint ||
		*row.Scheme != "v1" || row.Status != "Labeling" {
		t.Fatalf("row seen from another connection: %+v", row)
	}
	var at time.Time
	var event, actor, kek, detail string
	err := conn.QueryRow(f.ctx, `SELECT e.at, e.event, e.actor, e.kek_id, e.detail FROM key_events e JOIN media m ON m.id = e.media_id
		WHERE e.volume_name = 'OFF001'`).Scan(&at, &event, &actor, &kek, &detail)
	if err != nil {
		t.Fatalf("reading the generated event from another connection: %v", err)
	}
	if event != "generated" || actor != "console:admin" || kek != k.ID() || detail != sk.Fingerprint || !at.Equal(t0) {
		t.Fatalf("key event = %s %s %s %q at %v", event, actor, kek, detail, at)
	}
	// And the stored key unwraps to a key with the recorded fingerprint.
	dk, err := r.Unwrap(keys.StoredKey{Scheme: keys.Scheme(*row.Scheme), KEKID: *row.KEKID, Value: *row.Value, Fingerprint: *row.Finger})
	if err != nil || keys.Fingerprint(dk) != sk.Fingerprint {
		t.Fatalf("stored key does not unwrap to its fingerprint: %v", err)
	}

	// A clear volume: no key columns, no key event.
	c, _ := f.label(t, "LOC001", "", "", NoSlot, nil)
	if c.Encrypted || c.KEKID != "" || c.Storage != "" || c.Slot != NoSlot || c.Barcode != "" {
		t.Fatalf("clear volume = %+v", c)
	}
	cr := readKeyRow(t, conn, "LOC001")
	if cr.Encrypted || cr.Value != nil || cr.KEKID != nil || cr.Finger != nil || cr.Scheme != nil {
		t.Fatalf("clear volume row has key columns: %+v", cr)
	}
	var n int
	if err := conn.QueryRow(f.ctx, `SELECT count(*) FROM key_events WHERE volume_name = 'LOC001'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("clear volume has %d key events (%v)", n, err)
	}
}

func TestCreateLabelingConflictsAndInvalid(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	f.label(t, "OFF001", "BC0001L6", "sd1", 1, r)

	try := func(m MediaNew) (keys.StoredKey, error) {
		sk, err := r.WrapNew()
		if err != nil {
			t.Fatal(err)
		}
		if m.Encrypted && m.Key == nil {
			m.Key = &sk
		}
		_, err = f.s.CreateLabeling(f.ctx, m)
		checkNoSecrets(t, "CreateLabeling", err, sk.Value)
		return sk, err
	}
	var ce *ConflictError
	_, err := try(MediaNew{Volume: "OFF001", Barcode: "OTHER1", Pool: "Offsite", Storage: "sd1", Slot: 2, Encrypted: true})
	if !errors.As(err, &ce) || ce.Volume != "OFF001" || ce.Barcode != "" || !strings.Contains(err.Error(), `volume "OFF001"`) {
		t.Fatalf("duplicate volume: %v", err)
	}
	_, err = try(MediaNew{Volume: "OFF002", Barcode: "BC0001L6", Pool: "Offsite", Storage: "sd1", Slot: 2, Encrypted: true})
	if !errors.As(err, &ce) || ce.Barcode != "BC0001L6" || ce.Holder != "OFF001" || ce.Volume != "" ||
		!strings.Contains(err.Error(), `barcode "BC0001L6" already belongs to volume "OFF001"`) {
		t.Fatalf("duplicate barcode: %v", err)
	}
	// The failed inserts left nothing behind (no row, no key event).
	var rows, events int
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT (SELECT count(*) FROM media), (SELECT count(*) FROM key_events)`).Scan(&rows, &events); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || events != 1 {
		t.Fatalf("after two conflicts: %d media rows, %d key events; want 1, 1", rows, events)
	}

	var nf *NotFoundError
	if _, err := try(MediaNew{Volume: "OFF003", Pool: "Nope", Encrypted: true}); !errors.As(err, &nf) || nf.Kind != "pool" {
		t.Fatalf("unknown pool: %v", err)
	}
	if _, err := try(MediaNew{Volume: "OFF003", Pool: "Offsite", Storage: "ghost", Encrypted: true}); !errors.As(err, &nf) || nf.Kind != "storage" {
		t.Fatalf("unknown storage: %v", err)
	}
	// The volume name CHECK is the database's; its error quotes the whole
	// row (with the key) in DETAIL, which must not come through.
	var iv *InvalidError
	sk, err := try(MediaNew{Volume: "bad name!", Pool: "Offsite", Storage: "sd1", Encrypted: true})
	if !errors.As(err, &iv) || iv.Field != "volume name" {
		t.Fatalf("bad volume name: %v", err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		t.Fatalf("the server error (DETAIL quotes the row) is reachable: %v", pe.Detail)
	}
	checkNoSecrets(t, "bad volume name", err, sk.Value)
	if _, err := try(MediaNew{Volume: "OFF004", Pool: "Offsite", Encrypted: true, Key: nil, Slot: -2}); !errors.As(err, &iv) {
		t.Fatalf("slot -2: %v", err)
	}
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "OFF004", Pool: "Offsite", Encrypted: true}); !errors.As(err, &iv) || iv.Field != "key" {
		t.Fatalf("encrypted without key: %v", err)
	}
	sk, _ = r.WrapNew()
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "OFF004", Pool: "Local", Key: &sk}); !errors.As(err, &iv) || iv.Field != "key" {
		t.Fatalf("clear volume with a key: %v", err)
	}
	bad := sk
	bad.Value = sk.Value[:50] + "===="
	_, err = f.s.CreateLabeling(f.ctx, MediaNew{Volume: "OFF004", Pool: "Offsite", Encrypted: true, Key: &bad})
	if !errors.As(err, &iv) || iv.Field != "key" {
		t.Fatalf("malformed stored key: %v", err)
	}
	checkNoSecrets(t, "malformed stored key", err, sk.Value[:50])
	noFP := sk
	noFP.Fingerprint = ""
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "OFF004", Pool: "Offsite", Encrypted: true, Key: &noFP}); !errors.As(err, &iv) {
		t.Fatalf("key without fingerprint: %v", err)
	}
	if _, err := f.s.GetMedia(f.ctx, "OFF004"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused volume exists: %v", err)
	}
}

func TestCreateLabelingConcurrentSameVolume(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sk, err := r.WrapNew()
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = f.s.CreateLabeling(f.ctx, MediaNew{Volume: "RACE01", Pool: "Offsite", Storage: "sd1", Slot: i, Encrypted: true, Key: &sk})
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		var ce *ConflictError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ce) && ce.Volume == "RACE01":
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || conflicts != n-1 {
		t.Fatalf("%d succeeded and %d conflicted; want 1 and %d", ok, conflicts, n-1)
	}
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Volume: "RACE01"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("key events of RACE01: %d (%v), want 1", len(evs), err)
	}
}

func TestLabelLifecycle(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	_, sk := f.label(t, "OFF001", "", "sd1", 1, r)
	f.label(t, "LOC001", "", "sd1", 2, nil)
	ctx := f.ctx
	labelAt := t0.Add(time.Minute)
	verified := t0.Add(2 * time.Minute)

	var iv *InvalidError
	if err := f.s.MarkLabeled(ctx, "OFF001", labelAt, nil); !errors.As(err, &iv) {
		t.Fatalf("MarkLabeled(encrypted, unverified) = %v", err)
	}
	if err := f.s.MarkLabeled(ctx, "LOC001", labelAt, &verified); !errors.As(err, &iv) {
		t.Fatalf("MarkLabeled(clear, verified) = %v", err)
	}
	if err := f.s.MarkLabeled(ctx, "NOPE", labelAt, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkLabeled(unknown) = %v", err)
	}
	f.clock.Advance(time.Hour)
	if err := f.s.MarkLabeled(ctx, "OFF001", labelAt, &verified); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MarkLabeled(ctx, "LOC001", labelAt, nil); err != nil {
		t.Fatal(err)
	}
	m, err := f.s.GetMedia(ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != StatusAppend || m.LabelTime == nil || !m.LabelTime.Equal(labelAt) ||
		m.EncryptionVerifiedAt == nil || !m.EncryptionVerifiedAt.Equal(verified) || !m.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after MarkLabeled: %+v", m)
	}
	var se *StateError
	if err := f.s.MarkLabeled(ctx, "OFF001", labelAt, &verified); !errors.As(err, &se) || se.Status != StatusAppend {
		t.Fatalf("MarkLabeled twice = %v", err)
	}

	// Full: only from Append; twice is fine.
	if err := f.s.MarkFull(ctx, "OFF001"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MarkFull(ctx, "OFF001"); err != nil {
		t.Fatalf("MarkFull twice: %v", err)
	}
	if m, _ := f.s.GetMedia(ctx, "OFF001"); m.Status != StatusFull {
		t.Fatalf("status after MarkFull = %s", m.Status)
	}
	f.label(t, "OFF002", "", "sd1", 3, r)
	if err := f.s.MarkFull(ctx, "OFF002"); !errors.As(err, &se) || se.Status != StatusLabeling {
		t.Fatalf("MarkFull(Labeling) = %v", err)
	}
	if err := f.s.MarkFull(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkFull(unknown) = %v", err)
	}

	// Error keeps the key.
	before := readKeyRow(t, f.s.Pool(), "OFF001")
	if err := f.s.MarkError(ctx, "OFF001", "label verification failed: drive writes clear"); err != nil {
		t.Fatal(err)
	}
	after := readKeyRow(t, f.s.Pool(), "OFF001")
	if after.Status != "Error" || !after.Encrypted || *after.Value != sk.Value || *after.Value != *before.Value ||
		*after.KEKID != *before.KEKID || *after.Finger != *before.Finger {
		t.Fatalf("MarkError changed the key or status: %+v", after)
	}
	if m, _ := f.s.GetMedia(ctx, "OFF001"); m.ErrorReason != "label verification failed: drive writes clear" {
		t.Fatalf("error reason = %q", m.ErrorReason)
	}
	if err := f.s.MarkError(ctx, "OFF001", ""); !errors.As(err, &iv) {
		t.Fatalf("MarkError(no reason) = %v", err)
	}
	if err := f.s.MarkError(ctx, "NOPE", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkError(unknown) = %v", err)
	}
}

func TestListMediaAndSlots(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	// Created out of order: the list is by volume name.
	f.label(t, "OFF003", "", "sd1", 3, r)
	f.label(t, "OFF001", "", "sd1", 1, r)
	f.label(t, "OFF002", "", "sd2", 1, r)
	f.label(t, "LOC001", "", "sd1", 7, nil)
	if err := f.s.MarkLabeled(f.ctx, "LOC001", t0, nil); err != nil {
		t.Fatal(err)
	}
	names := func(ms []Media, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Volume)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    MediaFilter
		want string
	}{
		{MediaFilter{}, "LOC001,OFF001,OFF002,OFF003"},
		{MediaFilter{Pool: "Offsite"}, "OFF001,OFF002,OFF003"},
		{MediaFilter{Storage: "sd1"}, "LOC001,OFF001,OFF003"},
		{MediaFilter{Storage: "sd1", Status: StatusLabeling}, "OFF001,OFF003"},
		{MediaFilter{Status: StatusAppend}, "LOC001"},
		{MediaFilter{Pool: "Nope"}, ""},
	} {
		if got := names(f.s.ListMedia(f.ctx, c.f)); got != c.want {
			t.Errorf("ListMedia(%+v) = %q, want %q", c.f, got, c.want)
		}
	}

	m, err := f.s.MediaBySlot(f.ctx, "sd2", 1)
	if err != nil || m.Volume != "OFF002" {
		t.Fatalf("MediaBySlot(sd2, 1) = %s, %v", m.Volume, err)
	}
	m, err = f.s.MediaBySlot(f.ctx, "sd1", 1)
	if err != nil || m.Volume != "OFF001" {
		t.Fatalf("MediaBySlot(sd1, 1) = %s, %v", m.Volume, err)
	}
	var nf *NotFoundError
	if _, err := f.s.MediaBySlot(f.ctx, "sd1", 2); !errors.As(err, &nf) || nf.Kind != "slot" || !strings.Contains(err.Error(), `storage "sd1" slot 2`) {
		t.Fatalf("MediaBySlot(empty slot) = %v", err)
	}
	// A stale row naming the same slot: the most recently updated wins.
	f.clock.Advance(time.Minute)
	f.label(t, "OFF009", "", "sd1", 3, r)
	if m, err := f.s.MediaBySlot(f.ctx, "sd1", 3); err != nil || m.Volume != "OFF009" {
		t.Fatalf("MediaBySlot with a stale row = %s, %v", m.Volume, err)
	}
}

func TestRecordWritten(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	f.label(t, "OFF001", "", "sd1", 1, ring(t, k, k))
	f.clock.Advance(time.Minute)
	if err := f.s.RecordWritten(f.ctx, "OFF001", 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := f.s.RecordWritten(f.ctx, "OFF001", 3<<20, 3); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordWritten(f.ctx, "OFF001", 0, 0); err != nil {
		t.Fatal(err)
	}
	m, err := f.s.GetMedia(f.ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	if m.BytesWritten != 4<<20 || m.BlocksWritten != 4 || m.FirstWritten == nil || !m.FirstWritten.Equal(t0.Add(time.Minute)) ||
		m.LastWritten == nil || !m.LastWritten.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after RecordWritten: bytes %d blocks %d first %v last %v", m.BytesWritten, m.BlocksWritten, m.FirstWritten, m.LastWritten)
	}
	var iv *InvalidError
	if err := f.s.RecordWritten(f.ctx, "OFF001", -1, 0); !errors.As(err, &iv) {
		t.Fatalf("negative bytes: %v", err)
	}
	if err := f.s.RecordWritten(f.ctx, "NOPE", 1, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	if err := f.s.RecordWritten(f.ctx, "NOPE", 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume, nothing written: %v", err)
	}
}
