// Package pki makes the small certificate authority of a Tapeward
// installation: a CA and ECDSA P-256 certificates for the director, the
// storage daemons, the file daemons (role "client") and the consoles, in
// the form package proto/tlsconf expects (name in the Common Name, role in
// the OU). `tapekey pki init` and the tests use it; bring-your-own-CA
// setups only need to follow the same naming.
//
// Which certificate may do what:
//
//	role       extended key usage        DNS/IP names
//	director   serverAuth + clientAuth   its name, localhost, 127.0.0.1, ::1, --host
//	storage    serverAuth + clientAuth   the same
//	client     serverAuth + clientAuth   the same
//	console    clientAuth only           none (a console never serves)
//
// Leaves are valid for one year by default (Options.Validity). Revoking a
// certificate adds it to a revocation list (WriteRevocations; the format
// is package proto/tlsconf's), which works without the CA key.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// Issued is one certificate and its private key, PEM encoded.
type Issued struct {
	Name, Role string
	CertPEM    []byte
	KeyPEM     []byte
}

// Validity of issued certificates.
const (
	caValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long a director, storage, client or console
	// certificate is valid unless Options.Validity says otherwise.
	LeafValidity = 365 * 24 * time.Hour
)

// Roles are the roles a certificate may carry.
var Roles = []string{tlsconf.RoleDirector, tlsconf.RoleStorage, tlsconf.RoleClient, tlsconf.RoleConsole}

// Options tune Issue.
type Options struct {
	// Hosts are extra DNS names or IP addresses (server roles only).
	Hosts []string
	// Validity is how long the certificate is valid (default
	// LeafValidity); it never outlives the CA.
	Validity time.Duration
}

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Tapeward"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// CertPEM is the CA certificate, PEM encoded.
func (ca *CA) CertPEM() []byte { return ca.pem }

// KeyPEM is the CA's private key, PEM encoded (PKCS #8). Only
// `tapekey pki init` keeps it (unless --discard-ca-key), for issuing later.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteCAKey writes <dir>/ca.key (mode 0600), refusing to overwrite.
func (ca *CA) WriteCAKey(dir string) (string, error) {
	b, err := ca.KeyPEM()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "ca.key")
	return p, writeNew(p, b)
}

// LoadCA rebuilds a CA from its PEM certificate and PEM private key (as
// written by WriteCA and WriteCAKey). The certificate must be a CA
// certificate and the key must be an ECDSA key matching it.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("pki: the CA certificate is not a PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing the CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: certificate %q is not a CA certificate (it cannot sign certificates)", cert.Subject.CommonName)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: the CA key is not PEM")
	}
	var key *ecdsa.PrivateKey
	switch kb.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parsing the CA key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("pki: the CA key is a %T; this tool issues with ECDSA CA keys only", k)
		}
		key = ek
	case "EC PRIVATE KEY":
		if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return nil, fmt.Errorf("pki: parsing the CA key: %w", err)
		}
	default:
		return nil, fmt.Errorf("pki: the CA key is a PEM %q block; want PRIVATE KEY or EC PRIVATE KEY", kb.Type)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("pki: the CA key does not belong to CA certificate %q", cert.Subject.CommonName)
	}
	return &CA{Cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cb.Bytes})}, nil
}

// Issue makes a certificate for name with role and default options;
// hosts adds DNS names or IP addresses (server roles only).
func (ca *CA) Issue(name, role string, hosts ...string) (*Issued, error) {
	return ca.IssueWith(name, role, Options{Hosts: hosts})
}

// IssueWith makes a certificate for name with role ("director", "storage",
// "client", "console"). Director, storage and client certificates serve
// and call (serverAuth and clientAuth), carry the name as a DNS name plus
// localhost, 127.0.0.1 and ::1 for loopback setups, and o.Hosts; console
// certificates only call (clientAuth, no DNS or IP names), so a console's
// holder cannot pose as a daemon.
func (ca *CA) IssueWith(name, role string, o Options) (*Issued, error) {
	if name == "" || role == "" {
		return nil, errors.New("pki: a certificate needs a name and a role")
	}
	if !slices.Contains(Roles, role) {
		return nil, fmt.Errorf("pki: role %q: use one of director, storage, client, console", role)
	}
	server := slices.Contains(tlsconf.ServerRoles, role)
	if !server && len(o.Hosts) > 0 {
		return nil, fmt.Errorf("pki: a %s certificate never serves, so it takes no host names (%v)", role, o.Hosts)
	}
	if o.Validity < 0 {
		return nil, fmt.Errorf("pki: validity %v is negative", o.Validity)
	}
	if o.Validity == 0 {
		o.Validity = LeafValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(o.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("pki: a certificate valid until %s would outlive the CA %q (valid until %s); issue it for fewer days",
			notAfter.UTC().Format(time.DateOnly), ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}, Organization: []string{"Tapeward"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{name, "localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		for _, h := range o.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{
		Name:    name,
		Role:    role,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// WriteFiles writes <dir>/<name>.crt and <dir>/<name>.key (both mode
// 0600), refusing to overwrite existing files.
func (i *Issued) WriteFiles(dir string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, i.Name+".crt")
	keyPath = filepath.Join(dir, i.Name+".key")
	if err := writeNew(certPath, i.CertPEM); err != nil {
		return "", "", err
	}
	if err := writeNew(keyPath, i.KeyPEM); err != nil {
		os.Remove(certPath)
		return "", "", err
	}
	return certPath, keyPath, nil
}

// WriteCA writes <dir>/ca.crt (mode 0600; the CA's private key is not
// written: a new installation issues its certificates at init time).
func (ca *CA) WriteCA(dir string) (string, error) {
	p := filepath.Join(dir, "ca.crt")
	return p, writeNew(p, ca.pem)
}

func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
