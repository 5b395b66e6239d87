// Package configs loads Tapeward's TOML configuration files strictly: a key
// the program does not know, a malformed file, a missing required value or
// a bad value is an error naming the file, the line and the key, and saying
// what to write instead.
//
// Relative paths in a config file (TLS files, KEK files, the master
// keyset, password_file, working_directory, vtl sockets) resolve against
// the directory of that config file; the loaded structs hold absolute
// paths. This package only checks that paths are set: the key package
// checks KEK file permissions when it opens them, package tlsconf private
// key files, the catalog package the password file.
//
// The commented examples in this directory (director.toml, storaged.toml,
// tapectl.toml, filed.toml) are the reference for every key.
package configs

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// TLS names the files of one mutual-TLS identity.
type TLS struct {
	CA   string `toml:"ca"`   // CA certificate(s) that sign the peers' certificates
	Cert string `toml:"cert"` // our certificate (chain)
	Key  string `toml:"key"`  // our private key
	// RevocationList is the revocation list `tapekey pki revoke` writes
	// (optional): a peer whose certificate it lists is refused.
	RevocationList string `toml:"revocation_list"`
}

// Catalog is where the director's PostgreSQL catalog is.
type Catalog struct {
	// Host is a host name or IP address, or an absolute directory holding
	// the server's unix socket (e.g. /var/run/postgresql).
	Host     string `toml:"host"`
	Port     int    `toml:"port"` // default 5432
	Database string `toml:"database"`
	User     string `toml:"user"`
	// PasswordFile holds the password on its first line (optional: socket
	// peer or trust authentication need none).
	PasswordFile string `toml:"password_file"`
	// SSLMode is libpq's: disable, allow, prefer, require, verify-ca,
	// verify-full. Default: verify-full for a TCP host (the catalog holds
	// every wrapped key: its server is verified by name), prefer for a
	// unix socket (which TLS does not apply to).
	SSLMode string `toml:"sslmode"`
	// SSLRootCert is the CA file for verify-ca / verify-full (optional:
	// without it the system's CA certificates are used).
	SSLRootCert    string   `toml:"sslrootcert"`
	ConnectTimeout Duration `toml:"connect_timeout"` // default 10s
}

// IsSocket reports whether Host names a unix socket directory.
func (c Catalog) IsSocket() bool { return strings.HasPrefix(c.Host, "/") }

// Where describes the catalog for messages, e.g.
// `/var/run/postgresql:5432 database "tapeward" as "tapeward"`.
func (c Catalog) Where() string {
	return fmt.Sprintf("%s:%d database %q as %q", c.Host, c.Port, c.Database, c.User)
}

// KEK is one key encryption key file of the director's keyring.
type KEK struct {
	File   string `toml:"file"`
	Active bool   `toml:"active"` // wraps new volume keys; exactly one is active
}

// DirectorKeys is the director's keyring.
type DirectorKeys struct {
	KEK []KEK `toml:"kek"`
	// MasterKeyset is the Tink master keyset that opens sealed KEK files
	// (optional; needed only if a KEK file is sealed).
	MasterKeyset string `toml:"master_keyset"`
}

// Active returns the active KEK.
func (k DirectorKeys) Active() KEK {
	for _, kek := range k.KEK {
		if kek.Active {
			return kek
		}
	}
	return KEK{}
}

// StorageRef is a storage daemon the director dials.
type StorageRef struct {
	Name    string `toml:"name"`
	Address string `toml:"address"` // host:port
	// TLSServerName is the name its certificate must carry (default: the
	// host part of Address).
	TLSServerName string `toml:"tls_server_name"`
}

// ConsoleRef is a console the director admits: the name its certificate
// carries and its role. A console certificate whose name has no
// [[console]] entry is refused when it connects.
type ConsoleRef struct {
	Name string `toml:"name"`
	Role string `toml:"role"` // one of ConsoleRoles
}

// Console roles, least powerful first; each may run everything the ones
// before it may (the director's console package holds the table of which
// command needs which role).
const (
	RoleRead     = "read"     // list, status, help
	RoleOperator = "operator" // read + label, mount, unmount, release
	RoleKeyAdmin = "keyadmin" // operator + export keys, rekey, update volume … encrypt=
)

// ConsoleRoles lists the roles a [[console]] may have, least powerful
// first.
var ConsoleRoles = []string{RoleRead, RoleOperator, RoleKeyAdmin}

// Limits bound what a daemon's listener serves ([limits], optional; every
// key has a default). Package proto/link applies them.
type Limits struct {
	// HandshakeTimeout closes a connection whose TLS handshake has not
	// finished in time (default 10s).
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxConnections is how many connections are served at once; more
	// wait until one ends (default 256).
	MaxConnections int `toml:"max_connections"`
	// MaxStreams is how many calls one connection may run at once
	// (default 128).
	MaxStreams int `toml:"max_streams_per_connection"`
	// KeepaliveTime: a connection silent this long is pinged (default
	// 1m); KeepaliveTimeout: it is closed if the ping is not answered in
	// time (default 20s).
	KeepaliveTime    Duration `toml:"keepalive_time"`
	KeepaliveTimeout Duration `toml:"keepalive_timeout"`
}

// Director is director.toml.
type Director struct {
	Path   string `toml:"-"` // the file it was loaded from
	Name   string `toml:"name"`
	Listen string `toml:"listen"` // host:port for storage daemons and consoles
	// MetricsListen is host:port of the Prometheus endpoint (optional;
	// "" : none).
	MetricsListen string       `toml:"metrics_listen"`
	Limits        Limits       `toml:"limits"`
	TLS           TLS          `toml:"tls"`
	Catalog       Catalog      `toml:"catalog"`
	Keys          DirectorKeys `toml:"keys"`
	Storages      []StorageRef `toml:"storage"`
	Consoles      []ConsoleRef `toml:"console"`
	// DefaultPool is the pool label uses when the command names none
	// (Bareos' Default pool); "" : label needs pool=.
	DefaultPool string `toml:"default_pool"`

	// A Catalog job ([[job]] type = "Catalog") runs PgDump (default
	// "pg_dump" on $PATH) with the [catalog] settings into
	// CatalogDumpDir (0700; the dump 0600), backs the dump up, then writes
	// a bootstrap file (tools/lib/bootstrap) into BootstrapDir
	// (catalog-<jobid>.bsr and catalog-latest.bsr, 0600) and/or pipes it
	// to BootstrapCommand (run by /bin/sh -c; its failure is a warning).
	CatalogDumpDir   string `toml:"catalog_dump_dir"`
	PgDump           string `toml:"pg_dump"`
	BootstrapDir     string `toml:"bootstrap_dir"`
	BootstrapCommand string `toml:"bootstrap_command"`

	// The job resources (jobs.go). ClientIdleTimeout (default 2m) and
	// CatchUp (default 12h; "0": skip missed runs) are the defaults of
	// every job's.
	ClientIdleTimeout Period `toml:"client_idle_timeout"`
	CatchUp           Period `toml:"catch_up"`
	// MaxConcurrentJobs is how many jobs the director runs at once (0,
	// the default: no limit but the clients', the jobs' and the drives').
	MaxConcurrentJobs int        `toml:"max_concurrent_jobs"`
	Clients           []Client   `toml:"client"`
	Filesets          []Fileset  `toml:"fileset"`
	Schedules         []Schedule `toml:"schedule"`
	Pools             []Pool     `toml:"pool"`
	JobDefs           []JobSpec  `toml:"jobdefs"` // as written
	JobSpecs          []JobSpec  `toml:"job"`     // as written; see Jobs
	Jobs              []Job      `toml:"-"`       // the [[job]]s resolved
	// Warnings are Run lines that parse but probably do not mean what
	// they say, as file:line: messages for the director to log.
	Warnings []string `toml:"-"`
}

// ConsoleNamed returns the [[console]] entry named name.
func (d *Director) ConsoleNamed(name string) (ConsoleRef, bool) {
	for _, c := range d.Consoles {
		if c.Name == name {
			return c, true
		}
	}
	return ConsoleRef{}, false
}

// DirectorRef is how storaged and tapectl reach the director.
type DirectorRef struct {
	Name          string `toml:"name"`
	Address       string `toml:"address"` // host:port
	TLSServerName string `toml:"tls_server_name"`
}

// StoragedKEK is one KEK file storaged can unwrap with (it uses whichever
// KEK id a volume's key names).
type StoragedKEK struct {
	File string `toml:"file"`
}

// StoragedKeys is storaged's keyring.
type StoragedKeys struct {
	KEK          []StoragedKEK `toml:"kek"`
	MasterKeyset string        `toml:"master_keyset"`
}

// Changer is one medium changer.
type Changer struct {
	Name string `toml:"name"`
	// Address is "vtl:<socket>#<unit>" (the virtual tape library) or a
	// device path such as /dev/sg3 or /dev/tape/by-id/….
	Address string `toml:"address"`
}

// Drive is one tape drive.
type Drive struct {
	Name       string `toml:"name"`
	Address    string `toml:"address"`     // like Changer.Address
	Changer    string `toml:"changer"`     // name of its changer ("" : standalone)
	DriveIndex int    `toml:"drive_index"` // its element index in the changer, from 0
	MediaType  string `toml:"media_type"`  // e.g. "LTO-8"
	// Crypto says whether the drive encrypts (default true). A drive with
	// crypto = false is never given an encrypted volume.
	Crypto    *bool `toml:"crypto"`
	BlockSize Size  `toml:"block_size"` // default 1MiB
}

// Encrypts reports the effective crypto setting.
func (d Drive) Encrypts() bool { return d.Crypto == nil || *d.Crypto }

// Timeouts are storaged's time limits.
type Timeouts struct {
	Director Duration `toml:"director"` // dialing the director and each request (default 30s)
	Mount    Duration `toml:"mount"`    // loading a cartridge until the drive is ready (default 5m)
	Unload   Duration `toml:"unload"`   // rewinding and unloading (default 5m)
}

// Storaged is storaged.toml.
type Storaged struct {
	Path             string       `toml:"-"`
	Name             string       `toml:"name"`
	Listen           string       `toml:"listen"`
	MetricsListen    string       `toml:"metrics_listen"` // Prometheus endpoint (optional)
	Limits           Limits       `toml:"limits"`
	TLS              TLS          `toml:"tls"`
	WorkingDirectory string       `toml:"working_directory"` // crypto cache and state
	Director         DirectorRef  `toml:"director"`
	Keys             StoragedKeys `toml:"keys"`
	Changers         []Changer    `toml:"changer"`
	Drives           []Drive      `toml:"drive"`
	Timeouts         Timeouts     `toml:"timeouts"`
	ISCSI            ISCSI        `toml:"iscsi"`
}

// ISCSI is storaged.toml's [iscsi]: how the userspace initiator logs in
// to the targets of iscsi:// device addresses. Empty settings fall back to
// the environment (TAPEWARD_ISCSI_INITIATOR_NAME,
// TAPEWARD_ISCSI_CHAP_SECRET_FILE), as tapekey's and tapextract's
// --iscsi-… flags do.
type ISCSI struct {
	// InitiatorName is this host's iSCSI name (default
	// iqn.2026-12.io.tapeward:<hostname>): what a target's ACL lists.
	InitiatorName string `toml:"initiator_name"`
	// CHAPSecretFile holds the CHAP secret (one line); the CHAP user is
	// the address's USER@, else the initiator name.
	CHAPSecretFile string `toml:"chap_secret_file"`
	// TargetCHAPSecretFile makes CHAP mutual: the target must prove it
	// knows this secret.
	TargetCHAPSecretFile string `toml:"target_chap_secret_file"`
	// Digests offers CRC32C header and data digests.
	Digests bool `toml:"digests"`
}

// Console is tapectl.toml.
type Console struct {
	Path     string      `toml:"-"`
	Name     string      `toml:"name"` // console name (its certificate's name)
	Director DirectorRef `toml:"director"`
	TLS      TLS         `toml:"tls"`
}

// Defaults.
const (
	DefaultCatalogPort    = 5432
	DefaultBlockSize      = Size(1 << 20)
	minBlockSize          = Size(512)
	maxBlockSize          = Size(16 << 20)
	defaultConnectTimeout = 10 * time.Second

	// [limits] defaults (package proto/link has the same).
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxConnections   = 256
	DefaultMaxStreams       = 128
	DefaultKeepaliveTime    = time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
)

// LoadDirector reads and checks director.toml.
func LoadDirector(path string) (*Director, error) {
	var c Director
	f, err := decode(path, &c)
	if err != nil {
		return nil, err
	}
	c.Path = path
	f.name(at(-1, "name"), c.Name, `"director"`)
	f.hostPort(at(-1, "listen"), c.Listen, `"127.0.0.1:9101"`, true)
	f.metricsListen(c.MetricsListen, c.Listen, `"127.0.0.1:9111"`)
	f.limits(&c.Limits)
	f.tls(&c.TLS)

	cat := &c.Catalog
	if f.requireString(at(-1, "catalog", "host"), cat.Host, `"/var/run/postgresql" (socket directory) or "db.example.com"`) &&
		!cat.IsSocket() && strings.ContainsAny(cat.Host, " /:") && !strings.HasPrefix(cat.Host, "[") {
		f.problem(at(-1, "catalog", "host"), cat.Host, "write a host name, an IP address or an absolute socket directory such as \"/var/run/postgresql\" (the port goes in port = …)")
	}
	if cat.Port == 0 && !f.defined("catalog", "port") {
		cat.Port = DefaultCatalogPort
	}
	f.port(at(-1, "catalog", "port"), cat.Port)
	f.requireString(at(-1, "catalog", "database"), cat.Database, `"tapeward"`)
	f.requireString(at(-1, "catalog", "user"), cat.User, `"tapeward"`)
	cat.PasswordFile = f.resolve(cat.PasswordFile)
	c.CatalogDumpDir = f.resolve(c.CatalogDumpDir)
	c.BootstrapDir = f.resolve(c.BootstrapDir)
	if c.PgDump == "" {
		c.PgDump = "pg_dump"
	} else if strings.Contains(c.PgDump, "/") {
		c.PgDump = f.resolve(c.PgDump)
	}
	cat.SSLRootCert = f.resolve(cat.SSLRootCert)
	switch cat.SSLMode {
	case "":
		cat.SSLMode = "verify-full"
		if cat.IsSocket() {
			cat.SSLMode = "prefer"
		}
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		f.problem(at(-1, "catalog", "sslmode"), cat.SSLMode, "must be one of disable, allow, prefer, require, verify-ca, verify-full")
	}
	if cat.ConnectTimeout.Duration == 0 {
		cat.ConnectTimeout.Duration = defaultConnectTimeout
	}

	if len(c.Keys.KEK) == 0 {
		f.add(f.lineOf([]string{"keys"}, -1), "no KEK configured: add a [[keys.kek]] table with file = \"kek.key\" and active = true (make one with `tapekey kek new --out kek.key`)")
	}
	active := 0
	for i := range c.Keys.KEK {
		k := &c.Keys.KEK[i]
		k.File = f.filePath(at(i, "keys", "kek", "file"), k.File, `"kek.key"`)
		if k.Active {
			active++
		}
	}
	if len(c.Keys.KEK) > 0 && active != 1 {
		f.add(f.lineOf([]string{"keys", "kek"}, -1), fmt.Sprintf("[[keys.kek]]: %d KEKs are marked active = true; exactly one must be (it wraps new volume keys, the others only unwrap)", active))
	}
	c.Keys.MasterKeyset = f.resolve(c.Keys.MasterKeyset)

	names := map[string]bool{}
	for i := range c.Storages {
		s := &c.Storages[i]
		f.name(at(i, "storage", "name"), s.Name, `"sd1"`)
		if names[s.Name] && s.Name != "" {
			f.problem(at(i, "storage", "name"), s.Name, "another [[storage]] has this name; names must be unique")
		}
		names[s.Name] = true
		f.hostPort(at(i, "storage", "address"), s.Address, `"127.0.0.1:9103"`, false)
		if s.TLSServerName == "" {
			if h, _, err := net.SplitHostPort(s.Address); err == nil {
				s.TLSServerName = h
			}
		}
	}

	if c.DefaultPool != "" {
		f.name(at(-1, "default_pool"), c.DefaultPool, `"Default"`)
	}

	consoles := map[string]bool{}
	for i := range c.Consoles {
		con := &c.Consoles[i]
		f.name(at(i, "console", "name"), con.Name, `"admin"`)
		if consoles[con.Name] && con.Name != "" {
			f.problem(at(i, "console", "name"), con.Name, "another [[console]] has this name; names must be unique (a console has one role)")
		}
		consoles[con.Name] = true
		if f.requireString(at(i, "console", "role"), con.Role, `"operator"`) && !slices.Contains(ConsoleRoles, con.Role) {
			f.problem(at(i, "console", "role"), con.Role, "must be one of %s: %s may list, status and help; %s also label, mount, unmount and release; %s also export keys, rekey and update volume … encrypt=",
				strings.Join(ConsoleRoles, ", "), RoleRead, RoleOperator, RoleKeyAdmin)
		}
	}
	f.jobResources(&c)
	if err := f.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadStoraged reads and checks storaged.toml.
func LoadStoraged(path string) (*Storaged, error) {
	var c Storaged
	f, err := decode(path, &c)
	if err != nil {
		return nil, err
	}
	c.Path = path
	f.name(at(-1, "name"), c.Name, `"sd1"`)
	f.hostPort(at(-1, "listen"), c.Listen, `"127.0.0.1:9103"`, true)
	f.metricsListen(c.MetricsListen, c.Listen, `"127.0.0.1:9113"`)
	f.limits(&c.Limits)
	f.tls(&c.TLS)
	c.WorkingDirectory = f.filePath(at(-1, "working_directory"), c.WorkingDirectory, `"/var/lib/tapeward/storaged"`)
	f.directorRef(&c.Director, true)

	if len(c.Keys.KEK) == 0 {
		f.add(f.lineOf([]string{"keys"}, -1), "no KEK configured: add a [[keys.kek]] table with file = \"kek.key\" (the same KEK(s) as the director's)")
	}
	for i := range c.Keys.KEK {
		c.Keys.KEK[i].File = f.filePath(at(i, "keys", "kek", "file"), c.Keys.KEK[i].File, `"kek.key"`)
	}
	c.Keys.MasterKeyset = f.resolve(c.Keys.MasterKeyset)

	changers := map[string]bool{}
	for i := range c.Changers {
		ch := &c.Changers[i]
		f.name(at(i, "changer", "name"), ch.Name, `"changer0"`)
		if changers[ch.Name] && ch.Name != "" {
			f.problem(at(i, "changer", "name"), ch.Name, "another [[changer]] has this name; names must be unique")
		}
		changers[ch.Name] = true
		ch.Address = f.deviceAddress(at(i, "changer", "address"), ch.Address, `"vtl:lib/vtl.sock#changer"`)
	}
	if len(c.Drives) == 0 {
		f.add(0, "no [[drive]] configured: add one, e.g. [[drive]] name = \"drive0\" address = \"vtl:lib/vtl.sock#drive0\"")
	}
	drives := map[string]bool{}
	slots := map[string]bool{}
	for i := range c.Drives {
		d := &c.Drives[i]
		f.name(at(i, "drive", "name"), d.Name, `"drive0"`)
		if drives[d.Name] && d.Name != "" {
			f.problem(at(i, "drive", "name"), d.Name, "another [[drive]] has this name; names must be unique")
		}
		drives[d.Name] = true
		d.Address = f.deviceAddress(at(i, "drive", "address"), d.Address, `"vtl:lib/vtl.sock#drive0"`)
		if d.Changer != "" && !changers[d.Changer] {
			f.problem(at(i, "drive", "changer"), d.Changer, "no [[changer]] has this name (known: %s)", strings.Join(keys(changers), ", "))
		}
		if d.DriveIndex < 0 {
			f.problem(at(i, "drive", "drive_index"), d.DriveIndex, "must be 0 or more (the drive's index in its changer, from 0)")
		}
		if d.Changer != "" {
			id := fmt.Sprintf("%s\x00%d", d.Changer, d.DriveIndex)
			if slots[id] {
				f.problem(at(i, "drive", "drive_index"), d.DriveIndex, "another drive of changer %q has this index", d.Changer)
			}
			slots[id] = true
		}
		if d.MediaType == "" {
			d.MediaType = "LTO"
		}
		if d.BlockSize == 0 {
			d.BlockSize = DefaultBlockSize
		}
		if d.BlockSize < minBlockSize || d.BlockSize > maxBlockSize || d.BlockSize%512 != 0 {
			f.problem(at(i, "drive", "block_size"), d.BlockSize.String(), "must be a multiple of 512 bytes from 512B to 16MiB, e.g. \"1MiB\"")
		}
	}
	f.iscsi(&c.ISCSI)
	for _, t := range []struct {
		d   *Duration
		key string
		def time.Duration
	}{{&c.Timeouts.Director, "director", 30 * time.Second}, {&c.Timeouts.Mount, "mount", 5 * time.Minute}, {&c.Timeouts.Unload, "unload", 5 * time.Minute}} {
		if t.d.Duration == 0 {
			t.d.Duration = t.def
		}
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConsole reads and checks tapectl.toml.
func LoadConsole(path string) (*Console, error) {
	var c Console
	f, err := decode(path, &c)
	if err != nil {
		return nil, err
	}
	c.Path = path
	f.name(at(-1, "name"), c.Name, `"admin"`)
	f.directorRef(&c.Director, false)
	f.tls(&c.TLS)
	if err := f.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (f *file) tls(t *TLS) {
	t.CA = f.filePath(at(-1, "tls", "ca"), t.CA, `"pki/ca.crt"`)
	t.Cert = f.filePath(at(-1, "tls", "cert"), t.Cert, `"pki/this.crt"`)
	t.Key = f.filePath(at(-1, "tls", "key"), t.Key, `"pki/this.key"`)
	t.RevocationList = f.resolve(t.RevocationList)
}

// limits checks [limits] and fills in the defaults.
func (f *file) limits(l *Limits) {
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&l.HandshakeTimeout, DefaultHandshakeTimeout}, {&l.KeepaliveTime, DefaultKeepaliveTime}, {&l.KeepaliveTimeout, DefaultKeepaliveTimeout}} {
		if d.v.Duration == 0 {
			d.v.Duration = d.def
		}
	}
	if l.MaxConnections == 0 && !f.defined("limits", "max_connections") {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnections < 1 || l.MaxConnections > 100000 {
		f.problem(at(-1, "limits", "max_connections"), l.MaxConnections, "must be 1-100000 (default %d)", DefaultMaxConnections)
	}
	if l.MaxStreams == 0 && !f.defined("limits", "max_streams_per_connection") {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.MaxStreams < 1 || l.MaxStreams > 10000 {
		f.problem(at(-1, "limits", "max_streams_per_connection"), l.MaxStreams, "must be 1-10000 (default %d)", DefaultMaxStreams)
	}
	if l.KeepaliveTime.Duration < 10*time.Second {
		f.problem(at(-1, "limits", "keepalive_time"), l.KeepaliveTime.String(), "must be 10s or more (default %v)", DefaultKeepaliveTime)
	}
}

func (f *file) directorRef(d *DirectorRef, nameRequired bool) {
	if nameRequired || d.Name != "" {
		f.name(at(-1, "director", "name"), d.Name, `"director"`)
	}
	f.hostPort(at(-1, "director", "address"), d.Address, `"127.0.0.1:9101"`, false)
	if d.TLSServerName == "" {
		if h, _, err := net.SplitHostPort(d.Address); err == nil {
			d.TLSServerName = h
		}
	}
}

// deviceAddress checks a changer/drive address and resolves a relative
// vtl socket path.
func (f *file) deviceAddress(l loc, v, example string) string {
	if !f.requireString(l, v, example) {
		return v
	}
	if rest, ok := strings.CutPrefix(v, "vtl:"); ok {
		sock, unit, found := strings.Cut(rest, "#")
		if !found || sock == "" || unit == "" {
			f.problem(l, v, "a vtl address is vtl:<socket path>#<unit>, e.g. %s", example)
			return v
		}
		return "vtl:" + f.resolve(sock) + "#" + unit
	}
	if strings.HasPrefix(v, "/dev/") && len(v) > len("/dev/") {
		return filepath.Clean(v)
	}
	if strings.HasPrefix(v, "iscsi://") {
		u, err := url.Parse(v)
		switch {
		case err != nil || u.Host == "":
			f.problem(l, redactURL(v), "an iSCSI address is %s, e.g. \"iscsi://tapehost/iqn.2026-12.com.example:lib/1\"", iscsiForm)
		case u.User != nil && func() bool { _, has := u.User.Password(); return has }():
			f.problem(l, redactURL(v), "a CHAP secret never goes in the address: put it in a file named by [iscsi] chap_secret_file")
		case len(strings.Split(strings.Trim(u.Path, "/"), "/")) != 2:
			f.problem(l, v, "an iSCSI address is %s (the path is /TARGET-IQN/LUN)", iscsiForm)
		}
		return v
	}
	f.problem(l, v, "must be a device path such as \"/dev/sg3\", an iSCSI address (%s) or a virtual tape library address such as %s", iscsiForm, example)
	return v
}

const iscsiForm = "iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN"

func redactURL(v string) string {
	if u, err := url.Parse(v); err == nil {
		return u.Redacted()
	}
	return "iscsi://…"
}

// iscsi checks [iscsi] and resolves its files.
func (f *file) iscsi(c *ISCSI) {
	if n := c.InitiatorName; n != "" && !strings.HasPrefix(n, "iqn.") && !strings.HasPrefix(n, "eui.") && !strings.HasPrefix(n, "naa.") {
		f.problem(at(-1, "iscsi", "initiator_name"), n, "must be an iSCSI name such as \"iqn.2026-12.com.example:backup1\"")
	}
	c.CHAPSecretFile = f.resolve(c.CHAPSecretFile)
	c.TargetCHAPSecretFile = f.resolve(c.TargetCHAPSecretFile)
	if c.TargetCHAPSecretFile != "" && c.CHAPSecretFile == "" {
		f.problem(at(-1, "iscsi", "target_chap_secret_file"), c.TargetCHAPSecretFile, "mutual CHAP needs chap_secret_file too")
	}
}

// defined reports whether the file sets key (any element).
func (f *file) defined(k ...string) bool {
	for _, e := range f.lines {
		if equal(e.path, k) {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	sort.Strings(out)
	return out
}
