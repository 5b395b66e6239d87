//go:build linux

// Package fileset walks a fileset for filed: include roots, excludes
// (paths and globs), one-filesystem, CACHEDIR.TAG exclusion, xattrs and
// sparse maps, the since-time of Incremental and Differential levels,
// and opens regular files for backup with changed-while-read
// detection. It knows the filesystem only (no archive format, no
// protocol); README.md documents the semantics.
package fileset

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// FileSet is what a job backs up on a client.
type FileSet struct {
	// Name names the fileset (the job triple uses it; its identity —
	// configs.Fileset.Identity, the director's — leaves it out).
	Name string
	// Include lists absolute paths: each is walked as a root. An
	// include root is never excluded by Exclude and is walked even if it
	// lies under an excluded directory or another filesystem.
	Include []string
	// Exclude lists absolute paths or glob patterns (see README.md,
	// "Excludes"): a bare name pattern ("*.tmp", ".cache") matches the
	// last element at any depth; an absolute pattern ("/home/*/.cache",
	// "/var/**/*.log") matches the whole path element by element, "**"
	// standing for any number of elements; "**/x" is "/**/x"; a
	// trailing "/" restricts the pattern to directories.
	Exclude []string
	// OneFileSystem: do not descend into a directory on another
	// filesystem (device) than its include root; the mount point itself
	// is kept as an entry.
	OneFileSystem bool
	// ExcludeCaches: a directory holding a CACHEDIR.TAG file with the
	// standard signature is kept as an entry with its tag file, and the
	// rest of its contents is skipped (GNU tar --exclude-caches).
	ExcludeCaches bool
	// Xattrs: read extended attributes of every entry.
	Xattrs bool
}

// maxPath bounds an include path (the kernel's PATH_MAX, NUL
// included): roots are opened by path. Paths below a root are reached
// relative to their directory, so they may be longer.
const maxPath = 4095

// Validate checks the fileset; its error names every bad field and
// value (errors.Join of one error per problem).
func (fs FileSet) Validate() error {
	var errs []error
	name := fs.Name
	if name == "" {
		name = "(unnamed)"
		errs = append(errs, errors.New("fileset: Name is empty"))
	}
	if len(fs.Include) == 0 {
		errs = append(errs, fmt.Errorf("fileset %s: Include is empty: name at least one absolute path", name))
	}
	for i, p := range fs.Include {
		switch {
		case p == "":
			errs = append(errs, fmt.Errorf("fileset %s: Include[%d] is empty", name, i))
		case strings.IndexByte(p, 0) >= 0:
			errs = append(errs, fmt.Errorf("fileset %s: Include[%d] %q contains a NUL byte", name, i, p))
		case !strings.HasPrefix(p, "/"):
			errs = append(errs, fmt.Errorf("fileset %s: Include[%d] %q is not an absolute path", name, i, p))
		case len(filepath.Clean(p)) > maxPath:
			errs = append(errs, fmt.Errorf("fileset %s: Include[%d] is %d bytes long, more than %d", name, i, len(p), maxPath))
		}
	}
	for i, p := range fs.Exclude {
		if _, err := compilePattern(p); err != nil {
			errs = append(errs, fmt.Errorf("fileset %s: Exclude[%d]: %w", name, i, err))
		}
	}
	return errors.Join(errs...)
}

// roots returns the include paths cleaned, sorted by byte and without
// duplicates.
func (fs FileSet) roots() []string {
	out := make([]string, 0, len(fs.Include))
	for _, p := range fs.Include {
		out = append(out, filepath.Clean(p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// pattern is one compiled exclude.
type pattern struct {
	src     string
	dirOnly bool
	// name is set for a pattern without "/": it matches the last
	// element.
	name string
	// elems is set for an anchored pattern: one glob per path element,
	// "**" standing for zero or more elements (one or more when last).
	elems []string
}

func compilePattern(src string) (pattern, error) {
	p := pattern{src: src}
	s := src
	if s == "" {
		return p, errors.New("empty pattern")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return p, fmt.Errorf("pattern %q contains a NUL byte", src)
	}
	if len(s) > 1 && strings.HasSuffix(s, "/") {
		p.dirOnly = true
		s = strings.TrimRight(s, "/")
	}
	if strings.HasPrefix(s, "**/") {
		s = "/" + s
	}
	if !strings.Contains(s, "/") {
		if _, err := path.Match(s, ""); err != nil {
			return p, fmt.Errorf("pattern %q: malformed glob (unclosed [ or trailing \\)", src)
		}
		p.name = s
		return p, nil
	}
	if !strings.HasPrefix(s, "/") {
		return p, fmt.Errorf("pattern %q contains / but is not absolute: write /dir/%s to anchor it, or **/%s to match at any depth", src, s, s)
	}
	if s == "/" {
		return p, fmt.Errorf("pattern %q would exclude everything", src)
	}
	for _, e := range strings.Split(s[1:], "/") {
		switch e {
		case "":
			return p, fmt.Errorf("pattern %q has an empty element (//)", src)
		case ".", "..":
			return p, fmt.Errorf("pattern %q has a %s element: write it without", src, e)
		}
		if _, err := path.Match(e, ""); err != nil {
			return p, fmt.Errorf("pattern %q: malformed glob in %q (unclosed [ or trailing \\)", src, e)
		}
		p.elems = append(p.elems, e)
	}
	return p, nil
}

// match reports whether the pattern excludes the entry at full path
// (absolute, clean) with last element name.
func (p *pattern) match(full, name string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	if p.elems == nil {
		ok, _ := path.Match(p.name, name)
		return ok
	}
	return matchElems(p.elems, full[1:])
}

// matchElems matches pattern elements against rest, a relative path
// ("a/b/c"), without allocating.
func matchElems(elems []string, rest string) bool {
	for {
		if len(elems) == 0 {
			return rest == ""
		}
		e := elems[0]
		if e == "**" {
			if len(elems) == 1 {
				// A trailing ** matches one or more elements.
				return rest != ""
			}
			// Zero elements, then one more at a time.
			for {
				if matchElems(elems[1:], rest) {
					return true
				}
				i := strings.IndexByte(rest, '/')
				if i < 0 {
					return false
				}
				rest = rest[i+1:]
			}
		}
		if rest == "" {
			return false
		}
		head, tail := rest, ""
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			head, tail = rest[:i], rest[i+1:]
		}
		if ok, _ := path.Match(e, head); !ok {
			return false
		}
		elems, rest = elems[1:], tail
	}
}
