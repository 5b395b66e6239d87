// Package sd is the storage daemon's logic: the drives and changers it
// owns, the key lifecycle on each drive (clear, load, verify, clear again),
// the label and mount flows, the data path sessions, and the gRPC Storage
// service the director calls. The invariants it keeps are those of
// ../shared/docs/architecture.md §4:
//
//  1. no encrypted block is written unless the volume's wrapped key is in
//     the catalog (the director committed it before asking) and in the
//     crypto cache (Put before the key goes into the drive);
//  2. data goes to an encrypted volume only after the drive's status page
//     reads back encrypt + mixed with a new key instance, and the first
//     block of every session is read back as encrypted;
//  3. keys are cleared on unmount, release, every error path, shutdown and
//     start-up;
//  4. no key material in any log line or error (fingerprints and KEK ids);
//  5. the crypto cache is package cryptocache's job;
//  6. an unwrap failure names the KEK id it needed and loads nothing.
package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Version is reported by Hello.
const Version = "0.1.0"

// Options are what New needs besides the configuration.
type Options struct {
	Config *configs.Storaged
	Logger *slog.Logger
	// Director answers GetVolumeKey and takes volume reports; nil dials
	// the director of the configuration.
	Director Director
	// Clock is the time source (tests inject one); nil is time.Now.
	Clock func() time.Time
	// OpenDevice opens a device address; nil is dial.OpenDevice.
	OpenDevice func(address string, types ...byte) (*scsi.Device, error)
}

// Daemon is a running storage daemon's state.
type Daemon struct {
	cfg      *configs.Storaged
	log      *slog.Logger
	clock    func() time.Time
	ring     *keys.Keyring
	cache    *cryptocache.Cache
	director Director

	changers map[string]*Changer
	drives   []*Drive
	byName   map[string]*Drive

	closeOnce sync.Once
	closeErr  error

	// cacheRecovery is set when the cache was found corrupt at start-up.
	cacheRecovery *cryptocache.Recovery
}

// New loads the keyring and the crypto cache, opens every changer and
// drive, probes each drive and clears any key left in it (invariant 3).
// A drive that cannot be opened or probed is kept, marked with its error,
// so that status shows it; New fails only when nothing can work.
func New(ctx context.Context, o Options) (*Daemon, error) {
	cfg := o.Config
	d := &Daemon{
		cfg:      cfg,
		log:      o.Logger,
		clock:    o.Clock,
		director: o.Director,
		changers: map[string]*Changer{},
		byName:   map[string]*Drive{},
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	open := o.OpenDevice
	if open == nil {
		open = dial.OpenDevice
	}

	ring, err := loadKeyring(cfg)
	if err != nil {
		return nil, err
	}
	d.ring = ring

	if err := os.MkdirAll(cfg.WorkingDirectory, 0o700); err != nil {
		ring.Destroy()
		return nil, fmt.Errorf("working directory %s: %w", cfg.WorkingDirectory, err)
	}
	cachePath := filepath.Join(cfg.WorkingDirectory, cryptocache.FileName)
	// A corrupt cache is kept (moved aside), salvaged into the fresh one
	// and logged as an ERROR; Status reports it (cacherecovery.go).
	d.cache, d.cacheRecovery, err = cryptocache.OpenRecover(cachePath, cryptocache.Options{Clock: cryptocache.Clock(d.clock), Logger: d.log})
	if err != nil {
		ring.Destroy()
		return nil, fmt.Errorf("crypto cache: %w", err)
	}
	if n, err := d.cache.List(); err == nil {
		d.log.Info("crypto cache loaded", "path", cachePath, "volumes", len(n))
		d.checkCacheKEKs(n)
	}

	for _, cc := range cfg.Changers {
		dev, err := open(cc.Address, scsi.TypeMediumChanger)
		c := &Changer{name: cc.Name, dev: dev}
		if err != nil {
			c.err = err.Error()
			d.log.Error("changer unusable", "changer", cc.Name, "error", err.Error())
		}
		d.changers[cc.Name] = c
	}
	for _, dc := range cfg.Drives {
		dr := &Drive{cfg: dc, name: dc.Name, crypto: dc.Encrypts(), log: d.log.With("drive", dc.Name)}
		if dc.Changer != "" {
			dr.changer = d.changers[dc.Changer]
		}
		d.drives = append(d.drives, dr)
		d.byName[dc.Name] = dr
		dev, err := open(dc.Address, scsi.TypeTape)
		if err != nil {
			dr.fail(err)
			d.log.Error("drive unusable", "drive", dc.Name, "address", dc.Address, "error", err.Error())
			continue
		}
		dr.dev = dev
		dr.startup(ctx)
	}
	if d.director == nil {
		d.director, err = DialDirector(cfg)
		if err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// loadKeyring loads every configured KEK file (permissions checked).
func loadKeyring(cfg *configs.Storaged) (*keys.Keyring, error) {
	files := make([]string, len(cfg.Keys.KEK))
	for i, k := range cfg.Keys.KEK {
		files[i] = k.File
	}
	ring, err := keys.LoadKeyringFiles(files, "", keys.LoadOptions{MasterKeysetPath: cfg.Keys.MasterKeyset})
	if err != nil {
		return nil, fmt.Errorf("%s: [[keys.kek]]: %w", cfg.Path, err)
	}
	return ring, nil
}

// KEKIDs lists the ids of the KEKs this daemon can unwrap with.
func (d *Daemon) KEKIDs() []string { return d.ring.IDs() }

// Drive returns the named drive.
func (d *Daemon) Drive(name string) (*Drive, error) {
	dr, ok := d.byName[name]
	if !ok {
		return nil, &NotFoundError{What: "drive", Name: name, Have: slices.Sorted(maps.Keys(d.byName))}
	}
	return dr, nil
}

// changer returns the named changer, or the only one when name is "".
func (d *Daemon) changer(name string) (*Changer, error) {
	if name == "" && len(d.changers) == 1 {
		for _, c := range d.changers {
			return c, nil
		}
	}
	c, ok := d.changers[name]
	if !ok {
		return nil, &NotFoundError{What: "changer", Name: name, Have: slices.Sorted(maps.Keys(d.changers))}
	}
	if c.dev == nil {
		return nil, fmt.Errorf("changer %s is unusable: %s", c.name, c.err)
	}
	return c, nil
}

// Close clears the key of every drive (waiting for a drive's current
// operation to end), closes the devices and forgets the keyring. It is
// what SIGTERM and SIGINT lead to.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		for _, dr := range d.drives {
			dr.mu.Lock()
			if dr.dev != nil {
				errs = append(errs, dr.clearKey("shutdown"))
				dr.dev.Close()
				dr.dev = nil
			}
			dr.mu.Unlock()
		}
		for _, c := range d.changers {
			c.mu.Lock()
			if c.dev != nil {
				c.dev.Close()
				c.dev = nil
			}
			c.mu.Unlock()
		}
		if d.director != nil {
			d.director.Close()
		}
		d.ring.Destroy()
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// NotFoundError names an unknown drive, changer or slot.
type NotFoundError struct {
	What, Name string
	Have       []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no %s %q here (configured: %v)", e.What, e.Name, e.Have)
}
