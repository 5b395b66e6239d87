package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
)

// Impostor signs, with ca, a certificate for name with role that may
// serve (serverAuth) and carries dnsNames besides its name, localhost and
// the loopback addresses, as `tapekey pki` issued every certificate before
// clients checked the server's role and name: the holder of a console
// certificate could then answer as "director". It writes it with the CA
// certificate into a fresh directory under dir. Tests play impostors with
// it.
func Impostor(t testing.TB, ca *pki.CA, dir, name, role string, dnsNames ...string) tlsconf.Files {
	t.Helper()
	caPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(caPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}, Organization: []string{"Tapeward"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     append([]string{name, "localhost"}, dnsNames...),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := os.MkdirTemp(dir, "impostor-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	f := tlsconf.Files{CA: filepath.Join(sub, "ca.crt"), Cert: filepath.Join(sub, name+".crt"), Key: filepath.Join(sub, name+".key")}
	for p, b := range map[string][]byte{
		f.CA:   ca.CertPEM(),
		f.Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		f.Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
