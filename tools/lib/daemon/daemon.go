// Package daemon holds what the three daemons' main packages (director,
// storaged, filed) would otherwise each write again: their command line,
// their logger, their [limits] as proto/link takes them, and the
// --addr-file they write once listening.
package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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

// Flags is the command line of storaged and filed: -c FILE, --debug,
// --addr-file FILE.
type Flags struct {
	Config   string
	Debug    bool
	AddrFile string
}

// ParseFlags parses args for daemon name (usage, parse errors and -h go
// to stderr). ok false: exit with code (0 after -h, 2 after a usage error).
func ParseFlags(name, defaultConfig, debugHelp string, args []string, stderr io.Writer) (f Flags, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.Config, "c", defaultConfig, "configuration file")
	fs.BoolVar(&f.Debug, "debug", false, debugHelp)
	fs.StringVar(&f.AddrFile, "addr-file", "", "once listening, write the bound address to this file (for listen = \"127.0.0.1:0\")")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0, false
		}
		return f, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q; usage: %s -c FILE\n", name, fs.Arg(0), name)
		return f, 2, false
	}
	return f, 0, true
}

// Logger is a daemon's text logger on w: info, or debug with --debug.
func Logger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
