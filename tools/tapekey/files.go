package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// maxStdin bounds what a command reads from stdin.
const maxStdin = 1 << 20

// readLine reads stdin and returns its single line with surrounding white
// space trimmed. what names the expected input in messages. The caller
// zeroes the result.
func readLine(c *cli, what, example string) ([]byte, error) {
	buf, err := io.ReadAll(io.LimitReader(c.stdin, maxStdin+1))
	if err != nil {
		clear(buf)
		return nil, fmt.Errorf("reading %s from stdin: %w", what, err)
	}
	if len(buf) > maxStdin {
		clear(buf)
		return nil, fmt.Errorf("stdin is larger than %d bytes; expected one %s", maxStdin, what)
	}
	line := bytes.TrimSpace(buf)
	if len(line) == 0 {
		clear(buf)
		return nil, fmt.Errorf("no %s on stdin; pipe it in, e.g.: %s", what, example)
	}
	if n := bytes.Count(line, []byte("\n")); n > 0 {
		clear(buf)
		return nil, fmt.Errorf("stdin holds %d lines; expected exactly one %s", n+1, what)
	}
	out := bytes.Clone(line)
	clear(buf)
	return out, nil
}

// writeNewPrivateFile creates path with mode 0600, refusing to overwrite,
// writes content and syncs it. A partly written file is removed.
func writeNewPrivateFile(kind, path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s %s already exists; refusing to overwrite it (choose another --out, or move the old file away first)", kind, path)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create %s %s: %w", kind, path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing %s %s: %w", kind, path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(content); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s %s: %w", kind, path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// loadKEK loads a plain or sealed KEK file.
func loadKEK(path, master string) (*keys.KEK, error) {
	return keys.LoadKEKFile(path, keys.LoadOptions{MasterKeysetPath: master})
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
