package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// KeyEventType is what happened to a volume key (the key_events.event
// CHECK).
type KeyEventType string

// Key event types.
const (
	EventGenerated KeyEventType = "generated" // a new key was made for the volume
	EventFetched   KeyEventType = "fetched"   // a storage fetched the wrapped key
	EventLoaded    KeyEventType = "loaded"    // a storage loaded it into a drive
	EventVerified  KeyEventType = "verified"  // a drive was seen encrypting with it
	EventCleared   KeyEventType = "cleared"   // a drive's key was cleared
	EventRotated   KeyEventType = "rotated"   // replaced (or removed) on a volume without data
	EventRekeyed   KeyEventType = "rekeyed"   // rewrapped under another KEK
	EventExported  KeyEventType = "exported"  // written to a keys export
	EventImported  KeyEventType = "imported"  // imported (e.g. from Bareos)
	// Schema 2 (key custody).
	EventSuperseded  KeyEventType = "superseded"  // a key moved to the volume's key history
	EventRestored    KeyEventType = "restored"    // a history key made current again
	EventPushed      KeyEventType = "pushed"      // a key pushed into a storage's crypto cache
	EventInterrupted KeyEventType = "interrupted" // a label (or data session) did not finish
	EventRefused     KeyEventType = "refused"     // a label that does not match the catalog was refused
	// Schema 10: a volume's keys destroyed (crypto-shredding: in the
	// catalog, or in a storage daemon's crypto cache).
	EventShredded KeyEventType = "shredded"
)

var eventTypes = map[KeyEventType]bool{
	EventGenerated: true, EventFetched: true, EventLoaded: true, EventVerified: true, EventCleared: true,
	EventRotated: true, EventRekeyed: true, EventExported: true, EventImported: true,
	EventSuperseded: true, EventRestored: true, EventPushed: true, EventInterrupted: true, EventRefused: true,
	EventShredded: true,
}

// KeyEvent is one line of the key audit log. It never holds key material:
// Detail is text for humans (fingerprints at most).
type KeyEvent struct {
	ID     int64 // set by the catalog
	At     time.Time
	Volume string
	Event  KeyEventType
	Actor  string // console, director, storage or tool name
	KEKID  string // "" : none
	Detail string
}

// AddKeyEvent appends e to the key log and returns it as stored (ID set;
// At = the store's clock when zero). The volume need not exist any more
// (media_id is then NULL). A detail or KEK id that looks like key material
// (a long base64 or hex run, or the volume's own stored key string) is
// refused with an *InvalidError that does not quote it.
func (s *Store) AddKeyEvent(ctx context.Context, e KeyEvent) (KeyEvent, error) {
	if e.At.IsZero() {
		e.At = s.nowUTC()
	}
	err := s.inTx(ctx, "recording a key event for volume "+quoteName(e.Volume), func(tx pgx.Tx) error {
		var mediaID *int64
		err := tx.QueryRow(ctx, `SELECT id FROM media WHERE volume_name = $1`, e.Volume).Scan(&mediaID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return dbErr("recording a key event", err)
		}
		var id int64
		if mediaID != nil {
			id = *mediaID
		}
		e.ID, e.At, err = insertEvent(ctx, tx, e, id)
		return err
	})
	if err != nil {
		return KeyEvent{}, err
	}
	return e, nil
}

// insertEvent validates e and inserts it for media row mediaID (0: none),
// returning the new event's id and stored time (UTC).
func insertEvent(ctx context.Context, tx pgx.Tx, e KeyEvent, mediaID int64) (int64, time.Time, error) {
	switch {
	case e.Volume == "":
		return 0, time.Time{}, invalid("key event", "names no volume")
	case !eventTypes[e.Event]:
		return 0, time.Time{}, invalid("key event", "%q is not one of generated, fetched, loaded, verified, cleared, rotated, rekeyed, exported, imported, superseded, restored, pushed, interrupted, refused, shredded", string(e.Event))
	case e.Actor == "":
		return 0, time.Time{}, invalid("key event", "names no actor")
	case looksLikeKeyMaterial(e.Detail) || looksLikeKeyMaterial(e.KEKID):
		return 0, time.Time{}, invalid("key event", "the detail or KEK id of the %s event of volume %q looks like key material; log fingerprints only", e.Event, e.Volume)
	}
	var kek *string
	if e.KEKID != "" {
		kek = &e.KEKID
	}
	var mediaRef *int64
	if mediaID != 0 {
		mediaRef = &mediaID
	}
	// The row is only inserted if the detail does not contain the volume's
	// stored key string (a last line of defence besides the shape test).
	var (
		id int64
		at time.Time
	)
	err := tx.QueryRow(ctx, `
		INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
		SELECT $1, $2, $3, $4, $5, $6, $7
		WHERE NOT EXISTS (
			SELECT 1 FROM media WHERE volume_name = $2 AND key_string IS NOT NULL
			AND (strpos($7, key_string) > 0 OR strpos(coalesce($6, ''), key_string) > 0))
		RETURNING id, at`,
		e.At, e.Volume, mediaRef, string(e.Event), e.Actor, kek, e.Detail).Scan(&id, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, invalid("key event", "the %s event of volume %q quotes the volume's stored key; log fingerprints only", e.Event, e.Volume)
	}
	if err != nil {
		return 0, time.Time{}, dbErr("recording the "+string(e.Event)+" key event of volume "+quoteName(e.Volume), err)
	}
	return id, at.UTC(), nil
}

// looksLikeKeyMaterial reports whether s has a run of 40 or more base64
// characters mixing upper case, lower case and digits (a wrapped or raw
// key in base64), or of 64 or more hex digits (a raw key in hex).
// Fingerprints and KEK ids (16 hex digits), words and paths pass.
func looksLikeKeyMaterial(s string) bool {
	run, hexRun := 0, 0
	var upper, lower, digit bool
	for i := 0; i <= len(s); i++ {
		var c byte
		if i < len(s) {
			c = s[i]
		}
		isB64 := i < len(s) && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/')
		isHex := i < len(s) && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
		if isHex {
			hexRun++
			if hexRun >= 64 {
				return true
			}
		} else {
			hexRun = 0
		}
		if !isB64 {
			if run >= 40 && upper && lower && digit {
				return true
			}
			run, upper, lower, digit = 0, false, false, false
			continue
		}
		run++
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	return false
}

// KeyEventFilter selects key events; empty fields match all.
type KeyEventFilter struct {
	Volume string
	Event  KeyEventType
	Since  time.Time // events at or after Since (zero: all)
	Limit  int       // at most this many (0: all)
}

// ListKeyEvents returns the matching key events NEWEST FIRST (by time, then
// by id).
func (s *Store) ListKeyEvents(ctx context.Context, f KeyEventFilter) ([]KeyEvent, error) {
	if f.Limit < 0 {
		return nil, invalid("limit", "%d is negative", f.Limit)
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	var limit *int
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, volume_name, event, actor, kek_id, detail FROM key_events
		WHERE ($1 = '' OR volume_name = $1) AND ($2 = '' OR event = $2) AND ($3::timestamptz IS NULL OR at >= $3)
		ORDER BY at DESC, id DESC LIMIT $4`, f.Volume, string(f.Event), since, limit)
	if err != nil {
		return nil, dbErr("listing key events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyEvent, error) {
		var (
			e     KeyEvent
			event string
			kek   *string
		)
		err := r.Scan(&e.ID, &e.At, &e.Volume, &event, &e.Actor, &kek, &e.Detail)
		e.Event, e.KEKID, e.At = KeyEventType(event), deref(kek), e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, dbErr("listing key events", err)
	}
	return out, nil
}
