package main

import (
	"fmt"
	"html"
	"os"
	"strings"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

var escrowGroup = &group{
	name:    "escrow",
	summary: "the escrow key pair whose public half seals every volume key into the tape's label",
	commands: []*command{
		{
			name:     "new",
			synopsis: "--out FILE --public FILE",
			summary:  "make an escrow key pair (Tink HPKE, X25519): the private keyset (mode 0600) and the public keyset for director.toml's escrow_public_key",
			run:      escrowNew,
		},
		{
			name:     "id",
			synopsis: "FILE",
			summary:  "print the escrow key id of a public or private escrow key file (or typed-back paper)",
			run:      escrowID,
		},
		{
			name:     "paper",
			synopsis: "FILE --out PAGE.html",
			summary:  "write a printable page with the private key as checksummed groups a person can type back (mode 0600; print it, then delete it)",
			run:      escrowPaper,
		},
		{
			name:     "unpaper",
			synopsis: "TYPED.txt --out FILE",
			summary:  "turn the groups typed back from the paper into an escrow private key file; an error names the group with a typo",
			run:      escrowUnpaper,
		},
	},
}

func escrowNew(c *cli, f *flags, args []string) error {
	out := f.String("out", "", "private key file to create (must not exist; mode 0600)")
	pub := f.String("public", "", "public key file to create (must not exist)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	if err := f.required("out", *out); err != nil {
		return err
	}
	if err := f.required("public", *pub); err != nil {
		return err
	}
	p, err := keys.NewEscrowKey()
	if err != nil {
		return err
	}
	priv, err := p.MarshalPrivate()
	if err != nil {
		return err
	}
	defer clear(priv)
	pubContent, err := p.Public().Marshal()
	if err != nil {
		return err
	}
	if _, err := os.Stat(*pub); err == nil {
		return fmt.Errorf("escrow public key file %s already exists; refusing to overwrite it (choose another --public)", *pub)
	}
	if err := writeNewPrivateFile("escrow private key file", *out, priv); err != nil {
		return err
	}
	if err := writeNewPrivateFile("escrow public key file", *pub, pubContent); err != nil {
		os.Remove(*out)
		return err
	}
	if err := os.Chmod(*pub, 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "escrow key %s: private %s (mode 0600), public %s\n"+
		"Put the public file in director.toml (escrow_public_key), print the private one with\n"+
		"  tapekey escrow paper %s --out escrow-paper.html\nand keep it off-site, away from the tapes.\n", p.ID(), *out, *pub, *out)
	return err
}

func escrowID(c *cli, f *flags, args []string) error {
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s needs one FILE; run: %s --help", f.path, f.path)
	}
	if pub, perr := keys.LoadEscrowPublic(pos[0]); perr == nil {
		_, err = fmt.Fprintf(c.stdout, "%s (public)\n", pub.ID())
		return err
	}
	p, err := keys.LoadEscrowKey(pos[0])
	if err != nil {
		return fmt.Errorf("%s is neither an escrow public key file nor a private one: %w", pos[0], err)
	}
	_, err = fmt.Fprintf(c.stdout, "%s (private)\n", p.ID())
	return err
}

func escrowPaper(c *cli, f *flags, args []string) error {
	out := f.String("out", "", "HTML page to create (must not exist; mode 0600)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s needs the escrow private key FILE; run: %s --help", f.path, f.path)
	}
	if err := f.required("out", *out); err != nil {
		return err
	}
	p, err := keys.LoadEscrowKey(pos[0])
	if err != nil {
		return err
	}
	page := paperHTML(p, time.Now())
	defer clear(page)
	if err := writeNewPrivateFile("escrow paper page", *out, page); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "wrote the paper page of escrow key %s to %s (mode 0600): print it, check it with\n"+
		"  tapekey escrow unpaper TYPED.txt --out check.key   (type the groups back)\nthen delete the page.\n", p.ID(), *out)
	return err
}

// paperHTML is the printable page: the paper text as large checked groups,
// the escrow key id, and how to type it back.
func paperHTML(p *keys.EscrowPrivate, now time.Time) []byte {
	text := p.PaperText()
	var rows strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		rows.WriteString("<div class=\"row\">" + html.EscapeString(line) + "</div>\n")
	}
	id := html.EscapeString(p.ID())
	return []byte(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Tapeward escrow key ` + id + `</title>
<style>
body { font-family: sans-serif; margin: 2cm; }
.key { font-family: "DejaVu Sans Mono", monospace; font-size: 20pt; letter-spacing: 0.08em; border: 1px solid #000; padding: 0.6cm; margin: 0.8cm 0; }
.row { white-space: pre; line-height: 1.6; }
small { color: #444; }
</style></head><body>
<h1>Tapeward escrow private key</h1>
<p>Escrow key id <b>` + id + `</b> — printed ` + now.UTC().Format("2006-01-02 15:04 UTC") + `.</p>
<p>With this key and the tapes alone, every volume of a pool with this escrow key can be read:
its label carries the volume key sealed to this key. Keep this page as you keep the tapes' keys:
in a safe, off-site, apart from the tapes. Anyone who holds it can read those tapes.</p>
<div class="key">
` + rows.String() + `</div>
<h2>Typing it back</h2>
<p>Type the lines above into a text file (the first two lines too; case, line numbers and hyphens
do not matter; each group's last character is its check), then:</p>
<pre>tapekey escrow unpaper TYPED.txt --out escrow.key
tapextract extract --volume VOLUME --to /restore --escrow-key escrow.key …</pre>
<p><small>A typo is reported with its group number; the id line checks the whole key.
tapextract also takes the typed file itself: --escrow-key TYPED.txt.</small></p>
</body></html>
`)
}

func escrowUnpaper(c *cli, f *flags, args []string) error {
	out := f.String("out", "", "escrow private key file to create (must not exist; mode 0600)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s needs the TYPED file; run: %s --help", f.path, f.path)
	}
	if err := f.required("out", *out); err != nil {
		return err
	}
	typed, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("typed paper file: %w", err)
	}
	defer clear(typed)
	p, err := keys.ParsePaper(string(typed))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	content, err := p.MarshalPrivate()
	if err != nil {
		return err
	}
	defer clear(content)
	if err := writeNewPrivateFile("escrow private key file", *out, content); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "escrow key %s: wrote %s (mode 0600); the id matches the paper\n", p.ID(), *out)
	return err
}
