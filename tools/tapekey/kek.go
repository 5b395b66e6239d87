package main

import (
	"fmt"
	"io"
	"os"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

var kekGroup = &group{
	name:    "kek",
	summary: "key encryption key files (plain hex or Tink-sealed)",
	commands: []*command{
		{
			name:     "new",
			synopsis: "--out FILE [--seal-with MASTER] [--json]",
			summary:  "make a new random KEK file (mode 0600, never overwrites); prints its KEK id",
			run:      kekNew,
		},
		{
			name:     "id",
			synopsis: "FILE [--master MASTER] [--scheme bareos] [--json]",
			summary:  "print the KEK id of a plain, sealed (--master) or Bareos KEK file",
			run:      kekID,
		},
	},
}

type kekInfo struct {
	KEKID  string `json:"kek_id"`
	File   string `json:"file"`
	Scheme string `json:"scheme"`
	Sealed bool   `json:"sealed"`
}

func kekNew(c *cli, f *flags, args []string) error {
	out := f.String("out", "", "KEK file to create (must not exist)")
	sealWith := f.String("seal-with", "", "master keyset file: seal the KEK with Tink instead of writing it in clear")
	asJSON := f.Bool("json", false, "print JSON")
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
	var master *keys.MasterKeyset
	if *sealWith != "" {
		if master, err = keys.LoadMasterKeyset(*sealWith); err != nil {
			return err
		}
	}
	kek, err := keys.GenerateKEK()
	if err != nil {
		return err
	}
	defer kek.Destroy()
	var content []byte
	if master != nil {
		content, err = master.SealKEK(kek)
		if err != nil {
			return err
		}
	} else {
		content = keys.EncodeKEKHex(kek)
	}
	defer clear(content)
	if err := writeNewPrivateFile("KEK file", *out, content); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, kekInfo{KEKID: kek.ID(), File: *out, Scheme: string(keys.SchemeV1), Sealed: master != nil})
	}
	_, err = fmt.Fprintln(c.stdout, kek.ID())
	return err
}

func kekID(c *cli, f *flags, args []string) error {
	master := f.String("master", "", "master keyset file, for a sealed KEK file")
	scheme := f.String("scheme", "v1", `"v1" (a Tapeward KEK file) or "bareos" (a file holding a Bareos KEK string)`)
	asJSON := f.Bool("json", false, "print JSON")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s needs exactly one KEK file (got %d arguments); run: %s --help", f.path, len(pos), f.path)
	}
	path := pos[0]
	info := kekInfo{File: path, Scheme: *scheme}
	switch *scheme {
	case string(keys.SchemeV1):
		kek, err := loadKEK(path, *master)
		if err != nil {
			return err
		}
		defer kek.Destroy()
		info.KEKID = kek.ID()
		info.Sealed, err = isSealed(path)
		if err != nil {
			return err
		}
	case string(keys.SchemeBareos):
		if *master != "" {
			return usagef("%s: --master applies to Tapeward KEK files, not --scheme bareos", f.path)
		}
		kek, err := keys.LoadBareosKEKFile(path)
		if err != nil {
			return err
		}
		defer kek.Destroy()
		info.KEKID = kek.ID()
	default:
		return usagef("%s: unknown --scheme %q; use v1 or bareos", f.path, *scheme)
	}
	if *asJSON {
		return printJSON(c.stdout, info)
	}
	_, err = fmt.Fprintln(c.stdout, info.KEKID)
	return err
}

// isSealed reports whether a KEK file that has just loaded is a sealed one.
func isSealed(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(keys.SealedKEKHeader))
	n, _ := io.ReadFull(f, head)
	return string(head[:n]) == keys.SealedKEKHeader, nil
}
