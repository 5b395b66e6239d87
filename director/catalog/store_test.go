package catalog

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a fresh migrated catalog with two storages (sd1, sd2) and two
// pools (Offsite: encrypt, Local: clear).
type fixture struct {
	ctx   context.Context
	dsn   string
	s     *Store
	clock *clock
}

func newFixture(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c := &clock{t: t0}
	f := &fixture{ctx: ctx, dsn: dsn, s: NewStore(pool, append([]Option{WithClock(c.Now)}, opts...)...), clock: c}
	for _, sd := range []string{"sd1", "sd2"} {
		if _, err := f.s.EnsureStorage(ctx, sd, sd+".example:9103"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.EnsurePool(ctx, PoolSpec{Name: "Offsite", Encrypt: true, Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.EnsurePool(ctx, PoolSpec{Name: "Local", Encrypt: false}); err != nil {
		t.Fatal(err)
	}
	return f
}

// newKEKs returns n fresh KEKs.
func newKEKs(t testing.TB, n int) []*keys.KEK {
	t.Helper()
	out := make([]*keys.KEK, n)
	for i := range out {
		k, err := keys.GenerateKEK()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

// ring returns a keyring holding keks with active as the active one.
func ring(t testing.TB, active *keys.KEK, keks ...*keys.KEK) *keys.Keyring {
	t.Helper()
	r, err := keys.NewKeyring(keks...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetActive(active.ID()); err != nil {
		t.Fatal(err)
	}
	return r
}

// label creates an encrypted (r != nil) or clear volume in status Labeling.
func (f *fixture) label(t testing.TB, volume, barcode, storage string, slot int, r *keys.Keyring) (Media, keys.StoredKey) {
	t.Helper()
	m := MediaNew{Volume: volume, Barcode: barcode, Pool: "Offsite", Storage: storage, Slot: slot, Actor: "console:admin"}
	var sk keys.StoredKey
	if r != nil {
		var err error
		if sk, err = r.WrapNew(); err != nil {
			t.Fatal(err)
		}
		m.Encrypted, m.Key = true, &sk
	} else {
		m.Pool = "Local"
	}
	got, err := f.s.CreateLabeling(f.ctx, m)
	if err != nil {
		t.Fatalf("CreateLabeling(%s): %v", volume, err)
	}
	return got, sk
}

// keyRow is a media row's key columns read straight from the database.
type keyRow struct {
	Encrypted                    bool
	Value, Scheme, KEKID, Finger *string
	VerifiedAt                   *time.Time
	Status                       string
}

func readKeyRow(t testing.TB, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, volume string) keyRow {
	t.Helper()
	var r keyRow
	err := q.QueryRow(context.Background(), `SELECT encrypted, key_string, key_scheme, kek_id, key_fingerprint, encryption_verified_at, status
		FROM media WHERE volume_name = $1`, volume).Scan(&r.Encrypted, &r.Value, &r.Scheme, &r.KEKID, &r.Finger, &r.VerifiedAt, &r.Status)
	if err != nil {
		t.Fatalf("reading media row %s: %v", volume, err)
	}
	return r
}

// allStoredStrings returns every key_string in media now.
func (f *fixture) allStoredStrings(t testing.TB) []string {
	t.Helper()
	rows, err := f.s.Pool().Query(f.ctx, `SELECT key_string FROM media WHERE key_string IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkNoSecrets fails if any text of err (Error, %v, %+v, %#v) contains
// one of secrets.
func checkNoSecrets(t testing.TB, what string, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	texts := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Fatalf("%s: error text contains key material: %s", what, txt)
			}
		}
	}
}

func TestOpenFromConfig(t *testing.T) {
	dsn := pgtest.NewDB(t)
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := configs.Catalog{Host: pc.Host, Port: int(pc.Port), Database: pc.Database, User: pc.User, SSLMode: "disable",
		ConnectTimeout: configs.Duration{Duration: 5 * time.Second}}
	ctx := context.Background()
	s, err := Open(ctx, c, "director.toml")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	st, err := s.SchemaState(ctx)
	if err != nil || !st.UpToDate() || st.Current < 1 {
		t.Fatalf("SchemaState = %+v, %v", st, err)
	}
	if _, err := s.EnsureStorage(ctx, "sd1", "a:1"); err != nil {
		t.Fatalf("store from Open does not work: %v", err)
	}

	c.Database = "no_such_catalog_db"
	_, err = Open(ctx, c, "director.toml")
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `database "no_such_catalog_db" does not exist`) {
		t.Fatalf("Open(missing database) = %v, want *UnreachableError saying the database does not exist", err)
	}
}

func TestDBErrorDropsDetail(t *testing.T) {
	secret := "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
	pe := &pgconn.PgError{Code: "23514", Message: `new row for relation "media" violates check constraint "x"`,
		Detail: "Failing row contains (1, VOL, " + secret + ").", ConstraintName: "x", TableName: "media"}
	err := dbErr("creating volume", fmt.Errorf("wrapped: %w", pe))
	var de *DBError
	if !errors.As(err, &de) || de.Code != "23514" || de.Constraint != "x" || de.Table != "media" {
		t.Fatalf("dbErr = %#v, want *DBError with code, constraint, table", err)
	}
	var got *pgconn.PgError
	if errors.As(err, &got) {
		t.Fatal("the sanitized error still unwraps to the server error (with its DETAIL)")
	}
	checkNoSecrets(t, "dbErr", err, secret)
	if dbErr("x", nil) != nil {
		t.Fatal("dbErr(nil) != nil")
	}
	// Our typed errors pass unchanged; context errors stay matchable.
	nf := notFound("volume", "A")
	if dbErr("x", nf) != nf {
		t.Fatal("dbErr changed a typed error")
	}
	if !errors.Is(dbErr("x", context.Canceled), context.Canceled) {
		t.Fatal("context.Canceled lost")
	}
}

func TestLooksLikeKeyMaterial(t *testing.T) {
	k := newKEKs(t, 1)[0]
	sk, err := ring(t, k, k).WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keys.NewVolumeKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    string
		want bool
	}{
		{sk.Value, true},
		{"stored=" + sk.Value + ".", true},
		{base64Std(raw), true},
		{"key " + hexLower(raw) + " loaded", true},
		{string(keys.EncodeKEKHex(k)), true},
		{"", false},
		{sk.Fingerprint, false},
		{"key " + sk.Fingerprint + " rewrapped from KEK " + k.ID() + " to KEK " + k.ID(), false},
		{"/srv/backup/tapeward/storaged/cryptocache/keys", false},
		{"label verified by sd1 on drive /dev/sg3 (IBM ULT3580-TD6 serial 1013000123)", false},
		{"da39a3ee5e6b4b0d3255bfef95601890afd80709", false}, // a SHA-1: 40 hex, no upper case
	} {
		if got := looksLikeKeyMaterial(c.s); got != c.want {
			t.Errorf("looksLikeKeyMaterial(%d-character string %.12q…) = %v, want %v", len(c.s), c.s, got, c.want)
		}
	}
}

func base64Std(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }
func hexLower(b []byte) string  { return hex.EncodeToString(b) }
