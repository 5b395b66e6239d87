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
	"slices"
	"strings"
	"time"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
)

var pkiGroup = &group{
	name:    "pki",
	summary: "a small certificate authority for the director, storage daemons, clients and consoles (mutual TLS)",
	commands: []*command{
		{
			name:     "init",
			synopsis: "--dir DIR --director NAME [--storage NAME ...] [--client NAME ...] [--console NAME ...] [--host NAME|IP ...] [--days N] [--discard-ca-key]",
			summary:  "make a CA, one certificate + key per name (mode 0600, never overwrites) and an empty revocation list; prints what it made",
			detail: "Each certificate carries its name in the Common Name and its role (director, storage,\n" +
				"client, console) in the Organizational Unit, as the daemons expect; both sides of every\n" +
				"link check the other's role and name. Director, storage and client certificates may\n" +
				"serve: they carry the name as a DNS name plus localhost, 127.0.0.1, ::1 and every --host.\n" +
				"Console certificates only call (clientAuth, no DNS or IP names), so a console cannot\n" +
				"pose as a daemon. Names are what the configs call the daemons and consoles (director.toml\n" +
				"name, storaged.toml name, tapectl.toml name). Certificates are valid for --days (365).\n" +
				"DIR is created with mode 0700; DIR/revoked.txt (mode 0644) is the revocation list that\n" +
				"`tapekey pki revoke` adds to. No file is written unless none of them exists yet.\n" +
				"The CA's private key is kept in DIR/ca.key (mode 0600): `tapekey pki issue` needs it to add\n" +
				"a certificate later (a second storage daemon, another console). Move it offline once you\n" +
				"are done; --discard-ca-key throws it away instead (no certificate can be added then).",
			run: pkiInit,
		},
		{
			name:     "issue",
			synopsis: "--dir DIR --ca-key FILE --name NAME --role director|storage|client|console [--ca-cert FILE] [--host NAME|IP ...] [--days N]",
			summary:  "issue one more certificate + key with the CA key pki init kept (DIR/ca.key)",
			run:      pkiIssue,
		},
		{
			name:     "revoke",
			synopsis: "SERIAL|CERTFILE [--dir DIR | --list FILE] [--reason TEXT]",
			summary:  "add a certificate to the revocation list (DIR/revoked.txt); the daemons refuse it at their next handshake",
			detail: "SERIAL is the hexadecimal serial number `tapekey pki list` shows; CERTFILE a certificate\n" +
				"file. The list (format: package proto/tlsconf) is rewritten atomically with mode 0644;\n" +
				"it needs no CA key. Every daemon and console whose [tls] revocation_list points at it\n" +
				"(or at a copy of it) re-reads it when it changes, and the daemons on SIGHUP.",
			run: pkiRevoke,
		},
		{
			name:     "list",
			synopsis: "[--dir DIR] [--list FILE]",
			summary:  "show every certificate in DIR: name, role, serial, expiry, and whether it is revoked",
			run:      pkiList,
		},
	},
}

// pkiRoles are the roles a certificate may carry (package proto/tlsconf).
var pkiRoles = pki.Roles

// daysFlag defines --days and returns a function that checks it.
func daysFlag(f *flags) func() (time.Duration, error) {
	days := f.Int("days", int(pki.LeafValidity/(24*time.Hour)), "days the certificates are valid")
	return func() (time.Duration, error) {
		if *days < 1 || *days > 3650 {
			return 0, usagef("%s: --days %d: give 1 to 3650", f.path, *days)
		}
		return time.Duration(*days) * 24 * time.Hour, nil
	}
}

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
	var directors, storages, clients, consoles, hosts multiFlag
	f.Var(&directors, "director", "name of a director certificate (repeatable)")
	f.Var(&storages, "storage", "name of a storage daemon certificate (repeatable)")
	f.Var(&clients, "client", "name of a client (file daemon) certificate (repeatable)")
	f.Var(&consoles, "console", "name of a console certificate (repeatable)")
	f.Var(&hosts, "host", "extra DNS name or IP address for every director, storage and client certificate (repeatable)")
	validity := daysFlag(f)
	// The CA key is kept by default (a second storage needs it).
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
	days, err := validity()
	if err != nil {
		return err
	}
	*keepCAKey = *keepFlag && !*discardCAKey
	var targets []pkiTarget
	seen := map[string]string{}
	for _, g := range []struct {
		role  string
		names multiFlag
	}{{"director", directors}, {"storage", storages}, {"client", clients}, {"console", consoles}} {
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
	paths := []string{filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, pki.RevocationListName)}
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
		o := pki.Options{Validity: days}
		if slices.Contains(tlsconf.ServerRoles, t.role) {
			o.Hosts = splitNames(hosts)
		}
		is, err := ca.IssueWith(t.name, t.role, o)
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
	revPath := filepath.Join(*dir, pki.RevocationListName)
	if err := pki.WriteRevocations(revPath, nil); err != nil {
		return undo(err)
	}
	written = append(written, revPath)
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
	fmt.Fprintf(c.stdout, "revocation list %s (empty; tapekey pki revoke adds to it)\n", revPath)
	return nil
}

func pkiIssue(c *cli, f *flags, args []string) error {
	dir := f.String("dir", "", "directory to write NAME.crt and NAME.key into")
	caKey := f.String("ca-key", "", "the CA's private key (DIR/ca.key, which pki init keeps)")
	caCert := f.String("ca-cert", "", "the CA certificate (default: DIR/ca.crt)")
	name := f.String("name", "", "the certificate's name (Common Name and DNS name)")
	role := f.String("role", "", "director, storage, client or console")
	var hosts multiFlag
	f.Var(&hosts, "host", "extra DNS name or IP address (repeatable; not for consoles)")
	validity := daysFlag(f)
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
	if *role == tlsconf.RoleConsole && len(hosts) > 0 {
		return usagef("%s: a console certificate never serves, so it takes no --host", f.path)
	}
	days, err := validity()
	if err != nil {
		return err
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
	is, err := ca.IssueWith(*name, *role, pki.Options{Hosts: splitNames(hosts), Validity: days})
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

// pkiRevoke adds one certificate to the revocation list.
func pkiRevoke(c *cli, f *flags, args []string) error {
	dir := f.String("dir", "", "the certificates' directory (list: DIR/revoked.txt; a SERIAL is looked up here for its name)")
	list := f.String("list", "", "the revocation list file (default DIR/revoked.txt)")
	reason := f.String("reason", "", "why, recorded in the list (e.g. \"laptop stolen\")")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s takes one SERIAL or CERTFILE (got %d); run: %s --help", f.path, len(pos), f.path)
	}
	if *list == "" {
		if *dir == "" {
			return usagef("%s needs --dir DIR (the list is DIR/%s) or --list FILE; run: %s --help", f.path, pki.RevocationListName, f.path)
		}
		*list = filepath.Join(*dir, pki.RevocationListName)
	}
	r := tlsconf.Revocation{At: time.Now().UTC().Truncate(time.Second), Reason: *reason}
	if st, err := os.Stat(pos[0]); err == nil && st.Mode().IsRegular() {
		b, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		cert, err := parseCertPEM(b)
		if err != nil {
			return fmt.Errorf("%s: %v (give a PEM certificate file or a serial number)", pos[0], err)
		}
		p := tlsconf.PeerOfCert(cert)
		r.Serial, r.Name, r.Role = cert.SerialNumber, p.Name, p.Role
	} else {
		if r.Serial, err = tlsconf.ParseSerial(pos[0]); err != nil {
			return usagef("%s: %v, nor a certificate file", f.path, err)
		}
		if *dir != "" {
			certs, err := dirCerts(*dir)
			if err != nil {
				return err
			}
			for _, dc := range certs {
				if dc.cert.SerialNumber.Cmp(r.Serial) == 0 {
					p := tlsconf.PeerOfCert(dc.cert)
					r.Name, r.Role = p.Name, p.Role
				}
			}
		}
	}
	if err := pki.Revoke(*list, r); err != nil {
		return err
	}
	who := "serial " + tlsconf.FormatSerial(r.Serial)
	if r.Name != "" {
		who = fmt.Sprintf("%s %q (serial %s)", r.Role, r.Name, tlsconf.FormatSerial(r.Serial))
	}
	fmt.Fprintf(c.stdout, "revoked %s on %s; written to %s\n", who, r.At.Format(time.RFC3339), *list)
	fmt.Fprintln(c.stdout, "every daemon and console whose [tls] revocation_list is this file refuses it at the next handshake; copy the file to hosts that keep their own copy")
	return nil
}

// dirCert is one certificate file of a PKI directory.
type dirCert struct {
	path string
	cert *x509.Certificate
}

// dirCerts reads every *.crt of dir, sorted by file name.
func dirCerts(dir string) ([]dirCert, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s holds no certificate (*.crt); give the directory tapekey pki init wrote", dir)
	}
	slices.Sort(paths)
	var out []dirCert
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		cert, err := parseCertPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		out = append(out, dirCert{p, cert})
	}
	return out, nil
}

// pkiList shows the certificates of a PKI directory.
func pkiList(c *cli, f *flags, args []string) error {
	dir := f.String("dir", ".", "the certificates' directory")
	list := f.String("list", "", "the revocation list (default DIR/revoked.txt, if it exists)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if err := f.noArgs(pos); err != nil {
		return err
	}
	if *list == "" {
		*list = filepath.Join(*dir, pki.RevocationListName)
	} else if _, err := os.Stat(*list); err != nil {
		return err
	}
	revs, err := pki.ReadRevocations(*list)
	if err != nil {
		return err
	}
	revoked := map[string]tlsconf.Revocation{}
	for _, r := range revs {
		revoked[tlsconf.FormatSerial(r.Serial)] = r
	}
	certs, err := dirCerts(*dir)
	if err != nil {
		return err
	}
	now := time.Now()
	fmt.Fprintf(c.stdout, "%-14s %-9s %-34s %-10s %s\n", "NAME", "ROLE", "SERIAL", "EXPIRES", "STATUS")
	for _, dc := range certs {
		p := tlsconf.PeerOfCert(dc.cert)
		if dc.cert.IsCA {
			p.Name, p.Role = dc.cert.Subject.CommonName, "CA"
		}
		serial := tlsconf.FormatSerial(dc.cert.SerialNumber)
		status := "valid"
		switch r, ok := revoked[serial]; {
		case ok:
			status = "REVOKED " + r.At.Format(time.RFC3339)
			if r.Reason != "" {
				status += " (" + r.Reason + ")"
			}
		case now.After(dc.cert.NotAfter):
			status = "EXPIRED"
		case dc.cert.NotAfter.Sub(now) < 30*24*time.Hour:
			status = fmt.Sprintf("expires in %d days", int(dc.cert.NotAfter.Sub(now).Hours()/24))
		}
		fmt.Fprintf(c.stdout, "%-14s %-9s %-34s %-10s %s\n", p.Name, p.Role, serial, dc.cert.NotAfter.UTC().Format(time.DateOnly), status)
	}
	fmt.Fprintf(c.stdout, "%d certificate(s) in %s; %d revoked in %s\n", len(certs), *dir, len(revs), *list)
	return nil
}
