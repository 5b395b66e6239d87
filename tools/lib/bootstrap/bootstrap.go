// Package bootstrap is the catalog bootstrap file: what the director
// writes after a catalog backup job, and what tapextract reads to extract
// the catalog dump when the director, its catalog and the crypto cache are
// gone (issue 13 item 4; Bareos calls the same idea a bootstrap file).
//
// A bootstrap names the catalog job, the dump file (path, size, SHA-256),
// the dump member's exact address on tape (volume, tape file, block, offset
// in the block), and for each volume the job used: name, barcode, the
// job's volume sequence, its tape files and blocks, and the volume's
// wrapped key (stored string, scheme, KEK id, fingerprint). The key is
// wrapped under the KEK: without the KEK, which is kept apart, it is
// useless, so the file may travel (mail, off-site copy) as a label may.
// An unwrapped key is never written: Marshal and Parse refuse it.
//
// The format is TOML (format = 1), strict: an unknown key is an error, so a
// reader never silently ignores what a newer writer meant.
//
// Both the director and tapextract import this package; it imports only
// tools/lib/keys and the TOML library (architecture §2: shared code lives
// in tools/lib).
package bootstrap

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Format is the version this package writes and reads.
const Format = 1

// LatestName is the file in a bootstrap directory that is always the
// newest bootstrap (besides the per-job FileName).
const LatestName = "catalog-latest.bsr"

// FileName is the per-job file name in a bootstrap directory.
func FileName(job int64) string { return "catalog-" + strconv.FormatInt(job, 10) + ".bsr" }

// File is one bootstrap.
type File struct {
	Format  int       `toml:"format"`
	Job     int64     `toml:"job"`      // the catalog job's id
	JobName string    `toml:"job_name"` // its [[job]] name
	Status  string    `toml:"status"`   // "T" or "W"
	Written time.Time `toml:"written"`
	Dump    Dump      `toml:"dump"`
	Volumes []Volume  `toml:"volume"` // in the job's volume order
}

// Dump is the catalog dump the job backed up.
type Dump struct {
	Path     string  `toml:"path"`     // on the director host, as backed up (the archive member's path)
	Database string  `toml:"database"` // the dumped database's name
	Size     int64   `toml:"size"`
	SHA256   string  `toml:"sha256"` // hex, 64 characters
	At       Address `toml:"at"`     // where the member's first header block is
}

// Address is a position on tape: the block of a tape file of a volume, and
// the byte offset of the member's header in that block.
type Address struct {
	Volume string `toml:"volume"`
	File   int    `toml:"file"`
	Block  int64  `toml:"block"`
	Offset int64  `toml:"offset"`
}

// Volume is one volume the job wrote.
type Volume struct {
	Name       string `toml:"name"`
	Barcode    string `toml:"barcode"`
	Sequence   int    `toml:"sequence"` // 1 for the job's first volume
	FirstFile  int    `toml:"first_file"`
	LastFile   int    `toml:"last_file"`
	FirstBlock int64  `toml:"first_block"`
	LastBlock  int64  `toml:"last_block"`
	Key        *Key   `toml:"key,omitempty"` // nil: the volume is not encrypted
}

// Key is a volume's wrapped key as the catalog holds it. Stored is wrapped
// under the KEK named by KEKID; it is safe to send without the KEK.
type Key struct {
	Stored      string `toml:"stored"`
	Scheme      string `toml:"scheme"`
	KEKID       string `toml:"kek_id"`
	Fingerprint string `toml:"fingerprint"`
}

// StoredKey returns the key in the form tools/lib/keys unwraps.
func (k Key) StoredKey() keys.StoredKey {
	return keys.StoredKey{Scheme: keys.Scheme(k.Scheme), KEKID: k.KEKID, Value: k.Stored, Fingerprint: k.Fingerprint}
}

// String never prints the stored string.
func (k Key) String() string {
	return fmt.Sprintf("Key{scheme=%s kek=%s fingerprint=%s}", k.Scheme, k.KEKID, k.Fingerprint)
}

// Volume returns the volume named name, or nil.
func (f *File) Volume(name string) *Volume {
	for i := range f.Volumes {
		if f.Volumes[i].Name == name {
			return &f.Volumes[i]
		}
	}
	return nil
}

// Validate checks that f is complete and holds only wrapped keys. Errors
// name the field and what to do.
func (f *File) Validate() error {
	if f.Format != Format {
		return fmt.Errorf("format = %d: this tapextract reads bootstrap format %d; use the tapextract of the director that wrote it", f.Format, Format)
	}
	if f.Job <= 0 {
		return fmt.Errorf("job = %d: a bootstrap names the catalog job's id (a positive number)", f.Job)
	}
	if f.Status != "T" && f.Status != "W" {
		return fmt.Errorf("status = %q: a bootstrap is written only after a job ends T or W", f.Status)
	}
	d := f.Dump
	if d.Path == "" {
		return fmt.Errorf("[dump] path is missing: the dump file's path as backed up is how its member is found")
	}
	if d.Size < 0 {
		return fmt.Errorf("[dump] size = %d: must be 0 or more", d.Size)
	}
	if b, err := hex.DecodeString(d.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("[dump] sha256 = %q: must be 64 hex characters (the dump's SHA-256)", d.SHA256)
	}
	if len(f.Volumes) == 0 {
		return fmt.Errorf("no [[volume]]: a bootstrap lists every volume the catalog job wrote")
	}
	seen := map[string]bool{}
	for i, v := range f.Volumes {
		where := fmt.Sprintf("[[volume]] %d", i+1)
		if v.Name == "" {
			return fmt.Errorf("%s: name is missing", where)
		}
		where = fmt.Sprintf("[[volume]] %s", v.Name)
		if seen[v.Name] {
			return fmt.Errorf("%s is listed twice", where)
		}
		seen[v.Name] = true
		if v.Sequence != i+1 {
			return fmt.Errorf("%s: sequence = %d, want %d (volumes are listed in the job's order, from 1)", where, v.Sequence, i+1)
		}
		if v.FirstFile < 1 || v.LastFile < v.FirstFile {
			return fmt.Errorf("%s: first_file = %d, last_file = %d: tape files start at 1 (file 0 is the label) and last_file ≥ first_file", where, v.FirstFile, v.LastFile)
		}
		if v.FirstBlock < 0 || v.LastBlock < v.FirstBlock {
			return fmt.Errorf("%s: first_block = %d, last_block = %d: blocks are 0 or more and last_block ≥ first_block", where, v.FirstBlock, v.LastBlock)
		}
		if v.Key != nil {
			if err := v.Key.validate(); err != nil {
				return fmt.Errorf("%s: key: %w", where, err)
			}
		}
	}
	a := d.At
	v := f.Volume(a.Volume)
	if v == nil {
		return fmt.Errorf("[dump.at] volume = %q is not one of the [[volume]] entries", a.Volume)
	}
	if a.File < v.FirstFile || a.File > v.LastFile {
		return fmt.Errorf("[dump.at] file = %d is outside volume %s's files %d..%d", a.File, v.Name, v.FirstFile, v.LastFile)
	}
	if a.Block < 0 || a.Offset < 0 {
		return fmt.Errorf("[dump.at] block = %d, offset = %d: must be 0 or more", a.Block, a.Offset)
	}
	return nil
}

func (k *Key) validate() error {
	s, err := keys.ParseScheme(k.Scheme)
	if err != nil {
		return err
	}
	if k.Fingerprint == "" {
		return fmt.Errorf("fingerprint is missing: it is checked against the label before the key is loaded")
	}
	switch s {
	case keys.SchemeV1:
		if _, err := keys.DecodeV1(k.Stored); err != nil {
			return err
		}
		if k.KEKID == "" {
			return fmt.Errorf("kek_id is missing: it names the KEK that unwraps the key")
		}
	case keys.SchemeBareos:
		if len(k.Stored) != keys.BareosWrappedLen || k.KEKID == "" {
			return fmt.Errorf("a bareos key in a bootstrap must be wrapped (%d characters, with its kek_id); an unwrapped key is never written to a bootstrap", keys.BareosWrappedLen)
		}
	}
	return nil
}

const header = `# Tapeward catalog bootstrap: what 'tapextract extract --bootstrap' needs to
# extract the catalog dump with no director, no catalog and no crypto cache.
# The keys below are wrapped under the KEK (kek_id): useless without it.
# Keep this file off-site, apart from the KEK.
`

// Marshal validates f and returns its text.
func Marshal(f *File) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap of job %d: %w", f.Job, err)
	}
	var b bytes.Buffer
	b.WriteString(header)
	if err := toml.NewEncoder(&b).Encode(f); err != nil {
		return nil, fmt.Errorf("bootstrap of job %d: encoding: %w", f.Job, err)
	}
	return b.Bytes(), nil
}

// Parse reads a bootstrap's text (name is for messages), strictly.
func Parse(name string, data []byte) (*File, error) {
	var f File
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("bootstrap %s: not a Tapeward bootstrap file: %v", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var ks []string
		for _, k := range und {
			ks = append(ks, k.String())
		}
		sort.Strings(ks)
		// Name the leaves: a table that is undecoded only because of its
		// keys is not listed itself.
		leaves := ks[:0]
		for i, k := range ks {
			if i+1 < len(ks) && strings.HasPrefix(ks[i+1], k+".") {
				continue
			}
			leaves = append(leaves, k)
		}
		ks = leaves
		return nil, fmt.Errorf("bootstrap %s: unknown keys %s: written by a newer director? use its tapextract", name, strings.Join(ks, ", "))
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", name, err)
	}
	return &f, nil
}

// ReadFile reads and parses a bootstrap file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return Parse(path, data)
}

// WriteDir writes f into dir (created 0700 if missing) as FileName(f.Job)
// and as LatestName, both mode 0600, each atomically (a temporary file,
// fsync, rename): a reader sees the old file or the new one, never half.
// It returns the per-job file's path.
func WriteDir(dir string, f *File) (string, error) {
	data, err := Marshal(f)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bootstrap directory: %w", err)
	}
	path := filepath.Join(dir, FileName(f.Job))
	if err := writeAtomic(path, data); err != nil {
		return "", err
	}
	if err := writeAtomic(filepath.Join(dir, LatestName), data); err != nil {
		return "", err
	}
	return path, nil
}

func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("bootstrap: writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("bootstrap: writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("bootstrap: writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
