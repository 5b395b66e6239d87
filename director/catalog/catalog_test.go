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
