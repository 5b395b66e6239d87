package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tapeward/tapeward/configs/schedule"
)

// The director's job resources ([[client]], [[fileset]], [[schedule]],
// [[pool]], [[jobdefs]], [[job]] in director.toml; shared/docs/jobs.md
// §1 for what a Bareos user expects of them). configs/director.toml has a
// commented example of each.

// Client is a [[client]]: a host running the file daemon filed.
type Client struct {
	Name string `toml:"name"`
	// Address is where its filed listens (filed.toml listen), host:port.
	Address string `toml:"address"`
	// TLSServerName is the name its certificate must carry (default: the
	// host part of Address).
	TLSServerName string `toml:"tls_server_name"`
	// MaxConcurrentJobs is how many jobs may run on it at once (default 1).
	MaxConcurrentJobs int `toml:"max_concurrent_jobs"`
	// FileRetention and JobRetention (optional; 0: not set) bound how long
	// the catalog keeps this client's file and job rows; without them the
	// rows live as long as their volume's retention.
	FileRetention Period `toml:"file_retention"`
	JobRetention  Period `toml:"job_retention"`
}

// Fileset is a [[fileset]]: what a backup takes.
type Fileset struct {
	Name string `toml:"name"`
	// Include lists absolute paths (at least one); they are stored
	// cleaned ("/home/" → "/home").
	Include []string `toml:"include"`
	// Exclude lists absolute paths or globs ("/home/*/.cache"), matched
	// against the whole path (stored cleaned), or name patterns without
	// '/' ("*.tmp", ".cache"), matched against the name of every file and
	// directory. Glob syntax is Go's path.Match: * ? [a-z] and \ to quote.
	Exclude []string `toml:"exclude"`
	// OneFileSystem (default true, as Bareos): do not descend into other
	// mounted file systems below an include.
	OneFileSystem *bool `toml:"one_file_system"`
	// ExcludeCaches (default false): skip the contents of directories
	// holding a valid CACHEDIR.TAG.
	ExcludeCaches bool `toml:"exclude_caches"`
	// XAttrs (default true): back up and restore extended attributes.
	XAttrs *bool `toml:"xattrs"`
}

// StaysOnOneFileSystem is the effective one_file_system.
func (f Fileset) StaysOnOneFileSystem() bool { return f.OneFileSystem == nil || *f.OneFileSystem }

// KeepsXAttrs is the effective xattrs.
func (f Fileset) KeepsXAttrs() bool { return f.XAttrs == nil || *f.XAttrs }

// Schedule is a [[schedule]]: Run lines in Bareos' grammar (package
// configs/schedule).
type Schedule struct {
	Name string   `toml:"name"`
	Run  []string `toml:"run"`
	// Timezone is an IANA zone such as "Europe/Berlin" or "UTC" the Run
	// lines are read in (default: the director's local time).
	Timezone string `toml:"timezone"`

	Location *time.Location     `toml:"-"` // Timezone loaded (time.Local by default)
	Parsed   *schedule.Schedule `toml:"-"` // the Run lines parsed
}

// Pool is a [[pool]]: a set of volumes and the rules of their life
// (jobs.md §4).
type Pool struct {
	Name string `toml:"name"`
	// MediaType of its volumes (default "LTO"; a drive's media_type in
	// storaged.toml).
	MediaType string `toml:"media_type"`
	// Storage is the [[storage]] its volumes live in (optional). A job
	// writing to this pool writes there, whatever its own storage (as
	// Bareos); a job that sets no storage takes it from its pool.
	Storage string `toml:"storage"`
	// Encrypted (default true): only encrypted volumes belong to it.
	Encrypted *bool `toml:"encrypted"`
	// VolumeRetention: a volume last written longer ago may be pruned
	// (default 365 days; more than zero).
	VolumeRetention Period `toml:"volume_retention"`
	// MaxVolumeBytes: a volume holding this much is marked Full (0, the
	// default: no limit but the tape's).
	MaxVolumeBytes SizeLimit `toml:"max_volume_bytes"`
	// MaxVolumeJobs: a volume with this many jobs is marked Used (0: no
	// limit).
	MaxVolumeJobs int `toml:"max_volume_jobs"`
	// VolumeUseDuration: a volume first written longer ago is marked Used
	// (0: no limit).
	VolumeUseDuration Period `toml:"volume_use_duration"`
	// Recycle (default true): purged volumes are reused.
	Recycle *bool `toml:"recycle"`
	// AutoPrune (default true): expired jobs are pruned when a volume is
	// needed.
	AutoPrune *bool `toml:"auto_prune"`
	// ScratchPool takes volumes from that pool when this one has none
	// (optional); RecyclePool is where its recycled volumes go (optional;
	// default: they stay).
	ScratchPool string `toml:"scratch_pool"`
	RecyclePool string `toml:"recycle_pool"`
	// EscrowPublicKey (optional): an escrow public key file (tapekey escrow
	// new --public). Every new key of this pool's volumes is also sealed
	// to it, and the envelope is written into the volume's clear label:
	// the escrow private key alone then opens every such volume in a DR.
	// Only for an encrypted pool.
	EscrowPublicKey string `toml:"escrow_public_key"`
}

// SizeLimit is a Size where 0 means "no limit".
type SizeLimit Size

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *SizeLimit) UnmarshalText(b []byte) error {
	if strings.TrimSpace(string(b)) == "0" {
		*s = 0
		return nil
	}
	return (*Size)(s).UnmarshalText(b)
}

// String shows the limit like Size, or "no limit".
func (s SizeLimit) String() string {
	if s == 0 {
		return "no limit"
	}
	return Size(s).String()
}

// MarshalText implements encoding.TextMarshaler.
func (s SizeLimit) MarshalText() ([]byte, error) {
	if s == 0 {
		return []byte("0"), nil
	}
	return Size(s).MarshalText()
}

// EncryptsVolumes is the effective encrypted.
func (p Pool) EncryptsVolumes() bool { return p.Encrypted == nil || *p.Encrypted }

// Recycles is the effective recycle.
func (p Pool) Recycles() bool { return p.Recycle == nil || *p.Recycle }

// AutoPrunes is the effective auto_prune.
func (p Pool) AutoPrunes() bool { return p.AutoPrune == nil || *p.AutoPrune }

// JobSpec is a [[jobdefs]] or [[job]] table as written: nil means "not
// written here" (a job then takes its jobdefs' value, then the
// default); an explicit zero, "" or false is a value and overrides the
// jobdefs. The director uses Director.Jobs, where this is resolved.
type JobSpec struct {
	Name    string  `toml:"name"`
	JobDefs *string `toml:"jobdefs"` // [[job]] only: the [[jobdefs]] it takes defaults from
	Type    *string `toml:"type"`
	Level   *string `toml:"level"`
	Enabled *bool   `toml:"enabled"`

	Client           *string `toml:"client"`
	Fileset          *string `toml:"fileset"`
	Storage          *string `toml:"storage"`
	Pool             *string `toml:"pool"`
	FullPool         *string `toml:"full_pool"`
	IncrementalPool  *string `toml:"incremental_pool"`
	DifferentialPool *string `toml:"differential_pool"`
	Schedule         *string `toml:"schedule"`

	Priority          *int    `toml:"priority"`
	MaxConcurrentJobs *int    `toml:"max_concurrent_jobs"`
	MaxFullInterval   *Period `toml:"max_full_interval"`
	ClientIdleTimeout *Period `toml:"client_idle_timeout"`
	CatchUp           *Period `toml:"catch_up"`
	MaxVolumeWait     *Period `toml:"max_volume_wait"`
	// AllowDuplicateJobs lets the scheduler queue a run of this job while
	// another run of it is queued or running (default false).
	AllowDuplicateJobs *bool `toml:"allow_duplicate_jobs"`
}

// Job is a [[job]] resolved: its own values, else its jobdefs', else the
// director's ([client_idle_timeout], [catch_up]), else the defaults.
type Job struct {
	Name    string
	JobDefs string // "" : none
	Type    string // JobBackup
	Level   string // LevelFull, LevelIncremental (default) or LevelDifferential
	Enabled bool   // default true; a disabled job is not scheduled

	Client  string
	Fileset string
	// Storage is the job's storage (default: its pool's). A run writes
	// to the storage of the pool it writes to when that pool names one,
	// as in Bareos (a pool's storage overrides the job's): see
	// Director.StorageFor.
	Storage string
	Pool    string
	// FullPool, IncrementalPool, DifferentialPool: the pool for that
	// level ("" : Pool). See PoolFor.
	FullPool         string
	IncrementalPool  string
	DifferentialPool string
	Schedule         string // "" : run by hand only

	Priority          int // default 10; a lower number runs first
	MaxConcurrentJobs int // default 1
	// MaxFullInterval: an Incremental or Differential is upgraded to Full
	// when the last Full is older (0: never).
	MaxFullInterval time.Duration
	// ClientIdleTimeout: a client silent this long during a job fails it
	// (director default 2m).
	ClientIdleTimeout time.Duration
	// CatchUp: a run missed while the director was down is still started
	// when it is at most this late (director default 12h; 0: missed runs
	// are skipped, as in Bareos).
	CatchUp time.Duration
	// MaxVolumeWait: a job that finds no volume waits this long for one
	// (status m, re-tried when a volume is labelled, imported, updated,
	// pruned or purged, and every minute) before it fails (default 0:
	// it fails at once).
	MaxVolumeWait time.Duration
	// AllowDuplicateJobs: a scheduled run is queued even while another
	// run of the job is queued or running (default false: it is skipped
	// and logged, as Bareos does with Allow Duplicate Jobs = no).
	AllowDuplicateJobs bool
}

// PoolFor returns the pool a job of level writes to.
func (j Job) PoolFor(level string) string {
	p := map[string]string{LevelFull: j.FullPool, LevelIncremental: j.IncrementalPool, LevelDifferential: j.DifferentialPool}[level]
	if p == "" {
		return j.Pool
	}
	return p
}

// StorageFor returns the storage a run of job j writing to pool writes
// to: the pool's storage if it names one (as in Bareos, a pool's storage
// overrides the job's), else the job's.
func (d *Director) StorageFor(j *Job, pool string) string {
	if p, ok := d.PoolNamed(pool); ok && p.Storage != "" {
		return p.Storage
	}
	return j.Storage
}

// Job types and levels.
const (
	JobBackup = "Backup"
	// JobCatalog is a backup of the catalog: the director runs pg_dump
	// into catalog_dump_dir, backs that one file up through the job's
	// client (a filed on the director's host), and writes a bootstrap.
	JobCatalog        = "Catalog"
	LevelFull         = "Full"
	LevelIncremental  = "Incremental"
	LevelDifferential = "Differential"
)

// Defaults of the job resources.
const (
	DefaultClientIdleTimeout = 2 * time.Minute
	DefaultCatchUp           = 12 * time.Hour
	DefaultPriority          = 10
	// DefaultCatalogPriority is a Catalog job's default priority: after
	// the nightly jobs (default 10) it dumps the catalog they wrote.
	DefaultCatalogPriority = 100
	DefaultVolumeRetention = 365 * Day
	DefaultMediaType       = "LTO"
)

// ClientNamed, FilesetNamed, ScheduleNamed, PoolNamed and JobNamed find a
// resource by name.
func (d *Director) ClientNamed(name string) (*Client, bool) {
	return named(d.Clients, name, Client.name)
}

func (d *Director) FilesetNamed(name string) (*Fileset, bool) {
	return named(d.Filesets, name, Fileset.name)
}

// CatalogFileset is the built-in fileset of a Catalog job: the one dump
// file, CatalogDumpPath.
const CatalogFileset = "*catalog*"

// CatalogDumpPath is where pg_dump writes the catalog for a Catalog job:
// catalog_dump_dir/DATABASE.dump.
func (d *Director) CatalogDumpPath() string {
	return filepath.Join(d.CatalogDumpDir, d.Catalog.Database+".dump")
}

// JobFileset is the fileset job j backs up: its [[fileset]], or for a
// Catalog job the built-in one holding the catalog dump.
func (d *Director) JobFileset(j *Job) (*Fileset, bool) {
	if j.Type == JobCatalog {
		no := false
		return &Fileset{Name: CatalogFileset, Include: []string{d.CatalogDumpPath()}, OneFileSystem: &no}, true
	}
	return d.FilesetNamed(j.Fileset)
}

func (d *Director) ScheduleNamed(name string) (*Schedule, bool) {
	return named(d.Schedules, name, Schedule.name)
}

func (d *Director) PoolNamed(name string) (*Pool, bool) { return named(d.Pools, name, Pool.name) }

func (d *Director) JobNamed(name string) (*Job, bool) { return named(d.Jobs, name, Job.name) }

func (c Client) name() string   { return c.Name }
func (f Fileset) name() string  { return f.Name }
func (s Schedule) name() string { return s.Name }
func (p Pool) name() string     { return p.Name }
func (j Job) name() string      { return j.Name }

func named[T any](list []T, name string, key func(T) string) (*T, bool) {
	for i := range list {
		if key(list[i]) == name {
			return &list[i], true
		}
	}
	return nil, false
}

// jobResources checks the job resources of director.toml, fills in the
// defaults and resolves the jobs.
func (f *file) jobResources(c *Director) {
	// Director-level defaults of the jobs.
	if !f.defined("client_idle_timeout") {
		c.ClientIdleTimeout.Duration = DefaultClientIdleTimeout
	} else if c.ClientIdleTimeout.Duration <= 0 {
		f.problem(at(-1, "client_idle_timeout"), c.ClientIdleTimeout.written(), "must be longer than zero, e.g. \"2m\" (the default)")
	}
	if !f.defined("catch_up") {
		c.CatchUp.Duration = DefaultCatchUp
	}
	if c.MaxConcurrentJobs < 0 {
		f.problem(at(-1, "max_concurrent_jobs"), c.MaxConcurrentJobs, "must be 0 (no limit, the default) or more")
	}

	storages := map[string]bool{}
	for _, s := range c.Storages {
		storages[s.Name] = true
	}
	clients := f.uniqueNames("client", len(c.Clients), func(i int) string { return c.Clients[i].Name }, `"web1"`)
	for i := range c.Clients {
		cl := &c.Clients[i]
		f.hostPort(at(i, "client", "address"), cl.Address, `"web1.example.com:9102"`, false)
		if cl.TLSServerName == "" {
			if h, _, err := net.SplitHostPort(cl.Address); err == nil {
				cl.TLSServerName = h
			}
		}
		if cl.MaxConcurrentJobs == 0 && !f.has(i, "client", "max_concurrent_jobs") {
			cl.MaxConcurrentJobs = 1
		}
		if cl.MaxConcurrentJobs < 1 {
			f.problem(at(i, "client", "max_concurrent_jobs"), cl.MaxConcurrentJobs, "must be 1 or more (default 1)")
		}
		f.retention(at(i, "client", "file_retention"), cl.FileRetention, "60 days", true)
		f.retention(at(i, "client", "job_retention"), cl.JobRetention, "180 days", true)
	}

	filesets := f.uniqueNames("fileset", len(c.Filesets), func(i int) string { return c.Filesets[i].Name }, `"web"`)
	for i := range c.Filesets {
		f.fileset(i, &c.Filesets[i])
	}

	pools := f.uniqueNames("pool", len(c.Pools), func(i int) string { return c.Pools[i].Name }, `"Offsite"`)
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.MediaType == "" {
			p.MediaType = DefaultMediaType
		}
		if p.Storage != "" {
			f.ref(at(i, "pool", "storage"), p.Storage, "storage", storages)
		}
		if f.has(i, "pool", "volume_retention") {
			f.retention(at(i, "pool", "volume_retention"), p.VolumeRetention, "365 days", false)
		} else {
			p.VolumeRetention.Duration = DefaultVolumeRetention
		}
		if p.MaxVolumeJobs < 0 {
			f.problem(at(i, "pool", "max_volume_jobs"), p.MaxVolumeJobs, "must be 0 (no limit) or more")
		}
		f.retention(at(i, "pool", "volume_use_duration"), p.VolumeUseDuration, "7 days", true)
		if f.has(i, "pool", "escrow_public_key") {
			switch {
			case strings.TrimSpace(p.EscrowPublicKey) == "":
				f.problem(at(i, "pool", "escrow_public_key"), p.EscrowPublicKey, "must name an escrow public key file (make one with: tapekey escrow new --out escrow.key --public escrow.pub), or be left out")
			case !p.EncryptsVolumes():
				f.problem(at(i, "pool", "escrow_public_key"), p.EscrowPublicKey, "is set on a pool with encrypted = false: there is no key to escrow; remove it or encrypt the pool")
			}
		}
		for _, k := range []struct {
			key, v string
		}{{"scratch_pool", p.ScratchPool}, {"recycle_pool", p.RecyclePool}} {
			if k.v == "" {
				continue
			}
			if k.v == p.Name && k.key == "scratch_pool" {
				f.problem(at(i, "pool", k.key), k.v, "a pool cannot be its own scratch pool; name another [[pool]], e.g. \"Scratch\"")
				continue
			}
			f.ref(at(i, "pool", k.key), k.v, "pool", pools)
		}
	}
	if len(c.Pools) > 0 && c.DefaultPool != "" && !pools[c.DefaultPool] {
		f.ref(at(-1, "default_pool"), c.DefaultPool, "pool", pools)
	}

	schedules := f.uniqueNames("schedule", len(c.Schedules), func(i int) string { return c.Schedules[i].Name }, `"WeeklyCycle"`)
	for i := range c.Schedules {
		f.schedule(c, i, storages, pools)
	}

	// [[jobdefs]]: each value is checked where it is written, once.
	defs := f.uniqueNames("jobdefs", len(c.JobDefs), func(i int) string { return c.JobDefs[i].Name }, `"DefaultJob"`)
	refs := map[string]map[string]bool{"client": clients, "fileset": filesets, "storage": storages, "pool": pools, "schedule": schedules}
	for i := range c.JobDefs {
		d := &c.JobDefs[i]
		if d.JobDefs != nil {
			f.problem(at(i, "jobdefs", "jobdefs"), *d.JobDefs, "a [[jobdefs]] cannot take defaults from another; set the values here")
		}
		f.jobSpec("jobdefs", i, d, refs)
	}
	f.uniqueNames("job", len(c.JobSpecs), func(i int) string { return c.JobSpecs[i].Name }, `"backup-web1"`)
	c.Jobs = make([]Job, len(c.JobSpecs))
	for i := range c.JobSpecs {
		js := &c.JobSpecs[i]
		f.jobSpec("job", i, js, refs)
		var d *JobSpec // its jobdefs, or an empty one
		di := -1
		if js.JobDefs != nil {
			if !f.ref(at(i, "job", "jobdefs"), *js.JobDefs, "jobdefs", defs) {
				continue // what is missing is not known
			}
			for k := range c.JobDefs {
				if c.JobDefs[k].Name == *js.JobDefs {
					d, di = &c.JobDefs[k], k
					break
				}
			}
		}
		if d == nil {
			d = &JobSpec{}
		}
		c.Jobs[i] = f.resolveJob(c, i, js, d, di)
	}
}

// uniqueNames checks the name of each element of [[table]] and returns
// the set of names.
func (f *file) uniqueNames(table string, n int, name func(int) string, example string) map[string]bool {
	names := map[string]bool{}
	for i := 0; i < n; i++ {
		v := name(i)
		f.name(at(i, table, "name"), v, example)
		if names[v] && v != "" {
			f.problem(at(i, table, "name"), v, "another [[%s]] has this name; names must be unique", table)
		}
		if v != "" {
			names[v] = true
		}
	}
	return names
}

// ref checks that v names a [[kind]]; it reports the names defined.
func (f *file) ref(l loc, v, kind string, defined map[string]bool) bool {
	if defined[v] {
		return true
	}
	if v == "" {
		f.problem(l, v, "name a [[%s]] (defined: %s)", kind, strings.Join(keys(defined), ", "))
		return false
	}
	f.problem(l, v, "no [[%s]] has this name (defined: %s)", kind, strings.Join(keys(defined), ", "))
	return false
}

// retention checks an optional period that Bareos users write with "m"
// for months: zero is allowed when zeroOK, negative never is.
func (f *file) retention(l loc, p Period, example string, zeroOK bool) {
	switch {
	case p.bareM:
		f.problem(l, p.written(), "reads as %s (\"m\" is minutes, as in Go durations; Bareos reads it as months): write the unit out, e.g. %q or \"%d minutes\"",
			p.Duration, example, int(p.Duration/time.Minute))
	case p.Duration < 0 || p.Duration == 0 && !zeroOK:
		f.problem(l, p.written(), "must be longer than zero, e.g. %q", example)
	}
}

func (f *file) fileset(i int, fs *Fileset) {
	if !f.has(i, "fileset", "include") || len(fs.Include) == 0 {
		f.add(f.lineOf([]string{"fileset", "include"}, i), fmt.Sprintf("[[fileset]] #%d include is missing; add e.g. include = [\"/etc\", \"/home\"] (absolute paths)", i+1))
	}
	lines := f.itemLines(i, "fileset", "include")
	seen := map[string]bool{}
	for k, p := range fs.Include {
		l := item(lines, k, f.lineOf([]string{"fileset", "include"}, i))
		switch {
		case !filepath.IsAbs(p):
			f.add(l, fmt.Sprintf("[[fileset]] #%d include = %q: write an absolute path, e.g. \"/home\"", i+1, p))
		case seen[filepath.Clean(p)]:
			f.add(l, fmt.Sprintf("[[fileset]] #%d include = %q: listed twice", i+1, p))
		default:
			fs.Include[k] = filepath.Clean(p)
		}
		seen[filepath.Clean(p)] = true
	}
	lines = f.itemLines(i, "fileset", "exclude")
	for k, p := range fs.Exclude {
		l := item(lines, k, f.lineOf([]string{"fileset", "exclude"}, i))
		switch {
		case strings.TrimSpace(p) == "":
			f.add(l, fmt.Sprintf("[[fileset]] #%d exclude = \"\": write a path or a pattern, e.g. \"/home/*/.cache\" or \"*.tmp\"", i+1))
		case strings.Contains(p, "/") && !strings.HasPrefix(p, "/"):
			f.add(l, fmt.Sprintf("[[fileset]] #%d exclude = %q: a pattern with '/' is matched against whole paths and must start with '/', e.g. \"/%s\" or \"/home/*/%s\"; a name pattern (matched in every directory) has no '/', e.g. \"*.tmp\"", i+1, p, p, p))
		default:
			if _, err := path.Match(p, ""); err != nil {
				f.add(l, fmt.Sprintf("[[fileset]] #%d exclude = %q: not a valid glob (%v); use * ? [a-z], and \\ to quote", i+1, p, err))
			} else if strings.HasPrefix(p, "/") {
				fs.Exclude[k] = path.Clean(p)
			}
		}
	}
}

// item returns the line of the k-th array item, or def.
func item(lines []int, k, def int) int {
	if k < len(lines) {
		return lines[k]
	}
	return def
}

func (f *file) schedule(c *Director, i int, storages, pools map[string]bool) {
	s := &c.Schedules[i]
	s.Location = time.Local
	if s.Timezone != "" {
		loc, err := time.LoadLocation(s.Timezone)
		if err != nil {
			f.problem(at(i, "schedule", "timezone"), s.Timezone, "not a time zone: write an IANA name such as \"Europe/Berlin\" or \"UTC\", or omit it for the director's local time (%v)", err)
		} else {
			s.Location = loc
		}
	}
	header := f.lineOf([]string{"schedule"}, i)
	if !f.has(i, "schedule", "run") {
		f.add(header, fmt.Sprintf("[[schedule]] #%d run is missing; add e.g. run = [\"Full 1st sat at 21:00\", \"Incremental mon-fri at 21:00\"]", i+1))
		return
	}
	what := fmt.Sprintf("[[schedule]] %q", s.Name)
	lines := f.itemLines(i, "schedule", "run")
	runLine := func(n int) int { // n is 1-based
		if n < 1 {
			return header
		}
		return item(lines, n-1, f.lineOf([]string{"schedule", "run"}, i))
	}
	parsed, warns, err := schedule.ParseSchedule(s.Name, s.Run)
	if err != nil {
		var list []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		} else {
			list = []error{err}
		}
		for _, e := range list {
			var se *schedule.SyntaxError
			if !errors.As(e, &se) {
				f.add(header, fmt.Sprintf("%s: %v", what, e))
				continue
			}
			got := "; the line ends there"
			if se.Got != "" {
				got = fmt.Sprintf("; got %q", se.Got)
			}
			f.add(runLine(se.Line), fmt.Sprintf("%s run entry %d %q: column %d: %s%s", what, se.Line, s.Run[se.Line-1], se.Col, se.Expected, got))
		}
	}
	for _, w := range warns {
		var msg string
		switch {
		case w.Line == 0: // the schedule as a whole
			msg = fmt.Sprintf("%s: %s", what, w.Msg)
		case w.Col > 0:
			msg = fmt.Sprintf("%s run entry %d %q: column %d: %s", what, w.Line, s.Run[w.Line-1], w.Col, w.Msg)
		default:
			msg = fmt.Sprintf("%s run entry %d %q: %s", what, w.Line, s.Run[w.Line-1], w.Msg)
		}
		if l := runLine(w.Line); l > 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s", f.path, l, msg))
		} else {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s", f.path, msg))
		}
	}
	if parsed == nil {
		return
	}
	s.Parsed = parsed
	// The Run lines' overrides name pools and storages.
	for n, r := range parsed.Runs {
		for _, o := range []struct{ key, v, kind string }{
			{"Pool", r.Pool, "pool"}, {"FullPool", r.FullPool, "pool"}, {"IncrementalPool", r.IncrementalPool, "pool"},
			{"DifferentialPool", r.DifferentialPool, "pool"}, {"Storage", r.Storage, "storage"},
		} {
			defined := pools
			if o.kind == "storage" {
				defined = storages
			}
			if o.v != "" && !defined[o.v] {
				f.add(runLine(n+1), fmt.Sprintf("%s run entry %d %q: %s=%s: no [[%s]] has this name (defined: %s)",
					what, n+1, s.Run[n], o.key, o.v, o.kind, strings.Join(keys(defined), ", ")))
			}
		}
	}
}

// levels are the job levels, by their lower-case spelling.
var levels = map[string]string{"full": LevelFull, "incremental": LevelIncremental, "differential": LevelDifferential}

// jobSpec checks the values a [[jobdefs]] or [[job]] table writes (where
// they are written) and spells type and level canonically.
func (f *file) jobSpec(table string, i int, s *JobSpec, refs map[string]map[string]bool) {
	l := func(key string) loc { return at(i, table, key) }
	if s.Type != nil {
		switch strings.ToLower(*s.Type) {
		case "backup":
			*s.Type = JobBackup
		case "catalog":
			*s.Type = JobCatalog
		case "restore":
			f.problem(l("type"), *s.Type, "Restore jobs are not supported yet: only \"Backup\" (the default) or \"Catalog\"; restore with the console's restore command")
		default:
			f.problem(l("type"), *s.Type, "must be \"Backup\" (the default) or \"Catalog\" (a backup of the catalog's pg_dump)")
		}
	}
	if s.Level != nil {
		if lv, ok := levels[strings.ToLower(*s.Level)]; ok {
			*s.Level = lv
		} else {
			f.problem(l("level"), *s.Level, "must be Full, Incremental (the default) or Differential")
		}
	}
	for _, r := range []struct {
		key, kind string
		v         *string
		optional  bool
	}{
		{"client", "client", s.Client, false}, {"fileset", "fileset", s.Fileset, false},
		{"storage", "storage", s.Storage, false}, {"pool", "pool", s.Pool, false},
		{"full_pool", "pool", s.FullPool, true}, {"incremental_pool", "pool", s.IncrementalPool, true},
		{"differential_pool", "pool", s.DifferentialPool, true}, {"schedule", "schedule", s.Schedule, true},
	} {
		if r.v == nil || *r.v == "" && r.optional {
			continue // not written, or "" : none
		}
		f.ref(l(r.key), *r.v, r.kind, refs[r.kind])
	}
	if s.Priority != nil && *s.Priority < 1 {
		f.problem(l("priority"), *s.Priority, "must be 1 or more (a lower number runs first; default %d)", DefaultPriority)
	}
	if s.MaxConcurrentJobs != nil && *s.MaxConcurrentJobs < 1 {
		f.problem(l("max_concurrent_jobs"), *s.MaxConcurrentJobs, "must be 1 or more (default 1)")
	}
	if s.MaxFullInterval != nil {
		f.retention(l("max_full_interval"), *s.MaxFullInterval, "31 days", true)
	}
	if s.ClientIdleTimeout != nil && s.ClientIdleTimeout.Duration <= 0 {
		f.problem(l("client_idle_timeout"), s.ClientIdleTimeout.written(), "must be longer than zero, e.g. \"2m\"")
	}
	if s.MaxVolumeWait != nil && s.MaxVolumeWait.Duration < 0 {
		f.problem(l("max_volume_wait"), s.MaxVolumeWait.written(), "must not be negative (\"0s\", the default, fails a job with no volume at once; e.g. \"4h\")")
	}
}

// inherit is a [[job]] field: the job's value if it set one, else its
// jobdefs' value if that set one, else fallback.
func inherit[T any](job, def *T, fallback T) T {
	switch {
	case job != nil:
		return *job
	case def != nil:
		return *def
	}
	return fallback
}

// resolveJob merges a [[job]] (index i) with its jobdefs d (index di;
// an empty JobSpec when none) and the defaults.
func (f *file) resolveJob(c *Director, i int, js, d *JobSpec, di int) Job {
	per := func(job, def *Period, fallback time.Duration) time.Duration {
		return inherit(job, def, Period{Duration: fallback}).Duration
	}
	j := Job{
		Name:               js.Name,
		JobDefs:            inherit(js.JobDefs, nil, ""),
		Type:               inherit(js.Type, d.Type, JobBackup),
		Level:              inherit(js.Level, d.Level, LevelIncremental),
		Enabled:            inherit(js.Enabled, d.Enabled, true),
		Client:             inherit(js.Client, d.Client, ""),
		Fileset:            inherit(js.Fileset, d.Fileset, ""),
		Storage:            inherit(js.Storage, d.Storage, ""),
		Pool:               inherit(js.Pool, d.Pool, ""),
		FullPool:           inherit(js.FullPool, d.FullPool, ""),
		IncrementalPool:    inherit(js.IncrementalPool, d.IncrementalPool, ""),
		DifferentialPool:   inherit(js.DifferentialPool, d.DifferentialPool, ""),
		Schedule:           inherit(js.Schedule, d.Schedule, ""),
		Priority:           inherit(js.Priority, d.Priority, DefaultPriority),
		MaxConcurrentJobs:  inherit(js.MaxConcurrentJobs, d.MaxConcurrentJobs, 1),
		MaxFullInterval:    per(js.MaxFullInterval, d.MaxFullInterval, 0),
		ClientIdleTimeout:  per(js.ClientIdleTimeout, d.ClientIdleTimeout, c.ClientIdleTimeout.Duration),
		CatchUp:            per(js.CatchUp, d.CatchUp, c.CatchUp.Duration),
		MaxVolumeWait:      per(js.MaxVolumeWait, d.MaxVolumeWait, 0),
		AllowDuplicateJobs: inherit(js.AllowDuplicateJobs, d.AllowDuplicateJobs, false),
	}
	from := ""
	if di >= 0 {
		from = fmt.Sprintf(" or in its [[jobdefs]] %q", d.Name)
	}
	header := f.lineOf([]string{"job"}, i)
	need := func(key, kind string, names []string, extra string) {
		example := `"name"`
		if len(names) > 0 {
			example = fmt.Sprintf("%q", names[0])
		}
		f.add(header, fmt.Sprintf("[[job]] %s %s is missing; add e.g. %s = %s here%s%s (defined [[%s]]: %s)",
			jobWhat(js.Name, i), key, key, example, from, extra, kind, strings.Join(orNone(names), ", ")))
	}
	var poolNames, storageNames, clientNames, filesetNames []string
	for _, p := range c.Pools {
		poolNames = append(poolNames, p.Name)
	}
	for _, s := range c.Storages {
		storageNames = append(storageNames, s.Name)
	}
	for _, cl := range c.Clients {
		clientNames = append(clientNames, cl.Name)
	}
	for _, fs := range c.Filesets {
		filesetNames = append(filesetNames, fs.Name)
	}
	if js.Client == nil && d.Client == nil {
		need("client", "client", clientNames, "")
	}
	if j.Type == JobCatalog {
		if js.Priority == nil && d.Priority == nil {
			j.Priority = DefaultCatalogPriority
		}
		if js.Level == nil && d.Level == nil {
			j.Level = LevelFull
		}
		if j.Fileset != "" {
			f.add(header, fmt.Sprintf("[[job]] %s is type = \"Catalog\": it backs up the catalog dump (catalog_dump_dir) itself; remove fileset = %q", jobWhat(js.Name, i), j.Fileset))
		}
		if c.CatalogDumpDir == "" {
			f.add(header, fmt.Sprintf("[[job]] %s is type = \"Catalog\" but director.toml has no catalog_dump_dir; add e.g. catalog_dump_dir = \"/var/lib/tapeward/catalog-dump\" at the top (pg_dump writes the dump there, mode 0600)", jobWhat(js.Name, i)))
		}
		if c.BootstrapDir == "" && c.BootstrapCommand == "" {
			f.add(header, fmt.Sprintf("[[job]] %s is type = \"Catalog\" but director.toml has neither bootstrap_dir nor bootstrap_command; add e.g. bootstrap_dir = \"/var/lib/tapeward/bootstrap\" and/or bootstrap_command = \"mail -s 'tapeward bootstrap' admin\" at the top (a catalog on tape is found with its bootstrap)", jobWhat(js.Name, i)))
		}
	} else if js.Fileset == nil && d.Fileset == nil {
		need("fileset", "fileset", filesetNames, "")
	}
	if js.Pool == nil && d.Pool == nil {
		need("pool", "pool", poolNames, "")
	}
	if j.Storage == "" {
		// (An unknown or missing pool is reported already.)
		if p, ok := c.PoolNamed(j.Pool); ok && p.Storage != "" {
			j.Storage = p.Storage
		} else if ok && js.Storage == nil && d.Storage == nil {
			extra := ""
			if j.Pool != "" {
				extra = fmt.Sprintf(" or in [[pool]] %q", j.Pool)
			}
			need("storage", "storage", storageNames, extra)
		}
	}
	return j
}

func jobWhat(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d", i+1)
	}
	return fmt.Sprintf("%q", name)
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"none"}
	}
	return s
}

// Identity is the fileset's identity as the catalog stores it with each
// job (jobs.fileset_identity): what decides "same fileset" for a
// since-time (a changed identity upgrades the next job to Full): a
// sha256 (64 hex) of the cleaned, sorted, deduplicated includes, the
// sorted, deduplicated excludes and the effective options. Order,
// duplicates, trailing slashes and Name do not change it; its value is
// pinned by a test (catalogs keep it across versions).
func (f Fileset) Identity() string {
	h := sha256.New()
	h.Write([]byte("tapeward fileset v1\x00"))
	inc := make([]string, 0, len(f.Include))
	for _, p := range f.Include {
		inc = append(inc, filepath.Clean(p))
	}
	slices.Sort(inc)
	for _, p := range slices.Compact(inc) {
		h.Write([]byte("include\x00" + p + "\x00"))
	}
	ex := slices.Clone(f.Exclude)
	slices.Sort(ex)
	for _, p := range slices.Compact(ex) {
		h.Write([]byte("exclude\x00" + p + "\x00"))
	}
	fmt.Fprintf(h, "onefs=%t\x00caches=%t\x00xattrs=%t\x00", f.StaysOnOneFileSystem(), f.ExcludeCaches, f.KeepsXAttrs())
	return hex.EncodeToString(h.Sum(nil))
}
