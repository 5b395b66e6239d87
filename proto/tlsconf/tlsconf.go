// Package tlsconf builds the mutual TLS 1.3 configurations of the director
// <-> storaged <-> console links and tells a server who is calling.
//
// Identity: a certificate names its holder in its Common Name (also its DNS
// name, so clients can verify servers by name) and its role in its
// Organizational Unit: "director", "storage", "client" (a file daemon) or
// "console". Both sides check the other: a server checks that the
// caller's role and name are ones it expects; a client checks that the
// server presents the role and name it dialed (a console or another
// storage that took over the port is refused even though the CA signed
// its certificate). `PeerOf` gives handlers the caller's name and role,
// e.g. so the director hands a storage the keys of that storage's own
// volumes only.
//
// Revocation: Files.RevocationList names a revocation list file (format
// in revocation.go, written by `tapekey pki revoke`); both sides refuse a
// peer whose certificate it lists, and the file is re-read whenever it
// changes.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles carried in a certificate's Organizational Unit.
const (
	RoleDirector = "director"
	RoleStorage  = "storage"
	RoleClient   = "client" // a file daemon (filed)
	RoleConsole  = "console"
)

// ServerRoles are the roles whose certificates may serve (serverAuth and
// DNS/IP names); a console certificate is for calling only.
var ServerRoles = []string{RoleDirector, RoleStorage, RoleClient}

// Files names the PEM files of one side of a link.
type Files struct {
	CA   string // the CA that signed every peer's certificate
	Cert string // this side's certificate
	Key  string // this side's private key (mode 0600)
	// RevocationList is a revocation list file (optional; see
	// OpenRevocationList).
	RevocationList string
}

// Peer is the authenticated other side of a connection.
type Peer struct {
	Name string
	Role string
}

func (p Peer) String() string { return fmt.Sprintf("%s %q", p.Role, p.Name) }

// RefusedError is a peer refused during the handshake: who it said it was
// and why it was refused. Servers log it (the peer only sees a TLS alert).
type RefusedError struct {
	Peer   Peer
	Serial string // the certificate's serial number, hex
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }

// Server returns a TLS 1.3 server configuration that requires a client
// certificate signed by the CA (and not revoked). When accept is not nil,
// it is called with the verified peer and may refuse it.
func Server(f Files, accept func(Peer) error) (*tls.Config, error) {
	cert, pool, rl, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &RefusedError{Reason: "the client presented no certificate"}
			}
			c := cs.PeerCertificates[0]
			if err := rl.check(c); err != nil {
				return err
			}
			if accept == nil {
				return nil
			}
			if err := accept(peerOf(c)); err != nil {
				return &RefusedError{Peer: peerOf(c), Serial: FormatSerial(c.SerialNumber), Reason: err.Error()}
			}
			return nil
		},
	}, nil
}

// Client returns a TLS 1.3 client configuration presenting this side's
// certificate and accepting only a server certificate signed by the CA,
// valid for serverName (a DNS name or IP address in the certificate; ""
// means want.Name), not revoked, and naming exactly the expected peer:
// want.Role in its Organizational Unit and want.Name in its Common Name.
func Client(f Files, want Peer, serverName string) (*tls.Config, error) {
	if want.Name == "" {
		return nil, errors.New("tls: the name of the server to expect is empty; set it in the configuration")
	}
	if !slices.Contains(ServerRoles, want.Role) {
		return nil, fmt.Errorf("tls: role %q cannot serve; expect one of %s", want.Role, strings.Join(ServerRoles, ", "))
	}
	if serverName == "" {
		serverName = want.Name
	}
	cert, pool, rl, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &RefusedError{Reason: "the server presented no certificate"}
			}
			c := cs.PeerCertificates[0]
			if err := rl.check(c); err != nil {
				return err
			}
			got := peerOf(c)
			if got != want {
				return &RefusedError{Peer: got, Serial: FormatSerial(c.SerialNumber),
					Reason: fmt.Sprintf("the server at %s presented the certificate of %s, but this side expects %s; "+
						"another program may hold the port, or the configuration names the wrong peer", serverName, got, want)}
			}
			return nil
		},
	}, nil
}

// Expect returns an accept function for Server that admits only peers
// with one of the given names and roles (an empty list admits any).
func Expect(roles []string, names ...string) func(Peer) error {
	return func(p Peer) error {
		if len(roles) > 0 && !slices.Contains(roles, p.Role) {
			return fmt.Errorf("certificate of %s has role %q; this service accepts %s", p.Name, p.Role, strings.Join(roles, ", "))
		}
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			return fmt.Errorf("certificate names %s, which is not configured here (expected %s)", p, strings.Join(names, ", "))
		}
		return nil
	}
}

// PeerOf returns the authenticated caller of a gRPC handler.
func PeerOf(ctx context.Context) (Peer, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, errors.New("no peer in context")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return Peer{}, errors.New("caller presented no TLS certificate")
	}
	return peerOf(ti.State.PeerCertificates[0]), nil
}

// PeerOfCert is the name and role a certificate carries.
func PeerOfCert(c *x509.Certificate) Peer { return peerOf(c) }

func peerOf(c *x509.Certificate) Peer {
	p := Peer{Name: c.Subject.CommonName}
	if len(c.Subject.OrganizationalUnit) > 0 {
		p.Role = c.Subject.OrganizationalUnit[0]
	}
	return p
}

// Leaf returns this side's certificate (f.Cert), for expiry warnings.
func (f Files) Leaf() (*x509.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: loading %s and %s: %w", f.Cert, f.Key, err)
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// ExpiryWarning returns a warning when this side's certificate expires
// within soon of now ("" otherwise).
func ExpiryWarning(leaf *x509.Certificate, path string, now time.Time, soon time.Duration) string {
	left := leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("certificate %s (%s) expired on %s; peers refuse it: issue a new one with tapekey pki issue",
			path, peerOf(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	case left <= soon:
		return fmt.Sprintf("certificate %s (%s) expires on %s, in %d days; issue a new one with tapekey pki issue and restart",
			path, peerOf(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
	}
	return ""
}

func load(f Files) (tls.Certificate, *x509.CertPool, *RevocationList, error) {
	for _, x := range []struct{ what, path string }{{"CA certificate", f.CA}, {"certificate", f.Cert}, {"private key", f.Key}} {
		if x.path == "" {
			return tls.Certificate{}, nil, nil, fmt.Errorf("tls: no %s file configured; set it in [tls]", x.what)
		}
	}
	if st, err := os.Stat(f.Key); err == nil && st.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tls: private key %s is readable by group or others (mode %04o); run: chmod 600 %s", f.Key, st.Mode().Perm(), f.Key)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tls: loading %s and %s: %w", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tls: reading CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, nil, fmt.Errorf("tls: %s holds no PEM certificate", f.CA)
	}
	var rl *RevocationList
	if f.RevocationList != "" {
		if rl, err = OpenRevocationList(f.RevocationList); err != nil {
			return tls.Certificate{}, nil, nil, err
		}
	}
	return cert, pool, rl, nil
}
