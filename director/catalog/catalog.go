// Package catalog is the director's PostgreSQL catalog: it opens it from
// the [catalog] configuration (ConnConfig, Connect, Open — errors say where
// it tried and what to check; the password from password_file never appears
// in any message), and Store is the typed data layer over a pgx pool:
//
//   - storages and pools: EnsureStorage, GetStorage, EnsurePool, GetPool, ListPools;
//   - volumes: CreateLabeling (row + wrapped key + "generated" key event,
//     committed before it returns), MarkLabeled, MarkError, MarkFull,
//     RecordWritten, GetMedia, ListMedia, MediaBySlot;
//   - keys: VolumeKey (only for the owning storage), UpdateEncryption
//     (yes/no/rotate, volumes without data only), Rekey (every key under the
//     active KEK, one transaction, with the volumes' key history and a
//     crypto cache push queued per volume), ExportKeys;
//   - crypto cache pushes and KEK custody: PendingCounts, PendingPushes,
//     CompletePushes ("pushed" key events), KEKUsage (what the catalog
//     holds under each KEK, and which keys only under it);
//   - the key audit log: AddKeyEvent, ListKeyEvents (newest first);
//   - jobs (jobs.go, schema 3): CreateJob (C), StartJob (R, with the
//     LevelDecision of SinceTime: effective level, since-time, upgrade and
//     its reason), SetJobStatus (R and the waiting states), EndJob (T, W,
//     E, f, A), InterruptRunning (start-up: C/R/waiting → E "interrupted
//     at …"), GetJob; tape files: RecordPart, CompletePart, NextTapeFile;
//   - file records (files.go): BeginFiles → FileBatch.Add … Flush(upTo)
//     (COPY of exactly the rows storaged flushed), ListFiles, RestoreChain,
//     CurrentView, RecordDeletions, Deletions, RenderPath.
//
// Errors are typed (errors.Is/As): *NotFoundError (ErrNotFound),
// *ConflictError, *NotOwnedError, *NotEncryptedError (ErrNotEncrypted),
// *HasDataError, *StateError, *InvalidError, *RekeyError, *DBError,
// *JobStateError, *FileRowError, *BatchFullError. None of
// them, and no key event, ever holds key material: stored key strings leave
// the package only through VolumeKey, ExportKeys and PendingPushes.
package catalog

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tapeward/tapeward/configs"
)

// ConnConfig builds the pgx configuration for c. configPath is the config
// file c came from (for messages).
func ConnConfig(c configs.Catalog, configPath string) (*pgx.ConnConfig, error) {
	if err := checkRootCert(c); err != nil {
		return nil, fmt.Errorf("[catalog] in %s: %w", configPath, err)
	}
	kv := []string{
		"host=" + quote(c.Host),
		fmt.Sprintf("port=%d", c.Port),
		"dbname=" + quote(c.Database),
		"user=" + quote(c.User),
		"sslmode=" + quote(c.SSLMode),
	}
	if c.SSLRootCert != "" {
		kv = append(kv, "sslrootcert="+quote(c.SSLRootCert))
	}
	if c.ConnectTimeout.Duration > 0 {
		secs := int(c.ConnectTimeout.Seconds())
		if secs < 1 {
			secs = 1
		}
		kv = append(kv, fmt.Sprintf("connect_timeout=%d", secs))
	}
	cfg, err := pgx.ParseConfig(strings.Join(kv, " "))
	if err != nil {
		return nil, fmt.Errorf("[catalog] in %s: %v", configPath, err)
	}
	if c.PasswordFile != "" {
		pw, err := readPassword(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("[catalog] password_file in %s: %w", configPath, err)
		}
		cfg.Password = pw
	}
	return cfg, nil
}

// checkRootCert says clearly, before any connection, when verify-ca or
// verify-full has nothing to verify the server with: sslrootcert unreadable
// or without a certificate, or no sslrootcert and no system CAs (a slim
// container image). A unix socket uses no TLS.
func checkRootCert(c configs.Catalog) error {
	if (c.SSLMode != "verify-ca" && c.SSLMode != "verify-full") || c.IsSocket() {
		return nil
	}
	fix := `set sslrootcert = "…" to the CA certificate that signed the PostgreSQL server's certificate` +
		`, or, on a network you trust, sslmode = "disable" (or use a unix socket)`
	if c.SSLRootCert != "" {
		b, err := os.ReadFile(c.SSLRootCert)
		if err != nil {
			return fmt.Errorf("sslmode = %q verifies the catalog server with sslrootcert %s, which cannot be read (%v); %s", c.SSLMode, c.SSLRootCert, unwrapPath(err), fix)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return fmt.Errorf("sslrootcert %s holds no PEM certificate, so sslmode = %q cannot verify the catalog server; %s", c.SSLRootCert, c.SSLMode, fix)
		}
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || len(pool.Subjects()) == 0 { //nolint:staticcheck // Linux: the system pool lists its subjects
		return fmt.Errorf("sslmode = %q (the default for a TCP host) verifies the catalog server's certificate, but no sslrootcert is set and this system has no CA certificates; %s", c.SSLMode, fix)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readPassword returns the first line of path, which only its owner may
// read. Errors never quote it.
func readPassword(path string) (string, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by group or others (mode %04o); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist; create it with the catalog password on its first line (chmod 600), or remove password_file", path)
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("cannot read %s: %v", path, pe.Err)
		}
		return "", fmt.Errorf("cannot read %s", path)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s is empty; its first line must be the catalog password", path)
	}
	return line, nil
}

func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Connect opens one connection to the catalog described by c (from the
// config file configPath). A failure is an *UnreachableError.
func Connect(ctx context.Context, c configs.Catalog, configPath string) (*pgx.Conn, error) {
	cfg, err := ConnConfig(c, configPath)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &UnreachableError{Catalog: c, ConfigPath: configPath, Err: err, password: cfg.Password}
	}
	return conn, nil
}

// UnreachableError says the catalog could not be opened: where, as whom,
// why, and what to check.
type UnreachableError struct {
	Catalog    configs.Catalog
	ConfigPath string
	Err        error
	password   string
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func (e *UnreachableError) Error() string {
	reason, hint := explain(e.Catalog, e.Err)
	msg := fmt.Sprintf("cannot reach the catalog at %s: %s (tried: %s) — %s Check [catalog] in %s.",
		e.Catalog.Where(), reason, tried(e.Err), hint, e.ConfigPath)
	if e.password != "" {
		msg = strings.ReplaceAll(msg, e.password, "********")
	}
	return msg
}

// explain turns a connection error into a short reason and a hint.
func explain(c configs.Catalog, err error) (reason, hint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Sprintf("the server refused user %q (%s)", c.User, pgErr.Message),
				"check user and password_file, and the server's pg_hba.conf."
		case "3D000":
			return fmt.Sprintf("database %q does not exist", c.Database),
				fmt.Sprintf("create it (e.g. createdb -O %s %s) or fix database.", c.User, c.Database)
		case "53300":
			return "too many connections", "the server is at max_connections."
		case "57P03":
			return "the server is starting up or shutting down", "try again in a moment."
		}
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")", "see the server's log."
	}
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	switch {
	case errors.As(err, &unknownCA):
		return "the server's certificate is not signed by a CA this side trusts",
			fmt.Sprintf("set sslrootcert to the CA that signed it (sslmode %s verifies the server).", c.SSLMode)
	case errors.As(err, &badHost):
		return fmt.Sprintf("the server's certificate is not for host %q", c.Host),
			"connect by the name its certificate carries (sslmode verify-full checks it)."
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", "is PostgreSQL running and listening there?"
	case c.IsSocket() && errors.Is(err, syscall.ENOENT):
		return fmt.Sprintf("no server socket %s/.s.PGSQL.%d", strings.TrimSuffix(c.Host, "/"), c.Port),
			"is PostgreSQL running? Is host its socket directory (Debian: /var/run/postgresql) and port its port?"
	case errors.Is(err, syscall.EACCES):
		return "permission denied", "may this user open the socket directory?"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("unknown host %q", c.Host), "is the host name right?"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("no answer within %s", c.ConnectTimeout.Duration), "is the host reachable (network, firewall)? is PostgreSQL running?"
	case errors.Is(err, context.Canceled):
		return "interrupted", "the command was cancelled."
	}
	return "connection failed", "is PostgreSQL running?"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tried is the driver's account of what it attempted, on one line.
func tried(err error) string {
	var ce *pgconn.ConnectError
	s := err.Error()
	if errors.As(err, &ce) {
		if inner := errors.Unwrap(ce); inner != nil {
			s = inner.Error()
		}
	}
	return strings.Join(strings.Fields(s), " ")
}
