package configs

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dirText is a minimal director.toml: top goes before the first table
// (top-level keys), tables after the [[storage]]s sd1 and sd2.
func dirText(top, tables string) string {
	return `name = "director"
listen = "127.0.0.1:9101"
` + top + `
[tls]
ca = "ca.crt"
cert = "director.crt"
key = "director.key"

[catalog]
host = "127.0.0.1"
database = "tapeward"
user = "tapeward"

[[keys.kek]]
file = "kek.key"
active = true

[[storage]]
name = "sd1"
address = "127.0.0.1:9103"

[[storage]]
name = "sd2"
address = "127.0.0.1:9104"
` + tables
}

// resources is a set of job resources every job test builds on.
const resources = `
[[client]]
name = "web1"
address = "web1.example.com:9102"

[[client]]
name = "db1"
address = "10.0.0.5:9102"

[[fileset]]
name = "web"
include = ["/srv"]

[[schedule]]
name = "Nightly"
run = ["Incremental mon-fri at 21:00"]

[[pool]]
name = "Offsite"
storage = "sd2"

[[pool]]
name = "Local"
`

func loadDir(t *testing.T, text string) (*Director, string, error) {
	t.Helper()
	p := write(t, "director.toml", text)
	d, err := LoadDirector(p)
	return d, p, err
}

func mustLoadDir(t *testing.T, text string) *Director {
	t.Helper()
	d, _, err := loadDir(t, text)
	if err != nil {
		t.Fatalf("%v\n--- the file:\n%s", err, text)
	}
	return d
}

func TestShippedJobResources(t *testing.T) {
	d, err := LoadDirector("director.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("warnings: %q", d.Warnings)
	}
	if d.ClientIdleTimeout.Duration != 2*time.Minute || d.CatchUp.Duration != 12*time.Hour {
		t.Errorf("director defaults: client_idle_timeout %v, catch_up %v", d.ClientIdleTimeout, d.CatchUp)
	}
	cl, ok := d.ClientNamed("web1")
	if !ok || cl.Address != "127.0.0.1:9102" || cl.TLSServerName != "127.0.0.1" || cl.MaxConcurrentJobs != 1 || cl.FileRetention.Duration != 0 {
		t.Errorf("client web1: %+v, %v", cl, ok)
	}
	fs, ok := d.FilesetNamed("web")
	if !ok || !slices.Equal(fs.Include, []string{"/etc", "/var/www"}) || !slices.Equal(fs.Exclude, []string{"/var/www/*/cache", "*.tmp"}) ||
		!fs.StaysOnOneFileSystem() || !fs.KeepsXAttrs() || fs.ExcludeCaches {
		t.Errorf("fileset web: %+v, %v", fs, ok)
	}
	s, ok := d.ScheduleNamed("WeeklyCycle")
	if !ok || s.Parsed == nil || len(s.Parsed.Runs) != 3 || s.Location != time.Local {
		t.Fatalf("schedule WeeklyCycle: %+v, %v", s, ok)
	}
	if s.Parsed.Runs[0].Level != "Full" || s.Parsed.Runs[2].Level != "Incremental" {
		t.Errorf("run levels: %v", s.Parsed.Runs)
	}
	def, _ := d.PoolNamed("Default")
	if def == nil || def.MediaType != "LTO" || !def.EncryptsVolumes() || !def.Recycles() || !def.AutoPrunes() ||
		def.VolumeRetention.Duration != 365*24*time.Hour || def.MaxVolumeBytes != 0 || def.MaxVolumeJobs != 0 ||
		def.VolumeUseDuration.Duration != 0 || def.Storage != "" || def.ScratchPool != "" || def.RecyclePool != "" {
		t.Errorf("pool Default (all defaults): %+v", def)
	}
	off, _ := d.PoolNamed("Offsite")
	if off == nil || off.Storage != "sd1" || off.VolumeRetention.Duration != 180*24*time.Hour || off.MaxVolumeBytes != 12<<40 ||
		off.VolumeUseDuration.Duration != 7*24*time.Hour || off.ScratchPool != "Scratch" {
		t.Errorf("pool Offsite: %+v", off)
	}
	want := Job{Name: "backup-web1", JobDefs: "DefaultJob", Type: "Backup", Level: "Incremental", Enabled: true,
		Client: "web1", Fileset: "web", Storage: "sd1", Pool: "Offsite", Schedule: "WeeklyCycle",
		Priority: 10, MaxConcurrentJobs: 1, ClientIdleTimeout: 2 * time.Minute, CatchUp: 12 * time.Hour}
	if j, ok := d.JobNamed("backup-web1"); !ok || *j != want {
		t.Errorf("job backup-web1 = %+v\nwant %+v", j, want)
	}
	if _, ok := d.JobNamed("nope"); ok {
		t.Error("JobNamed found an undefined job")
	}
}

// max_volume_wait: a job's own, else its jobdefs', else 0 (fail at once).
func TestMaxVolumeWait(t *testing.T) {
	d := mustLoadDir(t, dirText("", resources+`
[[jobdefs]]
name = "patient"
max_volume_wait = "4h"

[[job]]
name = "a"
jobdefs = "patient"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"

[[job]]
name = "b"
jobdefs = "patient"
max_volume_wait = "0s"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"

[[job]]
name = "c"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"
`))
	for name, want := range map[string]time.Duration{"a": 4 * time.Hour, "b": 0, "c": 0} {
		if j, ok := d.JobNamed(name); !ok || j.MaxVolumeWait != want {
			t.Errorf("job %s: max_volume_wait %v, want %v", name, j.MaxVolumeWait, want)
		}
	}
}

func TestAllowDuplicateJobs(t *testing.T) {
	d := mustLoadDir(t, dirText("", resources+`
[[jobdefs]]
name = "dups"
allow_duplicate_jobs = true

[[job]]
name = "a"
jobdefs = "dups"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"

[[job]]
name = "b"
jobdefs = "dups"
allow_duplicate_jobs = false
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"

[[job]]
name = "c"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"
`))
	for name, want := range map[string]bool{"a": true, "b": false, "c": false} {
		if j, ok := d.JobNamed(name); !ok || j.AllowDuplicateJobs != want {
			t.Errorf("job %s: allow_duplicate_jobs %t, want %t", name, j.AllowDuplicateJobs, want)
		}
	}
}

func TestJobDefaults(t *testing.T) {
	d := mustLoadDir(t, dirText("", resources+`
[[job]]
name = "j"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"
`))
	want := Job{Name: "j", Type: JobBackup, Level: LevelIncremental, Enabled: true, Client: "web1", Fileset: "web",
		Storage: "sd1", Pool: "Local", Priority: 10, MaxConcurrentJobs: 1, ClientIdleTimeout: 2 * time.Minute, CatchUp: 12 * time.Hour}
	if len(d.Jobs) != 1 || d.Jobs[0] != want {
		t.Fatalf("jobs %+v\nwant %+v", d.Jobs, want)
	}
	if d.Jobs[0].PoolFor(LevelFull) != "Local" {
		t.Errorf("PoolFor(Full) = %q", d.Jobs[0].PoolFor(LevelFull))
	}
	// A pool's storage overrides the job's (Bareos); a pool without one
	// leaves the job's.
	if got := d.StorageFor(&d.Jobs[0], "Offsite"); got != "sd2" {
		t.Errorf("StorageFor(Offsite) = %q, want sd2 (the pool's)", got)
	}
	if got := d.StorageFor(&d.Jobs[0], "Local"); got != "sd1" {
		t.Errorf("StorageFor(Local) = %q, want sd1 (the job's)", got)
	}
	cl, _ := d.ClientNamed("db1")
	if cl.TLSServerName != "10.0.0.5" || cl.MaxConcurrentJobs != 1 {
		t.Errorf("client db1 %+v", cl)
	}
	if d.Schedules[0].Location != time.Local {
		t.Errorf("schedule location %v, want Local", d.Schedules[0].Location)
	}

	// The director-level defaults change every job's; "0" catch_up skips.
	d = mustLoadDir(t, dirText("client_idle_timeout = \"5m\"\ncatch_up = \"0\"\nmax_concurrent_jobs = 3", resources+`
[[job]]
name = "j"
client = "web1"
fileset = "web"
pool = "Offsite"
`))
	if j := d.Jobs[0]; j.ClientIdleTimeout != 5*time.Minute || j.CatchUp != 0 || j.Storage != "sd2" {
		t.Errorf("job %+v: want client_idle_timeout 5m, catch_up 0 (director's), storage sd2 (its pool's)", j)
	}
	if d.MaxConcurrentJobs != 3 {
		t.Errorf("director max_concurrent_jobs %d, want 3", d.MaxConcurrentJobs)
	}
}

func TestJobDefsInheritance(t *testing.T) {
	defs := `
[[jobdefs]]
name = "Defs"
type = "backup"
level = "full"
client = "web1"
fileset = "web"
storage = "sd1"
pool = "Local"
full_pool = "Offsite"
incremental_pool = "Local"
differential_pool = "Offsite"
schedule = "Nightly"
priority = 5
max_concurrent_jobs = 3
enabled = false
max_full_interval = "31 days"
client_idle_timeout = "10m"
catch_up = "6h"
`
	inherited := Job{Name: "all", JobDefs: "Defs", Type: JobBackup, Level: LevelFull, Enabled: false, Client: "web1", Fileset: "web",
		Storage: "sd1", Pool: "Local", FullPool: "Offsite", IncrementalPool: "Local", DifferentialPool: "Offsite",
		Schedule: "Nightly", Priority: 5, MaxConcurrentJobs: 3, MaxFullInterval: 31 * 24 * time.Hour,
		ClientIdleTimeout: 10 * time.Minute, CatchUp: 6 * time.Hour}
	for _, c := range []struct {
		name string
		job  string // keys of the [[job]] besides name and jobdefs
		want func(*Job)
	}{
		{"nothing set: everything from the jobdefs", ``, func(j *Job) {}},
		{"explicit true overrides the jobdefs' false", "enabled = true", func(j *Job) { j.Enabled = true }},
		{"explicit catch_up 0 overrides 6h", `catch_up = "0"`, func(j *Job) { j.CatchUp = 0 }},
		{"explicit max_full_interval 0 overrides 31 days", `max_full_interval = "0"`, func(j *Job) { j.MaxFullInterval = 0 }},
		{"explicit empty schedule: run by hand only", `schedule = ""`, func(j *Job) { j.Schedule = "" }},
		{"explicit empty per-level pools fall back to pool", "full_pool = \"\"\ndifferential_pool = \"\"", func(j *Job) { j.FullPool, j.DifferentialPool = "", "" }},
		{"scalars override", "priority = 20\nmax_concurrent_jobs = 1\nlevel = \"Differential\"\nclient_idle_timeout = \"1h\"",
			func(j *Job) {
				j.Priority, j.MaxConcurrentJobs, j.Level, j.ClientIdleTimeout = 20, 1, LevelDifferential, time.Hour
			}},
		{"references override", "client = \"db1\"\nstorage = \"sd2\"\npool = \"Offsite\"\nschedule = \"Nightly\"",
			func(j *Job) { j.Client, j.Storage, j.Pool = "db1", "sd2", "Offsite" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := mustLoadDir(t, dirText("", resources+defs+"\n[[job]]\nname = \"all\"\njobdefs = \"Defs\"\n"+c.job+"\n"))
			want := inherited
			c.want(&want)
			if d.Jobs[0] != want {
				t.Errorf("job %+v\nwant %+v", d.Jobs[0], want)
			}
		})
	}

	// An explicit false in the jobdefs is inherited, not mistaken for
	// "not set" (enabled's default is true); an explicit false in the job
	// overrides the jobdefs' true; a jobdefs that sets nothing gives the
	// defaults.
	d := mustLoadDir(t, dirText("", resources+"[[jobdefs]]\nname = \"Off\"\nenabled = false\n\n[[jobdefs]]\nname = \"Empty\"\n"+
		"\n[[jobdefs]]\nname = \"On\"\nenabled = true\n"+
		"\n[[job]]\nname = \"a\"\njobdefs = \"Off\"\nclient = \"web1\"\nfileset = \"web\"\npool = \"Offsite\"\n"+
		"\n[[job]]\nname = \"b\"\njobdefs = \"Empty\"\nclient = \"web1\"\nfileset = \"web\"\npool = \"Offsite\"\n"+
		"\n[[job]]\nname = \"c\"\njobdefs = \"On\"\nenabled = false\nclient = \"web1\"\nfileset = \"web\"\npool = \"Offsite\"\n"))
	if d.Jobs[0].Enabled || !d.Jobs[1].Enabled || d.Jobs[1].Priority != 10 || d.Jobs[1].Level != LevelIncremental || d.Jobs[2].Enabled {
		t.Errorf("jobs %+v", d.Jobs)
	}
	if d.Jobs[0].PoolFor(LevelFull) != "Offsite" {
		t.Errorf("PoolFor")
	}
	full := inherited
	if full.PoolFor(LevelFull) != "Offsite" || full.PoolFor(LevelIncremental) != "Local" || full.PoolFor(LevelDifferential) != "Offsite" {
		t.Errorf("PoolFor per level: %+v", full)
	}
}

// TestJobResourceErrors: every problem names the file, the line of the
// value (or table) and the key, and says what to write.
func TestJobResourceErrors(t *testing.T) {
	job := "\n[[job]]\nname = \"j\"\nclient = \"web1\"\nfileset = \"web\"\npool = \"Offsite\"\n"
	for _, c := range []struct {
		name        string
		top, tables string
		line        string // a substring of the line the error names ("" : no line)
		msg         string
	}{
		{"director max_concurrent_jobs -1", "max_concurrent_jobs = -1", "", "max_concurrent_jobs", `max_concurrent_jobs = -1: must be 0 (no limit, the default) or more`},
		// [[client]]
		{"client without address", "", "[[client]]\nname = \"c\"\n", "[[client]]", `[[client]] #1 address is missing; add e.g. address = "web1.example.com:9102"`},
		{"client address without port", "", "[[client]]\nname = \"c\"\naddress = \"c.example.com\"\n", `"c.example.com"`, `[[client]] #1 address = "c.example.com": must be host:port`},
		{"client max_concurrent_jobs 0", "", "[[client]]\nname = \"c\"\naddress = \"c:1\"\nmax_concurrent_jobs = 0\n", "max_concurrent_jobs", `[[client]] #1 max_concurrent_jobs = 0: must be 1 or more (default 1)`},
		{"client name twice", "", resources + "[[client]]\nname = \"web1\"\naddress = \"x:1\"\n", `name = "web1"`, `[[client]] #3 name = "web1": another [[client]] has this name; names must be unique`},
		{"client bad name", "", "[[client]]\nname = \"web 1\"\naddress = \"x:1\"\n", `"web 1"`, `[[client]] #1 name = "web 1": use only letters, digits, '-', '_' and '.'`},
		{"client retention in m", "", "[[client]]\nname = \"c\"\naddress = \"c:1\"\nfile_retention = \"6m\"\n", "file_retention", `[[client]] #1 file_retention = "6m": reads as 6m0s ("m" is minutes, as in Go durations; Bareos reads it as months): write the unit out, e.g. "60 days" or "6 minutes"`},
		{"unknown client key", "", "[[client]]\nname = \"c\"\naddress = \"c:1\"\nfd_port = 9102\n", "fd_port", `unknown key "fd_port" in [client]; the keys allowed there are: address, file_retention, job_retention, max_concurrent_jobs, name, tls_server_name`},
		// [[fileset]]
		{"fileset without include", "", "[[fileset]]\nname = \"f\"\n", "[[fileset]]", `[[fileset]] #1 include is missing; add e.g. include = ["/etc", "/home"] (absolute paths)`},
		{"fileset empty include", "", "[[fileset]]\nname = \"f\"\ninclude = []\n", "include", `[[fileset]] #1 include is missing`},
		{"fileset relative include", "", "[[fileset]]\nname = \"f\"\ninclude = [\n  \"/etc\",\n  \"home\",\n]\n", `"home"`, `[[fileset]] #1 include = "home": write an absolute path, e.g. "/home"`},
		{"fileset include twice", "", "[[fileset]]\nname = \"f\"\ninclude = [\"/etc\",\n \"/etc/\"]\n", `"/etc/"`, `[[fileset]] #1 include = "/etc/": listed twice`},
		{"fileset relative exclude with /", "", "[[fileset]]\nname = \"f\"\ninclude = [\"/\"]\nexclude = [\"*.o\",\n \"var/tmp\"]\n", `"var/tmp"`, `[[fileset]] #1 exclude = "var/tmp": a pattern with '/' is matched against whole paths and must start with '/', e.g. "/var/tmp"`},
		{"fileset bad glob", "", "[[fileset]]\nname = \"f\"\ninclude = [\"/\"]\nexclude = [\"/home/[a\"]\n", "exclude", `[[fileset]] #1 exclude = "/home/[a": not a valid glob (syntax error in pattern); use * ? [a-z], and \ to quote`},
		{"fileset empty exclude", "", "[[fileset]]\nname = \"f\"\ninclude = [\"/\"]\nexclude = [\"\"]\n", "exclude", `[[fileset]] #1 exclude = "": write a path or a pattern`},
		{"fileset include not a list", "", "[[fileset]]\nname = \"f\"\ninclude = \"/etc\"\n", "include", `[fileset] include: must be a list, e.g. ["a", "b"] (or, for tables, [[tables]]); got a string`},
		{"fileset one_file_system quoted", "", "[[fileset]]\nname = \"f\"\ninclude = [\"/\"]\none_file_system = \"yes\"\n", "one_file_system", `[fileset] one_file_system: must be true or false, without quotes`},
		// [[schedule]]
		{"schedule without run", "", "[[schedule]]\nname = \"S\"\n", "[[schedule]]", `[[schedule]] #1 run is missing; add e.g. run = [`},
		{"schedule run not a list", "", "[[schedule]]\nname = \"S\"\nrun = \"mon at 1:00\"\n", "run =", `[schedule] run: must be a list, e.g. ["a", "b"]`},
		{"schedule bad timezone", "", "[[schedule]]\nname = \"S\"\nrun = [\"mon at 1:00\"]\ntimezone = \"Berlin\"\n", "timezone", `[[schedule]] #1 timezone = "Berlin": not a time zone: write an IANA name such as "Europe/Berlin" or "UTC", or omit it`},
		{"schedule pool override undefined", "", resources + "[[schedule]]\nname = \"M\"\nrun = [\n  \"Level=Full Pool=Monthly 1st sun at 2:05\",\n]\n", "Pool=Monthly", `[[schedule]] "M" run entry 1 "Level=Full Pool=Monthly 1st sun at 2:05": Pool=Monthly: no [[pool]] has this name (defined: Local, Offsite)`},
		{"schedule storage override undefined", "", "[[schedule]]\nname = \"M\"\nrun = [\"Storage=sd9 mon at 1:00\"]\n", "Storage=sd9", `[[schedule]] "M" run entry 1 "Storage=sd9 mon at 1:00": Storage=sd9: no [[storage]] has this name (defined: sd1, sd2)`},
		// [[pool]]
		{"pool unknown storage", "", "[[pool]]\nname = \"P\"\nstorage = \"sd3\"\n", "sd3", `[[pool]] #1 storage = "sd3": no [[storage]] has this name (defined: sd1, sd2)`},
		{"pool retention zero", "", "[[pool]]\nname = \"P\"\nvolume_retention = \"0\"\n", "volume_retention", `[[pool]] #1 volume_retention = "0": must be longer than zero, e.g. "365 days"`},
		{"pool retention in m", "", "[[pool]]\nname = \"P\"\nvolume_retention = \"6m\"\n", "volume_retention", `[[pool]] #1 volume_retention = "6m": reads as 6m0s ("m" is minutes, as in Go durations; Bareos reads it as months): write the unit out, e.g. "365 days" or "6 minutes"`},
		{"pool retention misspelt", "", "[[pool]]\nname = \"P\"\nvolume_retention = \"6 monts\"\n", "volume_retention", `[pool] volume_retention: "6 monts" is not a period: unknown unit "monts"; write e.g. "30 days", "6 months"`},
		{"pool retention without unit", "", "[[pool]]\nname = \"P\"\nvolume_retention = 30\n", "volume_retention", `[pool] volume_retention: 30 has no unit; write a quoted period such as "30 days"`},
		{"pool use duration negative", "", "[[pool]]\nname = \"P\"\nvolume_use_duration = \"-1d\"\n", "volume_use_duration", `[pool] volume_use_duration: "-1d" is negative`},
		{"pool max_volume_jobs negative", "", "[[pool]]\nname = \"P\"\nmax_volume_jobs = -1\n", "max_volume_jobs", `[[pool]] #1 max_volume_jobs = -1: must be 0 (no limit) or more`},
		{"pool max_volume_bytes in TB", "", "[[pool]]\nname = \"P\"\nmax_volume_bytes = \"12TB\"\n", "max_volume_bytes", `[pool] max_volume_bytes: "12TB" is not a size`},
		{"pool own scratch pool", "", "[[pool]]\nname = \"P\"\nscratch_pool = \"P\"\n", "scratch_pool", `[[pool]] #1 scratch_pool = "P": a pool cannot be its own scratch pool`},
		{"pool unknown recycle pool", "", "[[pool]]\nname = \"P\"\nrecycle_pool = \"Scratch\"\n", "recycle_pool", `[[pool]] #1 recycle_pool = "Scratch": no [[pool]] has this name (defined: P)`},
		{"pool name twice", "", "[[pool]]\nname = \"P\"\n[[pool]]\nname = \"P\"\nmedia_type = \"LTO-9\"\n", `name = "P"`, `[[pool]] #2 name = "P": another [[pool]] has this name`},
		{"default_pool not a pool", `default_pool = "Default"`, "[[pool]]\nname = \"P\"\n", "default_pool", `default_pool = "Default": no [[pool]] has this name (defined: P)`},
		{"encrypted quoted", "", "[[pool]]\nname = \"P\"\nencrypted = \"yes\"\n", "encrypted", `[pool] encrypted: must be true or false, without quotes`},
		{"escrow key blank", "", "[[pool]]\nname = \"P\"\nescrow_public_key = \" \"\n", "escrow_public_key", `[[pool]] #1 escrow_public_key = " ": must name an escrow public key file (make one with: tapekey escrow new --out escrow.key --public escrow.pub), or be left out`},
		{"escrow key on a clear pool", "", "[[pool]]\nname = \"P\"\nencrypted = false\nescrow_public_key = \"e.pub\"\n", "escrow_public_key", `[[pool]] #1 escrow_public_key = "e.pub": is set on a pool with encrypted = false`},
		{"escrow key not a string", "", "[[pool]]\nname = \"P\"\nescrow_public_key = 1\n", "escrow_public_key", `[pool] escrow_public_key: must be a string in double quotes (got a number)`},
		// director level
		{"director client_idle_timeout zero", `client_idle_timeout = "0"`, "", "client_idle_timeout", `client_idle_timeout = "0": must be longer than zero, e.g. "2m" (the default)`},
		{"director catch_up bad", `catch_up = "soon"`, "", "catch_up", `catch_up: "soon" is not a period`},
		// [[job]] and [[jobdefs]]
		{"job without client", "", resources + "[[job]]\nname = \"j\"\nfileset = \"web\"\npool = \"Offsite\"\n", "[[job]]", `[[job]] "j" client is missing; add e.g. client = "web1" here (defined [[client]]: web1, db1)`},
		{"job without fileset, with jobdefs", "", resources + "[[jobdefs]]\nname = \"D\"\n[[job]]\nname = \"j\"\njobdefs = \"D\"\nclient = \"web1\"\npool = \"Offsite\"\n", "[[job]]", `[[job]] "j" fileset is missing; add e.g. fileset = "web" here or in its [[jobdefs]] "D" (defined [[fileset]]: web)`},
		{"job without pool", "", resources + "[[job]]\nname = \"j\"\nclient = \"web1\"\nfileset = \"web\"\n", "[[job]]", `[[job]] "j" pool is missing; add e.g. pool = "Offsite" here (defined [[pool]]: Offsite, Local)`},
		{"job without storage, pool has none", "", resources + "[[job]]\nname = \"j\"\nclient = \"web1\"\nfileset = \"web\"\npool = \"Local\"\n", "[[job]]", `[[job]] "j" storage is missing; add e.g. storage = "sd1" here or in [[pool]] "Local" (defined [[storage]]: sd1, sd2)`},
		{"job without name", "", resources + "[[job]]\nclient = \"web1\"\nfileset = \"web\"\npool = \"Offsite\"\n", "[[job]]", `[[job]] #1 name is missing; add e.g. name = "backup-web1"`},
		{"job name twice", "", resources + job + job, `name = "j"`, `[[job]] #2 name = "j": another [[job]] has this name; names must be unique`},
		{"job unknown client", "", resources + "[[job]]\nname = \"j\"\nclient = \"web2\"\nfileset = \"web\"\npool = \"Offsite\"\n", "web2", `[[job]] #1 client = "web2": no [[client]] has this name (defined: db1, web1)`},
		{"job unknown fileset", "", resources + "[[job]]\nname = \"j\"\nclient = \"web1\"\nfileset = \"www\"\npool = \"Offsite\"\n", "www", `[[job]] #1 fileset = "www": no [[fileset]] has this name (defined: web)`},
		{"job unknown storage", "", resources + job + "storage = \"sd3\"\n", "sd3", `[[job]] #1 storage = "sd3": no [[storage]] has this name (defined: sd1, sd2)`},
		{"job unknown pool", "", resources + "[[job]]\nname = \"j\"\nclient = \"web1\"\nfileset = \"web\"\npool = \"Ofsite\"\n", "Ofsite", `[[job]] #1 pool = "Ofsite": no [[pool]] has this name (defined: Local, Offsite)`},
		{"job unknown full_pool", "", resources + job + "full_pool = \"Monthly\"\n", "Monthly", `[[job]] #1 full_pool = "Monthly": no [[pool]] has this name (defined: Local, Offsite)`},
		{"job unknown schedule", "", resources + job + "schedule = \"Weekly\"\n", "Weekly", `[[job]] #1 schedule = "Weekly": no [[schedule]] has this name (defined: Nightly)`},
		{"job empty client", "", resources + "[[job]]\nname = \"j\"\nclient = \"\"\nfileset = \"web\"\npool = \"Offsite\"\n", `client = ""`, `[[job]] #1 client = "": name a [[client]] (defined: db1, web1)`},
		{"job unknown jobdefs", "", resources + job + "jobdefs = \"Defaults\"\n", "Defaults", `[[job]] #1 jobdefs = "Defaults": no [[jobdefs]] has this name (defined: none)`},
		{"jobdefs unknown client (reported at the jobdefs)", "", resources + "[[jobdefs]]\nname = \"D\"\nclient = \"web9\"\n" + job, "web9", `[[jobdefs]] #1 client = "web9": no [[client]] has this name (defined: db1, web1)`},
		{"jobdefs naming a jobdefs", "", resources + "[[jobdefs]]\nname = \"D\"\njobdefs = \"E\"\n", `jobdefs = "E"`, `[[jobdefs]] #1 jobdefs = "E": a [[jobdefs]] cannot take defaults from another`},
		{"job type Restore", "", resources + job + "type = \"Restore\"\n", "Restore", `[[job]] #1 type = "Restore": Restore jobs are not supported yet: only "Backup" (the default)`},
		{"job type bad", "", resources + job + "type = \"Copy\"\n", "Copy", `[[job]] #1 type = "Copy": must be "Backup" (the default)`},
		{"job level bad", "", resources + job + "level = \"VirtualFull\"\n", "VirtualFull", `[[job]] #1 level = "VirtualFull": must be Full, Incremental (the default) or Differential`},
		{"job priority 0", "", resources + job + "priority = 0\n", "priority", `[[job]] #1 priority = 0: must be 1 or more (a lower number runs first; default 10)`},
		{"job priority quoted", "", resources + job + "priority = \"10\"\n", "priority", `[job] priority: must be a whole number (got a string); write it without quotes`},
		{"jobdefs max_concurrent_jobs 0", "", resources + "[[jobdefs]]\nname = \"D\"\nmax_concurrent_jobs = 0\n", "max_concurrent_jobs", `[[jobdefs]] #1 max_concurrent_jobs = 0: must be 1 or more (default 1)`},
		{"job max_full_interval in m", "", resources + job + "max_full_interval = \"1m\"\n", "max_full_interval", `[[job]] #1 max_full_interval = "1m": reads as 1m0s ("m" is minutes`},
		{"job client_idle_timeout 0", "", resources + job + "client_idle_timeout = \"0\"\n", "client_idle_timeout", `[[job]] #1 client_idle_timeout = "0": must be longer than zero, e.g. "2m"`},
		{"job catch_up negative", "", resources + job + "catch_up = \"-1h\"\n", "catch_up", `[job] catch_up: "-1h" is negative`},
		{"job unknown key", "", resources + job + "fd = \"web1\"\n", "fd =", `unknown key "fd" in [job]; the keys allowed there are: allow_duplicate_jobs, catch_up, client, client_idle_timeout, differential_pool, enabled, fileset, full_pool, incremental_pool, jobdefs, level, max_concurrent_jobs, max_full_interval, max_volume_wait, name, pool, priority, schedule, storage, type`},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := dirText(c.top, c.tables)
			_, p, err := loadDir(t, text)
			prefix := p + ": "
			if c.line != "" {
				// The last line holding the marker: the tables come last.
				n := 0
				for i, l := range strings.Split(text, "\n") {
					if strings.Contains(l, c.line) {
						n = i + 1
					}
				}
				if n == 0 {
					t.Fatalf("no line holds %q", c.line)
				}
				prefix = p + ":" + itoa(n) + ": "
			}
			wantErr(t, err, prefix+c.msg)
		})
	}
}

// A reference that fails is reported once, not again as the things it
// would have supplied.
func TestJobErrorsDoNotCascade(t *testing.T) {
	for _, c := range []struct{ job, want, not string }{
		{"pool = \"Ofsite\"\nclient = \"web1\"\nfileset = \"web\"\n", `pool = "Ofsite": no [[pool]]`, "storage is missing"},
		{"jobdefs = \"Nope\"\n", `jobdefs = "Nope": no [[jobdefs]]`, "is missing"},
	} {
		_, _, err := loadDir(t, dirText("", resources+"[[job]]\nname = \"j\"\n"+c.job))
		wantErr(t, err, c.want)
		if strings.Contains(err.Error(), c.not) {
			t.Errorf("error %q\nalso says %q", err, c.not)
		}
	}
}

func TestScheduleErrorsAndWarnings(t *testing.T) {
	// Each bad run entry: the line of the entry, the grammar's column
	// and message. Good entries on other lines are not reported.
	text := dirText("", `
[[schedule]]
name = "WeeklyCycle"
run = [
  "Full 1st sat at 21:00",   # a comment
  "Differential 2nd-5th sta at 21:00",
  'Incremental mon-fri at',
]
`)
	_, p, err := loadDir(t, text)
	wantErr(t, err,
		p+":"+itoa(lineOfText(t, text, "2nd-5th sta"))+`: [[schedule]] "WeeklyCycle" run entry 2 "Differential 2nd-5th sta at 21:00": column 22: `,
		p+":"+itoa(lineOfText(t, text, "mon-fri at'"))+`: [[schedule]] "WeeklyCycle" run entry 3 "Incremental mon-fri at": column 23: a time must follow "at" (HH:MM, H:MMam or H:MMpm); the line ends there`)
	if strings.Contains(err.Error(), "run entry 1") {
		t.Errorf("the good entry is reported: %v", err)
	}
	// Entries on one line share it.
	text = dirText("", "[[schedule]]\nname = \"S\"\nrun = [\"mon at 1:00\", \"tue at\"]\n")
	_, p, err = loadDir(t, text)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, "tue at"))+`: [[schedule]] "S" run entry 2 "tue at": column 7: a time must follow "at"`)

	// Warnings load, each as file:line of its entry; an empty list warns
	// at the table.
	text = dirText("", "[[schedule]]\nname = \"Oops\"\ntimezone = \"Europe/Berlin\"\nrun = [\n  \"Full 1st sun at 2:05\",\n  \"Full weekly at 2:00\",\n]\n\n[[schedule]]\nname = \"Never\"\nrun = []\n")
	d, p, err := loadDir(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Warnings) != 2 {
		t.Fatalf("warnings %q", d.Warnings)
	}
	wantErr(t, errString(d.Warnings[0]), p+":"+itoa(lineOfText(t, text, "weekly at"))+`: [[schedule]] "Oops" run entry 2 "Full weekly at 2:00": column 6: `+"`weekly` restricts nothing")
	wantErr(t, errString(d.Warnings[1]), p+":"+itoa(lineOfText(t, text, `name = "Never"`)-1)+`: [[schedule]] "Never": no Run lines: this schedule never fires`)
	s, _ := d.ScheduleNamed("Oops")
	if s.Location.String() != "Europe/Berlin" || s.Parsed == nil {
		t.Fatalf("schedule %+v", s)
	}
	// The zone is the one Next computes in: "weekly at 2:00" fires every
	// day, 02:00 Berlin = 01:00 UTC.
	f, ok := s.Parsed.Next(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), s.Location)
	if !ok || !f.At.Equal(time.Date(2027, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("next run %v, %v", f.At, ok)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The options whose default is true keep an explicit false; the others
// take their values.
func TestExplicitResourceOptions(t *testing.T) {
	d := mustLoadDir(t, dirText("", `
[[fileset]]
name = "f"
include = ["/srv/", "/home"]
exclude = ["/srv/tmp/", "*.o", "/home/*/.cache"]
one_file_system = false
exclude_caches = true
xattrs = false

[[pool]]
name = "P"
media_type = "LTO-9"
encrypted = false
recycle = false
auto_prune = false
volume_retention = "1 year"
max_volume_bytes = 1099511627776
max_volume_jobs = 3
volume_use_duration = "36h"
recycle_pool = "Q"

[[pool]]
name = "Q"
encrypted = true
max_volume_bytes = 0

[[client]]
name = "c"
address = "[::1]:9102"
tls_server_name = "c.example.com"
max_concurrent_jobs = 4
file_retention = "60 days"
job_retention = "6 months"
`))
	fs := d.Filesets[0]
	if fs.StaysOnOneFileSystem() || fs.KeepsXAttrs() || !fs.ExcludeCaches || !slices.Equal(fs.Include, []string{"/srv", "/home"}) ||
		!slices.Equal(fs.Exclude, []string{"/srv/tmp", "*.o", "/home/*/.cache"}) {
		t.Errorf("fileset %+v", fs)
	}
	p, q := d.Pools[0], d.Pools[1]
	if p.EncryptsVolumes() || p.Recycles() || p.AutoPrunes() || p.MediaType != "LTO-9" || p.VolumeRetention.Duration != 365*24*time.Hour ||
		p.MaxVolumeBytes != 1<<40 || p.MaxVolumeJobs != 3 || p.VolumeUseDuration.Duration != 36*time.Hour || p.RecyclePool != "Q" {
		t.Errorf("pool P %+v", p)
	}
	if !q.EncryptsVolumes() || !q.Recycles() || !q.AutoPrunes() || q.MaxVolumeBytes != 0 || q.MaxVolumeBytes.String() != "no limit" || p.MaxVolumeBytes.String() != "1TiB" {
		t.Errorf("pool Q %+v", q)
	}
	c := d.Clients[0]
	if c.TLSServerName != "c.example.com" || c.MaxConcurrentJobs != 4 || c.FileRetention.Duration != 60*24*time.Hour || c.JobRetention.Duration != 180*24*time.Hour {
		t.Errorf("client %+v", c)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("warnings %q", d.Warnings)
	}
}

// TestFilesetIdentity: order, duplicates, trailing slashes and Name do
// not change it; every include, exclude and effective option does; the
// value itself is pinned (a catalog stores it, and compares it across
// versions).
func TestFilesetIdentity(t *testing.T) {
	no, yes := false, true
	base := Fileset{Name: "a", Include: []string{"/home", "/etc"}, Exclude: []string{"*.o", "/home/*/.cache"}, OneFileSystem: &no, XAttrs: &no}
	const pinned = "feb8d12d00319beabc161ebb98180fdfe1ec0f4d9c29097ac025293d9e00cce1"
	if id := base.Identity(); id != pinned {
		t.Fatalf("Identity changed: %s, was %s — a changed identity makes every job a Full", id, pinned)
	}
	for _, s := range []Fileset{
		{Name: "b", Include: []string{"/etc/", "/home", "/home"}, Exclude: []string{"/home/*/.cache", "*.o"}, OneFileSystem: &no, XAttrs: &no},
		{Name: "a", Include: []string{"/etc/", "/home", "/home//"}, Exclude: []string{"*.o", "*.o", "/home/*/.cache"}, OneFileSystem: &no, XAttrs: &no},
	} {
		if s.Identity() != pinned {
			t.Errorf("%+v: order, duplicates or Name changed the identity", s)
		}
	}
	seen := map[string]int{}
	for i, d := range []Fileset{
		{Name: "a", Include: base.Include, Exclude: base.Exclude}, // one_file_system and xattrs default true
		{Name: "a", Include: []string{"/home"}, Exclude: base.Exclude, OneFileSystem: &no, XAttrs: &no},
		{Name: "a", Include: []string{"/home", "/etc", "/var"}, Exclude: base.Exclude, OneFileSystem: &no, XAttrs: &no},
		{Name: "a", Include: base.Include, Exclude: []string{"*.o"}, OneFileSystem: &no, XAttrs: &no},
		{Name: "a", Include: base.Include, Exclude: []string{"*.o", "/home/*/.cache", "x"}, OneFileSystem: &no, XAttrs: &no},
		{Name: "a", Include: base.Include, Exclude: base.Exclude, OneFileSystem: &yes, XAttrs: &no},
		{Name: "a", Include: base.Include, Exclude: base.Exclude, OneFileSystem: &no, XAttrs: &no, ExcludeCaches: true},
		{Name: "a", Include: base.Include, Exclude: base.Exclude, OneFileSystem: &no, XAttrs: &yes},
		// An include cannot pass for an exclude.
		{Name: "a", Include: []string{"/home", "/etc", "*.o"}, Exclude: []string{"/home/*/.cache"}, OneFileSystem: &no, XAttrs: &no},
	} {
		got := d.Identity()
		if got == pinned {
			t.Errorf("differ[%d] %+v: same identity", i, d)
		}
		if j, ok := seen[got]; ok {
			t.Errorf("differ[%d] and [%d] share an identity", i, j)
		}
		seen[got] = i
	}
}

// TestCatalogJob: type = "Catalog" parses (case-insensitive), takes the
// built-in fileset (the dump), priority 100 and level Full by default;
// what is missing names the fix.
func TestCatalogJob(t *testing.T) {
	top := "catalog_dump_dir = \"state/catalog-dump\"\nbootstrap_dir = \"/var/lib/tapeward/bootstrap\"\nbootstrap_command = \"mail -s bsr admin\"\npg_dump = \"/usr/lib/postgresql/15/bin/pg_dump\""
	d, p, err := loadDir(t, dirText(top, resources+`
[[job]]
name = "BackupCatalog"
type = "catalog"
client = "web1"
pool = "Local"
storage = "sd1"
`))
	if err != nil {
		t.Fatal(err)
	}
	j := d.Jobs[0]
	if j.Type != JobCatalog || j.Priority != DefaultCatalogPriority || j.Level != LevelFull || j.Fileset != "" {
		t.Fatalf("catalog job %+v", j)
	}
	wantDir := filepath.Join(filepath.Dir(p), "state/catalog-dump")
	if d.CatalogDumpDir != wantDir || d.CatalogDumpPath() != filepath.Join(wantDir, "tapeward.dump") || d.BootstrapCommand != "mail -s bsr admin" || d.PgDump != "/usr/lib/postgresql/15/bin/pg_dump" {
		t.Fatalf("catalog_dump_dir %q (want %q), dump %q, command %q, pg_dump %q", d.CatalogDumpDir, wantDir, d.CatalogDumpPath(), d.BootstrapCommand, d.PgDump)
	}
	fs, ok := d.JobFileset(&j)
	if !ok || fs.Name != CatalogFileset || len(fs.Include) != 1 || fs.Include[0] != d.CatalogDumpPath() {
		t.Fatalf("JobFileset = %+v, %v", fs, ok)
	}
	// A priority written is kept.
	d = mustLoadDir(t, dirText(top, resources+`
[[job]]
name = "BackupCatalog"
type = "Catalog"
client = "web1"
pool = "Local"
storage = "sd1"
priority = 20
`))
	if d.Jobs[0].Priority != 20 || d.PgDump == "pg_dump" {
		t.Fatalf("priority %d", d.Jobs[0].Priority)
	}
	for _, c := range []struct{ top, extra, want string }{
		{"", "", "has no catalog_dump_dir; add e.g. catalog_dump_dir ="},
		{"catalog_dump_dir = \"/d\"", "", "neither bootstrap_dir nor bootstrap_command; add e.g. bootstrap_dir ="},
		{top, "fileset = \"web\"\n", "remove fileset = \"web\""},
		{top, "", ""},
	} {
		_, _, err := loadDir(t, dirText(c.top, resources+`
[[job]]
name = "BackupCatalog"
type = "Catalog"
client = "web1"
pool = "Local"
storage = "sd1"
`+c.extra))
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.top, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("top %q extra %q: err = %v, want %q", c.top, c.extra, err, c.want)
		}
	}
	_, _, err = loadDir(t, dirText("", resources+`
[[job]]
name = "x"
type = "Verify"
client = "web1"
fileset = "web"
pool = "Local"
storage = "sd1"
`))
	if err == nil || !strings.Contains(err.Error(), `or "Catalog"`) {
		t.Errorf("type Verify: %v", err)
	}
}
