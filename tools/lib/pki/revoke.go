package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// RevocationListName is the revocation list `tapekey pki init` creates
// next to the certificates (DIR/revoked.txt).
const RevocationListName = "revoked.txt"

// ReadRevocations reads the revocation list at path (format: package
// proto/tlsconf); a file that does not exist is an empty list.
func ReadRevocations(path string) ([]tlsconf.Revocation, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	list, err := tlsconf.ParseRevocations(b)
	if err != nil {
		return nil, fmt.Errorf("revocation list %s: %w", path, err)
	}
	return list, nil
}

// WriteRevocations replaces the revocation list at path atomically (a
// temporary file in the same directory, fsync, rename, fsync of the
// directory) with mode 0644: it holds serial numbers and names, no secret,
// and every daemon must be able to read it.
func WriteRevocations(path string, list []tlsconf.Revocation) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(tlsconf.FormatRevocations(list)); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Revoke adds r to the revocation list at path (created if missing). A
// serial that is already listed is an error that says when it was revoked.
func Revoke(path string, r tlsconf.Revocation) error {
	list, err := ReadRevocations(path)
	if err != nil {
		return err
	}
	id := tlsconf.FormatSerial(r.Serial)
	for _, o := range list {
		if tlsconf.FormatSerial(o.Serial) == id {
			return fmt.Errorf("serial %s is already revoked (on %s) in %s; nothing was changed", id, o.At.Format("2006-01-02T15:04:05Z07:00"), path)
		}
	}
	return WriteRevocations(path, append(list, r))
}
