package configs

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFiledConfig(t *testing.T) {
	c, err := LoadFiled("filed.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(".")
	top := filepath.Dir(dir)
	if c.Name != "web1" || c.Listen != "127.0.0.1:9102" || c.Director.Name != "director" || c.MetricsListen != "" ||
		c.WorkingDirectory != filepath.Join(top, "state", "filed") || c.TLS.Key != filepath.Join(top, "pki", "web1.key") ||
		c.Limits.MaxConnections != DefaultMaxConnections || c.Path != "filed.toml" {
		t.Errorf("filed.toml loaded as %+v", c)
	}

	base := "name = \"web1\"\nlisten = \":9102\"\nworking_directory = \"state\"\nmetrics_listen = \"127.0.0.1:9112\"\n[tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"\n[director]\nname = \"director\"\n"
	c, err = LoadFiled(write(t, "filed.toml", base))
	if err != nil || c.MetricsListen != "127.0.0.1:9112" || !filepath.IsAbs(c.WorkingDirectory) || c.MaxBandwidthPerJob != 0 {
		t.Fatalf("%+v, %v", c, err)
	}
	c, err = LoadFiled(write(t, "filed.toml", strings.Replace(base, "[tls]", "max_bandwidth_per_job = \"8MiB\"\n[tls]", 1)))
	if err != nil || c.MaxBandwidthPerJob != 8<<20 {
		t.Fatalf("max_bandwidth_per_job = \"8MiB\": %+v, %v", c, err)
	}
	for _, e := range []struct{ old, new, line, msg string }{
		{"name = \"director\"\n", "", "[director]", `[director] name is missing; add e.g. name = "director"`},
		{"name = \"director\"\n", "name = \"director\"\naddress = \"127.0.0.1:9101\"\n", "address", `unknown key "address" in [director]; the keys allowed there are: name`},
		{`metrics_listen = "127.0.0.1:9112"`, `metrics_listen = ":9102"`, "metrics_listen", `metrics_listen = ":9102": is the same address as listen`},
		{`metrics_listen = "127.0.0.1:9112"`, `metrics_listen = "9112"`, "metrics_listen", `metrics_listen = "9112": must be host:port`},
		{`listen = ":9102"`, `listen = "9102"`, "listen", `listen = "9102": must be host:port`},
		{`name = "web1"`, `name = "web 1"`, "web 1", `name = "web 1": use only letters, digits`},
		{"working_directory = \"state\"\n", "", "", `working_directory is missing; add e.g. working_directory = "/var/lib/tapeward/filed"`},
		{"key = \"k\"\n", "", "[tls]", `[tls] key is missing`},
		{"[tls]", "client_idle_timeout = \"2m\"\n[tls]", "client_idle_timeout", `unknown key "client_idle_timeout" at the top level`},
		{"[tls]", "max_bandwidth_per_job = \"100KiB\"\n[tls]", "max_bandwidth_per_job", `max_bandwidth_per_job = "100KiB": is below the smallest limit, 256KiB (bytes per second)`},
		{"[tls]", "max_bandwidth_per_job = \"fast\"\n[tls]", "max_bandwidth_per_job", `max_bandwidth_per_job: "fast" is not a size`},
	} {
		text := strings.Replace(base, e.old, e.new, 1)
		if text == base {
			t.Fatalf("%q not in the base", e.old)
		}
		p := write(t, "filed.toml", text)
		_, err := LoadFiled(p)
		prefix := p + ": "
		if e.line != "" {
			prefix = p + ":" + itoa(lineOfText(t, text, e.line)) + ": "
		}
		wantErr(t, err, prefix+e.msg)
	}
}
