package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	cmdline "github.com/tapeward/tapeward/director/console"
)

// restore's console side (issue 12): file=<LIST reads the paths from a
// file on this machine (one a line; blank lines and lines starting with
// '#' skipped), and at the interactive prompt a restore without yes
// shows the plan and asks whether to run it.

// expandFileLists returns line with every restore file=<LIST replaced by
// one file= per path of LIST. Other lines are returned as they are.
func expandFileLists(line string) (string, error) {
	cmd, err := cmdline.Parse(line)
	if err != nil || cmd.Name != "restore" {
		return line, nil
	}
	var files []string
	expanded := false
	for _, f := range cmd.Strs("file") {
		if !strings.HasPrefix(f, "<") {
			files = append(files, f)
			continue
		}
		expanded = true
		name := strings.TrimPrefix(f, "<")
		paths, err := readPathList(name)
		if err != nil {
			return "", err
		}
		if len(paths) == 0 {
			return "", fmt.Errorf("file=<%s: the list holds no path; nothing was sent to the director", name)
		}
		files = append(files, paths...)
	}
	if !expanded {
		return line, nil
	}
	out := cmd.With("file", files).String()
	if len(out) > cmdline.MaxLineLen {
		return "", fmt.Errorf("file=<...: %d paths make a command of %d bytes, more than the director takes (%d); restore a directory= or a fileregex= instead, or split the list; nothing was sent to the director",
			len(files), len(out), cmdline.MaxLineLen)
	}
	return out, nil
}

// readPathList reads a list file: one path a line.
func readPathList(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("file=<%s: %v; nothing was sent to the director", name, unwrapPathError(err))
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		p := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(p) == "" || strings.HasPrefix(p, "#") {
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("file=<%s: %v; nothing was sent to the director", name, err)
	}
	return out, nil
}

// asksToRun reports a restore line that only shows its plan: at the
// prompt, tapectl then asks whether to run it.
func asksToRun(line string) bool {
	cmd, err := cmdline.Parse(line)
	return err == nil && cmd.Name == "restore" && !cmd.Has("yes") && !cmd.Has("dryrun") && !cmd.Has("select")
}

// confirmRestore asks, after a restore's plan, whether to run it; yes
// sends the line again with yes.
func (c *console) confirmRestore(ctx context.Context, a asker, line string) error {
	ans, err := a.ask("", "Run this restore? (yes/no): ")
	if err != nil {
		return nil
	}
	switch strings.ToLower(strings.TrimSpace(ans)) {
	case "yes", "y":
		return c.exec(ctx, line+" yes")
	}
	fmt.Fprintln(c.stderr, "tapectl: restore not run")
	return nil
}
