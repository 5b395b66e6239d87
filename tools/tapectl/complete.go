package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	cmdline "github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/proto/tapewardpb"
)

// asker asks the operator one question at the prompt: text is printed
// first (a menu), then prompt, and the answer is returned. Answers are not
// kept in the history.
type asker interface {
	ask(text, prompt string) (string, error)
}

// errCancelled is a question the operator left unanswered.
var errCancelled = errors.New("cancelled: nothing was sent to the director")

// directorChoices is what "status director" tells a console about the
// choices a label line may leave out.
type directorChoices struct {
	Configured  []string `json:"configured_storages"`
	Pools       []string `json:"pools"`
	DefaultPool string   `json:"default_pool"`
}

// choices asks the director (status director, read role) for its storages
// and pools.
func (c *console) choices(ctx context.Context) (directorChoices, error) {
	var dc directorChoices
	stream, err := c.client.Run(ctx, &tapewardpb.RunRequest{Line: "status director", Json: true})
	if err != nil {
		return dc, err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return dc, errors.New("no result")
		}
		if err != nil {
			return dc, err
		}
		if r, ok := m.Msg.(*tapewardpb.RunReply_Result); ok {
			return dc, json.Unmarshal([]byte(r.Result.Json), &dc)
		}
	}
}

// complete is the interactive prompt's help for a label line that leaves
// out what the director cannot choose itself, as Bareos' console asks:
// the slots (with barcodes), the storage when more than one is
// configured ("Select Storage resource (1-2):") and the pool when
// director.toml sets no default_pool. It returns the line to send; a line
// it cannot help with is returned as typed (the director explains it).
func (c *console) complete(ctx context.Context, a asker, line string) (string, error) {
	cmd, err := cmdline.Parse(line)
	var me *cmdline.MissingKeywordError
	switch {
	case err == nil:
	case errors.As(err, &me) && me.Command == "label" && len(me.Keywords) == 1 && me.Keywords[0] == "slots=LIST" && len(me.More) == 0:
		slots, err := a.ask("", "Enter the slots to label (e.g. 1-5): ")
		if err != nil || strings.TrimSpace(slots) == "" {
			return "", errCancelled
		}
		line += " slots=" + strings.TrimSpace(slots)
		if cmd, err = cmdline.Parse(line); err != nil {
			return line, nil
		}
	default:
		return line, nil
	}
	if cmd.Name != "label" || cmd.Has("storage") && cmd.Has("pool") {
		return line, nil
	}
	dc, err := c.choices(ctx)
	if err != nil {
		return line, nil
	}
	if !cmd.Has("storage") && len(dc.Configured) > 1 {
		name, err := choose(a, "Storage", dc.Configured)
		if err != nil {
			return "", err
		}
		line += " storage=" + name
	}
	if !cmd.Has("pool") && dc.DefaultPool == "" {
		var name string
		if len(dc.Pools) == 0 {
			name, err = a.ask("There are no pools yet (and no default_pool in director.toml).\n", "Enter a name for the new pool: ")
			name = strings.TrimSpace(name)
			if err != nil || name == "" {
				return "", errCancelled
			}
		} else if name, err = choose(a, "Pool", dc.Pools); err != nil {
			return "", err
		}
		line += " pool=" + name
	}
	return line, nil
}

// choose shows a numbered menu of names and returns the one picked (by
// number or by name); an empty answer cancels.
func choose(a asker, what string, names []string) (string, error) {
	var menu strings.Builder
	fmt.Fprintf(&menu, "The defined %s resources are:\n", what)
	for i, n := range names {
		fmt.Fprintf(&menu, "%6d: %s\n", i+1, n)
	}
	prompt := fmt.Sprintf("Select %s resource (1-%d): ", what, len(names))
	text := menu.String()
	for {
		ans, err := a.ask(text, prompt)
		ans = strings.TrimSpace(ans)
		if err != nil || ans == "" {
			return "", errCancelled
		}
		if n, err := strconv.Atoi(ans); err == nil && n >= 1 && n <= len(names) {
			return names[n-1], nil
		}
		for _, n := range names {
			if n == ans {
				return n, nil
			}
		}
		text = fmt.Sprintf("Please enter a number between 1 and %d (or an empty line to cancel).\n", len(names))
	}
}

// noHistory keeps menu answers out of the prompt's history.
type noHistory struct{}

func (noHistory) Add(string)    {}
func (noHistory) Len() int      { return 0 }
func (noHistory) At(int) string { return "" }

// ask implements asker on the terminal.
func (p *termPrompter) ask(text, question string) (string, error) {
	if text != "" {
		io.WriteString(p.out, strings.ReplaceAll(text, "\n", "\r\n"))
	}
	p.t.SetPrompt(question)
	p.t.History = noHistory{}
	defer func() {
		p.t.SetPrompt(p.prompt())
		p.t.History = p.h
	}()
	return p.readLine()
}
