package configs

// Filed is filed.toml, the file daemon's configuration.
type Filed struct {
	Path   string `toml:"-"`
	Name   string `toml:"name"`   // the client's name (its [[client]] name in director.toml, its certificate's)
	Listen string `toml:"listen"` // host:port the director dials (its [[client]] address)
	// MetricsListen is host:port for the metrics endpoint (optional; ""
	// : none).
	MetricsListen    string `toml:"metrics_listen"`
	Limits           Limits `toml:"limits"`
	TLS              TLS    `toml:"tls"`
	WorkingDirectory string `toml:"working_directory"` // state
	// MaxBandwidthPerJob limits each job's data (a backup's stream to
	// the storage daemon, a restore's from it) to this many bytes per
	// second on average (Bareos: Maximum Bandwidth Per Job); 0: no
	// limit, else at least MinBandwidthPerJob.
	MaxBandwidthPerJob Size          `toml:"max_bandwidth_per_job"`
	Director           FiledDirector `toml:"director"`
}

// MinBandwidthPerJob is the smallest max_bandwidth_per_job: at it one
// 1 MiB data message takes 4 s.
const MinBandwidthPerJob = 256 << 10

// FiledDirector is the only director a filed accepts: a peer must present
// a director certificate for this name. (The director dials filed; the
// time a silent client is given is the director's client_idle_timeout.)
type FiledDirector struct {
	Name string `toml:"name"`
}

// LoadFiled reads and checks filed.toml.
func LoadFiled(path string) (*Filed, error) {
	var c Filed
	f, err := decode(path, &c)
	if err != nil {
		return nil, err
	}
	c.Path = path
	f.name(at(-1, "name"), c.Name, `"web1"`)
	f.hostPort(at(-1, "listen"), c.Listen, `"127.0.0.1:9102"`, true)
	f.metricsListen(c.MetricsListen, c.Listen, `"127.0.0.1:9112"`)
	f.limits(&c.Limits)
	f.tls(&c.TLS)
	c.WorkingDirectory = f.filePath(at(-1, "working_directory"), c.WorkingDirectory, `"/var/lib/tapeward/filed"`)
	if c.MaxBandwidthPerJob != 0 && c.MaxBandwidthPerJob < MinBandwidthPerJob {
		f.problem(at(-1, "max_bandwidth_per_job"), c.MaxBandwidthPerJob.String(), "is below the smallest limit, %s (bytes per second); raise it or remove the line (no limit)", Size(MinBandwidthPerJob))
	}
	f.name(at(-1, "director", "name"), c.Director.Name, `"director"`)
	if err := f.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// metricsListen checks an optional metrics_listen: host:port, not the
// daemon's listen address.
func (f *file) metricsListen(addr, listen, example string) {
	if addr == "" {
		return
	}
	f.hostPort(at(-1, "metrics_listen"), addr, example, true)
	if addr == listen {
		f.problem(at(-1, "metrics_listen"), addr, "is the same address as listen; give the metrics another port, e.g. %s", example)
	}
}
