// Package daemon holds what the three daemons' main packages (director,
// storaged, filed) would otherwise each write again: their [limits] as
// proto/link takes them, and the --addr-file they write once listening.
package daemon

import (
	"fmt"
	"os"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
)

// Limits is a daemon's [limits] section for link.Listen and link.NewServer.
func Limits(l configs.Limits) link.Limits {
	return link.Limits{HandshakeTimeout: l.HandshakeTimeout.Duration, MaxConnections: l.MaxConnections,
		MaxStreams: uint32(l.MaxStreams), KeepaliveTime: l.KeepaliveTime.Duration, KeepaliveTimeout: l.KeepaliveTimeout.Duration}
}

// WriteAddrFile writes addr (where the daemon listens: with listen =
// "127.0.0.1:0" the kernel picks the port) to path, whole (renamed into
// place, so a reader never sees a partial address), for --addr-file;
// path "" writes nothing.
func WriteAddrFile(path, addr string) error {
	if path == "" {
		return nil
	}
	err := os.WriteFile(path+".tmp", []byte(addr+"\n"), 0o644)
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		return fmt.Errorf("--addr-file %s: cannot write it: %v", path, err)
	}
	return nil
}
