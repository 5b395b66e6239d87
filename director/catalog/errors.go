package catalog

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The errors of this file never hold key material: they name volumes,
// storages, barcodes, KEK ids and fingerprints only.

// ErrNotFound is matched (errors.Is) by every *NotFoundError.
var ErrNotFound = errors.New("not in the catalog")

// NotFoundError says that a volume, pool, storage or slot is not in the
// catalog. errors.Is(err, ErrNotFound) is true for it.
type NotFoundError struct {
	Kind string // "volume", "pool", "storage", "slot"
	Name string // the name looked up (for "slot": `storage "s" slot 3`)
}

func (e *NotFoundError) Error() string {
	if e.Kind == "slot" {
		return fmt.Sprintf("no volume is in the catalog at %s", e.Name)
	}
	return fmt.Sprintf("%s %q is not in the catalog", e.Kind, e.Name)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(kind, name string) error { return &NotFoundError{Kind: kind, Name: name} }

// ConflictError says that a new volume's name or barcode is already taken.
// Exactly one of Volume and Barcode is set.
type ConflictError struct {
	Volume  string // the volume name that already exists
	Barcode string // the barcode that already belongs to another volume
	Holder  string // with Barcode: the volume that has it ("" if it could not be read)
}

func (e *ConflictError) Error() string {
	if e.Barcode != "" {
		if e.Holder != "" {
			return fmt.Sprintf("barcode %q already belongs to volume %q in the catalog", e.Barcode, e.Holder)
		}
		return fmt.Sprintf("barcode %q already belongs to another volume in the catalog", e.Barcode)
	}
	return fmt.Sprintf("volume %q is already in the catalog; choose another volume name", e.Volume)
}

// NotOwnedError says that a storage asked for the key of a volume that does
// not belong to it. The caller answers the storage with PermissionDenied.
// Owner is for the director's own log; the message does not name it.
type NotOwnedError struct {
	Volume  string
	Storage string // the storage that asked
	Owner   string // the storage the volume belongs to ("" if none)
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("storage %q may not fetch the key of volume %q: the volume does not belong to it", e.Storage, e.Volume)
}

// ErrNotEncrypted is matched (errors.Is) by every *NotEncryptedError.
var ErrNotEncrypted = errors.New("volume is not encrypted")

// NotEncryptedError says that a key was asked for (or rotated) on a clear
// volume.
type NotEncryptedError struct{ Volume string }

func (e *NotEncryptedError) Error() string {
	return fmt.Sprintf("volume %q is not encrypted: it has no key", e.Volume)
}

// Is makes errors.Is(err, ErrNotEncrypted) true.
func (e *NotEncryptedError) Is(target error) bool { return target == ErrNotEncrypted }

// HasDataError says that a change of a volume's key was refused because
// the volume already holds data written with (or without) its key.
type HasDataError struct {
	Volume      string
	Op          string // what was refused, e.g. "rotate the key of"
	Bytes       int64  // bytes_written
	Blocks      int64  // blocks_written
	JobSessions int64  // job_media rows naming the volume
	Files       int64  // file records on the volume
	// DataSince is media.data_since: when a storage daemon began the first
	// write session on the volume (Director.BeginWrite), or when a storage
	// daemon reported data on the tape. Nil when not recorded.
	DataSince *time.Time
}

func (e *HasDataError) Error() string {
	since := ""
	if e.DataSince != nil {
		since = ", data since " + e.DataSince.UTC().Format("2006-01-02 15:04:05Z")
	}
	return fmt.Sprintf("cannot %s volume %q: it holds data (%d bytes, %d blocks, %d job sessions, %d files%s); only a volume with no data may change its encryption",
		e.Op, e.Volume, e.Bytes, e.Blocks, e.JobSessions, e.Files, since)
}

// LabelMismatchError says that a volume label read from a tape does not
// match the catalog: a foreign or forged label, a cartridge in the wrong
// place, or a label that names a key the volume never had. The caller
// refuses the mount (gRPC FailedPrecondition) and records a "refused" key
// event. It names both sides of every difference (fingerprints and KEK ids
// only, never key material).
type LabelMismatchError struct {
	Volume     string   // the volume the label names
	Storage    string   // the storage daemon that read it
	Mismatches []string // e.g. `encrypted: label says no, catalog says yes (key 3f9a…)`
}

func (e *LabelMismatchError) Error() string {
	return fmt.Sprintf("the label of volume %q read by storage %q does not match the catalog: %s; the volume is not mounted and nothing is written — check the cartridge (a foreign or forged label?) and the catalog",
		e.Volume, e.Storage, strings.Join(e.Mismatches, "; "))
}

// WriteRefusedError says that the director refused a write session on a
// volume (BeginWrite): the volume may not take data now. Reason says why
// and what to do.
type WriteRefusedError struct {
	Volume string
	Reason string
}

func (e *WriteRefusedError) Error() string {
	return fmt.Sprintf("volume %q may not take data: %s", e.Volume, e.Reason)
}

// StateError says that a volume is not in a status the operation accepts.
type StateError struct {
	Volume string
	Op     string   // e.g. "mark labeled"
	Status Status   // the volume's status
	Want   []Status // the statuses the operation accepts
}

func (e *StateError) Error() string {
	want := make([]string, len(e.Want))
	for i, w := range e.Want {
		want[i] = string(w)
	}
	return fmt.Sprintf("cannot %s volume %q: its status is %s (needs %s)", e.Op, e.Volume, e.Status, strings.Join(want, " or "))
}

// InvalidError says that an argument is malformed. It never quotes key
// material: Reason describes the problem.
type InvalidError struct {
	Field  string // e.g. "volume name", "key", "event"
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// RekeyError says which volume made Rekey fail; the whole rekey was rolled
// back. Err is the cause, e.g. a *keys.UnwrapError wrapping a
// *keys.KEKNotFoundError (errors.As finds both).
type RekeyError struct {
	Volume string
	KEKID  string // the KEK the volume's key is wrapped under
	Err    error
}

func (e *RekeyError) Error() string {
	return fmt.Sprintf("rekey rolled back, no key was changed: volume %q (key wrapped under KEK %s): %v", e.Volume, e.KEKID, e.Err)
}

func (e *RekeyError) Unwrap() error { return e.Err }

// DBError is a database error reduced to what is safe to log: the server's
// DETAIL, which may quote a whole row (including its key_string), is
// dropped, and the driver's error is not kept.
type DBError struct {
	Op         string // what the store was doing
	Code       string // SQLSTATE
	Message    string // the server's primary message
	Constraint string // the violated constraint, if any
	Table      string
	Column     string
}

func (e *DBError) Error() string {
	s := fmt.Sprintf("catalog: %s: %s (SQLSTATE %s)", e.Op, e.Message, e.Code)
	if e.Constraint != "" && !strings.Contains(e.Message, e.Constraint) {
		s += " constraint " + e.Constraint
	}
	return s
}

// opError is a non-server failure (connection, context) while doing Op.
type opError struct {
	Op  string
	Err error
}

func (e *opError) Error() string { return "catalog: " + e.Op + ": " + e.Err.Error() }
func (e *opError) Unwrap() error { return e.Err }

// Unavailable reports whether err says the catalog could not be reached or
// its connection broke (not an answer of the server): an *UnreachableError,
// a failed connect, a connection closed or reset mid-query. Callers tell
// their peers "the catalog is unavailable", not "the director failed".
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var (
		ue *UnreachableError
		ce *pgconn.ConnectError
		ne net.Error
	)
	return errors.As(err, &ue) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// dbErr sanitizes err: a server error becomes a *DBError (without DETAIL),
// other errors are wrapped with op. Errors that already are this package's
// typed errors pass unchanged.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &DBError{Op: op, Code: pe.Code, Message: pe.Message, Constraint: pe.ConstraintName,
			Table: pe.TableName, Column: pe.ColumnName}
	}
	if isOurs(err) {
		return err
	}
	// Connection and context errors (errors.Is(err, context.Canceled) still
	// works through opError).
	return &opError{Op: op, Err: err}
}

func isOurs(err error) bool {
	var (
		nf *NotFoundError
		cf *ConflictError
		no *NotOwnedError
		ne *NotEncryptedError
		hd *HasDataError
		st *StateError
		iv *InvalidError
		rk *RekeyError
		db *DBError
		op *opError
		lm *LabelMismatchError
		wr *WriteRefusedError
		js *JobStateError
		bf *BatchFullError
		fr *FileRowError
	)
	return errors.As(err, &nf) || errors.As(err, &cf) || errors.As(err, &no) || errors.As(err, &ne) ||
		errors.As(err, &hd) || errors.As(err, &st) || errors.As(err, &iv) || errors.As(err, &rk) ||
		errors.As(err, &db) || errors.As(err, &op) || errors.As(err, &lm) || errors.As(err, &wr) ||
		errors.As(err, &js) || errors.As(err, &bf) || errors.As(err, &fr)
}

// pgCode returns the SQLSTATE and constraint of a server error.
func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	var de *DBError
	if errors.As(err, &de) {
		return de.Code, de.Constraint
	}
	return "", ""
}

// SQLSTATEs used here.
const (
	codeUniqueViolation = "23505"
	codeCheckViolation  = "23514"
)
