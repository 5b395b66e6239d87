package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/tools/lib/bootstrap"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// keySource is where tapextract finds volume keys: a crypto cache
// (Tapeward's, or a Bareos .cryptoc) or an `export keys` file, and the
// KEKs that unwrap them. It never holds a volume key longer than a load.
type keySource struct {
	what   string // "the cache storaged.cryptocache", "the keys file keys.tsv"
	stored map[string][]keys.StoredKey
	ring   *keys.Keyring
	keks   []string // the KEK files given, for messages
	// escrow opens the envelopes in the labels (--escrow-key): no cache
	// and no KEK needed.
	escrow     *keys.EscrowPrivate
	escrowFile string
}

// keyFlags are the key-source flags every command takes.
type keyFlags struct {
	cache, keysFile, master, escrow *string
	keks, bareosKEKs                multiFlag
	// boot, when set (extract --bootstrap), is the key source: the
	// wrapped keys the catalog bootstrap file carries.
	boot     *bootstrap.File
	bootPath string
}

func addKeyFlags(f *flags) *keyFlags {
	k := &keyFlags{
		cache:    f.String("cache", "", "crypto cache: storaged's (storaged.cryptocache) or a Bareos one (.cryptoc), told apart by its first line"),
		keysFile: f.String("keys", "", "the director's \"export keys\" file (VOLUME<TAB>STORED<TAB>SCHEME<TAB>KEK_ID lines)"),
		master:   f.String("master", "", "master keyset file, for a Tink-sealed KEK file"),
		escrow: f.String("escrow-key", "", "escrow private key (tapekey escrow new/unpaper, or the paper's groups typed into a file, mode 0600): "+
			"opens the key envelope in each label; no cache, keys file or KEK needed"),
	}
	f.Var(&k.keks, "kek", "KEK file (plain hex or Tink-sealed with --master; for a Bareos cache, the Bareos KEK string file); repeatable")
	f.Var(&k.bareosKEKs, "bareos-kek", "Bareos KEK file, for keys of scheme bareos in a Tapeward cache or keys file; repeatable")
	return k
}

func (k *keyFlags) given() bool { return *k.cache != "" || *k.keysFile != "" }

// open loads the key source. An empty source (no --cache, no --keys) is
// allowed: every encrypted volume then says "no key".
func (k *keyFlags) open() (*keySource, error) {
	if *k.cache != "" && *k.keysFile != "" {
		return nil, usagef("give --cache or --keys, not both")
	}
	if k.boot != nil && k.given() {
		return nil, usagef("--bootstrap carries the keys: give it without --cache or --keys")
	}
	ring, err := keys.NewKeyring()
	if err != nil {
		return nil, err
	}
	ks := &keySource{stored: map[string][]keys.StoredKey{}, ring: ring, keks: append(append([]string(nil), k.keks...), k.bareosKEKs...)}
	if *k.escrow != "" {
		if ks.escrow, err = keys.LoadEscrowKey(*k.escrow); err != nil {
			return nil, err
		}
		ks.escrowFile = *k.escrow
	}
	ok := false
	defer func() {
		if !ok {
			ring.Destroy()
		}
	}()
	bareosCache := false
	switch {
	case *k.cache != "":
		ks.what = "the cache " + *k.cache
		bareosCache, err = isBareosCache(*k.cache)
		if err != nil {
			return nil, err
		}
		if bareosCache {
			bc, err := cryptocache.ReadBareosCache(*k.cache)
			if err != nil {
				return nil, err
			}
			ks.what = "the Bareos cache " + *k.cache
			for _, e := range bc.Entries {
				ks.stored[e.Volume] = append(ks.stored[e.Volume], e.Key)
			}
		} else {
			entries, err := cryptocache.ReadFile(*k.cache)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				ks.stored[e.Volume] = append(ks.stored[e.Volume], e.Key)
				// Older keys of the volume (before a rekey or rotation)
				// may be the one its label names.
				for i := len(e.History) - 1; i >= 0; i-- {
					ks.stored[e.Volume] = append(ks.stored[e.Volume], e.History[i].Key)
				}
			}
		}
	case *k.keysFile != "":
		ks.what = "the keys file " + *k.keysFile
		if err := ks.readExport(*k.keysFile); err != nil {
			return nil, err
		}
	case k.boot != nil:
		ks.what = "the bootstrap " + k.bootPath
		for _, v := range k.boot.Volumes {
			if v.Key != nil {
				ks.stored[v.Name] = append(ks.stored[v.Name], v.Key.StoredKey())
			}
		}
	}
	for _, p := range k.keks {
		if bareosCache {
			bk, err := keys.LoadBareosKEKFile(p)
			if err != nil {
				return nil, err
			}
			if err := ring.AddBareos(bk); err != nil {
				return nil, err
			}
			continue
		}
		kek, err := keys.LoadKEKFile(p, keys.LoadOptions{MasterKeysetPath: *k.master})
		if err != nil {
			return nil, err
		}
		if err := ring.Add(kek); err != nil {
			return nil, err
		}
	}
	for _, p := range k.bareosKEKs {
		bk, err := keys.LoadBareosKEKFile(p)
		if err != nil {
			return nil, err
		}
		if err := ring.AddBareos(bk); err != nil {
			return nil, err
		}
	}
	ok = true
	return ks, nil
}

func (ks *keySource) close() {
	if ks != nil && ks.ring != nil {
		ks.ring.Destroy()
	}
}

// isBareosCache tells a Bareos crypto cache by its first line.
func isBareosCache(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("crypto cache: %w", err)
	}
	defer f.Close()
	head := make([]byte, 20)
	n, _ := f.Read(head)
	return bytes.HasPrefix(head[:n], []byte("BAREOS Crypto Cache")), nil
}

// readExport reads the director's `export keys` output: comment lines,
// then VOLUME<TAB>STORED<TAB>SCHEME<TAB>KEK_ID.
func (ks *keySource) readExport(path string) error {
	if err := keys.CheckPrivateFile(path); err != nil {
		var pe *keys.PermissionError
		if !errors.As(err, &pe) {
			return fmt.Errorf("keys file: %w", err)
		}
		// Wrapped keys are not secrets without their KEK: warn only.
		fmt.Fprintf(os.Stderr, "tapextract: warning: %v\n", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 2 || len(f) > 4 || f[0] == "" || f[1] == "" {
			return fmt.Errorf("keys file %s line %d: want VOLUME<TAB>STORED[<TAB>SCHEME[<TAB>KEK_ID]] (the director's `export keys` output)", path, n)
		}
		sk := keys.StoredKey{Scheme: keys.SchemeV1, Value: f[1]}
		if len(f) > 2 && f[2] != "" {
			if sk.Scheme, err = keys.ParseScheme(f[2]); err != nil {
				return fmt.Errorf("keys file %s line %d: %v", path, n, err)
			}
		}
		if len(f) > 3 {
			sk.KEKID = f[3]
		}
		ks.stored[f[0]] = append(ks.stored[f[0]], sk)
	}
	return sc.Err()
}

// NoKeyError says why a volume's key cannot be had; it names the KEK id
// and fingerprint the label records, never key material.
type NoKeyError struct {
	Volume string
	Msg    string
}

func (e *NoKeyError) Error() string { return e.Msg }

// key returns the 32-byte drive key of an encrypted volume (the caller
// clears it), checked against the label's fingerprint.
func (ks *keySource) key(l label.Label) ([]byte, error) {
	k, _, err := ks.keyStored(l)
	return k, err
}

// escrowKey opens the envelope in the label with --escrow-key. why says
// why it could not, for the error.
func (ks *keySource) escrowKey(l label.Label) (k []byte, why string) {
	enc := l.Encryption
	if enc.EscrowEnvelope == "" {
		return nil, fmt.Sprintf("the label of %s carries no escrow envelope (its pool had no escrow_public_key when its key was made)", l.Volume)
	}
	k, err := ks.escrow.OpenEscrow(keys.Escrow{KeyID: enc.EscrowKeyID, Envelope: enc.EscrowEnvelope}, l.Volume, enc.Fingerprint)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", ks.escrowFile, err)
	}
	return k, ""
}

// keyStored is key with the stored (wrapped) key it came from, its KEK id
// filled in from the label when the source does not name it.
//
// With --escrow-key, the envelope in the label is opened when the cache or
// keys file has no usable key (or none was given): the key then comes with
// a zero StoredKey (no wrapped key exists off the tape), and the error, when
// both fail, says why the envelope did not serve.
func (ks *keySource) keyStored(l label.Label) ([]byte, keys.StoredKey, error) {
	k, sk, err := ks.keyStoredOnly(l)
	if err == nil || ks == nil || ks.escrow == nil {
		return k, sk, err
	}
	var nk *NoKeyError
	if !errors.As(err, &nk) {
		return nil, keys.StoredKey{}, err
	}
	ek, why := ks.escrowKey(l)
	if ek != nil {
		return ek, keys.StoredKey{}, nil
	}
	if ks.what == "" {
		enc := l.Encryption
		return nil, keys.StoredKey{}, &NoKeyError{Volume: l.Volume, Msg: fmt.Sprintf("no key for %s: %s; its label names KEK %s and fingerprint %s",
			l.Volume, why, dash(enc.KEKID), dash(enc.Fingerprint))}
	}
	nk.Msg += "; escrow: " + why
	return nil, keys.StoredKey{}, nk
}

// keyStoredOnly is keyStored from the cache or keys file alone.
func (ks *keySource) keyStoredOnly(l label.Label) ([]byte, keys.StoredKey, error) {
	enc := l.Encryption
	named := fmt.Sprintf("its label names KEK %s and fingerprint %s", dash(enc.KEKID), dash(enc.Fingerprint))
	if ks == nil || ks.what == "" {
		return nil, keys.StoredKey{}, &NoKeyError{Volume: l.Volume, Msg: fmt.Sprintf("no key for %s: no key source was given (--cache FILE --kek FILE, --keys FILE --kek FILE, or --escrow-key FILE); %s", l.Volume, named)}
	}
	cands := ks.stored[l.Volume]
	if len(cands) == 0 {
		return nil, keys.StoredKey{}, &NoKeyError{Volume: l.Volume, Msg: fmt.Sprintf("no key for %s in the cache or keys file (%s); %s", l.Volume, ks.what, named)}
	}
	var errs []string
	for _, sk := range cands {
		if enc.Fingerprint != "" && sk.Fingerprint != "" && sk.Fingerprint != enc.Fingerprint {
			errs = append(errs, fmt.Sprintf("a stored key with fingerprint %s (not the label's)", sk.Fingerprint))
			continue
		}
		if sk.KEKID == "" && sk.Scheme == keys.SchemeV1 {
			sk.KEKID = enc.KEKID
		}
		k, err := ks.ring.Unwrap(sk)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if fp := keys.Fingerprint(k); enc.Fingerprint != "" && fp != enc.Fingerprint {
			clear(k)
			errs = append(errs, fmt.Sprintf("a stored key that unwraps to fingerprint %s (not the label's)", fp))
			continue
		}
		if sk.Fingerprint == "" {
			sk.Fingerprint = keys.Fingerprint(k)
		}
		return k, sk, nil
	}
	kekHint := ""
	if len(ks.keks) == 0 {
		kekHint = "; no --kek was given"
	}
	return nil, keys.StoredKey{}, &NoKeyError{Volume: l.Volume, Msg: fmt.Sprintf("no usable key for %s in %s: %s%s; %s", l.Volume, ks.what, strings.Join(errs, "; "), kekHint, named)}
}

// has says whether the source lists a key for volume (not whether it
// unwraps).
func (ks *keySource) has(volume string) bool {
	return ks != nil && len(ks.stored[volume]) > 0
}

// storedFor is the stored key recipe prints for volume (the first that
// matches the label's fingerprint, or the first).
func (ks *keySource) storedFor(l label.Label) (keys.StoredKey, bool) {
	if ks == nil {
		return keys.StoredKey{}, false
	}
	cands := ks.stored[l.Volume]
	for _, sk := range cands {
		if sk.Fingerprint == "" || sk.Fingerprint == l.Encryption.Fingerprint {
			if sk.KEKID == "" && sk.Scheme == keys.SchemeV1 {
				sk.KEKID = l.Encryption.KEKID
			}
			return sk, true
		}
	}
	return keys.StoredKey{}, false
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
