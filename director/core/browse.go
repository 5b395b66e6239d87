package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
)

// The restore tree browser (issue 12): "restore … select" loads the
// restore view into a browse session held here, keyed by a random id and
// the console that opened it; tapectl's prompt then sends each browser
// line as "browse session=ID line=…" (cd ls dir pwd find mark unmark
// markdir lsmark count estimate done quit). The session stays in the
// director, not in tapectl, because a view of 100,000+ paths and its
// marks are large while each browser answer is small, and because "done"
// needs the marks here anyway (they would not fit on one console line).
// A session idle for browseIdle is dropped.

const browseIdle = 30 * time.Minute

type browseNode struct {
	name     string // "" for the root
	path     []byte // stored path (directories end in '/'); "/" for the root
	member   *catalog.RestoreMember
	dir      bool
	parent   *browseNode
	children []*browseNode // sorted by name once built
	byName   map[string]*browseNode
}

type browseSession struct {
	// mu serializes the session's lines (one console may send two at once).
	mu    sync.Mutex
	id    string
	actor string
	cmd   console.Command // the restore … select line (its where=, restoreclient=, …)
	view  *catalog.RestoreView
	root  *browseNode
	cwd   *browseNode
	marks catalog.Marks
	used  time.Time
}

// buildTree makes the browser's tree of a view; directories that hold
// members but are no member themselves (above the fileset's top) are
// made up so that cd reaches them.
func buildTree(v *catalog.RestoreView) *browseNode {
	root := &browseNode{path: []byte("/"), dir: true, byName: map[string]*browseNode{}}
	for i := range v.Members {
		m := &v.Members[i]
		p := strings.Trim(string(m.Path), "/")
		if p == "" {
			root.member = m
			continue
		}
		parts := strings.Split(p, "/")
		n := root
		for k, name := range parts {
			last := k == len(parts)-1
			c := n.byName[name]
			if c == nil {
				c = &browseNode{name: name, parent: n, path: []byte("/" + strings.Join(parts[:k+1], "/"))}
				if !last || m.Type == catalog.FileDir {
					c.dir, c.byName = true, map[string]*browseNode{}
					c.path = append(c.path, '/')
				}
				n.byName[name] = c
				n.children = append(n.children, c)
			}
			if last {
				c.member = m
			}
			n = c
		}
	}
	var sortAll func(n *browseNode)
	sortAll = func(n *browseNode) {
		sort.Slice(n.children, func(a, b int) bool { return n.children[a].name < n.children[b].name })
		for _, c := range n.children {
			if c.dir {
				sortAll(c)
			}
		}
	}
	sortAll(root)
	return root
}

func (n *browseNode) display() string {
	if n.dir {
		return n.name + "/"
	}
	return n.name
}

// walk calls f on n and everything under it.
func (n *browseNode) walk(f func(*browseNode)) {
	f(n)
	for _, c := range n.children {
		c.walk(f)
	}
}

// resolve finds a path relative to cwd ("..", "/abs", "a/b").
func (s *browseSession) resolve(p string) (*browseNode, bool) {
	n := s.cwd
	if strings.HasPrefix(p, "/") {
		n = s.root
	}
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if n.parent != nil {
				n = n.parent
			}
		default:
			c := n.byName[part]
			if c == nil {
				return nil, false
			}
			n = c
		}
	}
	return n, true
}

// matching returns cwd's children whose name matches the glob pattern (a
// path with '/' is resolved as such instead).
func (s *browseSession) matching(pattern string) ([]*browseNode, error) {
	if strings.Contains(strings.TrimSuffix(pattern, "/"), "/") || pattern == ".." || pattern == "." {
		n, ok := s.resolve(pattern)
		if !ok {
			return nil, fmt.Errorf("no file or directory %s", pattern)
		}
		return []*browseNode{n}, nil
	}
	pattern = strings.TrimSuffix(pattern, "/")
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("bad pattern %q: %v", pattern, err)
	}
	var out []*browseNode
	for _, c := range s.cwd.children {
		if ok, _ := path.Match(pattern, c.name); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// markCount counts marked members under n (n included).
func (s *browseSession) markCount(n *browseNode) (files int, bytes int64) {
	n.walk(func(x *browseNode) {
		if x.member != nil && s.marks[string(x.member.Path)] {
			files++
			if x.member.Type == catalog.FileRegular {
				bytes += x.member.Size
			}
		}
	})
	return
}

// setMarks marks (or unmarks) nodes; recursive takes what is under
// directories too. It returns how many members changed.
func (s *browseSession) setMarks(nodes []*browseNode, on, recursive bool) int {
	changed := 0
	apply := func(x *browseNode) {
		if x.member == nil {
			return
		}
		k := string(x.member.Path)
		if s.marks[k] != on {
			changed++
			if on {
				s.marks[k] = true
			} else {
				delete(s.marks, k)
			}
		}
	}
	for _, n := range nodes {
		if recursive {
			n.walk(apply)
		} else {
			apply(n)
		}
	}
	return changed
}

func newBrowseID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// browseStart runs "restore … select": a browse session over the view.
func (d *Director) browseStart(ctx context.Context, actor string, cmd console.Command, a restoreArgs) (*Output, error) {
	view, err := d.store.LoadRestoreView(ctx, a.view)
	if err != nil {
		if catalog.IsRestoreFilesetsError(err) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, catalogStatus(err)
	}
	id, err := d.browseStart0(cmd, actor, view, a.criteria)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	s := d.browsers[id]
	d.mu.Unlock()
	var jobsUsed []string
	for _, j := range view.Jobs {
		jobsUsed = append(jobsUsed, fmt.Sprintf("%d (%s)", j.ID, dash(j.Level)))
	}
	text := fmt.Sprintf("Tree browser session %s: client %s, fileset %s, jobs %s; %d files in the tree, %d marked.\n"+
		"Commands: cd ls dir pwd find mark unmark markdir lsmark count estimate done quit (help lists them).\ncwd is: %s",
		s.id, view.Client, view.Fileset, strings.Join(jobsUsed, ", "), len(view.Members), len(s.marks), s.cwd.path)
	return &Output{Text: text, JSON: map[string]any{"session": s.id, "files": len(view.Members), "marked": len(s.marks), "cwd": string(s.cwd.path)}}, nil
}

// browseStart0 opens a browse session over view (marks from c) and
// returns its id.
func (d *Director) browseStart0(cmd console.Command, actor string, view *catalog.RestoreView, c catalog.Criteria) (string, error) {
	s := &browseSession{id: newBrowseID(), actor: actor, cmd: cmd, view: view, root: buildTree(view), marks: catalog.Marks{}, used: d.clock()}
	s.cwd = s.root
	// Start where the backups start: the deepest directory holding everything.
	for len(s.cwd.children) == 1 && s.cwd.children[0].dir {
		s.cwd = s.cwd.children[0]
	}
	if !c.Empty() {
		marks, _ := view.Mark(c)
		s.marks = marks
	}
	d.mu.Lock()
	if d.browsers == nil {
		d.browsers = map[string]*browseSession{}
	}
	now := d.clock()
	for id, o := range d.browsers {
		if now.Sub(o.used) > browseIdle {
			delete(d.browsers, id)
		}
	}
	d.browsers[s.id] = s
	d.mu.Unlock()
	return s.id, nil
}

// browseHelp is the browser's help.
const browseHelp = `cd DIR          change the current directory (.. goes up, /abs from the top)
ls [PATTERN]    list the current directory (* marks what is marked)
dir [PATTERN]   list it long: mode, owner, size, date
pwd             print the current directory
find PATTERN    list every path whose name matches (glob: * ? [..])
mark PATTERN    mark files and directories (with everything under them) to restore
unmark PATTERN  unmark them
markdir PATTERN mark directories only, not what is under them
lsmark          list what is marked under the current directory
count           count files in the tree and marked
estimate        count marked files and their bytes
done            show the plan of the marked files (then run it or not)
quit            leave the browser; nothing is restored`

// browse runs "browse session=ID line=…": one line of the tree browser.
func (d *Director) browseLine(ctx context.Context, actor string, cmd console.Command, progress Progress) (*Output, error) {
	id := cmd.Str("session")
	d.mu.Lock()
	s := d.browsers[id]
	if s != nil && s.actor != actor {
		s = nil
	}
	if s != nil {
		s.used = d.clock()
	}
	d.mu.Unlock()
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "no tree browser session %s of console %s (it ended, or was idle more than %s): start one with restore client=NAME select", id, actor, browseIdle)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	line := strings.TrimSpace(cmd.Str("line"))
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	var b strings.Builder
	switch verb {
	case "", "help", "?":
		return &Output{Text: browseHelp}, nil
	case "pwd":
		return &Output{Text: "cwd is: " + catalog.RenderPath(s.cwd.path), JSON: map[string]string{"cwd": string(s.cwd.path)}}, nil
	case "cd":
		if arg == "" {
			arg = "/"
		}
		n, ok := s.resolve(arg)
		if !ok || !n.dir {
			return nil, status.Errorf(codes.NotFound, "cd %s: no such directory in these backups (ls lists the current one)", arg)
		}
		s.cwd = n
		return &Output{Text: "cwd is: " + catalog.RenderPath(n.path), JSON: map[string]string{"cwd": string(n.path)}}, nil
	case "ls", "dir":
		nodes := s.cwd.children
		if arg != "" {
			var err error
			if nodes, err = s.matching(arg); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			if len(nodes) == 1 && nodes[0].dir && strings.Contains(arg, "/") {
				nodes = nodes[0].children
			}
		}
		for _, n := range nodes {
			mark := " "
			if f, _ := s.markCount(n); f > 0 {
				mark = "*"
			}
			if verb == "dir" && n.member != nil {
				m := n.member
				fmt.Fprintf(&b, "%s %s %8s %8s %12d  %s  %s\n", mark, modeString(m.Type, m.Mode), m.Uname, m.Gname, m.Size,
					time.Unix(0, m.MtimeNS).UTC().Format("2006-01-02 15:04"), n.display())
				continue
			}
			fmt.Fprintf(&b, "%s%s\n", mark, n.display())
		}
		fmt.Fprintf(&b, "%d entries", len(nodes))
		return &Output{Text: b.String()}, nil
	case "find":
		if arg == "" {
			return nil, status.Error(codes.InvalidArgument, "find PATTERN: say what to find, e.g. find *.conf")
		}
		if _, err := path.Match(arg, ""); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "bad pattern %q: %v", arg, err)
		}
		n := 0
		s.root.walk(func(x *browseNode) {
			if x.parent == nil {
				return
			}
			if ok, _ := path.Match(arg, x.name); ok {
				n++
				if n <= 1000 {
					mark := " "
					if x.member != nil && s.marks[string(x.member.Path)] {
						mark = "*"
					}
					fmt.Fprintf(&b, "%s%s\n", mark, catalog.RenderPath(x.path))
				}
			}
		})
		if n > 1000 {
			fmt.Fprintf(&b, "… and %d more\n", n-1000)
		}
		fmt.Fprintf(&b, "%d found", n)
		return &Output{Text: b.String()}, nil
	case "mark", "unmark", "markdir":
		if arg == "" {
			return nil, status.Errorf(codes.InvalidArgument, "%s PATTERN: say what, e.g. %s * or %s etc", verb, verb, verb)
		}
		nodes, err := s.matching(arg)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if verb == "markdir" {
			var dirs []*browseNode
			for _, n := range nodes {
				if n.dir {
					dirs = append(dirs, n)
				}
			}
			nodes = dirs
		}
		if len(nodes) == 0 {
			return nil, status.Errorf(codes.NotFound, "%s %s: nothing in %s matches", verb, arg, catalog.RenderPath(s.cwd.path))
		}
		changed := s.setMarks(nodes, verb != "unmark", verb != "markdir")
		what := "marked"
		if verb == "unmark" {
			what = "unmarked"
		}
		return &Output{Text: fmt.Sprintf("%d files %s.", changed, what)}, nil
	case "lsmark":
		n := 0
		s.cwd.walk(func(x *browseNode) {
			if x.member != nil && s.marks[string(x.member.Path)] {
				n++
				if n <= 1000 {
					fmt.Fprintf(&b, "*%s\n", catalog.RenderPath(x.member.Path))
				}
			}
		})
		if n > 1000 {
			fmt.Fprintf(&b, "… and %d more\n", n-1000)
		}
		fmt.Fprintf(&b, "%d marked", n)
		return &Output{Text: b.String()}, nil
	case "count":
		return &Output{Text: fmt.Sprintf("%d total files; %d marked to be restored.", len(s.view.Members), len(s.marks)),
			JSON: map[string]int{"files": len(s.view.Members), "marked": len(s.marks)}}, nil
	case "estimate":
		f, by := s.markCount(s.root)
		return &Output{Text: fmt.Sprintf("%d total files; %d marked to be restored; %s.", len(s.view.Members), f, jobs.HumanBytes(by)),
			JSON: map[string]int64{"files": int64(len(s.view.Members)), "marked": int64(f), "bytes": by}}, nil
	case "quit":
		d.endBrowse(id)
		return &Output{Text: "Tree browser left; nothing was restored."}, nil
	case "done":
		if len(s.marks) == 0 {
			return nil, status.Error(codes.FailedPrecondition, "nothing is marked: mark files first (mark PATTERN), or quit")
		}
		targets, err := d.store.LinkTargets(ctx, s.view, s.marks)
		if err != nil {
			return nil, catalogStatus(err)
		}
		sel := s.view.Select(s.marks, targets)
		run := s.cmd
		if arg == "yes" {
			run = run.With("yes", []string{""})
		}
		out, err := d.planAndRun(ctx, actor, run, s.view, sel, progress)
		if err == nil && arg == "yes" {
			d.endBrowse(id)
		}
		return out, err
	}
	return nil, status.Errorf(codes.InvalidArgument, "%q is not a tree browser command: %s", verb, "cd ls dir pwd find mark unmark markdir lsmark count estimate done quit")
}

func (d *Director) endBrowse(id string) {
	d.mu.Lock()
	delete(d.browsers, id)
	d.mu.Unlock()
}

// modeString is ls -l's first column.
func modeString(typ string, mode uint32) string {
	c := map[string]byte{catalog.FileDir: 'd', catalog.FileSymlink: 'l', catalog.FileChar: 'c', catalog.FileBlock: 'b', catalog.FileFIFO: 'p'}[typ]
	if c == 0 {
		c = '-'
	}
	b := []byte{c}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	return string(bytes.TrimSpace(b))
}
