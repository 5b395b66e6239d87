// Package tlsconf builds the mutual TLS 1.3 configurations of the director
// <-> storaged <-> console links and tells a server who is calling.
//
// Identity: a certificate names its holder in its Common Name (also its DNS
// name, so clients can verify servers by name) and its role in its
// Organizational Unit: "director", "storage" or "console". A server checks
// that the peer's name is one it expects; `PeerOf` gives handlers the
// caller's name and role, e.g. so the director hands a storage the keys of
// that storage's own volumes only.
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

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles carried in a certificate's Organizational Unit.
const (
	RoleDirector = "director"
	RoleStorage  = "storage"
	RoleConsole  = "console"
)

// Files names the PEM files of one side of a link.
type Files struct {
	CA   string // the CA that signed every peer's certificate
	Cert string // this side's certificate
	Key  string // this side's private key (mode 0600)
}

// Peer is the authenticated other side of a connection.
type Peer struct {
	Name string
	Role string
}

func (p Peer) String() string { return fmt.Sprintf("%s %q", p.Role, p.Name) }

// Server returns a TLS 1.3 server configuration that requires a client
// certificate signed by the CA. When accept is not nil, it is called with
// the verified peer and may refuse it (its error reaches the client).
func Server(f Files, accept func(Peer) error) (*tls.Config, error) {
	cert, pool, err := load(f)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	if accept != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			return accept(peerOf(cs.PeerCertificates[0]))
		}
	}
	return cfg, nil
}

// Client returns a TLS 1.3 client configuration presenting this side's
// certificate and accepting only a server certificate for serverName
// signed by the CA.
func Client(f Files, serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("tls: the server name to verify is empty; set it in the configuration (tls_server_name)")
	}
	cert, pool, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
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

func peerOf(c *x509.Certificate) Peer {
	p := Peer{Name: c.Subject.CommonName}
	if len(c.Subject.OrganizationalUnit) > 0 {
		p.Role = c.Subject.OrganizationalUnit[0]
	}
	return p
}

func load(f Files) (tls.Certificate, *x509.CertPool, error) {
	for what, path := range map[string]string{"CA certificate": f.CA, "certificate": f.Cert, "private key": f.Key} {
		if path == "" {
			return tls.Certificate{}, nil, fmt.Errorf("tls: no %s file configured; set it in [tls]", what)
		}
	}
	if st, err := os.Stat(f.Key); err == nil && st.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, nil, fmt.Errorf("tls: private key %s is readable by group or others (mode %04o); run: chmod 600 %s", f.Key, st.Mode().Perm(), f.Key)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: loading %s and %s: %w", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: reading CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("tls: %s holds no PEM certificate", f.CA)
	}
	return cert, pool, nil
}
