package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Storage is a storage daemon the director knows.
type Storage struct {
	ID        int64
	Name      string
	Address   string // host:port last used
	CreatedAt time.Time
}

// EnsureStorage records the storage daemon name (creating it, or updating
// its address when it exists) and returns its row.
func (s *Store) EnsureStorage(ctx context.Context, name, address string) (Storage, error) {
	if name == "" {
		return Storage{}, invalid("storage name", "must not be empty")
	}
	var st Storage
	err := s.pool.QueryRow(ctx, `
		INSERT INTO storages (name, address) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address
		RETURNING id, name, address, created_at`, name, address).
		Scan(&st.ID, &st.Name, &st.Address, &st.CreatedAt)
	st.CreatedAt = st.CreatedAt.UTC()
	if err != nil {
		return Storage{}, dbErr("recording storage "+quoteName(name), err)
	}
	return st, nil
}

// GetStorage returns the storage called name, or a *NotFoundError.
func (s *Store) GetStorage(ctx context.Context, name string) (Storage, error) {
	var st Storage
	err := s.pool.QueryRow(ctx, `SELECT id, name, address, created_at FROM storages WHERE name = $1`, name).
		Scan(&st.ID, &st.Name, &st.Address, &st.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Storage{}, notFound("storage", name)
	}
	if err != nil {
		return Storage{}, dbErr("reading storage "+quoteName(name), err)
	}
	st.CreatedAt = st.CreatedAt.UTC()
	return st, nil
}

// PoolType is a pool's type.
type PoolType string

// Pool types (the pools.pool_type CHECK).
const (
	PoolBackup  PoolType = "Backup"
	PoolScratch PoolType = "Scratch"
)

// PoolSpec is what EnsurePool records: the pool as the configuration
// describes it.
type PoolSpec struct {
	Name            string
	Type            PoolType      // "" means PoolBackup
	Encrypt         bool          // new volumes labeled into the pool get a key
	VolumeRetention time.Duration // 0: none recorded (NULL)
	MaxVolumeBytes  int64         // 0: until end of tape (NULL)
	Storage         string        // "" : none; otherwise a storage EnsureStorage recorded
}

// Pool is a pool row.
type Pool struct {
	ID              int64
	Name            string
	Type            PoolType
	Encrypt         bool
	VolumeRetention time.Duration // 0 when not set
	MaxVolumeBytes  int64         // 0 when not set
	Storage         string        // "" when not set
	CreatedAt       time.Time
}

// EnsurePool creates the pool p.Name or, when it exists, sets all its
// attributes to p (the configuration is the source of truth). A storage
// that is not in the catalog is a *NotFoundError.
func (s *Store) EnsurePool(ctx context.Context, p PoolSpec) (Pool, error) {
	if p.Name == "" {
		return Pool{}, invalid("pool name", "must not be empty")
	}
	if p.Type == "" {
		p.Type = PoolBackup
	}
	if p.Type != PoolBackup && p.Type != PoolScratch {
		return Pool{}, invalid("pool type", "%q is not %s or %s", string(p.Type), PoolBackup, PoolScratch)
	}
	if p.VolumeRetention < 0 || p.MaxVolumeBytes < 0 {
		return Pool{}, invalid("pool "+quoteName(p.Name), "volume retention and maximum volume bytes must not be negative")
	}
	var retention *time.Duration
	if p.VolumeRetention > 0 {
		retention = &p.VolumeRetention
	}
	var maxBytes *int64
	if p.MaxVolumeBytes > 0 {
		maxBytes = &p.MaxVolumeBytes
	}
	op := "recording pool " + quoteName(p.Name)
	var out Pool
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var storageID *int64
		if p.Storage != "" {
			id, err := storageIDTx(ctx, tx, p.Storage)
			if err != nil {
				return err
			}
			storageID = &id
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO pools (name, pool_type, encrypt, volume_retention, max_volume_bytes, storage_id)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (name) DO UPDATE SET
				pool_type = EXCLUDED.pool_type, encrypt = EXCLUDED.encrypt,
				volume_retention = EXCLUDED.volume_retention,
				max_volume_bytes = EXCLUDED.max_volume_bytes, storage_id = EXCLUDED.storage_id`,
			p.Name, string(p.Type), p.Encrypt, retention, maxBytes, storageID)
		if err != nil {
			return dbErr(op, err)
		}
		out, err = getPool(ctx, tx, p.Name)
		return err
	})
	if err != nil {
		return Pool{}, err
	}
	return out, nil
}

// GetPool returns the pool called name, or a *NotFoundError.
func (s *Store) GetPool(ctx context.Context, name string) (Pool, error) {
	return getPool(ctx, s.pool, name)
}

// ListPools returns every pool, ordered by name.
func (s *Store) ListPools(ctx context.Context) ([]Pool, error) {
	rows, err := s.pool.Query(ctx, poolSelect+` ORDER BY p.name`)
	if err != nil {
		return nil, dbErr("listing pools", err)
	}
	out, err := pgx.CollectRows(rows, scanPool)
	if err != nil {
		return nil, dbErr("listing pools", err)
	}
	return out, nil
}

// querier is what pgxpool.Pool, pgx.Conn and pgx.Tx have in common.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const poolSelect = `
	SELECT p.id, p.name, p.pool_type, p.encrypt, p.volume_retention, p.max_volume_bytes, s.name, p.created_at
	FROM pools p LEFT JOIN storages s ON s.id = p.storage_id`

func scanPool(row pgx.CollectableRow) (Pool, error) {
	var (
		p         Pool
		typ       string
		retention *time.Duration
		maxBytes  *int64
		storage   *string
	)
	if err := row.Scan(&p.ID, &p.Name, &typ, &p.Encrypt, &retention, &maxBytes, &storage, &p.CreatedAt); err != nil {
		return Pool{}, err
	}
	p.Type, p.CreatedAt = PoolType(typ), p.CreatedAt.UTC()
	if retention != nil {
		p.VolumeRetention = *retention
	}
	if maxBytes != nil {
		p.MaxVolumeBytes = *maxBytes
	}
	if storage != nil {
		p.Storage = *storage
	}
	return p, nil
}

func getPool(ctx context.Context, q querier, name string) (Pool, error) {
	rows, err := q.Query(ctx, poolSelect+` WHERE p.name = $1`, name)
	if err != nil {
		return Pool{}, dbErr("reading pool "+quoteName(name), err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPool)
	if errors.Is(err, pgx.ErrNoRows) {
		return Pool{}, notFound("pool", name)
	}
	if err != nil {
		return Pool{}, dbErr("reading pool "+quoteName(name), err)
	}
	return p, nil
}

func storageIDTx(ctx context.Context, q querier, name string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM storages WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("storage", name)
	}
	if err != nil {
		return 0, dbErr("reading storage "+quoteName(name), err)
	}
	return id, nil
}
