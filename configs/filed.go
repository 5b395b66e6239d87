package configs

// Filed is filed.toml, the file daemon's configuration.
type Filed struct {
	Path   string `toml:"-"`
	Name   string `toml:"name"`   // the client's name (its [[client]] name in director.toml, its certificate's)
	Listen string `toml:"listen"` // host:port the director dials (its [[client]] address)
	// MetricsListen is host:port for the metrics endpoint (optional; ""
	// : none).
	MetricsListen    string        `toml:"metrics_listen"`
	Limits           Limits        `toml:"limits"`
	TLS              TLS           `toml:"tls"`
	WorkingDirectory string        `toml:"working_directory"` // state
	Director         FiledDirector `toml:"director"`
}

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
