package testenv

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// Storaged describes a storaged.toml for a vtl library.
type Storaged struct {
	Name, Listen, WorkDir string
	TLS                   tlsconf.Files
	DirectorName          string
	DirectorAddr          string
	KEKFiles              []string
	VTLSocket             string
	Drives                int
	BlockSize             string // default "256KiB"
	DirectorTimeout       string // default "2s"
	MountTimeout          string // default "30s"
	// ISCSIPortal and ISCSITarget, when set, address the library through
	// the vtl's iSCSI target (vtl serve --iscsi) instead of its socket:
	// the changer is LUN 0, drive N is LUN N+1.
	ISCSIPortal, ISCSITarget string
}

func (s Storaged) address(unit string, lun int) string {
	if s.ISCSIPortal != "" {
		return fmt.Sprintf("iscsi://%s/%s/%d", s.ISCSIPortal, s.ISCSITarget, lun)
	}
	return "vtl:" + s.VTLSocket + "#" + unit
}

// Write writes the configuration to path (mode 0600). An empty Listen is
// "127.0.0.1:0" (a port the kernel picks: start it with StartServing).
func (s Storaged) Write(t testing.TB, path string) {
	t.Helper()
	if s.Listen == "" {
		s.Listen = "127.0.0.1:0"
	}
	if s.MountTimeout == "" {
		s.MountTimeout = "30s"
	}
	if s.BlockSize == "" {
		s.BlockSize = "256KiB"
	}
	if s.DirectorTimeout == "" {
		s.DirectorTimeout = "2s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name = %q\nlisten = %q\nworking_directory = %q\n\n", s.Name, s.Listen, s.WorkDir)
	writeTLS(&b, s.TLS)
	fmt.Fprintf(&b, "[director]\nname = %q\naddress = %q\ntls_server_name = %q\n\n[keys]\n", s.DirectorName, s.DirectorAddr, s.DirectorName)
	for _, k := range s.KEKFiles {
		fmt.Fprintf(&b, "[[keys.kek]]\nfile = %q\n", k)
	}
	fmt.Fprintf(&b, "\n[[changer]]\nname = \"changer0\"\naddress = %q\n\n", s.address("changer", 0))
	for i := 0; i < s.Drives; i++ {
		fmt.Fprintf(&b, "[[drive]]\nname = \"drive%d\"\naddress = %q\nchanger = \"changer0\"\ndrive_index = %d\nmedia_type = \"LTO-6\"\ncrypto = true\nblock_size = %q\n\n",
			i, s.address(fmt.Sprintf("drive%d", i), i+1), i, s.BlockSize)
	}
	fmt.Fprintf(&b, "[timeouts]\ndirector = %q\nmount = %q\n", s.DirectorTimeout, s.MountTimeout)
	write(t, path, b.String())
}

// Director describes a director.toml.
type Director struct {
	Name, Listen string
	TLS          tlsconf.Files
	// Catalog: a unix socket directory or host, port, database, user.
	DBHost, DBName, DBUser string
	DBPort                 uint16
	KEKFiles               []string // the first is active unless ActiveKEK says otherwise
	ActiveKEK              string
	Storages               map[string]string // name -> address
	// Consoles maps each console the director admits to its role (read,
	// operator or keyadmin). nil admits the usual test console: admin as
	// keyadmin.
	Consoles map[string]string
	// DefaultPool is director.toml's default_pool ("": none).
	DefaultPool string
	// ClientIdleTimeout is director.toml's client_idle_timeout ("": the
	// default, 2m).
	ClientIdleTimeout string
	// The job resources: [[client]], [[fileset]], [[pool]] and [[job]]
	// tables (configs/jobs.go has every key), written in this order.
	Clients  []Client
	Filesets []Fileset
	Pools    []Pool
	Jobs     []Job
	// ExtraTOML is appended as is after everything else (tables only,
	// e.g. a [[jobdefs]] or [[schedule]]).
	ExtraTOML string
	// TopTOML is written among the top-level keys (before any table),
	// e.g. catalog_dump_dir = "…".
	TopTOML string
}

// Client is a [[client]] of director.toml: a filed.
type Client struct {
	Name, Address string
	// TLSServerName is the name its certificate carries ("": Name; the
	// director's own default would be the host part of Address).
	TLSServerName     string
	MaxConcurrentJobs int // 0: not written (default 1)
}

// Fileset is a [[fileset]] of director.toml.
type Fileset struct {
	Name             string
	Include, Exclude []string
	// OneFileSystem, ExcludeCaches and XAttrs: nil is not written (the
	// defaults: true, false, true).
	OneFileSystem, ExcludeCaches, XAttrs *bool
}

// Pool is a [[pool]] of director.toml.
type Pool struct {
	Name, Storage string
	Encrypted     *bool // nil: not written (default true)
	// VolumeRetention, ScratchPool, RecyclePool: "" not written.
	VolumeRetention, ScratchPool, RecyclePool string
	// EscrowPublicKey: "" not written.
	EscrowPublicKey string
}

// Job is a [[job]] of director.toml; empty fields are not written.
type Job struct {
	Name, Client, Fileset, Pool, Storage, Level string
	ClientIdleTimeout                           string
	MaxConcurrentJobs, Priority                 int
}

// Write writes the configuration to path (mode 0600).
func (d Director) Write(t testing.TB, path string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name = %q\nlisten = %q\n", d.Name, d.Listen)
	if d.DefaultPool != "" {
		fmt.Fprintf(&b, "default_pool = %q\n", d.DefaultPool)
	}
	if d.ClientIdleTimeout != "" {
		fmt.Fprintf(&b, "client_idle_timeout = %q\n", d.ClientIdleTimeout)
	}
	if d.TopTOML != "" {
		b.WriteString(strings.TrimRight(d.TopTOML, "\n") + "\n")
	}
	b.WriteString("\n")
	writeTLS(&b, d.TLS)
	fmt.Fprintf(&b, "[catalog]\nhost = %q\nport = %d\ndatabase = %q\nuser = %q\nsslmode = \"disable\"\nconnect_timeout = \"3s\"\n\n[keys]\n",
		d.DBHost, d.DBPort, d.DBName, d.DBUser)
	active := d.ActiveKEK
	if active == "" && len(d.KEKFiles) > 0 {
		active = d.KEKFiles[0]
	}
	for _, k := range d.KEKFiles {
		fmt.Fprintf(&b, "[[keys.kek]]\nfile = %q\nactive = %v\n", k, k == active)
	}
	for name, addr := range d.Storages {
		fmt.Fprintf(&b, "\n[[storage]]\nname = %q\naddress = %q\ntls_server_name = %q\n", name, addr, name)
	}
	consoles := d.Consoles
	if consoles == nil {
		consoles = map[string]string{"admin": "keyadmin"}
	}
	for _, name := range slices.Sorted(maps.Keys(consoles)) {
		fmt.Fprintf(&b, "\n[[console]]\nname = %q\nrole = %q\n", name, consoles[name])
	}
	d.writeJobResources(&b)
	write(t, path, b.String())
}

// writeJobResources writes the [[client]], [[fileset]], [[pool]] and
// [[job]] tables and ExtraTOML.
func (d Director) writeJobResources(b *strings.Builder) {
	optBool := func(key string, v *bool) {
		if v != nil {
			fmt.Fprintf(b, "%s = %v\n", key, *v)
		}
	}
	optStr := func(key, v string) {
		if v != "" {
			fmt.Fprintf(b, "%s = %q\n", key, v)
		}
	}
	optInt := func(key string, v int) {
		if v != 0 {
			fmt.Fprintf(b, "%s = %d\n", key, v)
		}
	}
	for _, c := range d.Clients {
		server := c.TLSServerName
		if server == "" {
			server = c.Name
		}
		fmt.Fprintf(b, "\n[[client]]\nname = %q\naddress = %q\ntls_server_name = %q\n", c.Name, c.Address, server)
		optInt("max_concurrent_jobs", c.MaxConcurrentJobs)
	}
	for _, f := range d.Filesets {
		fmt.Fprintf(b, "\n[[fileset]]\nname = %q\ninclude = %s\n", f.Name, tomlStrings(f.Include))
		if len(f.Exclude) > 0 {
			fmt.Fprintf(b, "exclude = %s\n", tomlStrings(f.Exclude))
		}
		optBool("one_file_system", f.OneFileSystem)
		optBool("exclude_caches", f.ExcludeCaches)
		optBool("xattrs", f.XAttrs)
	}
	for _, p := range d.Pools {
		fmt.Fprintf(b, "\n[[pool]]\nname = %q\n", p.Name)
		optStr("storage", p.Storage)
		optBool("encrypted", p.Encrypted)
		optStr("volume_retention", p.VolumeRetention)
		optStr("scratch_pool", p.ScratchPool)
		optStr("recycle_pool", p.RecyclePool)
		optStr("escrow_public_key", p.EscrowPublicKey)
	}
	for _, j := range d.Jobs {
		fmt.Fprintf(b, "\n[[job]]\nname = %q\n", j.Name)
		optStr("client", j.Client)
		optStr("fileset", j.Fileset)
		optStr("pool", j.Pool)
		optStr("storage", j.Storage)
		optStr("level", j.Level)
		optStr("client_idle_timeout", j.ClientIdleTimeout)
		optInt("max_concurrent_jobs", j.MaxConcurrentJobs)
		optInt("priority", j.Priority)
	}
	if d.ExtraTOML != "" {
		b.WriteString("\n" + d.ExtraTOML + "\n")
	}
}

// tomlStrings is a TOML array of basic strings. %q is Go syntax, which
// TOML reads the same for printable text; paths here are test paths.
func tomlStrings(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Console writes a tapectl.toml for a console named name.
func Console(t testing.TB, path, name, directorName, directorAddr string, f tlsconf.Files) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name = %q\n\n[director]\nname = %q\naddress = %q\ntls_server_name = %q\n\n", name, directorName, directorAddr, directorName)
	writeTLS(&b, f)
	write(t, path, b.String())
}

func writeTLS(b *strings.Builder, f tlsconf.Files) {
	fmt.Fprintf(b, "[tls]\nca = %q\ncert = %q\nkey = %q\n", f.CA, f.Cert, f.Key)
	if f.RevocationList != "" {
		fmt.Fprintf(b, "revocation_list = %q\n", f.RevocationList)
	}
	b.WriteString("\n")
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
