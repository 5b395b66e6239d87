//go:build linux

package testtree

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// File is one row of a job's file list as the console prints it, read by
// ParseListFiles.
type File struct {
	Path    string // resolved: absolute, no trailing '/', raw bytes
	Type    string // "file", "dir", "symlink", "link" (hard link), "fifo", "char", "block"
	Size    int64
	HasSize bool
	Mode    uint32
	HasMode bool
	// Link holds the readings of the row's link target (a symlink's
	// target; a hard link's first path, also resolved like Path): the
	// console may print bytes as text, Go-quoted text, base64 or hex.
	Link   []string
	SHA256 []byte         // nil when the row has none
	Row    map[string]any // the row as printed
}

// ParseListFiles reads `tapectl --json "list files jobid=N"`: a JSON array
// of rows (or an object holding one). The keys are matched without regard
// to case, '_' and '-' (path, type, size, mode, sha256, link / linkname /
// link_target). A path may be printed as text, as Go-quoted text (catalog.
// RenderPath), as base64 (a Go []byte) or as hex: the reading that lies
// under root (else above it) is taken, so root must be the tree's
// absolute root.
func ParseListFiles(doc []byte, root string) ([]File, error) {
	rows, err := rowsOf(doc)
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(rows))
	for i, r := range rows {
		f := File{Row: r}
		var readings []string
		for k, v := range r {
			if nk := normKey(k); strings.HasPrefix(nk, "path") {
				readings = append(readings, readingsOf(v)...)
			}
		}
		for _, p := range readings { // under root, else above it
			if n := normPath(p); n == root || strings.HasPrefix(n, root+"/") {
				f.Path = n
				break
			}
		}
		for _, p := range readings {
			if n := normPath(p); f.Path == "" && strings.HasPrefix(root, n+"/") {
				f.Path = n
			}
		}
		if f.Path == "" {
			if len(readings) == 0 {
				return nil, fmt.Errorf("testtree: list files row %d has no path: %v", i+1, r)
			}
			f.Path = normPath(readings[0])
		}
		if v, ok := get(r, "type", "filetype", "kind"); ok {
			f.Type = normType(fmt.Sprint(v))
		}
		if v, ok := get(r, "size"); ok {
			if n, ok := number(v); ok {
				f.Size, f.HasSize = int64(n), true
			}
		}
		if v, ok := get(r, "mode", "perm", "permissions"); ok {
			f.Mode, f.HasMode = parseMode(v)
		}
		if v, ok := get(r, "link", "linkname", "linktarget", "target", "linkpath"); ok && v != nil {
			for _, l := range readingsOf(v) {
				f.Link = append(f.Link, l, normPath(l))
			}
		}
		if v, ok := get(r, "sha256", "sha", "digest", "hash", "checksum"); ok && v != nil {
			f.SHA256 = digestOf(fmt.Sprint(v))
		}
		out = append(out, f)
	}
	return out, nil
}

// rowsOf finds the rows: the document itself if it is an array, else the
// first array of objects in an object (e.g. {"files": [...]}).
func rowsOf(doc []byte) ([]map[string]any, error) {
	doc = bytes.TrimSpace(doc)
	if bytes.Equal(doc, []byte("null")) {
		return nil, nil
	}
	var rows []map[string]any
	if err := json.Unmarshal(doc, &rows); err == nil {
		return rows, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("testtree: list files output is not JSON: %v\n%.500s", err, doc)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if json.Unmarshal(obj[k], &rows) == nil && rows != nil {
			return rows, nil
		}
	}
	return nil, fmt.Errorf("testtree: list files output holds no array of rows:\n%.500s", doc)
}

// keyPunct is what normKey drops. One Replacer for all calls: building
// one per key cost more than parsing the listing.
var keyPunct = strings.NewReplacer("_", "", "-", "", " ", "")

func normKey(k string) string {
	return keyPunct.Replace(strings.ToLower(k))
}

func get(r map[string]any, names ...string) (any, bool) {
	for _, n := range names {
		for k, v := range r {
			if normKey(k) == n {
				return v, true
			}
		}
	}
	return nil, false
}

// readingsOf returns the ways a printed value may spell bytes.
func readingsOf(v any) []string {
	switch x := v.(type) {
	case string:
		out := []string{x}
		if strings.HasPrefix(x, `"`) {
			if u, err := strconv.Unquote(x); err == nil {
				out = append(out, u)
			}
		}
		if b, err := base64.StdEncoding.DecodeString(x); err == nil {
			out = append(out, string(b))
		}
		if b, err := hex.DecodeString(x); err == nil {
			out = append(out, string(b))
		}
		return out
	case []any: // bytes as an array of numbers
		b := make([]byte, 0, len(x))
		for _, e := range x {
			n, ok := number(e)
			if !ok {
				return nil
			}
			b = append(b, byte(n))
		}
		return []string{string(b)}
	}
	return nil
}

func normPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	return p
}

func normType(t string) string {
	switch strings.ToLower(t) {
	case "file", "regular", "reg", "f", "-", "0":
		return "file"
	case "dir", "directory", "d", "5":
		return "dir"
	case "symlink", "sym", "l", "2", "softlink":
		return "symlink"
	case "link", "hardlink", "hard link", "h", "1":
		return "link"
	}
	return strings.ToLower(t)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		n, err := strconv.ParseFloat(x, 64)
		return n, err == nil
	}
	return 0, false
}

// parseMode reads 420, "0644", "644" or "-rw-r--r--".
func parseMode(v any) (uint32, bool) {
	switch x := v.(type) {
	case float64:
		return uint32(x) & 0o7777, true
	case string:
		if len(x) >= 10 && strings.ContainsAny(x[:1], "-dlpcbs") {
			var m uint32
			for i, c := range x[1:10] {
				if c != '-' {
					m |= 1 << (8 - i)
				}
			}
			return m, true
		}
		if n, err := strconv.ParseUint(strings.TrimPrefix(x, "0o"), 8, 32); err == nil {
			return uint32(n) & 0o7777, true
		}
	}
	return 0, false
}

func digestOf(s string) []byte {
	s = strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b
	}
	if s == "" {
		return nil
	}
	return []byte(s) // wrong, and Compare will say so
}

// Compare checks got (a job's file list) against want (the entries the
// job should hold): the same paths, each listed once, with the same type,
// size, permission bits (when printed), symlink target and SHA-256 of a
// regular file's data. The later paths of a hard-linked inode may be
// "link" rows naming a path of the same inode listed as a "file" (exactly
// one of them). It returns one line per problem, sorted; none when they
// agree.
func Compare(got []File, want Snapshot) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	groups := map[[2]uint64][]string{}
	for p, e := range want {
		if e.Type == "file" && e.Nlink > 1 {
			k := [2]uint64{e.Dev, e.Ino}
			groups[k] = append(groups[k], p)
		}
	}
	byPath := map[string]File{}
	for _, f := range got {
		if _, dup := byPath[f.Path]; dup {
			bad("%s is listed twice", show(f.Path))
		}
		byPath[f.Path] = f
	}
	for p, e := range want {
		if _, ok := byPath[p]; !ok {
			bad("%s (%s) is not listed", show(p), e.Type)
		}
	}
	for p, f := range byPath {
		e, ok := want[p]
		if !ok {
			bad("%s (%s) is listed but not expected", show(p), f.Type)
			continue
		}
		group := groups[[2]uint64{e.Dev, e.Ino}]
		switch {
		case e.Type == "file" && len(group) > 1 && f.Type == "link":
			first := ""
			for _, l := range f.Link {
				if slices.Contains(group, l) && l != p {
					first = l
				}
			}
			if first == "" {
				bad("%s is a hard link to %q, want one of %q", show(p), f.Link, group)
			} else if g, ok := byPath[first]; ok && g.Type != "file" {
				bad("%s is a hard link to %s, which is listed as %s, not as the file", show(p), show(first), g.Type)
			}
			if f.SHA256 != nil && !bytes.Equal(f.SHA256, e.SHA256[:]) {
				bad("%s: SHA-256 %x, want %x", show(p), f.SHA256, e.SHA256)
			}
		case e.Type == "file":
			if f.Type != "file" {
				bad("%s is listed as %q, want a regular file", show(p), f.Type)
				break
			}
			if !f.HasSize || f.Size != e.Size {
				bad("%s: size %d (printed: %v), want %d", show(p), f.Size, f.HasSize, e.Size)
			}
			if !bytes.Equal(f.SHA256, e.SHA256[:]) {
				bad("%s: SHA-256 %x, want %x", show(p), f.SHA256, e.SHA256)
			}
		case e.Type == "symlink":
			if f.Type != "symlink" || !slices.Contains(f.Link, e.Link) {
				bad("%s is listed as %s to %q, want a symlink to %q", show(p), f.Type, f.Link, e.Link)
			}
		default:
			if f.Type != e.Type {
				bad("%s is listed as %q, want %q", show(p), f.Type, e.Type)
			}
		}
		if f.HasMode && e.Type != "symlink" && f.Mode != e.Mode {
			bad("%s: mode %04o, want %04o", show(p), f.Mode, e.Mode)
		}
	}
	for _, g := range groups {
		files, listed := 0, 0
		for _, p := range g {
			if f, ok := byPath[p]; ok {
				listed++
				if f.Type == "file" {
					files++
				}
			}
		}
		if listed == len(g) && files != 1 {
			bad("hard-linked paths %q: %d are listed with data, want exactly 1", g, files)
		}
	}
	slices.Sort(problems)
	return problems
}

// show quotes a path for a message, eliding the middle of a long one.
func show(p string) string {
	if len(p) > 160 {
		return strconv.Quote(p[:60]) + fmt.Sprintf("…(%d bytes)…", len(p)) + strconv.Quote(p[len(p)-60:])
	}
	return strconv.Quote(p)
}

// Paths returns the files' paths, sorted.
func Paths(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	slices.Sort(out)
	return out
}
