package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tapeward/tapeward/tools/lib/pki"
)

var pkiGroup = &group{
	name:    "pki",
	summary: "a small certificate authority for the director, storage daemons and consoles (mutual TLS)",
	commands: []*command{
		{
			name:     "init",
			synopsis: "--dir DIR --director NAME [--storage NAME ...] [--console NAME ...] [--host NAME|IP ...] [--discard-ca-key]",
			summary:  "make a CA and one certificate + key per name (mode 0600, never overwrites); prints what it made",
			detail: "Each certificate carries its name in the Common Name and as a DNS name (plus localhost,\n" +
				"127.0.0.1 and ::1, and every --host), and its role (director, storage, console) in the\n" +
				"Organizational Unit, as the daemons expect. Names are what the configs call the daemons\n" +
				"and consoles (director.toml name, storaged.toml name, tapectl.toml name).\n" +
				"DIR is created with mode 0700. No file is written unless none of them exists yet.\n" +
				"The CA's private key is kept in DIR/ca.key (mode 0600): `tapekey pki issue` needs it to add\n" +
				"a certificate later (a second storage daemon, another console). Move it offline once you\n" +
				"are done; --discard-ca-key throws it away instead (no certificate can be added then).",
			run: pkiInit,
		},
		{
			name:     "issue",
			synopsis: "--dir DIR --ca-key FILE --name NAME --role director|storage|console [--ca-cert FILE] [--host NAME|IP ...]",
			summary:  "issue one more certificate + key with the CA key pki init kept (DIR/ca.key)",
			run:      pkiIssue,
		},
	},
}

// pkiRoles are the roles a certificate may carry (package proto/tlsconf).
var pkiRoles = []string{"director", "storage", "console"}

// pkiTarget is one certificate to issue.
type pkiTarget struct{ name, role string }

// splitNames flattens repeated and comma-separated flag values.
func splitNames(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// checkPKIName applies the configs package's name rule (letters, digits,
// '-', '_', '.'), which also keeps the name a safe file name.
func checkPKIName(f *flags, name string) error {
	if name == "" || name == "." || name == ".." {
		return usagef("%s: %q is not a usable name", f.path, name)
	}
	for _, c := range name {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return usagef("%s: name %q: use only letters, digits, '-', '_' and '.' (the name the configs use)", f.path, name)
		}
	}
	if name == "ca" {
		return usagef("%s: %q is reserved for the CA's own files (ca.crt, ca.key)", f.path, name)
	}
	return nil
}

func pkiInit(c *cli, f *flags, args []string) error {
	dir := f.String("dir", "", "directory for the CA certificate, certificates and keys (created with mode 0700)")
	var directors, storages, consoles, hosts multiFlag
	f.Var(&directors, "director", "name of a director certificate (repeatable)")
	f.Var(&storages, "storage", "name of a storage daemon certificate (repeatable)")
	f.Var(&consoles, "console", "name of a console certificate (repeatable)")
	f.Var(&hosts, "host", "extra DNS name or IP address for every certificate (repeatable)")
	// The CA key is kept by default (a second storage needs it); issue 9.
	discardCAKey := f.Bool("discard-ca-key", false, "do not keep the CA's private key (no certificate can be added later)")
	keepFlag := f.Bool("keep-ca-key", true, "keep the CA's private key in DIR/ca.key (mode 0600); the default, accepted for old scripts")
	keepCAKey := new(bool)
	caName := f.String("ca-name", "Tapeward CA", "Common Name of the CA certificate")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	if err := f.required("dir", *dir); err != nil {
		return err
	}
	*keepCAKey = *keepFlag && !*discardCAKey
	var targets []pkiTarget
	seen := map[string]string{}
	for _, g := range []struct {
		role  string
		names multiFlag
	}{{"director", directors}, {"storage", storages}, {"console", consoles}} {
		for _, n := range splitNames(g.names) {
			if err := checkPKIName(f, n); err != nil {
				return err
			}
			if r, dup := seen[n]; dup {
				return usagef("%s: name %q is given twice (as %s and %s); every certificate needs its own name", f.path, n, r, g.role)
			}
			seen[n] = g.role
			targets = append(targets, pkiTarget{n, g.role})
		}
	}
	if len(directors) == 0 {
		return usagef("%s needs --director NAME (the name in director.toml); run: %s --help", f.path, f.path)
	}
	if strings.TrimSpace(*caName) == "" {
		return usagef("%s: --ca-name is empty", f.path)
	}

	// All or nothing: every target must be free before anything is written.
	paths := []string{filepath.Join(*dir, "ca.crt")}
	if *keepCAKey {
		paths = append(paths, filepath.Join(*dir, "ca.key"))
	}
	for _, t := range targets {
		paths = append(paths, filepath.Join(*dir, t.name+".crt"), filepath.Join(*dir, t.name+".key"))
	}
	var exist []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			exist = append(exist, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking %s: %w", p, err)
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("refusing to overwrite existing file(s) %s; nothing was written (choose another --dir, or move them away first)", strings.Join(exist, ", "))
	}

	madeDir := false
	if st, err := os.Stat(*dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", *dir, err)
		}
		if err := os.Chmod(*dir, 0o700); err != nil { // umask-proof
			return err
		}
		madeDir = true
	} else if err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", *dir)
	}

	ca, err := pki.NewCA(*caName)
	if err != nil {
		return err
	}
	var issued []*pki.Issued
	for _, t := range targets {
		is, err := ca.Issue(t.name, t.role, splitNames(hosts)...)
		if err != nil {
			return err
		}
		issued = append(issued, is)
	}

	var written []string
	undo := func(err error) error {
		for _, p := range written {
			os.Remove(p)
		}
		if madeDir {
			os.Remove(*dir)
		}
		return fmt.Errorf("%w (nothing was kept)", err)
	}
	caPath, err := ca.WriteCA(*dir)
	if err != nil {
		return undo(err)
	}
	written = append(written, caPath)
	caKeyPath := ""
	if *keepCAKey {
		if caKeyPath, err = ca.WriteCAKey(*dir); err != nil {
			return undo(err)
		}
		written = append(written, caKeyPath)
	}
	type made struct {
		is       *pki.Issued
		crt, key string
		notAfter time.Time
	}
	var all []made
	for _, is := range issued {
		crt, key, err := is.WriteFiles(*dir)
		if err != nil {
			return undo(err)
		}
		written = append(written, crt, key)
		cert, err := parseCertPEM(is.CertPEM)
		if err != nil {
			return undo(err)
		}
		all = append(all, made{is: is, crt: crt, key: key, notAfter: cert.NotAfter})
	}
	if d, err := os.Open(*dir); err == nil {
		d.Sync()
		d.Close()
	}

	if madeDir {
		fmt.Fprintf(c.stdout, "created %s (mode 0700)\n", *dir)
	}
	fmt.Fprintf(c.stdout, "CA      %q  %s  expires %s  sha256 %s\n", ca.Cert.Subject.CommonName, caPath,
		ca.Cert.NotAfter.UTC().Format(time.DateOnly), certFingerprint(ca.Cert))
	if caKeyPath != "" {
		fmt.Fprintf(c.stdout, "CA key  %s (mode 0600): keep it offline; it signs new certificates\n", caKeyPath)
	} else {
		fmt.Fprintln(c.stdout, "CA key  not kept (--discard-ca-key): no certificate can be added to this CA later")
	}
	for _, m := range all {
		fmt.Fprintf(c.stdout, "%-8s %-12s %s  %s  expires %s\n", m.is.Role, m.is.Name, m.crt, m.key, m.notAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

func pkiIssue(c *cli, f *flags, args []string) error {
	dir := f.String("dir", "", "directory to write NAME.crt and NAME.key into")
	caKey := f.String("ca-key", "", "the CA's private key (DIR/ca.key, which pki init keeps)")
	caCert := f.String("ca-cert", "", "the CA certificate (default: DIR/ca.crt)")
	name := f.String("name", "", "the certificate's name (Common Name and DNS name)")
	role := f.String("role", "", "director, storage or console")
	var hosts multiFlag
	f.Var(&hosts, "host", "extra DNS name or IP address (repeatable)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	for _, r := range []struct{ n, v string }{{"dir", *dir}, {"ca-key", *caKey}, {"name", *name}, {"role", *role}} {
		if err := f.required(r.n, r.v); err != nil {
			return err
		}
	}
	if err := checkPKIName(f, *name); err != nil {
		return err
	}
	okRole := false
	for _, r := range pkiRoles {
		okRole = okRole || r == *role
	}
	if !okRole {
		return usagef("%s: --role %q: use one of %s", f.path, *role, strings.Join(pkiRoles, ", "))
	}
	if *caCert == "" {
		*caCert = filepath.Join(*dir, "ca.crt")
	}
	for _, p := range []string{filepath.Join(*dir, *name+".crt"), filepath.Join(*dir, *name+".key")} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it; nothing was written", p)
		}
	}
	if st, err := os.Stat(*caKey); err == nil && st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("CA key %s is readable by group or others (mode %04o); run: chmod 600 %s", *caKey, st.Mode().Perm(), *caKey)
	}
	certPEM, err := os.ReadFile(*caCert)
	if err != nil {
		return fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(*caKey)
	if err != nil {
		return fmt.Errorf("reading CA key: %w", err)
	}
	defer clear(keyPEM)
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("%s and %s: %w", *caCert, *caKey, err)
	}
	is, err := ca.Issue(*name, *role, splitNames(hosts)...)
	if err != nil {
		return err
	}
	crt, key, err := is.WriteFiles(*dir)
	if err != nil {
		return err
	}
	cert, err := parseCertPEM(is.CertPEM)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%-8s %-12s %s  %s  expires %s  (CA %q)\n", is.Role, is.Name, crt, key,
		cert.NotAfter.UTC().Format(time.DateOnly), ca.Cert.Subject.CommonName)
	return nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// certFingerprint is the SHA-256 of the certificate's DER, in hex.
func certFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
