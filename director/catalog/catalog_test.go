package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
)

func TestConnConfigReadsPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("hunter2-secret\nsecond line ignored\n"), 0o600)
	c := configs.Catalog{Host: "db.example.com", Port: 6543, Database: "cat", User: "tw", PasswordFile: pw,
		SSLMode: "require", ConnectTimeout: configs.Duration{Duration: 4 * time.Second}}
	cfg, err := ConnConfig(c, "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "db.example.com" || cfg.Port != 6543 || cfg.Database != "cat" || cfg.User != "tw" ||
		cfg.Password != "hunter2-secret" || cfg.TLSConfig == nil || cfg.ConnectTimeout != 4*time.Second {
		t.Fatalf("config = host %s port %d db %s user %s tls %v timeout %v", cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.TLSConfig != nil, cfg.ConnectTimeout)
	}
	// An empty or missing password file is an error that names the file only.
	os.WriteFile(pw, []byte("\n"), 0o600)
	if _, err := ConnConfig(c, "d.toml"); err == nil || !strings.Contains(err.Error(), pw+" is empty") {
		t.Fatalf("empty password file: %v", err)
	}
	c.PasswordFile = filepath.Join(dir, "none")
	if _, err := ConnConfig(c, "d.toml"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing password file: %v", err)
	}
}

func TestUnreachableErrorRedactsPassword(t *testing.T) {
	c := configs.Catalog{Host: "/run/pg", Port: 5432, Database: "cat", User: "tw"}
	e := &UnreachableError{Catalog: c, ConfigPath: "d.toml", password: "pw-XYZ",
		Err: errors.Join(errors.New("server said pw-XYZ"), syscall.ECONNREFUSED)}
	msg := e.Error()
	if strings.Contains(msg, "pw-XYZ") || !strings.Contains(msg, "connection refused") ||
		!strings.Contains(msg, `/run/pg:5432 database "cat" as "tw"`) || !strings.Contains(msg, "Check [catalog] in d.toml") {
		t.Fatalf("message: %s", msg)
	}
}

func TestPasswordFileMode(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("hunter2-secret\n"), 0o640)
	c := configs.Catalog{Host: "/run/pg", Port: 5432, Database: "cat", User: "tw", PasswordFile: pw, SSLMode: "prefer"}
	_, err := ConnConfig(c, "d.toml")
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+pw) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("group-readable password file: %v; want the chmod to run, no password", err)
	}
	os.Chmod(pw, 0o600)
	if _, err := ConnConfig(c, "d.toml"); err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
}

func TestVerifyFullNeedsARootCert(t *testing.T) {
	dir := t.TempDir()
	c := configs.Catalog{Host: "db.example.com", Port: 5432, Database: "cat", User: "tw", SSLMode: "verify-full",
		SSLRootCert: filepath.Join(dir, "none.crt")}
	if _, err := ConnConfig(c, "d.toml"); err == nil || !strings.Contains(err.Error(), "cannot be read") || !strings.Contains(err.Error(), "sslrootcert") {
		t.Fatalf("missing sslrootcert: %v", err)
	}
	os.WriteFile(c.SSLRootCert, []byte("not a certificate\n"), 0o644)
	if _, err := ConnConfig(c, "d.toml"); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("sslrootcert without a certificate: %v", err)
	}
	// A unix socket uses no TLS: nothing to verify.
	c.Host = "/run/pg"
	if _, err := ConnConfig(c, "d.toml"); err != nil {
		t.Fatalf("socket with verify-full: %v", err)
	}
}
