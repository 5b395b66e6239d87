package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Store is the director's typed access to the catalog: storages, pools,
// media, volume keys and the key event log. It is safe for concurrent use
// (every method takes its own connection from the pool).
//
// Every method that changes more than one row, or reads a row to decide
// how to change it, runs in one transaction: either all of it is committed
// or nothing is. No error returned by a Store method contains key material
// (stored key strings, unwrapped keys, KEKs): database errors are reduced
// to *DBError, which carries the SQLSTATE, the server's message and the
// constraint name but never the server's DETAIL (which may quote a row).
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// escrow returns the escrow public key of a pool (nil: none); keys
	// made for its volumes are sealed to it (SetEscrowKeys).
	escrow func(pool string) *keys.EscrowPublic
	// memCompareRows: see WithMemCompareRows.
	memCompareRows int64
}

// SetEscrowKeys tells the store which escrow public key each pool's new
// volume keys are sealed to (director.toml escrow_public_key; nil or a nil
// answer: none). Call it before the store is used.
func (s *Store) SetEscrowKeys(f func(pool string) *keys.EscrowPublic) { s.escrow = f }

func (s *Store) escrowFor(pool string) *keys.EscrowPublic {
	if s.escrow == nil {
		return nil
	}
	return s.escrow(pool)
}

func nullIfEmpty(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// Option adjusts a Store.
type Option func(*Store)

// WithMemCompareRows sets the largest chain (in file rows: the sum of its
// jobs' files_count) whose view Deletions compares in the director's
// memory as the client's paths arrive (DefaultMemCompareRows); larger
// chains are compared by PostgreSQL once the walk is over. 0: always by
// PostgreSQL.
func WithMemCompareRows(rows int64) Option {
	return func(s *Store) { s.memCompareRows = rows }
}

// WithClock makes the store take "now" (key event times, updated_at,
// first/last written) from now instead of time.Now, for tests and for a
// director with an injected clock.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// NewStore wraps an open pool (tests, or a director that builds its own
// pool). The caller keeps ownership of pool; Store.Close closes it.
func NewStore(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, now: time.Now, memCompareRows: DefaultMemCompareRows}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open builds a connection pool for the catalog c (from the config file
// configPath, for messages) with ConnConfig, checks that the server answers,
// and returns a Store over it. A server that cannot be reached is an
// *UnreachableError (the password never appears in it).
func Open(ctx context.Context, c configs.Catalog, configPath string, opts ...Option) (*Store, error) {
	cc, err := ConnConfig(c, configPath)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("[catalog] in %s: preparing the connection pool: %v", configPath, err)
	}
	pc.ConnConfig = cc
	// Each running Incremental or Differential holds one connection while
	// its client walks (Deletions); the rest are short. (pgxpool's default
	// is max(4, CPUs).)
	pc.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, &UnreachableError{Catalog: c, ConfigPath: configPath, Err: err, password: cc.Password}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &UnreachableError{Catalog: c, ConfigPath: configPath, Err: err, password: cc.Password}
	}
	return NewStore(pool, opts...), nil
}

// Pool returns the underlying pool (for packages that stream file records
// with COPY, or run migrations).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// SchemaState reports the catalog's schema version against the one this
// binary knows (see migrations.Status).
func (s *Store) SchemaState(ctx context.Context) (migrations.State, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return migrations.State{}, dbErr("reading the schema version", err)
	}
	defer conn.Release()
	return migrations.Status(ctx, conn.Conn())
}

// inTx runs f in one transaction (READ COMMITTED), committing when f
// returns nil and rolling back otherwise. Errors from the database are
// sanitized with op.
func (s *Store) inTx(ctx context.Context, op string, f func(pgx.Tx) error) error {
	return inTxOn(ctx, s.pool, op, f)
}

// txStarter begins transactions: a pool (on any of its connections) or
// one connection of it.
type txStarter interface {
	Begin(context.Context) (pgx.Tx, error)
}

// inTxOn is inTx on db (FileBatch's commits choose their connection).
func inTxOn(ctx context.Context, db txStarter, op string, f func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbErr(op+" (commit)", err)
	}
	return nil
}

// nowUTC is the store clock in UTC, at microsecond precision (what
// timestamptz keeps), so that values written and read back compare equal.
func (s *Store) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }
