// Package migrations holds Tapeward's catalog schema as numbered SQL files
// (NNN_name.sql, embedded in the binary) and applies them with tern.
//
// Each file is one migration run in its own transaction; the part after the
// line "---- create above / drop below ----" is the way back (not used by
// Apply). The current version lives in the one-row table VersionTable.
//
// Concurrency: tern's Migrator takes a session-level PostgreSQL advisory lock
// (pg_advisory_lock) around creating the version table and around applying
// migrations, and re-reads the version under that lock, so several directors
// (or tests) calling Apply at once apply each migration exactly once.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// VersionTable is the table tern keeps the schema version in.
const VersionTable = "public.tapeward_schema_version"

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files (for tools that want to show them).
func FS() fs.FS { return files }

// Migration names one schema step.
type Migration struct {
	Version int32  // 1, 2, … (the file's number)
	Name    string // file name, e.g. "001_initial.sql"
}

// State is where a catalog stands.
type State struct {
	Current int32       // version applied (0: empty catalog)
	Latest  int32       // version this binary knows
	Pending []Migration // what Apply would run, in order
}

// UpToDate reports whether nothing is pending.
func (s State) UpToDate() bool { return s.Current == s.Latest }

// load parses the embedded files into a migrator (conn may be nil: then it
// only loads, it never touches a database).
func load(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("preparing the schema version table %s: %w", VersionTable, err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("loading the embedded migrations: %w", err)
	}
	return m, nil
}

// List returns every migration this binary carries, in order.
func List() ([]Migration, error) {
	m, err := load(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	out := make([]Migration, len(m.Migrations))
	for i, mg := range m.Migrations {
		out[i] = Migration{Version: mg.Sequence, Name: mg.Name}
	}
	return out, nil
}

// Latest is the highest version this binary carries.
func Latest() int32 {
	all, err := List()
	if err != nil || len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Version
}

// Apply brings the catalog on conn up to the latest version. Running it on
// an up-to-date catalog is a no-op; concurrent callers are serialized by an
// advisory lock.
func Apply(ctx context.Context, conn *pgx.Conn) error {
	return ApplyNotify(ctx, conn, nil)
}

// ApplyNotify is Apply that calls started (if not nil) as each migration
// begins, e.g. to print "applying 001_initial.sql".
func ApplyNotify(ctx context.Context, conn *pgx.Conn, started func(Migration)) error {
	m, err := load(ctx, conn)
	if err != nil {
		return err
	}
	cur, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading the catalog schema version: %w", err)
	}
	if latest := int32(len(m.Migrations)); cur > latest {
		return tooNew(cur, latest)
	}
	if started != nil {
		m.OnStart = func(seq int32, name, direction, _ string) {
			started(Migration{Version: seq, Name: name})
		}
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("applying catalog migrations: %w", err)
	}
	return nil
}

// Status reports the current and latest versions and the pending steps. It
// only reads: on an empty database (no version table yet) Current is 0.
func Status(ctx context.Context, conn *pgx.Conn) (State, error) {
	all, err := List()
	if err != nil {
		return State{}, err
	}
	st := State{}
	if len(all) > 0 {
		st.Latest = all[len(all)-1].Version
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return State{}, fmt.Errorf("reading the catalog schema version: %w", err)
	}
	if exists {
		if err := conn.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&st.Current); err != nil {
			return State{}, fmt.Errorf("reading the catalog schema version from %s: %w", VersionTable, err)
		}
	}
	if st.Current > st.Latest {
		return st, tooNew(st.Current, st.Latest)
	}
	for _, mg := range all {
		if mg.Version > st.Current {
			st.Pending = append(st.Pending, mg)
		}
	}
	return st, nil
}

func tooNew(cur, latest int32) error {
	return fmt.Errorf("the catalog is at schema version %d but this binary only knows versions up to %d: run a newer Tapeward (nothing was changed)", cur, latest)
}
