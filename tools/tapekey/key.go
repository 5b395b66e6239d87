package main

import (
	"fmt"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

var keyGroup = &group{
	name:    "key",
	summary: "volume keys",
	commands: []*command{
		{
			name:     "new",
			synopsis: "--kek FILE [--master MASTER] [--json]",
			summary:  "make a new 256-bit volume key wrapped v1; prints the stored string, KEK id and fingerprint (never the key)",
			run:      keyNew,
		},
	},
}

type storedKeyInfo struct {
	StoredKey   string `json:"stored_key"`
	Scheme      string `json:"scheme"`
	KEKID       string `json:"kek_id"`
	Fingerprint string `json:"fingerprint"`
}

func keyNew(c *cli, f *flags, args []string) error {
	kekPath := f.String("kek", "", "KEK file (plain, or sealed with --master)")
	master := f.String("master", "", "master keyset file, for a sealed KEK file")
	asJSON := f.Bool("json", false, "print JSON")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	if err := f.required("kek", *kekPath); err != nil {
		return err
	}
	kek, err := loadKEK(*kekPath, *master)
	if err != nil {
		return err
	}
	ring, err := keys.NewKeyring(kek)
	if err != nil {
		return err
	}
	defer ring.Destroy()
	sk, err := ring.WrapNew()
	if err != nil {
		return err
	}
	info := storedKeyInfo{StoredKey: sk.Value, Scheme: string(sk.Scheme), KEKID: sk.KEKID, Fingerprint: sk.Fingerprint}
	if *asJSON {
		return printJSON(c.stdout, info)
	}
	_, err = fmt.Fprintf(c.stdout, "stored_key:  %s\nscheme:      %s\nkek_id:      %s\nfingerprint: %s\n",
		info.StoredKey, info.Scheme, info.KEKID, info.Fingerprint)
	return err
}
