package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	cmdline "github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/proto/tapewardpb"
)

// The restore tree browser, console side: "restore … select" opens a
// browse session in the director (which holds the view and the marks);
// the lines that follow — at the prompt ("$ ") or in a script — are
// browser lines, each sent as "browse session=ID line=…", until quit, or
// done followed by yes (the restore runs) or no (back to the browser).

func (c *console) browsing() bool { return c.browseID != "" }

func isSelect(line string) bool {
	cmd, err := cmdline.Parse(line)
	return err == nil && cmd.Name == "restore" && cmd.Has("select")
}

// browseStart sends the select line and enters the browser.
func (c *console) browseStart(ctx context.Context, line string) error {
	res, err := c.runJSON(ctx, line)
	if err != nil {
		return err
	}
	var s struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal([]byte(res.Json), &s); err != nil || s.Session == "" {
		return fmt.Errorf("the director did not open a tree browser session")
	}
	c.browseID, c.browseConfirm = s.Session, false
	return c.show(res, nil)
}

// browseExec runs one browser line.
func (c *console) browseExec(ctx context.Context, line string) error {
	line = strings.TrimSpace(line)
	if c.browseConfirm {
		c.browseConfirm = false
		switch strings.ToLower(line) {
		case "yes", "y":
			err := c.sendBrowse(ctx, "done yes")
			if err == nil {
				c.browseID = ""
			}
			return err
		}
		fmt.Fprintln(c.stderr, "tapectl: restore not run; still in the tree browser (quit leaves it)")
		if strings.ToLower(line) == "no" || strings.ToLower(line) == "n" || line == "" {
			return nil
		}
	}
	verb, _, _ := strings.Cut(line, " ")
	switch verb {
	case "":
		return nil
	case "quit", "exit":
		err := c.sendBrowse(ctx, "quit")
		c.browseID = ""
		return err
	case "done":
		if err := c.sendBrowse(ctx, "done"); err != nil {
			return err
		}
		c.browseConfirm = true
		fmt.Fprintln(c.stderr, "Run this restore? (yes/no)")
		return nil
	}
	return c.sendBrowse(ctx, line)
}

func (c *console) sendBrowse(ctx context.Context, line string) error {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\t", " ").Replace(line)
	res, err := c.runJSON(ctx, "browse session="+c.browseID+` line="`+q+`"`)
	if err != nil {
		return err
	}
	return c.show(res, nil)
}

// runJSON runs a line asking for JSON too and returns the result
// (progress lines go to stderr).
func (c *console) runJSON(ctx context.Context, line string) (*tapewardpb.Result, error) {
	var p peer.Peer
	stream, err := c.client.Run(ctx, &tapewardpb.RunRequest{Line: line, Json: true}, grpc.Peer(&p))
	if err != nil {
		return nil, c.rpcError(ctx, err, &p)
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil, errors.New("the director ended the command without a result")
		}
		if err != nil {
			return nil, c.rpcError(ctx, err, &p)
		}
		switch m := m.Msg.(type) {
		case *tapewardpb.RunReply_Progress:
			fmt.Fprintln(c.stderr, strings.TrimRight(m.Progress, "\r\n"))
		case *tapewardpb.RunReply_Result:
			return m.Result, nil
		}
	}
}
