package configs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigsLoad(t *testing.T) {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Dir(dir)

	d, err := LoadDirector("director.toml")
	if err != nil {
		t.Fatalf("director.toml: %v", err)
	}
	if d.Name != "director" || d.Catalog.Host != "127.0.0.1" || d.Catalog.Port != 5433 || d.DefaultPool != "Default" || d.Catalog.Database != "tapeward" {
		t.Errorf("director.toml loaded as %+v", d)
	}
	if want := filepath.Join(top, "kek.key"); d.Keys.Active().File != want {
		t.Errorf("active KEK = %q, want %q (relative to the config's directory)", d.Keys.Active().File, want)
	}
	if d.TLS.CA != filepath.Join(top, "pki", "ca.crt") {
		t.Errorf("tls ca = %q", d.TLS.CA)
	}
	if len(d.Storages) != 1 || d.Storages[0].Address != "127.0.0.1:9103" || d.Catalog.ConnectTimeout.Duration != 10*time.Second {
		t.Errorf("storages %+v, connect timeout %v", d.Storages, d.Catalog.ConnectTimeout)
	}

	if len(d.Consoles) != 1 || d.Consoles[0] != (ConsoleRef{Name: "admin", Role: RoleKeyAdmin}) {
		t.Errorf("consoles %+v, want admin as keyadmin", d.Consoles)
	}
	if c, ok := d.ConsoleNamed("admin"); !ok || c.Role != RoleKeyAdmin {
		t.Errorf("ConsoleNamed(admin) = %+v, %v", c, ok)
	}
	if _, ok := d.ConsoleNamed("bob"); ok {
		t.Error("ConsoleNamed(bob) found an unconfigured console")
	}

	s, err := LoadStoraged("storaged.toml")
	if err != nil {
		t.Fatalf("storaged.toml: %v", err)
	}
	if len(s.Drives) != 2 || s.Drives[0].BlockSize != 1<<20 || !s.Drives[0].Encrypts() || s.Drives[1].DriveIndex != 1 {
		t.Errorf("drives = %+v", s.Drives)
	}
	if want := "vtl:" + filepath.Join(top, "lib", "vtl.sock") + "#changer"; len(s.Changers) != 1 || s.Changers[0].Address != want {
		t.Errorf("changers = %+v, want address %s", s.Changers, want)
	}
	if s.WorkingDirectory != filepath.Join(top, "state", "storaged") || s.Timeouts.Mount.Duration != 5*time.Minute {
		t.Errorf("working directory %q, mount timeout %v", s.WorkingDirectory, s.Timeouts.Mount)
	}

	c, err := LoadConsole("tapectl.toml")
	if err != nil {
		t.Fatalf("tapectl.toml: %v", err)
	}
	if c.Name != "admin" || c.Director.Address != "127.0.0.1:9101" || c.TLS.Key != filepath.Join(top, "pki", "admin.key") {
		t.Errorf("tapectl.toml loaded as %+v", c)
	}

	if _, err := LoadFiled("filed.toml"); err != nil {
		t.Fatalf("filed.toml: %v", err)
	}

	// Every *.toml shipped here is one of the four and loads.
	files, _ := filepath.Glob("*.toml")
	if len(files) != 4 {
		t.Errorf("configs/ ships %v; the test knows director, filed, storaged and tapectl", files)
	}
}

// write puts text in a temp file and returns its path.
func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// shipped returns a shipped file's text with old replaced by new (which
// must change it).
func shipped(t *testing.T, name, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, old) {
		t.Fatalf("%s has no %q", name, old)
	}
	return strings.Replace(s, old, new, 1)
}

// lineOfText returns the 1-based line of the first line containing sub.
func lineOfText(t *testing.T, text, sub string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("no line contains %q", sub)
	return 0
}

func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q\ndoes not contain %q", err, s)
		}
	}
}

func TestUnknownKeyNamesFileLineAndKey(t *testing.T) {
	text := shipped(t, "director.toml", "database = \"tapeward\"", "database = \"tapeward\"\ndatbase = \"typo\"")
	p := write(t, "director.toml", text)
	_, err := LoadDirector(p)
	line := lineOfText(t, text, "datbase")
	wantErr(t, err, p+":"+itoa(line)+":", `unknown key "datbase" in [catalog]`, "database", "password_file")
}

func TestUnknownKeyInArrayTableAndUnknownTable(t *testing.T) {
	text := shipped(t, "storaged.toml", "name        = \"drive1\"", "name        = \"drive1\"\nblocksize = 5")
	text += "\n[tuning]\nfoo = 1\n"
	p := write(t, "storaged.toml", text)
	_, err := LoadStoraged(p)
	wantErr(t, err,
		p+":"+itoa(lineOfText(t, text, "blocksize"))+`: unknown key "blocksize" in [drive]`,
		"block_size",
		p+":"+itoa(lineOfText(t, text, "[tuning]"))+`: unknown key "tuning" at the top level`)
	if strings.Contains(err.Error(), `"foo"`) {
		t.Errorf("keys inside an unknown table are reported too: %v", err)
	}
}

func TestUnknownKeySecondOccurrenceGetsItsOwnLine(t *testing.T) {
	text := `name = "sd1"
listen = "127.0.0.1:9103"
working_directory = "w"
[tls]
ca = "a"
cert = "b"
key = "c"
[director]
name = "director"
address = "127.0.0.1:9101"
[[keys.kek]]
file = "k1"
colour = "red"
[[keys.kek]]
file = "k2"
colour = "blue"
[[drive]]
name = "d0"
address = "/dev/sg1"
`
	p := write(t, "s.toml", text)
	_, err := LoadStoraged(p)
	wantErr(t, err, p+":13: unknown key \"colour\" in [keys.kek]", p+":16: unknown key \"colour\" in [keys.kek]")
}

func TestMalformedTOML(t *testing.T) {
	text := shipped(t, "tapectl.toml", `name = "admin"`, `name = "admin`)
	p := write(t, "tapectl.toml", text)
	_, err := LoadConsole(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `name = "admin`))+": malformed TOML")
}

func TestBadPort(t *testing.T) {
	text := shipped(t, "director.toml", "port     = 5433", "port     = 99999")
	p := write(t, "director.toml", text)
	_, err := LoadDirector(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, "99999"))+": [catalog] port = 99999: must be 1-65535")

	text = shipped(t, "director.toml", "port     = 5433", `port     = "5432"`)
	p = write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `"5432"`))+": [catalog] port: must be a whole number", "without quotes")
}

func TestBadListenAddress(t *testing.T) {
	text := shipped(t, "storaged.toml", `listen = "127.0.0.1:9103"`, `listen = "127.0.0.1"`)
	p := write(t, "storaged.toml", text)
	_, err := LoadStoraged(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `listen =`))+`: listen = "127.0.0.1": must be host:port`)

	text = shipped(t, "director.toml", `address = "127.0.0.1:9103"`, `address = "127.0.0.1:0"`)
	p = write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, `[[storage]] #1 address = "127.0.0.1:0": the port must be a number 1-65535`)
}

func TestBadDuration(t *testing.T) {
	text := shipped(t, "storaged.toml", `mount    = "5m"`, `mount    = "5 minutes"`)
	p := write(t, "storaged.toml", text)
	_, err := LoadStoraged(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, "5 minutes"))+": [timeouts] mount:", `"5 minutes" is not a duration`, `"30s"`)

	text = shipped(t, "storaged.toml", `director = "30s"`, `director = 30`)
	p = write(t, "storaged.toml", text)
	_, err = LoadStoraged(p)
	wantErr(t, err, "[timeouts] director: 30 has no unit", `"30s"`)
}

func TestBadSizeAndDevice(t *testing.T) {
	text := shipped(t, "storaged.toml", `block_size  = "1MiB"     # default`, `block_size  = "1000B"     # default`)
	text = strings.Replace(text, `address     = "vtl:../lib/vtl.sock#drive1"`, `address     = "tape0"`, 1)
	p := write(t, "storaged.toml", text)
	_, err := LoadStoraged(p)
	wantErr(t, err,
		p+":"+itoa(lineOfText(t, text, "1000B"))+`: [[drive]] #1 block_size = "1000B": must be a multiple of 512`,
		p+":"+itoa(lineOfText(t, text, `"tape0"`))+`: [[drive]] #2 address = "tape0": must be a device path`)

	text = shipped(t, "storaged.toml", `block_size  = "1MiB"     # default`, `block_size  = "1MB"     # default`)
	_, err = LoadStoraged(write(t, "storaged.toml", text))
	wantErr(t, err, `[drive] block_size: "1MB" is not a size`, "MiB")
}

func TestMissingRequired(t *testing.T) {
	text := shipped(t, "director.toml", "database = \"tapeward\"\n", "")
	text = strings.Replace(text, "name = \"director\"\n", "", 1)
	p := write(t, "director.toml", text)
	_, err := LoadDirector(p)
	wantErr(t, err,
		p+":"+itoa(lineOfText(t, text, "[catalog]"))+`: [catalog] database is missing; add e.g. database = "tapeward"`,
		p+`: name is missing; add e.g. name = "director"`)

	text = shipped(t, "director.toml", "active = true", "active = false")
	_, err = LoadDirector(write(t, "director.toml", text))
	wantErr(t, err, "0 KEKs are marked active = true; exactly one must be")

	_, err = LoadConsole(write(t, "tapectl.toml", "name = \"admin\"\n"))
	wantErr(t, err, `[director] address is missing`, `[tls] ca is missing`, `[tls] cert is missing`, `[tls] key is missing`)
}

func TestConsoles(t *testing.T) {
	add := func(entries string) string {
		return shipped(t, "director.toml", "[[console]]\nname = \"admin\"\nrole = \"keyadmin\"\n", entries)
	}
	text := add("[[console]]\nname = \"admin\"\nrole = \"keyadmin\"\n\n[[console]]\nname = \"ro\"\nrole = \"read\"\n\n[[console]]\nname = \"ops\"\nrole = \"operator\"\n")
	d, err := LoadDirector(write(t, "director.toml", text))
	if err != nil {
		t.Fatal(err)
	}
	want := []ConsoleRef{{"admin", RoleKeyAdmin}, {"ro", RoleRead}, {"ops", RoleOperator}}
	if len(d.Consoles) != len(want) {
		t.Fatalf("consoles %+v", d.Consoles)
	}
	for i := range want {
		if d.Consoles[i] != want[i] {
			t.Errorf("console %d = %+v, want %+v", i, d.Consoles[i], want[i])
		}
	}

	// An unknown role: file:line, the value, and the roles to choose from.
	text = add("[[console]]\nname = \"admin\"\nrole = \"keyadmin\"\n\n[[console]]\nname = \"bob\"\nrole = \"admin\"\n")
	p := write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `role = "admin"`))+`: [[console]] #2 role = "admin": must be one of read, operator, keyadmin: `,
		"read may list, status and help", "keyadmin also export keys, rekey")
	// Roles are spelled exactly.
	_, err = LoadDirector(write(t, "director.toml", add("[[console]]\nname = \"admin\"\nrole = \"KeyAdmin\"\n")))
	wantErr(t, err, `[[console]] #1 role = "KeyAdmin": must be one of read, operator, keyadmin`)

	// The same name twice (two roles for one certificate) is refused.
	text = add("[[console]]\nname = \"admin\"\nrole = \"keyadmin\"\n\n[[console]]\nname = \"admin\"\nrole = \"read\"\n")
	p = write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `role = "read"`)-1)+`: [[console]] #2 name = "admin": another [[console]] has this name; names must be unique`)

	// Name and role are required; a name is a certificate name.
	text = add("[[console]]\nrole = \"read\"\n\n[[console]]\nname = \"ops\"\n\n[[console]]\nname = \"a b\"\nrole = \"read\"\n")
	p = write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, `[[console]] #1 name is missing; add e.g. name = "admin"`, `[[console]] #2 role is missing; add e.g. role = "operator"`,
		`[[console]] #3 name = "a b": use only letters, digits`)

	// An unknown key in [[console]].
	text = add("[[console]]\nname = \"admin\"\nrole = \"keyadmin\"\ncn = \"admin\"\n")
	p = write(t, "director.toml", text)
	_, err = LoadDirector(p)
	wantErr(t, err, p+":"+itoa(lineOfText(t, text, `cn = "admin"`))+`: unknown key "cn" in [console]; the keys allowed there are: name, role`)
}

func TestMissingFile(t *testing.T) {
	_, err := LoadDirector(filepath.Join(t.TempDir(), "nope.toml"))
	wantErr(t, err, "nope.toml: no such config file", "-c FILE")
}

func TestDriveNamesUnknownChanger(t *testing.T) {
	text := shipped(t, "storaged.toml", `changer     = "changer0"                     # omit`, `changer     = "changer9"                     # omit`)
	_, err := LoadStoraged(write(t, "storaged.toml", text))
	wantErr(t, err, `[[drive]] #1 changer = "changer9": no [[changer]] has this name (known: changer0)`)
}

func TestSizeAndDurationParsing(t *testing.T) {
	for in, want := range map[string]Size{"1MiB": 1 << 20, "256KiB": 256 << 10, "2GiB": 2 << 30, "65536": 65536, "512B": 512} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("Size(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{"", "1MB", "-5", "0", "1.5MiB", "MiB"} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("Size(%q) accepted as %d", in, s)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Errorf("Duration(1h30m) = %v, %v", d, err)
	}
	for _, in := range []string{"0s", "-1s", "soon", "10"} {
		if err := d.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("Duration(%q) accepted", in)
		}
	}
}

func TestScanKeys(t *testing.T) {
	text := "a = 1\n[t]\n\"x.y\" = 2\nb.c = 3 # c\ns = \"\"\"\nk = v\n\"\"\"\n[[arr]]\nn = 1\n[[arr]]\nn = 2\nl = [\n  \"p=q\", # x = y\n]\n"
	got := scanKeys(text)
	want := []struct {
		path string
		line int
		aot  int
	}{{"a", 1, -1}, {"t", 2, -1}, {"t|x.y", 3, -1}, {"t|b|c", 4, -1}, {"t|s", 5, -1}, {"arr", 8, 0}, {"arr|n", 9, 0}, {"arr", 10, 1}, {"arr|n", 11, 1}, {"arr|l", 12, 1}}
	if len(got) != len(want) {
		t.Fatalf("scanKeys found %+v", got)
	}
	for i, w := range want {
		if strings.Join(got[i].path, "|") != w.path || got[i].line != w.line || got[i].aot != w.aot {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCatalogSSLModeDefault(t *testing.T) {
	// A TCP host: verify-full unless the file says otherwise.
	// (The shipped file sets "disable" for the quickstart's loopback
	// database: drop that line.)
	base := shipped(t, "director.toml", `sslmode  = "disable"`, "")
	text := strings.Replace(base, `host     = "127.0.0.1"`, `host     = "db.example.com"`, 1)
	d, err := LoadDirector(write(t, "director.toml", text))
	if err != nil {
		t.Fatal(err)
	}
	if d.Catalog.SSLMode != "verify-full" {
		t.Fatalf("TCP host: sslmode %q, want verify-full", d.Catalog.SSLMode)
	}
	text = strings.Replace(base, `host     = "127.0.0.1"`, "host     = \"db.example.com\"\nsslmode = \"require\"", 1)
	if d, err = LoadDirector(write(t, "director.toml", text)); err != nil || d.Catalog.SSLMode != "require" {
		t.Fatalf("explicit sslmode: %v, %v", d, err)
	}
	// A unix socket: unchanged (prefer; libpq uses no TLS there).
	text = strings.Replace(base, `host     = "127.0.0.1"`, `host     = "/var/run/postgresql"`, 1)
	if d, err = LoadDirector(write(t, "director.toml", text)); err != nil || d.Catalog.SSLMode != "prefer" {
		t.Fatalf("socket: sslmode %q, %v; want prefer", d.Catalog.SSLMode, err)
	}
}

func TestLimitsAndRevocationList(t *testing.T) {
	d, err := LoadDirector("director.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := d.Limits
	if l.HandshakeTimeout.Duration != 10*time.Second || l.MaxConnections != 256 || l.MaxStreams != 128 ||
		l.KeepaliveTime.Duration != time.Minute || l.KeepaliveTimeout.Duration != 20*time.Second {
		t.Fatalf("default limits %+v", l)
	}
	dir, _ := filepath.Abs(".")
	if d.TLS.RevocationList != filepath.Join(filepath.Dir(dir), "pki", "revoked.txt") {
		t.Fatalf("revocation_list %q, want it resolved against the config's directory", d.TLS.RevocationList)
	}
	text := shipped(t, "storaged.toml", "# [limits]\n# handshake_timeout          = \"10s\"", "[limits]\nhandshake_timeout = \"3s\"\nmax_connections = 0\nmax_streams_per_connection = 8")
	_, err = LoadStoraged(write(t, "storaged.toml", text))
	wantErr(t, err, ":"+itoa(lineOfText(t, text, "max_connections = 0"))+": [limits] max_connections = 0: must be 1-100000")
	text = shipped(t, "storaged.toml", "# [limits]\n# handshake_timeout          = \"10s\"", "[limits]\nhandshake_timeout = \"3s\"\nmax_streams_per_connection = 8")
	s, err := LoadStoraged(write(t, "storaged.toml", text))
	if err != nil || s.Limits.HandshakeTimeout.Duration != 3*time.Second || s.Limits.MaxStreams != 8 || s.Limits.MaxConnections != 256 {
		t.Fatalf("storaged limits: %+v, %v", s.Limits, err)
	}
	text = shipped(t, "storaged.toml", "# [limits]\n# handshake_timeout          = \"10s\"", "[limits]\nhandshake_timout = \"3s\"")
	_, err = LoadStoraged(write(t, "storaged.toml", text))
	wantErr(t, err, `unknown key "handshake_timout" in [limits]`, "handshake_timeout")
}

// TestSystemdUnits: both daemons' units keep keys out of core dumps and
// swap, run without privileges, and reload (SIGHUP) the revocation list.
func TestSystemdUnits(t *testing.T) {
	for _, u := range []struct{ file, bin, config string }{
		{"tapeward-director.service", "director", "director.toml"},
		{"tapeward-storaged.service", "storaged", "storaged.toml"},
	} {
		b, err := os.ReadFile(u.file)
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			lines[strings.TrimSpace(l)] = true
		}
		for _, want := range []string{
			"ExecStart=/usr/local/bin/" + u.bin + " -c /etc/tapeward/" + u.config,
			"ExecReload=/bin/kill -HUP $MAINPID",
			"User=tapeward", "LimitCORE=0", "MemorySwapMax=0", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
			"ProtectSystem=strict", "ReadOnlyPaths=/etc/tapeward", "UMask=0077",
		} {
			if !lines[want] {
				t.Errorf("%s lacks the line %q", u.file, want)
			}
		}
	}
}

func TestStoragedISCSI(t *testing.T) {
	text := shipped(t, "storaged.toml", `address     = "vtl:../lib/vtl.sock#drive1"`, `address     = "iscsi://backup@tapehost:3261/iqn.2026-12.com.example:lib/2"`)
	text += "\n[iscsi]\ninitiator_name = \"iqn.2026-12.com.example:sd1\"\nchap_secret_file = \"iscsi-chap.secret\"\ndigests = true\n"
	p := write(t, "storaged.toml", text)
	s, err := LoadStoraged(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Drives[1].Address != "iscsi://backup@tapehost:3261/iqn.2026-12.com.example:lib/2" {
		t.Fatalf("address %q", s.Drives[1].Address)
	}
	if s.ISCSI.CHAPSecretFile != filepath.Join(filepath.Dir(p), "iscsi-chap.secret") || !s.ISCSI.Digests || s.ISCSI.InitiatorName != "iqn.2026-12.com.example:sd1" {
		t.Fatalf("[iscsi] %+v", s.ISCSI)
	}

	bad := strings.Replace(text, "iscsi://backup@", "iscsi://backup:hunter2secret@", 1)
	bad = strings.Replace(bad, `initiator_name = "iqn.2026-12.com.example:sd1"`, `initiator_name = "sd1"`, 1)
	_, err = LoadStoraged(write(t, "storaged.toml", bad))
	wantErr(t, err, "a CHAP secret never goes in the address", `[iscsi] initiator_name = "sd1": must be an iSCSI name`)
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("the error shows the secret: %v", err)
	}
}
