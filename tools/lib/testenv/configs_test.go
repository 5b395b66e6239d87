package testenv

import (
	"path/filepath"
	"testing"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// The job resources and filed.toml the writers produce are what the
// strict loaders accept, with the values the test asked for.
func TestJobResourcesAndFiledLoad(t *testing.T) {
	dir := t.TempDir()
	p := NewPKI(t, dir)
	kek := filepath.Join(dir, "kek.key")
	WriteKEK(t, kek)
	no := false
	d := Director{Name: "director", Listen: "127.0.0.1:9101", TLS: p.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: dir, DBPort: 5432, DBName: "tw", DBUser: "tw", KEKFiles: []string{kek},
		Storages: map[string]string{"sd1": "127.0.0.1:9103"}, ClientIdleTimeout: "3s",
		Clients:  []Client{{Name: "web1", Address: "127.0.0.1:9102"}, {Name: "web2", Address: "127.0.0.1:9104", MaxConcurrentJobs: 2}},
		Filesets: []Fileset{{Name: "home", Include: []string{dir + "/data"}, Exclude: []string{"*.tmp"}, OneFileSystem: &no}},
		Pools:    []Pool{{Name: "Backup", Storage: "sd1"}, {Name: "Clear", Storage: "sd1", Encrypted: &no}},
		Jobs:     []Job{{Name: "web1-home", Client: "web1", Fileset: "home", Pool: "Backup"}, {Name: "web2-home", Client: "web2", Fileset: "home", Pool: "Clear", Level: "Full", ClientIdleTimeout: "5s"}},
	}
	path := filepath.Join(dir, "director.toml")
	d.Write(t, path)
	c, err := configs.LoadDirector(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Clients) != 2 || c.Clients[0].TLSServerName != "web1" || c.Clients[1].MaxConcurrentJobs != 2 {
		t.Errorf("clients = %+v", c.Clients)
	}
	if len(c.Filesets) != 1 || c.Filesets[0].StaysOnOneFileSystem() || c.Filesets[0].Exclude[0] != "*.tmp" {
		t.Errorf("filesets = %+v", c.Filesets)
	}
	if len(c.Pools) != 2 || c.Pools[1].EncryptsVolumes() {
		t.Errorf("pools = %+v", c.Pools)
	}
	j, ok := c.JobNamed("web1-home")
	if !ok || j.Storage != "sd1" || j.Level != configs.LevelIncremental || j.ClientIdleTimeout.String() != "3s" {
		t.Errorf("web1-home = %+v", j)
	}
	if j, ok := c.JobNamed("web2-home"); !ok || j.Level != configs.LevelFull || j.ClientIdleTimeout.String() != "5s" {
		t.Errorf("web2-home = %+v", j)
	}

	f := Filed{Name: "web1", Listen: "127.0.0.1:9102", WorkDir: filepath.Join(dir, "fd"), TLS: p.Issue(t, "web1", tlsconf.RoleClient), DirectorName: "director"}
	fpath := filepath.Join(dir, "filed.toml")
	f.Write(t, fpath)
	fc, err := configs.LoadFiled(fpath)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Name != "web1" || fc.Director.Name != "director" || fc.Listen != "127.0.0.1:9102" {
		t.Errorf("filed.toml = %+v", fc)
	}
}
