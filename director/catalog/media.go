package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Status is a volume's life-cycle status (the media.status CHECK).
type Status string

// Volume statuses: Labeling (row and key committed, label not yet
// verified) → Append → Full/Used → Purged; Error says why in ErrorReason.
const (
	StatusLabeling Status = "Labeling"
	StatusAppend   Status = "Append"
	StatusFull     Status = "Full"
	StatusUsed     Status = "Used"
	StatusError    Status = "Error"
	StatusPurged   Status = "Purged"
)

// NoSlot is MediaNew.Slot and Media.Slot for a volume not in a slot.
const NoSlot = -1

// DefaultActor is the key event actor when a caller leaves it empty.
const DefaultActor = "director"

// MediaNew is a volume about to be labeled.
type MediaNew struct {
	Volume    string // volume name: 1-127 of A-Z a-z 0-9 . _ : + -
	Barcode   string // "" : no barcode (NULL)
	Pool      string // an existing pool
	Storage   string // an existing storage; "" : none
	Slot      int    // changer slot, or NoSlot
	MediaType string // "" : "LTO"
	// Encrypted volumes carry Key: the new volume key wrapped under the
	// active KEK (keys.Keyring.WrapNew). Clear volumes have Key == nil.
	Encrypted bool
	Key       *keys.StoredKey
	// Escrow: the key sealed to the pool's escrow public key (optional;
	// keys.Keyring.WrapNewEscrow), stored beside it.
	Escrow keys.Escrow
	Actor  string // who asked (console or director name) for the key event; "" : DefaultActor
}

// Media is a volume's row. It never holds the stored key string: only
// VolumeKey and ExportKeys return that.
type Media struct {
	ID            int64
	Volume        string
	Barcode       string // "" when none
	Pool          string
	Storage       string // "" when none
	Slot          int    // NoSlot when none
	MediaType     string
	Status        Status
	BytesWritten  int64
	BlocksWritten int64
	FilesWritten  int
	LabelTime     *time.Time
	FirstWritten  *time.Time
	LastWritten   *time.Time
	ErrorReason   string

	Encrypted            bool
	KeyScheme            keys.Scheme // "" for a clear volume
	KEKID                string
	KeyFingerprint       string
	EncryptionVerifiedAt *time.Time
	// EscrowKeyID: the escrow key the current key's envelope is sealed to
	// ("" : no envelope).
	EscrowKeyID string

	// InChanger is false while the cartridge is offsite (exported) since
	// OffsiteSince. Recycle is the volume's own copy of its pool's
	// recycle flag; PurgedAt when it was last pruned or purged (nil: not
	// since its last recycling); RecycleCount how often it was recycled.
	InChanger    bool
	OffsiteSince *time.Time
	Recycle      bool
	PurgedAt     *time.Time
	RecycleCount int

	CreatedAt time.Time
	UpdatedAt time.Time
}

func quoteName(s string) string { return strconv.Quote(s) }

// checkStoredKey checks the shape of a stored key without ever quoting it.
func checkStoredKey(k *keys.StoredKey) error {
	if _, err := keys.ParseScheme(string(k.Scheme)); err != nil {
		return invalid("key", "unknown scheme %q; use %q or %q", string(k.Scheme), keys.SchemeV1, keys.SchemeBareos)
	}
	if k.KEKID == "" || k.Fingerprint == "" || k.Value == "" {
		return invalid("key", "a stored key needs its KEK id, fingerprint and stored string")
	}
	if k.Scheme == keys.SchemeV1 {
		if _, err := keys.DecodeV1(k.Value); err != nil {
			return invalid("key", "%v", err) // *keys.FormatError: lengths and positions only
		}
	}
	return nil
}

// CreateLabeling inserts the volume m in status Labeling, with its wrapped
// key and, for an encrypted volume, a "generated" key event (actor m.Actor,
// KEK id, detail = the key fingerprint), in one transaction that is
// committed before CreateLabeling returns: the key is in the catalog before
// storaged touches the tape. A volume name or barcode already in the
// catalog is a *ConflictError; an unknown pool or storage a *NotFoundError.
func (s *Store) CreateLabeling(ctx context.Context, m MediaNew) (Media, error) {
	if m.Volume == "" {
		return Media{}, invalid("volume name", "must not be empty")
	}
	if m.Slot < NoSlot {
		return Media{}, invalid("slot", "%d is negative (use NoSlot for none)", m.Slot)
	}
	switch {
	case m.Encrypted && m.Key == nil:
		return Media{}, invalid("key", "encrypted volume %q has no key; wrap one with the keyring (WrapNew)", m.Volume)
	case !m.Encrypted && m.Key != nil:
		return Media{}, invalid("key", "clear volume %q must not carry a key", m.Volume)
	case m.Encrypted:
		if err := checkStoredKey(m.Key); err != nil {
			return Media{}, err
		}
	}
	if m.MediaType == "" {
		m.MediaType = "LTO"
	}
	if m.Actor == "" {
		m.Actor = DefaultActor
	}
	var (
		barcode, keyString, scheme, kekID, fp *string
		escrowID, escrowEnv                   *string
		slot                                  *int
	)
	if m.Barcode != "" {
		barcode = &m.Barcode
	}
	if m.Slot != NoSlot {
		slot = &m.Slot
	}
	if m.Encrypted {
		sc := string(m.Key.Scheme)
		keyString, scheme, kekID, fp = &m.Key.Value, &sc, &m.Key.KEKID, &m.Key.Fingerprint
		if !m.Escrow.IsZero() {
			escrowID, escrowEnv = &m.Escrow.KeyID, &m.Escrow.Envelope
		}
	} else if !m.Escrow.IsZero() {
		return Media{}, invalid("escrow envelope", "clear volume %q must not carry one", m.Volume)
	}
	op := "creating volume " + quoteName(m.Volume)
	now := s.nowUTC()
	var out Media
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var poolID int64
		err := tx.QueryRow(ctx, `SELECT id FROM pools WHERE name = $1`, m.Pool).Scan(&poolID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("pool", m.Pool)
		}
		if err != nil {
			return dbErr(op, err)
		}
		var storageID *int64
		if m.Storage != "" {
			id, err := storageIDTx(ctx, tx, m.Storage)
			if err != nil {
				return err
			}
			storageID = &id
		}
		var mediaID int64
		err = tx.QueryRow(ctx, `
			INSERT INTO media (volume_name, barcode, pool_id, storage_id, slot, media_type, status,
				encrypted, key_string, key_scheme, kek_id, key_fingerprint, created_at, updated_at,
				escrow_key_id, escrow_envelope)
			VALUES ($1, $2, $3, $4, $5, $6, 'Labeling', $7, $8, $9, $10, $11, $12, $12, $13, $14)
			RETURNING id`,
			m.Volume, barcode, poolID, storageID, slot, m.MediaType,
			m.Encrypted, keyString, scheme, kekID, fp, now, escrowID, escrowEnv).Scan(&mediaID)
		if err != nil {
			return createErr(op, m, err)
		}
		if m.Encrypted {
			_, err = tx.Exec(ctx, `
				INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
				VALUES ($1, $2, $3, 'generated', $4, $5, $6)`,
				now, m.Volume, mediaID, m.Actor, m.Key.KEKID, m.Key.Fingerprint)
			if err != nil {
				return dbErr(op+": recording the key event", err)
			}
		}
		out, err = getMedia(ctx, tx, m.Volume)
		return err
	})
	if err != nil {
		var ce *ConflictError
		if errors.As(err, &ce) && ce.Barcode != "" {
			_ = s.pool.QueryRow(ctx, `SELECT volume_name FROM media WHERE barcode = $1`, ce.Barcode).Scan(&ce.Holder)
		}
		return Media{}, err
	}
	return out, nil
}

// createErr turns the INSERT's failure into a typed error.
func createErr(op string, m MediaNew, err error) error {
	code, constraint := pgCode(err)
	switch {
	case code == codeUniqueViolation && constraint == "media_barcode_key":
		return &ConflictError{Barcode: m.Barcode}
	case code == codeUniqueViolation:
		return &ConflictError{Volume: m.Volume}
	case code == codeCheckViolation && constraint == "media_volume_name_check":
		return invalid("volume name", "%q: use 1 to 127 characters of A-Z a-z 0-9 . _ : + -", m.Volume)
	}
	return dbErr(op, err)
}

// lockMedia reads a volume's status, encryption flag and id FOR UPDATE.
func lockMedia(ctx context.Context, tx pgx.Tx, volume string) (id int64, st Status, encrypted bool, err error) {
	var status string
	err = tx.QueryRow(ctx, `SELECT id, status, encrypted FROM media WHERE volume_name = $1 FOR UPDATE`, volume).
		Scan(&id, &status, &encrypted)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, notFound("volume", volume)
	}
	if err != nil {
		return 0, "", false, dbErr("reading volume "+quoteName(volume), err)
	}
	return id, Status(status), encrypted, nil
}

// ownedMedia is a volume row locked by lockOwnedMedia: its id, status,
// encryption flag and current key fingerprint ("" for none).
type ownedMedia struct {
	id          int64
	status      Status
	encrypted   bool
	fingerprint string
}

// lockOwnedMedia reads volume FOR UPDATE for storage, which must own it
// (*NotOwnedError otherwise, also for storage ""); op names the caller's
// operation in database errors.
func lockOwnedMedia(ctx context.Context, tx pgx.Tx, op, volume, storage string) (ownedMedia, error) {
	var (
		m         ownedMedia
		owner, fp *string
		status    string
	)
	err := tx.QueryRow(ctx, `
		SELECT m.id, s.name, m.status, m.encrypted, m.key_fingerprint
		FROM media m LEFT JOIN storages s ON s.id = m.storage_id
		WHERE m.volume_name = $1 FOR UPDATE OF m`, volume).Scan(&m.id, &owner, &status, &m.encrypted, &fp)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, notFound("volume", volume)
	}
	if err != nil {
		return m, dbErr(op, err)
	}
	if storage == "" || owner == nil || *owner != storage {
		return m, &NotOwnedError{Volume: volume, Storage: storage, Owner: deref(owner)}
	}
	m.status, m.fingerprint = Status(status), deref(fp)
	return m, nil
}

// MarkLabeled records that storaged labeled volume (status Labeling →
// Append, label_time = labelTime). For an encrypted volume verifiedAt is
// when storaged verified the drive encrypts with the volume's key; it is
// required (an encrypted volume is never Append unverified) and stored as
// encryption_verified_at. A clear volume takes verifiedAt == nil. The
// "verified" key event is the caller's (AddKeyEvent, actor = the storage).
func (s *Store) MarkLabeled(ctx context.Context, volume string, labelTime time.Time, verifiedAt *time.Time) error {
	op := "marking volume " + quoteName(volume) + " labeled"
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		_, st, encrypted, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		if st != StatusLabeling {
			return &StateError{Volume: volume, Op: "mark labeled", Status: st, Want: []Status{StatusLabeling}}
		}
		if encrypted && verifiedAt == nil {
			return invalid("verification", "encrypted volume %q is marked labeled only with the time storaged verified its encryption", volume)
		}
		if !encrypted && verifiedAt != nil {
			return invalid("verification", "clear volume %q cannot be encryption-verified", volume)
		}
		_, err = tx.Exec(ctx, `
			UPDATE media SET status = 'Append', label_time = $2, encryption_verified_at = $3,
				error_reason = NULL, updated_at = $4
			WHERE volume_name = $1`, volume, labelTime, verifiedAt, s.nowUTC())
		if err != nil {
			return dbErr(op, err)
		}
		// A verified label with the current key supersedes the keys a
		// recycling replaced (a recycled label retried by hand).
		mark := labelTime.UTC()
		if verifiedAt != nil {
			mark = verifiedAt.UTC()
		}
		_, err = tx.Exec(ctx, `UPDATE media_keys SET superseded_verified_at = $2
			WHERE media_id = (SELECT id FROM media WHERE volume_name = $1) AND reason = 'recycled' AND superseded_verified_at IS NULL`, volume, mark)
		return dbErr(op, err)
	})
}

// MarkError puts volume in status Error with reason (required). The key
// stays in the catalog: a key is never deleted because a label or a job
// failed.
func (s *Store) MarkError(ctx context.Context, volume, reason string) error {
	if reason == "" {
		return invalid("error reason", "must not be empty: say what failed")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE media SET status = 'Error', error_reason = $2, updated_at = $3 WHERE volume_name = $1`,
		volume, reason, s.nowUTC())
	if err != nil {
		return dbErr("marking volume "+quoteName(volume)+" in error", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("volume", volume)
	}
	return nil
}

// MarkFull records that volume reached its end (Append → Full). Marking a
// Full volume again is a no-op; other statuses are a *StateError.
func (s *Store) MarkFull(ctx context.Context, volume string) error {
	op := "marking volume " + quoteName(volume) + " full"
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		_, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		switch st {
		case StatusFull:
			return nil
		case StatusAppend:
		default:
			return &StateError{Volume: volume, Op: "mark full", Status: st, Want: []Status{StatusAppend}}
		}
		_, err = tx.Exec(ctx, `UPDATE media SET status = 'Full', updated_at = $2 WHERE volume_name = $1`, volume, s.nowUTC())
		return dbErr(op, err)
	})
}

// RecordWritten adds bytes and blocks to volume's counters and sets
// first_written (once) and last_written to the store's clock. It accepts
// any status: the counters must tell the truth, because a volume with
// bytes_written = 0 may have its encryption changed (UpdateEncryption).
func (s *Store) RecordWritten(ctx context.Context, volume string, bytes, blocks int64) error {
	if bytes < 0 || blocks < 0 {
		return invalid("write counters", "bytes (%d) and blocks (%d) must not be negative", bytes, blocks)
	}
	var (
		tag pgconn.CommandTag
		err error
	)
	if bytes == 0 && blocks == 0 {
		tag, err = s.pool.Exec(ctx, `SELECT 1 FROM media WHERE volume_name = $1`, volume)
	} else {
		now := s.nowUTC()
		tag, err = s.pool.Exec(ctx, `
			UPDATE media SET bytes_written = bytes_written + $2, blocks_written = blocks_written + $3,
				first_written = COALESCE(first_written, $4), last_written = $4, updated_at = $4
			WHERE volume_name = $1`, volume, bytes, blocks, now)
	}
	if err != nil {
		return dbErr("recording what was written to volume "+quoteName(volume), err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("volume", volume)
	}
	return nil
}

const mediaSelect = `
	SELECT m.id, m.volume_name, m.barcode, p.name, s.name, m.slot, m.media_type, m.status,
		m.bytes_written, m.blocks_written, m.files_written, m.label_time, m.first_written, m.last_written,
		m.error_reason, m.encrypted, m.key_scheme, m.kek_id, m.key_fingerprint, m.encryption_verified_at,
		m.in_changer, m.offsite_since, m.recycle, m.purged_at, m.recycle_count,
		m.created_at, m.updated_at, m.escrow_key_id
	FROM media m JOIN pools p ON p.id = m.pool_id LEFT JOIN storages s ON s.id = m.storage_id`

func scanMedia(row pgx.CollectableRow) (Media, error) {
	var (
		m                                          Media
		barcode, storage, reason, scheme, kek, fpr *string
		escrowID                                   *string
		slot                                       *int
		status                                     string
	)
	err := row.Scan(&m.ID, &m.Volume, &barcode, &m.Pool, &storage, &slot, &m.MediaType, &status,
		&m.BytesWritten, &m.BlocksWritten, &m.FilesWritten, &m.LabelTime, &m.FirstWritten, &m.LastWritten,
		&reason, &m.Encrypted, &scheme, &kek, &fpr, &m.EncryptionVerifiedAt,
		&m.InChanger, &m.OffsiteSince, &m.Recycle, &m.PurgedAt, &m.RecycleCount, &m.CreatedAt, &m.UpdatedAt, &escrowID)
	if err != nil {
		return Media{}, err
	}
	m.EscrowKeyID = deref(escrowID)
	m.Status = Status(status)
	m.Barcode = deref(barcode)
	m.Storage = deref(storage)
	m.ErrorReason = deref(reason)
	m.KeyScheme = keys.Scheme(deref(scheme))
	m.KEKID = deref(kek)
	m.KeyFingerprint = deref(fpr)
	for _, tp := range []*time.Time{&m.CreatedAt, &m.UpdatedAt, m.LabelTime, m.FirstWritten, m.LastWritten, m.EncryptionVerifiedAt, m.OffsiteSince, m.PurgedAt} {
		if tp != nil {
			*tp = tp.UTC()
		}
	}
	m.Slot = NoSlot
	if slot != nil {
		m.Slot = *slot
	}
	return m, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func getMedia(ctx context.Context, q querier, volume string) (Media, error) {
	rows, err := q.Query(ctx, mediaSelect+` WHERE m.volume_name = $1`, volume)
	if err != nil {
		return Media{}, dbErr("reading volume "+quoteName(volume), err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMedia)
	if errors.Is(err, pgx.ErrNoRows) {
		return Media{}, notFound("volume", volume)
	}
	if err != nil {
		return Media{}, dbErr("reading volume "+quoteName(volume), err)
	}
	return m, nil
}

// GetMedia returns the volume's row, or a *NotFoundError.
func (s *Store) GetMedia(ctx context.Context, volume string) (Media, error) {
	return getMedia(ctx, s.pool, volume)
}

// MediaFilter selects volumes for ListMedia; empty fields match all.
type MediaFilter struct {
	Pool    string
	Storage string
	Status  Status
}

// ListMedia returns the volumes matching f, ordered by volume name. An
// unknown pool or storage simply matches nothing.
func (s *Store) ListMedia(ctx context.Context, f MediaFilter) ([]Media, error) {
	rows, err := s.pool.Query(ctx, mediaSelect+`
		WHERE ($1 = '' OR p.name = $1) AND ($2 = '' OR s.name = $2) AND ($3 = '' OR m.status = $3)
		ORDER BY m.volume_name`, f.Pool, f.Storage, string(f.Status))
	if err != nil {
		return nil, dbErr("listing volumes", err)
	}
	out, err := pgx.CollectRows(rows, scanMedia)
	if err != nil {
		return nil, dbErr("listing volumes", err)
	}
	return out, nil
}

// MediaBySlot returns the volume the catalog places in slot of storage. If
// several rows name that slot (a stale row of a cartridge that moved), the
// most recently updated wins. None is a *NotFoundError (Kind "slot").
func (s *Store) MediaBySlot(ctx context.Context, storage string, slot int) (Media, error) {
	where := fmt.Sprintf("storage %q slot %d", storage, slot)
	rows, err := s.pool.Query(ctx, mediaSelect+`
		WHERE s.name = $1 AND m.slot = $2 ORDER BY m.updated_at DESC, m.id DESC LIMIT 1`, storage, slot)
	if err != nil {
		return Media{}, dbErr("reading "+where, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMedia)
	if errors.Is(err, pgx.ErrNoRows) {
		return Media{}, notFound("slot", where)
	}
	if err != nil {
		return Media{}, dbErr("reading "+where, err)
	}
	return m, nil
}
