package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

var wrapGroup = &group{
	name:    "wrap",
	summary: "wrap a key read from stdin",
	leaf: &command{
		synopsis: "[--scheme v1|bareos] --kek FILE [--master MASTER] | --raw --kek-hex-file FILE",
		summary:  "wrap the key on stdin and print the wrapped form",
		detail: "stdin → stdout:\n" +
			"  v1 (default)    64 hex characters of a volume key → 54-character stored string\n" +
			"  --scheme bareos a 32-character passphrase → 54-character Bareos string (--kek is a Bareos KEK file)\n" +
			"  --raw           hex data (16+ bytes, 8-byte steps) → plain RFC 3394 wrap in hex\n" +
			rawKEKHelp,
		run: func(c *cli, f *flags, args []string) error { return wrapOrUnwrap(c, f, args, true) },
	},
}

var unwrapGroup = &group{
	name:    "unwrap",
	summary: "unwrap a stored or wrapped key read from stdin",
	leaf: &command{
		synopsis: "[--scheme v1|bareos] --kek FILE [--master MASTER] | --raw --kek-hex-file FILE",
		summary:  "unwrap the string on stdin and print the key (the only command that prints a key)",
		detail: "stdin → stdout:\n" +
			"  v1 (default)    54-character stored string → volume key in hex\n" +
			"  --scheme bareos 54- or 43-character Bareos string → 32-character passphrase (--kek: a Bareos KEK file; not needed for 43)\n" +
			"  --raw           wrapped hex → plain RFC 3394 unwrap in hex\n" +
			rawKEKHelp,
		run: func(c *cli, f *flags, args []string) error { return wrapOrUnwrap(c, f, args, false) },
	},
}

// rawKEKHelp says where --raw takes its KEK from.
const rawKEKHelp = "--raw reads the KEK (32, 48 or 64 hex characters) from --kek-hex-file FILE (its first line;\n" +
	"keep it mode 0600). --kek-hex HEX still works but puts the KEK on the command line, where\n" +
	"the process list and the shell history show it: tapekey warns; use it for public test vectors only."

func wrapOrUnwrap(c *cli, f *flags, args []string, wrap bool) error {
	schemeFlag := f.String("scheme", "v1", `stored-key scheme: "v1" or "bareos"`)
	kekPath := f.String("kek", "", "KEK file: a Tapeward KEK file (plain, or sealed with --master), or for --scheme bareos a Bareos KEK file")
	master := f.String("master", "", "master keyset file, for a sealed KEK file")
	raw := f.Bool("raw", false, "plain RFC 3394 on hex, for interoperability checks (needs --kek-hex-file)")
	kekHexFile := f.String("kek-hex-file", "", "with --raw: a file whose first line is the KEK as 32, 48 or 64 hex characters")
	kekHex := f.String("kek-hex", "", "with --raw: the KEK as hex on the command line (deprecated: visible in the process list and shell history; tapekey warns — use --kek-hex-file)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if *raw {
		if set["kek"] || set["master"] || set["scheme"] {
			return usagef("%s: --raw takes only --kek-hex-file (not --kek, --master or --scheme)", f.path)
		}
		switch {
		case set["kek-hex"] && set["kek-hex-file"]:
			return usagef("%s: give the KEK once: --kek-hex-file FILE (or the deprecated --kek-hex), not both", f.path)
		case set["kek-hex-file"]:
			return rawWrapFile(c, f, *kekHexFile, wrap)
		case set["kek-hex"]:
			fmt.Fprintf(c.stderr, "%s: warning: --kek-hex puts the KEK on the command line (the process list and shell history show it); use --kek-hex-file FILE\n", f.path)
			return rawWrap(c, f, "--kek-hex", []byte(*kekHex), wrap)
		}
		return usagef("%s: --raw needs --kek-hex-file FILE (a file whose first line is the KEK in hex)", f.path)
	}
	if set["kek-hex"] || set["kek-hex-file"] {
		return usagef("%s: --kek-hex-file and --kek-hex are only for --raw", f.path)
	}
	scheme, err := keys.ParseScheme(*schemeFlag)
	if err != nil {
		return usagef("%s: %v", f.path, err)
	}
	if scheme == keys.SchemeBareos {
		if *master != "" {
			return usagef("%s: --master applies to Tapeward KEK files, not --scheme bareos", f.path)
		}
		if wrap {
			if err := f.required("kek", *kekPath); err != nil {
				return err
			}
		}
		return bareosWrap(c, *kekPath, wrap)
	}
	if err := f.required("kek", *kekPath); err != nil {
		return err
	}
	kek, err := loadKEK(*kekPath, *master)
	if err != nil {
		return err
	}
	defer kek.Destroy()
	if wrap {
		in, err := readLine(c, "volume key (64 hex characters)", "echo <key hex> | tapekey wrap --kek FILE")
		if err != nil {
			return err
		}
		defer clear(in)
		key, err := keys.DecodeHex("volume key on stdin", string(in), keys.VolumeKeyLen)
		if err != nil {
			return err
		}
		defer clear(key)
		sk, err := keys.WrapV1(kek, key)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, sk.Value)
		return err
	}
	in, err := readLine(c, "stored v1 key (54 base64 characters)", "echo <stored string> | tapekey unwrap --kek FILE")
	if err != nil {
		return err
	}
	defer clear(in)
	key, err := keys.UnwrapV1(kek, string(in))
	if err != nil {
		return err
	}
	defer clear(key)
	return printHex(c, key)
}

func bareosWrap(c *cli, kekPath string, wrap bool) error {
	var kek *keys.BareosKEK
	if kekPath != "" {
		var err error
		if kek, err = keys.LoadBareosKEKFile(kekPath); err != nil {
			return err
		}
		defer kek.Destroy()
	}
	if wrap {
		in, err := readLine(c, "Bareos passphrase (32 characters)", "echo <passphrase> | tapekey wrap --scheme bareos --kek FILE")
		if err != nil {
			return err
		}
		defer clear(in)
		s, err := keys.WrapBareos(kek, in)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, s)
		return err
	}
	in, err := readLine(c, "stored bareos key (54 or 43 base64 characters)", "echo <bareos string> | tapekey unwrap --scheme bareos --kek FILE")
	if err != nil {
		return err
	}
	defer clear(in) // the 43-character form is the passphrase itself
	p, err := keys.UnwrapBareos(kek, string(in))
	if err != nil {
		return err
	}
	defer clear(p)
	out := append(p, '\n')
	defer clear(out)
	_, err = c.stdout.Write(out)
	return err
}

// rawWrapFile reads the KEK hex of --raw from the first line of path.
func rawWrapFile(c *cli, f *flags, path string, wrap bool) error {
	if path == "" {
		return usagef("%s: --kek-hex-file needs a file name", f.path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the KEK of --kek-hex-file: %w", unwrapPath(err))
	}
	defer clear(b)
	line := b
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	return rawWrap(c, f, "--kek-hex-file "+path, bytes.TrimSpace(line), wrap)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// rawWrap is --raw with the KEK's hex (from; what the messages call it).
func rawWrap(c *cli, f *flags, from string, kekHex []byte, wrap bool) error {
	kek, err := keys.DecodeHex(from, string(kekHex), 0)
	if err != nil {
		return usagef("%s: %v", f.path, err)
	}
	defer clear(kek)
	if n := len(kek); n != 16 && n != 24 && n != 32 {
		return usagef("%s: %s must be 32, 48 or 64 hex characters (a 16-, 24- or 32-byte AES key); got %d", f.path, from, 2*n)
	}
	what, example := "data to wrap (hex)", "echo <data hex> | tapekey wrap --raw --kek-hex-file FILE"
	if !wrap {
		what, example = "wrapped key (hex)", "echo <wrapped hex> | tapekey unwrap --raw --kek-hex-file FILE"
	}
	in, err := readLine(c, what, example)
	if err != nil {
		return err
	}
	defer clear(in)
	data, err := keys.DecodeHex(what+" on stdin", string(in), 0)
	if err != nil {
		return err
	}
	defer clear(data)
	var out []byte
	if wrap {
		out, err = keys.Wrap(kek, data)
	} else {
		out, err = keys.Unwrap(kek, data)
	}
	if err != nil {
		return err
	}
	defer clear(out)
	return printHex(c, out)
}

// printHex prints b as lower-case hex and a newline, zeroing its buffer.
func printHex(c *cli, b []byte) error {
	out := make([]byte, 2*len(b)+1)
	defer clear(out)
	hex.Encode(out, b)
	out[len(out)-1] = '\n'
	_, err := c.stdout.Write(out)
	return err
}
