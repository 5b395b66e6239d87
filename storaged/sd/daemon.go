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
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
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
	// OpenDevice opens a device address; nil is dial.OpenDeviceWith with
	// the [iscsi] settings.
	OpenDevice func(address string, types ...byte) (*scsi.Device, error)
	// AfterFunc starts a job session's idle timer (nil: time.AfterFunc);
	// tests inject one they fire themselves.
	AfterFunc func(d time.Duration, f func()) Timer

	// beforeJobMount (tests) runs in a job session before its mount; its
	// error fails the mount.
	beforeJobMount func() error
}

// Daemon is a running storage daemon's state.
type Daemon struct {
	cfg      *configs.Storaged
	log      *slog.Logger
	clock    func() time.Time
	ring     *keys.Keyring
	cache    *cryptocache.Cache
	director Director
	// shredMu orders a shred (ShredKeys) and a key's way into the crypto
	// cache (loadKey); shredded are the volumes shredded lately, by time,
	// whose keys are not loaded or cached for a mount timeout after (a
	// mount that fetched a key just before the shred).
	shredMu  sync.Mutex
	shredded map[string]time.Time

	changers map[string]*Changer
	drives   []*Drive
	byName   map[string]*Drive

	// pending are key events that could not be reported yet (start-up
	// clears, before the director answered); sent after its hello.
	pendMu  sync.Mutex
	pending []*pb.ReportVolumeRequest

	closeOnce sync.Once
	closeErr  error

	// cacheRecovery is set when the cache was found corrupt at start-up.
	cacheRecovery *cryptocache.Recovery

	// Job sessions by id (job.go).
	jobsMu    sync.Mutex
	jobs      map[string]*JobSession
	restores  map[string]*RestoreSession // restore.go, under jobsMu
	afterFunc func(time.Duration, func()) Timer
	// beforeJobMount: Options.beforeJobMount.
	beforeJobMount func() error
	metrics        *sdMetrics
}

// New loads the keyring and the crypto cache, opens every changer and
// drive, probes each drive and clears any key left in it (invariant 3).
// A drive that cannot be opened or probed is kept, marked with its error,
// so that status shows it; New fails only when nothing can work.
func New(ctx context.Context, o Options) (*Daemon, error) {
	cfg := o.Config
	d := &Daemon{
		cfg:            cfg,
		log:            o.Logger,
		clock:          o.Clock,
		director:       o.Director,
		changers:       map[string]*Changer{},
		byName:         map[string]*Drive{},
		jobs:           map[string]*JobSession{},
		restores:       map[string]*RestoreSession{},
		afterFunc:      o.AfterFunc,
		beforeJobMount: o.beforeJobMount,
		metrics:        newMetrics(),
	}
	if d.afterFunc == nil {
		d.afterFunc = func(t time.Duration, f func()) Timer { return time.AfterFunc(t, f) }
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	open := o.OpenDevice
	if open == nil {
		open = func(address string, types ...byte) (*scsi.Device, error) {
			return dial.OpenDeviceWith(address, dial.Options{Types: types, ISCSI: ISCSIOptions(cfg.ISCSI)})
		}
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
		switch {
		case scsi.IsBusy(err):
			c.err = err.Error()
			d.log.Error("changer busy: another process holds it (another storaged on this library?); this daemon will not move cartridges with it",
				"changer", cc.Name, "error", err.Error())
		case err != nil:
			c.err = err.Error()
			d.log.Error("changer unusable", "changer", cc.Name, "error", err.Error())
		}
		d.changers[cc.Name] = c
	}
	// What each changer holds, read once: which drives hold a cartridge
	// (and from which slot), and each drive's identifier (DVCID).
	layouts := map[*Changer]*Layout{}
	for _, cc := range cfg.Changers {
		c := d.changers[cc.Name]
		if c.dev == nil {
			continue
		}
		l, err := c.layout()
		if err != nil {
			d.log.Error("changer inventory failed at start-up: what its drives hold and the drive_index mapping are not known", "changer", c.name, "error", err.Error())
			continue
		}
		layouts[c] = l
	}
	var (
		refused []error
		busy    []string
	)
	for _, dc := range cfg.Drives {
		dr := &Drive{cfg: dc, name: dc.Name, crypto: dc.Encrypts(), log: d.log.With("drive", dc.Name), state: StateIdle, metrics: d.metrics}
		dr.mu.onRelease = dr.publish
		if dc.Changer != "" {
			dr.changer = d.changers[dc.Changer]
		}
		d.drives = append(d.drives, dr)
		d.byName[dc.Name] = dr
		dev, err := open(dc.Address, scsi.TypeTape)
		if err != nil {
			// Busy: another process holds the drive (its exclusive open
			// failed). Nothing is sent to it — no probe, no clear — so a
			// key loaded for that process's job stays.
			dr.fail(err)
			if scsi.IsBusy(err) {
				busy = append(busy, fmt.Sprintf("%s (%s)", dc.Name, dc.Address))
				d.log.Error("drive busy: another process holds it (another storaged on this library?); not probed, its key not touched; the drive is unusable until storaged restarts",
					"drive", dc.Name, "address", dc.Address, "error", err.Error())
			} else {
				d.log.Error("drive unusable", "drive", dc.Name, "address", dc.Address, "error", err.Error())
			}
			dr.publish()
			continue
		}
		dr.dev = dev
		if err := dr.checkElement(d.cfg.Path, layouts[dr.changer]); err != nil {
			dr.fail(err)
			dr.publish()
			refused = append(refused, err)
			continue
		}
		dr.startup(ctx, d, layouts[dr.changer])
	}
	if len(refused) > 0 {
		d.Close()
		return nil, errors.Join(refused...)
	}
	if len(cfg.Drives) > 0 && len(busy) == len(cfg.Drives) {
		d.Close()
		return nil, fmt.Errorf("every drive is held by another process (another storaged on this library?): %s; nothing was sent to them — stop that process first, or give this storaged other drives in %s",
			strings.Join(busy, ", "), cfg.Path)
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
		var (
			errs    []error
			reports []*pb.ReportVolumeRequest
		)
		for _, dr := range d.drives {
			dr.mu.Lock()
			if dr.dev != nil {
				vol, fp, kek := dr.volume(), dr.keyFP, dr.keyKEK
				err := dr.clearKey("shutdown")
				errs = append(errs, err)
				if err == nil && fp != "" && vol != "" {
					reports = append(reports, &pb.ReportVolumeRequest{Volume: vol, Drive: dr.name, Event: "cleared", KekId: kek,
						KeyFingerprint: fp, KeyInstanceCounter: dr.kic, Detail: "at shutdown"})
				}
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
			for _, r := range reports {
				d.report(context.Background(), r)
			}
			if n := d.pendingCount(); n > 0 {
				d.log.Warn("key events not reported: the director was not reached since start-up (they are in this log)", "events", n)
			}
			d.director.Close()
		}
		d.ring.Destroy()
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// queueReport keeps a key event until the director can be reached (it is
// sent after the director answers the hello; see SayHello).
func (d *Daemon) queueReport(r *pb.ReportVolumeRequest) {
	if r.TimeUnix == 0 {
		r.TimeUnix = d.clock().Unix()
	}
	d.pendMu.Lock()
	d.pending = append(d.pending, r)
	d.pendMu.Unlock()
}

func (d *Daemon) pendingCount() int {
	d.pendMu.Lock()
	defer d.pendMu.Unlock()
	return len(d.pending)
}

// flushReports sends the queued key events; those the director does not
// take stay queued (and are logged).
func (d *Daemon) flushReports(ctx context.Context) {
	d.pendMu.Lock()
	rs := d.pending
	d.pending = nil
	d.pendMu.Unlock()
	var keep []*pb.ReportVolumeRequest
	for _, r := range rs {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.director.Report(rctx, r)
		cancel()
		if err != nil {
			d.log.Warn("reporting a queued key event to the director failed", "volume", r.Volume, "event", r.Event, "detail", r.Detail,
				"error", status.Convert(err).Message())
			keep = append(keep, r)
			continue
		}
		d.log.Info("queued key event reported to the director", "volume", r.Volume, "event", r.Event, "detail", r.Detail)
	}
	if len(keep) > 0 {
		d.pendMu.Lock()
		d.pending = append(keep, d.pending...)
		d.pendMu.Unlock()
	}
}

// checkElement compares the drive's serial number (VPD 80h) with the
// identifier its changer reports (READ ELEMENT STATUS, DVCID) for the
// configured drive_index: a mismatch (a swapped configuration) is an error
// naming both, and which index carries the drive's serial; a changer that
// reports no identifiers is warned about.
func (dr *Drive) checkElement(cfgPath string, l *Layout) error {
	if dr.changer == nil {
		return nil
	}
	if l == nil {
		dr.log.Warn("drive_index not checked against the changer: its inventory could not be read", "changer", dr.changer.name)
		return nil
	}
	e, err := dr.driveElement(l)
	if err != nil {
		return fmt.Errorf("%w; fix drive_index of %s in %s", err, dr.name, cfgPath)
	}
	serial, err := dr.dev.SerialNumber()
	if err != nil {
		dr.log.Warn("drive_index not checked against the changer: the drive's serial number (VPD 80h) could not be read", "error", err.Error())
		return nil
	}
	dr.serial = strings.TrimSpace(serial)
	if e.DeviceID == nil || strings.TrimSpace(e.DeviceID.Serial) == "" {
		dr.log.Warn("drive_index not checked: the changer reports no identifier (DVCID) for its drives; make sure drive_index names the changer's element of this drive",
			"changer", dr.changer.name, "drive_index", dr.cfg.DriveIndex, "serial", dr.serial)
		return nil
	}
	if strings.TrimSpace(e.DeviceID.Serial) == dr.serial {
		return nil
	}
	carrier := -1
	for i, x := range l.Drives {
		if x.DeviceID != nil && strings.TrimSpace(x.DeviceID.Serial) == dr.serial {
			carrier = i
		}
	}
	return &MappingError{Drive: dr.name, Address: dr.cfg.Address, Serial: dr.serial, Changer: dr.changer.name,
		Index: dr.cfg.DriveIndex, Reported: strings.TrimSpace(e.DeviceID.Serial), Carrier: carrier, Config: cfgPath}
}

// MappingError refuses a drive whose configured drive_index is the
// changer's element of another drive: storaged would load cartridges into
// one drive and write (and load keys) through another.
type MappingError struct {
	Drive, Address, Serial, Changer string
	Index                           int
	Reported                        string // the DVCID serial the changer reports for Index
	Carrier                         int    // the changer's index whose DVCID is Serial (-1: none)
	Config                          string
}

func (e *MappingError) Error() string {
	s := fmt.Sprintf("%s (%s) has serial number %s, but changer %s reports drive_index %d as the drive with serial %s (DVCID)",
		e.Drive, e.Address, e.Serial, e.Changer, e.Index, e.Reported)
	if e.Carrier >= 0 {
		s += fmt.Sprintf("; serial %s is the changer's drive_index %d: set drive_index = %d for %s in %s", e.Serial, e.Carrier, e.Carrier, e.Drive, e.Config)
	} else {
		s += fmt.Sprintf("; no drive of changer %s has serial %s: check the address and changer of %s in %s", e.Changer, e.Serial, e.Drive, e.Config)
	}
	return s + " (storaged refuses to start rather than load cartridges into one drive and write through another)"
}

// NotFoundError names an unknown drive, changer or slot.
type NotFoundError struct {
	What, Name string
	Have       []string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no %s %q here (configured: %v)", e.What, e.Name, e.Have)
}

// ISCSIOptions are the initiator settings of storaged.toml's [iscsi] for
// iscsi:// device addresses (empty ones come from the environment, see
// dial.ISCSIFromEnv).
func ISCSIOptions(c configs.ISCSI) iscsi.Options {
	return iscsi.Options{
		InitiatorName:        c.InitiatorName,
		CHAPSecretFile:       c.CHAPSecretFile,
		TargetCHAPSecretFile: c.TargetCHAPSecretFile,
		HeaderDigest:         c.Digests,
		DataDigest:           c.Digests,
	}
}
