package main

import (
	"fmt"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

var masterKeysetGroup = &group{
	name:    "master-keyset",
	summary: "the Tink AEAD keyset that seals KEK files at rest",
	commands: []*command{
		{
			name:     "new",
			synopsis: "--out FILE",
			summary:  "make a new Tink AES-256-GCM master keyset (cleartext JSON, mode 0600, never overwrites)",
			run:      masterKeysetNew,
		},
	},
}

func masterKeysetNew(c *cli, f *flags, args []string) error {
	out := f.String("out", "", "master keyset file to create (must not exist)")
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
	content, err := keys.NewMasterKeysetJSON()
	if err != nil {
		return err
	}
	defer clear(content)
	if err := writeNewPrivateFile("master keyset file", *out, content); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "wrote master keyset %s (mode 0600); keep it apart from the sealed KEK files\n", *out)
	return err
}
