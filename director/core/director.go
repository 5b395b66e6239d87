// Package core is the director's logic: the catalog, the keyring, the links
// to the storage daemons, the console commands (label, volumes, key
// rotation, audit) and the two gRPC services it serves — Director (for
// storage daemons: their volumes' wrapped keys, and what happened to
// volumes) and Console (for tapectl).
//
// The invariant it owns (architecture.md §4.1): a volume's wrapped key is
// committed to the catalog before any storage daemon is asked to use it,
// and a key is never deleted because something failed.
package core

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Options are what New needs besides the configuration.
type Options struct {
	Config *configs.Director
	Logger *slog.Logger
	Clock  func() time.Time
	// Metrics are the job runner's collectors (nil: not exported).
	Metrics *jobs.Metrics
}

// Director is the running director.
type Director struct {
	cfg   *configs.Director
	log   *slog.Logger
	clock func() time.Time
	store *catalog.Store
	ring  *keys.Keyring
	// escrow: each pool's escrow public key (director.toml escrow_public_key).
	escrow map[string]*keys.EscrowPublic

	mu       sync.Mutex
	storages map[string]*storageLink
	consoles map[string]console.Role // [[console]] name → role

	// bg is the context of background work (pushes after a hello); Close
	// cancels it.
	bg     context.Context
	stopBG context.CancelFunc
	// jobs runs the backup jobs; filed dials the clients' file daemons.
	jobs  *jobs.Runner
	filed *jobs.FiledDialer
	// sched fires the scheduled jobs through jobs.
	sched *jobs.Scheduler
	// labelling: volumes a label or relabel of this process is working on
	// (a row in Labeling that is not here is left over, see labelSlot).
	labelling map[string]bool
	// browse: the restore tree browser's sessions by id (browse.go).
	browsers map[string]*browseSession
}

// beginLabel marks volume as being labelled by this process; false if it
// already is.
func (d *Director) beginLabel(volume string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.labelling[volume] {
		return false
	}
	d.labelling[volume] = true
	return true
}

func (d *Director) endLabel(volume string) {
	d.mu.Lock()
	delete(d.labelling, volume)
	d.mu.Unlock()
}

// storageLink is the director's connection to one storage daemon.
type storageLink struct {
	ref    configs.StorageRef
	conn   *grpc.ClientConn
	client pb.StorageClient
	pushMu sync.Mutex // one crypto cache push at a time
}

// ready waits (5 s at most) for the connection to be up.
func (s *storageLink) ready(ctx context.Context) bool { return link.Ready(ctx, s.conn, 5*time.Second) }

// New opens the catalog (applying pending migrations under the advisory
// lock), loads the KEK keyring and prepares a link to each configured
// storage daemon (connected lazily: a storage that is down does not keep
// the director from starting).
func New(ctx context.Context, o Options) (*Director, error) {
	d := &Director{cfg: o.Config, log: o.Logger, clock: o.Clock, storages: map[string]*storageLink{}, consoles: map[string]console.Role{}, labelling: map[string]bool{}}
	d.bg, d.stopBG = context.WithCancel(context.Background())
	if d.log == nil {
		d.log = slog.Default()
	}
	for _, c := range o.Config.Consoles {
		role, ok := console.ParseRole(c.Role)
		if !ok {
			return nil, fmt.Errorf("%s: [[console]] %s: role %q is not one of %s", o.Config.Path, c.Name, c.Role, strings.Join(console.Roles(), ", "))
		}
		d.consoles[c.Name] = role
	}
	if len(d.consoles) == 0 {
		d.log.Warn("no [[console]] is configured: every console will be refused; add one, e.g. [[console]] name = \"admin\" role = \"keyadmin\"", "config", o.Config.Path)
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	ring, err := LoadKeyring(o.Config)
	if err != nil {
		return nil, err
	}
	d.ring = ring
	// The director's own TLS identity, checked once: a bad [tls] path is
	// a [tls] problem, not one of the first [[storage]] that uses it (the
	// peer named here does not matter: nothing is dialed).
	files := tlsconf.Files{CA: o.Config.TLS.CA, Cert: o.Config.TLS.Cert, Key: o.Config.TLS.Key, RevocationList: o.Config.TLS.RevocationList}
	if _, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: o.Config.Name}, o.Config.Name); err != nil {
		ring.Destroy()
		return nil, fmt.Errorf("%s: [tls]: %w", o.Config.Path, err)
	}
	store, err := catalog.Open(ctx, o.Config.Catalog, o.Config.Path, catalog.WithClock(d.clock))
	if err != nil {
		ring.Destroy()
		return nil, err
	}
	d.store = store
	escrow, err := loadEscrowKeys(o.Config)
	if err != nil {
		store.Close()
		ring.Destroy()
		return nil, err
	}
	store.SetEscrowKeys(func(pool string) *keys.EscrowPublic { return escrow[pool] })
	d.escrow = escrow
	if err := migrate(ctx, store); err != nil {
		d.Close()
		return nil, err
	}
	// A KEK dropped from the configuration while catalog keys still need
	// it: refuse now, naming them, rather than fail at a mount or rekey.
	if err := checkKEKsNeeded(ctx, store, ring.IDs(), o.Config.Path); err != nil {
		d.Close()
		return nil, err
	}
	// No label can be running now: a row still in Labeling was left by a
	// director that stopped (crash, kill, catalog lost) during a label.
	interrupted, err := store.InterruptLabeling(ctx, o.Config.Name)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("ending labels a previous run left unfinished: %w", err)
	}
	for _, v := range interrupted {
		d.log.Warn("a label did not finish: volume set to status Error, its key kept; label the slot again to retry with the same key", "volume", v)
	}
	for _, ref := range o.Config.Storages {
		// A storage must present a storage certificate for its configured
		// name, valid for tls_server_name (default: that name).
		tc, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: ref.Name}, ref.TLSServerName)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("%s: [[storage]] %s: %w", o.Config.Path, ref.Name, err)
		}
		conn, err := link.Dial(ref.Address, tc)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("%s: [[storage]] %s address %q: %w", o.Config.Path, ref.Name, ref.Address, err)
		}
		d.storages[ref.Name] = &storageLink{ref: ref, conn: conn, client: pb.NewStorageClient(conn)}
		if _, err := store.EnsureStorage(ctx, ref.Name, ref.Address); err != nil {
			d.Close()
			return nil, err
		}
	}
	// Jobs: a job still active in the catalog was cut by a director that
	// stopped; the runner ends those E first.
	d.filed = jobs.NewFiledDialer(files)
	d.jobs, err = jobs.New(ctx, jobs.Options{Config: o.Config, Catalog: store, Log: d.log, Clock: d.clock, Metrics: o.Metrics, Keyring: d.ring,
		Storage: func(name string) (pb.StorageClient, error) {
			l, err := d.storage(name)
			if err != nil {
				return nil, err
			}
			return l.client, nil
		},
		Filed: d.filed.Dial})
	if err != nil {
		d.Close()
		return nil, err
	}
	// The scheduler: runs missed while the director was down are judged
	// (the latest of each job younger than its catch_up starts late), then
	// every Run line fires at its minute.
	d.sched = jobs.NewScheduler(d.jobs)
	if err := d.sched.Start(ctx); err != nil {
		d.Close()
		return nil, err
	}
	d.log.Info("keyring loaded", "kek_ids", ring.IDs(), "active", ring.Active().ID())
	return d, nil
}

// loadEscrowKeys loads each pool's escrow public key file (director.toml
// escrow_public_key), by pool name.
func loadEscrowKeys(cfg *configs.Director) (map[string]*keys.EscrowPublic, error) {
	out := map[string]*keys.EscrowPublic{}
	for i := range cfg.Pools {
		p := &cfg.Pools[i]
		if p.EscrowPublicKey == "" {
			continue
		}
		pub, err := keys.LoadEscrowPublic(p.EscrowPublicKey)
		if err != nil {
			return nil, fmt.Errorf("%s: [[pool]] %s: escrow_public_key: %w", cfg.Path, p.Name, err)
		}
		out[p.Name] = pub
	}
	return out, nil
}

// LoadKeyring loads the director's KEK files (permissions checked) and
// makes the one marked active the active one.
func LoadKeyring(cfg *configs.Director) (*keys.Keyring, error) {
	var files []string
	active := ""
	for _, k := range cfg.Keys.KEK {
		files = append(files, k.File)
		if k.Active {
			active = k.File
		}
	}
	if active == "" {
		return nil, fmt.Errorf("%s: [keys] has no active KEK; mark one [[keys.kek]] with active = true", cfg.Path)
	}
	ring, err := keys.LoadKeyringFiles(files, active, keys.LoadOptions{MasterKeysetPath: cfg.Keys.MasterKeyset})
	if err != nil {
		return nil, fmt.Errorf("%s: [[keys.kek]]: %w", cfg.Path, err)
	}
	return ring, nil
}

// Close closes the catalog and the storage links and forgets the keyring.
func (d *Director) Close() {
	d.stopBG()
	if d.sched != nil {
		d.sched.Stop() // no new run starts while the jobs end
	}
	if d.jobs != nil {
		// Running jobs end E ("interrupted at …: the director is shutting
		// down") while the catalog and the storages are still there.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		d.jobs.Shutdown(ctx)
		cancel()
	}
	if d.filed != nil {
		d.filed.Close()
	}
	for _, s := range d.storages {
		s.conn.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
	d.ring.Destroy()
}

// storage returns the link to a configured storage daemon.
func (d *Director) storage(name string) (*storageLink, error) {
	s, ok := d.storages[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no storage %q is configured (configured: %s); add a [[storage]] to %s",
			name, strings.Join(slices.Sorted(maps.Keys(d.storages)), ", "), d.cfg.Path)
	}
	link.Ready(context.Background(), s.conn, 5*time.Second)
	return s, nil
}

// Accept is the TLS admission rule: storage daemons and consoles
// configured here ([[storage]], [[console]]), by the name their
// certificate carries. A console certificate the CA signed for a name
// with no [[console]] is refused at the handshake.
func (d *Director) Accept(p tlsconf.Peer) error {
	switch p.Role {
	case tlsconf.RoleConsole:
		if _, ok := d.consoles[p.Name]; ok {
			return nil
		}
		err := d.unconfiguredConsole(p.Name)
		// The client sees only a TLS alert; the reason is here.
		d.log.Warn("refused a console at connect", "console", p.Name, "reason", err.Error())
		return err
	case tlsconf.RoleStorage:
		if _, ok := d.storages[p.Name]; ok {
			return nil
		}
		return fmt.Errorf("storage %q is not configured in this director", p.Name)
	}
	return fmt.Errorf("certificate role %q is not accepted here (storage or console)", p.Role)
}

// unconfiguredConsole says that console name is not admitted and what to
// add to director.toml.
func (d *Director) unconfiguredConsole(name string) error {
	return fmt.Errorf("console %q is not configured in this director: add [[console]] name = %q role = %q (or %s) to %s and restart the director",
		name, name, console.Roles()[0], strings.Join(console.Roles()[1:], ", "), d.cfg.Path)
}

// Authorize is a pair of interceptors: the Director service is for storage
// daemons, the Console service for consoles.
func Authorize() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) error {
		p, err := tlsconf.PeerOf(ctx)
		if err != nil {
			return status.Error(codes.Unauthenticated, err.Error())
		}
		want := ""
		switch {
		case strings.HasPrefix(method, "/tapeward.v1.Director/"):
			want = tlsconf.RoleStorage
		case strings.HasPrefix(method, "/tapeward.v1.Console/"):
			want = tlsconf.RoleConsole
		}
		if want != "" && p.Role != want {
			return status.Errorf(codes.PermissionDenied, "%s may not call %s (it is for %ss)", p, method, want)
		}
		return nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}

// event records a key event; a failure is logged (the operation it
// describes already happened).
func (d *Director) event(ctx context.Context, volume string, ev catalog.KeyEventType, actor, kekID, detail string) {
	_, err := d.store.AddKeyEvent(context.WithoutCancel(ctx), catalog.KeyEvent{At: d.clock(), Volume: volume, Event: ev, Actor: actor, KEKID: kekID, Detail: detail})
	if err != nil {
		d.log.Error("recording a key event failed", "volume", volume, "event", string(ev), "error", err.Error())
	}
}

// StorageService serves the Director service to storage daemons.
type StorageService struct {
	pb.UnimplementedDirectorServer
	D *Director
}

// GetVolumeKey hands a storage daemon the wrapped key of one of its own
// volumes, and records that it did. With the label the storage read from
// the tape, the label is first checked against the catalog (volume,
// barcode, storage, encrypted, key fingerprint — current key or history):
// a mismatch is refused with FailedPrecondition naming both sides, and a
// "refused" key event; a label naming a key from the volume's history gets
// that key, key_source saying so; a clear volume gets encrypted = false.
func (s *StorageService) GetVolumeKey(ctx context.Context, r *pb.GetVolumeKeyRequest) (*pb.GetVolumeKeyReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if r.Label == nil {
		return s.currentKey(ctx, p.Name, r)
	}
	lv := catalog.LabelView{Volume: r.Label.Volume, Barcode: r.Label.Barcode, Encrypted: r.Label.Encrypted, KEKID: r.Label.KekId,
		Fingerprint: r.Label.KeyFingerprint, Storage: r.Label.Storage, Pool: r.Label.Pool}
	if lv.Volume == "" {
		lv.Volume = r.Volume
	}
	if r.Volume != "" && r.Volume != lv.Volume {
		return nil, status.Errorf(codes.InvalidArgument, "GetVolumeKey: the request names volume %q but the label volume %q", r.Volume, lv.Volume)
	}
	lk, err := s.D.store.CheckLabel(ctx, p.Name, lv)
	if err != nil {
		var (
			no *catalog.NotOwnedError
			lm *catalog.LabelMismatchError
			sh *catalog.ShreddedError
		)
		switch {
		case asErr(err, &sh):
			s.D.log.Warn("refused the key of a shredded volume", "volume", lv.Volume, "storage", p.Name, "drive", r.Drive, "error", err.Error())
			s.D.event(ctx, lv.Volume, catalog.EventRefused, p.Name, "", fmt.Sprintf("mount in drive %s of storage %s refused: %s", r.Drive, p.Name, err.Error()))
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		case asErr(err, &no):
			s.D.log.Warn("refused a key to a storage that does not own the volume", "volume", lv.Volume, "storage", p.Name, "owner", no.Owner)
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case asErr(err, &lm), isNotFound(err):
			s.D.log.Warn("refused a label that does not match the catalog", "volume", lv.Volume, "storage", p.Name, "drive", r.Drive, "error", err.Error())
			s.D.event(ctx, lv.Volume, catalog.EventRefused, p.Name, lv.KEKID, fmt.Sprintf("mount in drive %s of storage %s refused: %s", r.Drive, p.Name, err.Error()))
			if isNotFound(err) {
				return nil, status.Errorf(codes.NotFound, "the label read by storage %s in drive %s names volume %q, which is not in the catalog; not mounted (a foreign or forged label?)", p.Name, r.Drive, lv.Volume)
			}
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, catalogStatus(err)
	}
	rep := &pb.GetVolumeKeyReply{Volume: lv.Volume, Encrypted: lk.Encrypted, KeySource: lk.Source, Barcode: lk.Barcode, Pool: lk.Pool}
	if lk.Encrypted {
		if rep.Key, err = s.D.wrappedKeyOf(ctx, lv.Volume, lk.Key); err != nil {
			return nil, catalogStatus(err)
		}
		detail := "fetched by storage " + p.Name
		if r.Drive != "" {
			detail += " for drive " + r.Drive
		}
		detail += ", label checked, fingerprint " + lk.Key.Fingerprint
		if lk.Source != catalog.SourceCurrent {
			detail += ", a key from the volume's " + lk.Source
			s.D.log.Warn("the label names a key from the volume's history; handing it out", "volume", lv.Volume, "storage", p.Name,
				"fingerprint", lk.Key.Fingerprint, "kek_id", lk.Key.KEKID, "key_source", lk.Source)
		}
		s.D.event(ctx, lv.Volume, catalog.EventFetched, p.Name, lk.Key.KEKID, detail)
	}
	return rep, nil
}

// currentKey answers a GetVolumeKey without a label (tools, older storage
// daemons): the volume's current key.
func (s *StorageService) currentKey(ctx context.Context, storage string, r *pb.GetVolumeKeyRequest) (*pb.GetVolumeKeyReply, error) {
	sk, err := s.D.store.VolumeKey(ctx, r.Volume, storage)
	if err != nil {
		var (
			no *catalog.NotOwnedError
			sh *catalog.ShreddedError
		)
		switch {
		case asErr(err, &sh):
			s.D.log.Warn("refused the key of a shredded volume", "volume", r.Volume, "storage", storage, "drive", r.Drive)
			s.D.event(ctx, r.Volume, catalog.EventRefused, storage, "", fmt.Sprintf("key request of storage %s refused: %s", storage, err.Error()))
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		case asErr(err, &no):
			s.D.log.Warn("refused a key to a storage that does not own the volume", "volume", r.Volume, "storage", storage, "owner", no.Owner)
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case isNotFound(err):
			return nil, status.Error(codes.NotFound, err.Error())
		}
		return nil, catalogStatus(err)
	}
	detail := "fetched by storage " + storage
	if r.Drive != "" {
		detail += " for drive " + r.Drive
	}
	s.D.event(ctx, r.Volume, catalog.EventFetched, storage, sk.KEKID, detail+", fingerprint "+sk.Fingerprint)
	wk, err := s.D.wrappedKeyOf(ctx, r.Volume, sk)
	if err != nil {
		return nil, catalogStatus(err)
	}
	return &pb.GetVolumeKeyReply{Volume: r.Volume, Key: wk, Encrypted: true, KeySource: catalog.SourceCurrent}, nil
}

// BeginWrite commits, before storaged writes the first data block of a
// session, that the volume holds data (media.data_since); only then does
// it answer. Refused: a volume of another storage, a volume that is not
// Append, a drive key that is not the volume's current key.
func (s *StorageService) BeginWrite(ctx context.Context, r *pb.BeginWriteRequest) (*pb.BeginWriteReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	since, err := s.D.store.BeginWrite(ctx, r.Volume, p.Name, r.KeyFingerprint)
	if err != nil {
		s.D.log.Warn("refused a write session", "volume", r.Volume, "storage", p.Name, "drive", r.Drive, "error", err.Error())
		return nil, catalogStatus(err)
	}
	if pt := r.Part; r.JobId != 0 && pt != nil {
		if pt.Volume != r.Volume || pt.TapeFile != r.TapeFile {
			return nil, status.Errorf(codes.InvalidArgument, "job %d part %d: the part names tape file %d of volume %s, the request tape file %d of %s",
				r.JobId, pt.Part, pt.TapeFile, pt.Volume, r.TapeFile, r.Volume)
		}
		err := s.D.store.RecordPart(ctx, r.JobId, catalog.Part{Part: int(pt.Part), Kind: pt.Kind, Volume: pt.Volume, VolumeIndex: int(pt.VolumeSeq),
			TapeFile: int(pt.TapeFile), FirstBlock: int64(pt.FirstBlock), FirstStreamOffset: pt.StreamOffset})
		if err != nil {
			s.D.log.Warn("refused a job's tape file", "jobid", r.JobId, "part", pt.Part, "volume", r.Volume, "tape_file", r.TapeFile, "error", err.Error())
			return nil, catalogStatus(err)
		}
		s.D.log.Debug("job tape file recorded", "jobid", r.JobId, "part", pt.Part, "kind", pt.Kind, "volume", r.Volume, "tape_file", r.TapeFile)
		return &pb.BeginWriteReply{}, nil
	}
	s.D.log.Info("write session begins: the volume holds data", "volume", r.Volume, "storage", p.Name, "drive", r.Drive,
		"tape_file", r.TapeFile, "fingerprint", r.KeyFingerprint, "data_since", since.Format(time.RFC3339))
	return &pb.BeginWriteReply{}, nil
}

// LabelWritten records that a storage rewrote, inside a job session, the
// label of a volume the director recycled (JobVolume.recycle): for an
// encrypted volume the key-check block must have read back encrypted with
// the volume's new current key. The volume goes Labeling → Append and the
// key the recycling superseded is marked superseded by a verified label.
// storaged writes no data before this answer.
func (s *StorageService) LabelWritten(ctx context.Context, r *pb.LabelVolumeReply) (*pb.LabelWrittenReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	var verifiedAt *time.Time
	if r.Encrypted {
		if !r.EncryptionVerified {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s: storage %s rewrote its label but did not verify its encryption; it takes no data", r.Volume, p.Name)
		}
		t := time.Unix(r.VerifiedTimeUnix, 0)
		verifiedAt = &t
	}
	m, err := s.D.store.GetMedia(ctx, r.Volume)
	if err != nil {
		return nil, catalogStatus(err)
	}
	if err := s.D.store.MarkRecycleLabeled(ctx, r.Volume, p.Name, r.KeyFingerprint, time.Unix(r.LabelTimeUnix, 0), verifiedAt, p.Name); err != nil {
		s.D.log.Warn("refused a recycled label", "volume", r.Volume, "storage", p.Name, "drive", r.Drive, "error", err.Error())
		return nil, catalogStatus(err)
	}
	if r.Encrypted {
		detail := fmt.Sprintf("drive %s; fingerprint %s, key instance counter %d", r.Drive, r.KeyFingerprint, r.KeyInstanceCounter)
		s.D.event(ctx, r.Volume, catalog.EventLoaded, p.Name, m.KEKID, detail+"; recycled volume relabelled in a job session")
		s.D.event(ctx, r.Volume, catalog.EventVerified, p.Name, m.KEKID, detail+"; key-check block read back encrypted; the previous key is superseded by this verified label")
	}
	s.D.log.Info("recycled volume relabelled", "volume", r.Volume, "storage", p.Name, "drive", r.Drive, "fingerprint", r.KeyFingerprint)
	return &pb.LabelWrittenReply{}, nil
}

// ReportVolume records what a storage daemon says happened to a volume.
func (s *StorageService) ReportVolume(ctx context.Context, r *pb.ReportVolumeRequest) (*pb.ReportVolumeReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	m, err := s.D.store.GetMedia(ctx, r.Volume)
	if err != nil {
		return nil, catalogStatus(err)
	}
	if m.Storage != p.Name {
		return nil, status.Errorf(codes.PermissionDenied, "volume %s does not belong to storage %s", r.Volume, p.Name)
	}
	if err := s.D.checkReport(ctx, p.Name, r); err != nil {
		return nil, err
	}
	var parts []string
	if r.Drive != "" {
		parts = append(parts, "drive "+r.Drive)
	}
	if r.KeyFingerprint != "" {
		parts = append(parts, fmt.Sprintf("fingerprint %s, key instance counter %d", r.KeyFingerprint, r.KeyInstanceCounter))
	}
	if r.Detail != "" {
		parts = append(parts, r.Detail)
	}
	detail := strings.Join(parts, "; ")
	switch r.Event {
	case "loaded":
		s.D.event(ctx, r.Volume, catalog.EventLoaded, p.Name, r.KekId, detail)
	case "verified":
		s.D.event(ctx, r.Volume, catalog.EventVerified, p.Name, r.KekId, detail)
	case "cleared":
		s.D.event(ctx, r.Volume, catalog.EventCleared, p.Name, r.KekId, detail)
	case "written":
		err = s.D.store.RecordWritten(ctx, r.Volume, int64(r.Bytes), int64(r.Blocks))
	case "full":
		err = s.D.volumeFull(ctx, p.Name, r.Volume, r.Detail)
	case "error":
		s.D.log.Warn("storage reports a volume error", "volume", r.Volume, "storage", p.Name, "detail", r.Detail)
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown volume event %q", r.Event)
	}
	if err != nil {
		return nil, catalogStatus(err)
	}
	return &pb.ReportVolumeReply{}, nil
}
