package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// Restore jobs (issue 12): the console builds the plan (catalog
// LoadRestoreView, SelectCriteria, PlanRestore); the runner runs it as a
// job of type Restore: it waits for the director's and the restore
// client's max concurrent jobs, the volumes (not used by another job of
// this director) and a drive of the storage, checks that every volume is
// in the library, opens a restore session on the storage daemon
// (Storage.Restore: the plan, volume by volume), hands the session's
// one-time token to the restore client's file daemon (Filed.Restore with
// the relocation and replace=), and follows both until they end. A file
// the client could not write (a digest mismatch, a path refused) is an
// error naming the file; any makes the job E.

// RestoreJobName is the name of restore jobs (Bareos' default restore
// job is RestoreFiles).
const RestoreJobName = "RestoreFiles"

// RestoreRequest is a planned restore.
type RestoreRequest struct {
	Actor string
	// Client is the [[client]] that writes the files (restoreclient=, or
	// the backup's client).
	Client *configs.Client
	// BackupClient and Fileset name what is restored (the job row's
	// fileset; the log).
	BackupClient string
	Fileset      string
	Storage      string
	// Plan is what to read (catalog.PlanRestore); where each volume is
	// the job asks the library again when it starts (LocateVolumes).
	Plan         []catalog.PlanVolume
	Files, Bytes int64 // what the selection picked (the report's expected)
	Relocation   *pb.Relocation
	Replace      string
	Jobs         []int64 // the backups read
	// NoWait fails the job at once when a volume is not in the library;
	// otherwise it waits (status M, saying which) until an import (or an
	// operator) puts them back, re-checking every volumePoll.
	NoWait bool
}

// volumePoll is how often a restore waiting for volumes asks the library
// again (an import through this director wakes it at once:
// VolumesChanged).
const volumePoll = time.Minute

// restoreState is what a running restore has seen.
type restoreState struct {
	req        *RestoreRequest
	members    int // entries with distinct seq
	opened     *pb.RestoreOpened
	storeDone  *pb.RestoreDone
	filedDone  *pb.RestoreFiledDone
	errors     int64
	errorLines []string
}

// VolumeWhere is where a volume of a plan is.
type VolumeWhere struct {
	Volume  string `json:"volume"`
	Barcode string `json:"barcode,omitempty"`
	Changer string `json:"changer,omitempty"`
	Slot    uint32 `json:"slot"` // 0: not in the library
	InDrive string `json:"in_drive,omitempty"`
}

// InLibrary reports whether the volume's cartridge is in the library.
func (w VolumeWhere) InLibrary() bool { return w.Slot != 0 || w.InDrive != "" }

func (w VolumeWhere) String() string {
	switch {
	case w.InDrive != "":
		return fmt.Sprintf("in drive %s (slot %d)", w.InDrive, w.Slot)
	case w.Slot != 0:
		return fmt.Sprintf("slot %d", w.Slot)
	}
	return "not in the library"
}

// LocateVolumes asks storage's library where each volume's cartridge is
// (by barcode; a volume without one by its catalog slot).
func (r *Runner) LocateVolumes(ctx context.Context, storage string, volumes []string) ([]VolumeWhere, error) {
	sc, err := r.o.Storage(storage)
	if err != nil {
		return nil, fail("storage", "storage %s: %v", storage, err)
	}
	inv, err := sc.Inventory(ctx, &pb.InventoryRequest{})
	if err != nil {
		return nil, fail("storage", "storage %s inventory: %s", storage, status.Convert(err).Message())
	}
	type at struct {
		changer, drive string
		slot           uint32
	}
	byBarcode := map[string]at{}
	bySlot := map[uint32]at{}
	for _, ch := range inv.Changers {
		for _, sl := range ch.Slots {
			if !sl.Full {
				continue
			}
			if sl.Barcode != "" {
				byBarcode[sl.Barcode] = at{changer: ch.Name, slot: sl.Slot}
			}
			if len(inv.Changers) == 1 {
				bySlot[sl.Slot] = at{changer: ch.Name, slot: sl.Slot}
			}
		}
		for _, d := range ch.Drives {
			if d.Full && d.Barcode != "" {
				byBarcode[d.Barcode] = at{changer: ch.Name, drive: d.Drive}
			}
		}
	}
	out := make([]VolumeWhere, 0, len(volumes))
	for _, v := range volumes {
		w := VolumeWhere{Volume: v}
		m, err := r.o.Catalog.GetMedia(ctx, v)
		if err != nil {
			return nil, fail("catalog", "%v", err)
		}
		w.Barcode = m.Barcode
		a, ok := byBarcode[m.Barcode]
		if !ok && m.Barcode == "" && m.Slot != catalog.NoSlot {
			a, ok = bySlot[uint32(m.Slot)]
		}
		if ok {
			w.Changer, w.Slot, w.InDrive = a.changer, a.slot, a.drive
			if a.drive != "" && m.Slot != catalog.NoSlot {
				w.Slot = uint32(m.Slot)
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// Restore creates a Restore job (status C) and runs it in the
// background; it returns its JobId at once.
func (r *Runner) Restore(ctx context.Context, req RestoreRequest) (int64, error) {
	if req.Client == nil {
		return 0, errors.New("restore: no restore client")
	}
	if len(req.Plan) == 0 {
		return 0, errors.New("restore: the plan is empty")
	}
	catStorage := req.Storage
	if _, err := r.o.Catalog.GetStorage(ctx, req.Storage); err != nil {
		catStorage = ""
	}
	id, err := r.o.Catalog.CreateJob(ctx, catalog.JobNew{Name: RestoreJobName, Type: catalog.TypeRestore, Client: req.Client.Name,
		Fileset: req.Fileset, Storage: catStorage})
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.end(context.Background(), id, catalog.JobError, catalog.JobSummary{Error: "the director is shutting down"})
		return id, errShutdown
	}
	jctx, cancel := context.WithCancelCause(context.Background())
	cfg := configs.Job{Name: RestoreJobName, Client: req.Client.Name, Priority: 10, MaxConcurrentJobs: maxConcurrentRestores,
		ClientIdleTimeout: 2 * time.Minute}
	j := &job{id: id, cfg: cfg, client: req.Client, actor: req.Actor, ctx: jctx, cancel: cancel, done: make(chan struct{}),
		restore: &restoreState{req: &req},
		st: Status{JobID: id, Job: RestoreJobName, Client: req.Client.Name, Level: "Restore", Storage: req.Storage, State: "waiting", Why: "created",
			Expected: req.Bytes}}
	r.active[id] = j
	r.wg.Add(1)
	r.mu.Unlock()
	r.m.Active.WithLabelValues("waiting").Inc()
	go r.run(j, "")
	return id, nil
}

// maxConcurrentRestores bounds restores running at once (each also
// counts against its client's max_concurrent_jobs and needs a drive).
const maxConcurrentRestores = 10

// planVolumes lists the plan's volumes in reading order, once each.
func planVolumes(plan []catalog.PlanVolume) []string {
	var vs []string
	for _, pv := range plan {
		if !slices.Contains(vs, pv.Volume) {
			vs = append(vs, pv.Volume)
		}
	}
	return vs
}

// executeRestore is a restore job's life up to its end.
func (r *Runner) executeRestore(j *job, s *session) error {
	rs := j.restore
	req := rs.req
	vols := planVolumes(req.Plan)
	seqs := map[uint64]bool{}
	for _, pv := range req.Plan {
		for _, e := range pv.Entries {
			seqs[e.Seq] = true
		}
	}
	rs.members = len(seqs)
	where := "-"
	if rl := req.Relocation; rl != nil {
		where = rl.Where
		if rl.Regexwhere != "" {
			where = "regexwhere " + rl.Regexwhere
		}
	}
	r.logf(j, catalog.LogInfo, "Start Restore JobId %d, Client=%s (backups of %s, fileset %s, jobs %s), Files=%d, Bytes=%d, Volumes=%s, Where=%s, Replace=%s (requested by %s)",
		j.id, j.client.Name, req.BackupClient, req.Fileset, idList(req.Jobs), req.Files, req.Bytes, strings.Join(vols, ","), where, req.Replace, orDash(j.actor))
	err := r.acquire(j, func() (bool, catalog.JobStatus, string) {
		if max := r.o.Config.MaxConcurrentJobs; max > 0 {
			if n := r.countRunning(func(*job) bool { return true }); n >= max {
				return false, catalog.JobWaitMaxJobs, fmt.Sprintf("waiting: the director already runs %d of max_concurrent_jobs %d", n, max)
			}
		}
		if n, max := r.countRunning(func(o *job) bool { return o.client.Name == j.client.Name }), max(1, j.client.MaxConcurrentJobs); n >= max {
			return false, catalog.JobWaitClientResource, fmt.Sprintf("waiting: client %s already runs %d of max_concurrent_jobs %d", j.client.Name, n, max)
		}
		j.update(func(st *Status) { st.State = "running"; st.Why = "" })
		r.m.Active.WithLabelValues("waiting").Dec()
		r.m.Active.WithLabelValues("running").Inc()
		return true, "", ""
	})
	if err != nil {
		return err
	}
	s.storage = req.Storage
	sc, err := r.o.Storage(s.storage)
	if err != nil {
		return fail("storage", "storage %s: %v", s.storage, err)
	}
	if err := r.knowDrives(j.ctx, s.storage, sc); err != nil {
		return err
	}
	// Every volume must be in the library: the job names those that are
	// not, and waits for them (or fails at once with nowait).
	at := map[string]VolumeWhere{}
	for {
		r.mu.Lock()
		changed := r.volChanged
		r.mu.Unlock()
		locs, err := r.LocateVolumes(j.ctx, s.storage, vols)
		if err != nil {
			return err
		}
		var missing []string
		for _, w := range locs {
			at[w.Volume] = w
			if !w.InLibrary() {
				missing = append(missing, w.Volume)
			}
		}
		if len(missing) == 0 {
			break
		}
		what := fmt.Sprintf("volumes not in the library of storage %s: %s", s.storage, strings.Join(missing, ", "))
		if req.NoWait {
			return fail("volume", "%s; bring them back (import) and run the restore again", what)
		}
		r.setWaiting(j, catalog.JobWaitMount, fmt.Sprintf("waiting for %s (put them in and run import, or cancel jobid=%d)", what, j.id))
		select {
		case <-changed:
		case <-r.o.After(volumePoll):
		case <-j.ctx.Done():
			return context.Cause(j.ctx)
		}
	}
	// The volumes (no other job of this director on them) and a drive.
	err = r.acquire(j, func() (bool, catalog.JobStatus, string) {
		for _, v := range vols {
			if r.volumes[v] {
				return false, catalog.JobWaitMount, fmt.Sprintf("waiting: volume %s is in use by another job", v)
			}
		}
		if r.busy[s.storage] >= r.drives[s.storage] {
			return false, catalog.JobWaitStorageResource, "waiting for a drive on " + s.storage
		}
		r.busy[s.storage]++
		s.drive = true
		for _, v := range vols {
			r.volumes[v] = true
		}
		s.volumes = append(s.volumes, vols...)
		return true, "", ""
	})
	if err != nil {
		return err
	}
	if j.status().Why != "" {
		j.update(func(st *Status) { st.Why = "" })
	}
	s.started = r.o.Clock()
	if err := r.o.Catalog.StartJob(j.ctx, j.id, catalog.LevelDecision{}, s.started); err != nil {
		return fail("catalog", "%v", err)
	}
	j.update(func(st *Status) { t := s.started; st.StartedAt = &t })
	return r.restoreSession(j, s, sc, at)
}

func idList(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return orDash(strings.Join(s, ","))
}

// planChunk bounds the members of one RestoreVolume message.
const planChunk = 5000

// restoreSession opens the storage's restore session, sends the plan,
// starts the client's restore with the token and follows both.
func (r *Runner) restoreSession(j *job, s *session, sc pb.StorageClient, at map[string]VolumeWhere) error {
	rs := j.restore
	req := rs.req
	ctx, cancel := context.WithCancelCause(j.ctx)
	defer cancel(nil)
	st, err := sc.Restore(ctx)
	if err != nil {
		return fail("storage", "storage %s: opening the restore session: %s", s.storage, status.Convert(err).Message())
	}
	idle := j.cfg.ClientIdleTimeout
	open := &pb.RestoreOpen{JobId: j.id, Job: RestoreJobName, Client: j.client.Name, IdleTimeoutSeconds: uint32(idle / time.Second)}
	if err := st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_Open{Open: open}}); err != nil {
		return r.restoreStorageErr(j, s, st, err)
	}
	ev, err := st.Recv()
	if err != nil {
		return r.restoreStorageErr(j, s, st, err)
	}
	if rs.opened = ev.GetOpened(); rs.opened == nil {
		return fail("storage", "storage %s answered the restore's open with %T, not opened", s.storage, ev.Msg)
	}
	r.logf(j, catalog.LogInfo, "Restore session %s opened on storage %s: %d members on %d volumes", rs.opened.Session, s.storage, rs.members, len(at))
	// The plan goes out while the client reads: storaged holds only a
	// bounded part of it (its Control waits while 8192 members are
	// queued, so these sends wait on the stream's flow control until the
	// tape reaches them). A send that fails means the session ended: the
	// storage loop's Recv then has the reason.
	planSent := make(chan error, 1)
	go func() { planSent <- sendRestorePlan(st, req.Plan, at) }()

	fc, err := r.o.Filed(ctx, j.client)
	if err != nil {
		return fail("client", "client %s: %v", j.client.Name, err)
	}
	var ref configs.StorageRef
	for _, sr := range r.o.Config.Storages {
		if sr.Name == s.storage {
			ref = sr
		}
	}
	freq := &pb.RestoreRequest{JobId: j.id, StorageAddress: ref.Address, StorageName: ref.Name, TlsServerName: ref.TLSServerName,
		Session: rs.opened.Session, Token: rs.opened.Token, Relocation: req.Relocation, Replace: req.Replace}
	r.logf(j, catalog.LogInfo, "Connected to client %s at %s; it reads from storage %s", j.client.Name, j.client.Address, s.storage)

	err = r.bothStreams(j, cancel, idle, "restore", idle.String(),
		func() error { return r.restoreFiledLoop(ctx, j, fc, freq) },
		func() error { return r.restoreStorageLoop(ctx, j, s, st) })
	if err != nil {
		cancel(err) // a plan send waiting on flow control returns
	}
	if perr := <-planSent; err == nil && perr != nil {
		return fail("storage", "storage %s: sending the restore plan: %s", s.storage, status.Convert(perr).Message())
	}
	if err != nil {
		return err
	}
	if rs.errors > 0 {
		more := ""
		if n := int64(len(rs.errorLines)); rs.errors > n {
			more = fmt.Sprintf(" and %d more (list joblog jobid=%d)", rs.errors-n, j.id)
		}
		return fail("client", "%d files not restored: %s%s", rs.errors, strings.Join(rs.errorLines, "; "), more)
	}
	return nil
}

// sendRestorePlan sends the plan's volumes (planChunk members a
// message), then plan_end, and closes the sending side.
func sendRestorePlan(st pb.Storage_RestoreClient, plan []catalog.PlanVolume, at map[string]VolumeWhere) error {
	for _, pv := range plan {
		w := at[pv.Volume]
		for i := 0; i < len(pv.Entries); i += planChunk {
			msg := &pb.RestoreVolume{Volume: pv.Volume, Changer: w.Changer, Slot: w.Slot}
			for _, e := range pv.Entries[i:min(i+planChunk, len(pv.Entries))] {
				msg.Members = append(msg.Members, restoreMember(e))
			}
			if err := st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_Volume{Volume: msg}}); err != nil {
				return err
			}
		}
	}
	if err := st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_PlanEnd{PlanEnd: true}}); err != nil {
		return err
	}
	// Nothing more to send: the half-close tells storaged so (it goes on
	// until the session ends).
	return st.CloseSend()
}

// restoreMember is a plan entry as storaged takes it.
func restoreMember(e catalog.PlanEntry) *pb.RestoreMember {
	m := e.Member
	rec := &pb.MemberRecord{Path: m.Path, Type: m.Type, Size: m.Size, Mode: m.Mode, Uid: m.UID, Gid: m.GID, Uname: m.Uname, Gname: m.Gname,
		MtimeNs: m.MtimeNS, Linkname: m.Link, Sha256: m.SHA256, HeaderOffset: m.StreamOffset, StoredSize: m.StoredSize,
		Address: &pb.BlockAddress{Volume: m.At.Volume, TapeFile: uint32(m.At.TapeFile), Block: uint64(m.At.Block), Offset: uint32(m.At.Offset)}}
	for _, p := range m.Parts {
		rec.Parts = append(rec.Parts, &pb.MemberPart{Part: uint32(p.Part), DataOffset: p.DataOffset,
			Address: &pb.BlockAddress{Volume: p.At.Volume, TapeFile: uint32(p.At.TapeFile), Block: uint64(p.At.Block), Offset: uint32(p.At.Offset)}})
	}
	out := &pb.RestoreMember{Seq: e.Seq, Record: rec, TapeFileFirstBlock: uint64(m.TapeFileFirstBlock), WriteAs: m.WriteAs,
		// A parent directory added to the selection is restored from
		// its record: nothing is read from tape for it.
		FromRecord: m.Ancestor && m.Type == catalog.FileDir}
	if e.ContinuationPart != 0 {
		out.ContinuationPart = uint32(e.ContinuationPart)
		out.PartTapeFileFirstBlock = uint64(e.PartFirstBlock)
	}
	return out
}

func (r *Runner) restoreStorageErr(j *job, s *session, st pb.Storage_RestoreClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = st.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			return fail("storage", "storage %s ended the restore session early", s.storage)
		}
	}
	if c := context.Cause(j.ctx); c != nil {
		return c
	}
	sv := status.Convert(err)
	return &jobError{origin: "storage", err: fmt.Errorf("storage %s: %s (%s)", s.storage, sv.Message(), sv.Code())}
}

// restoreStorageLoop follows the restore session's events until done.
func (r *Runner) restoreStorageLoop(ctx context.Context, j *job, s *session, st pb.Storage_RestoreClient) error {
	rs := j.restore
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			if rs.storeDone == nil {
				return fail("storage", "storage %s ended the restore session without done", s.storage)
			}
			return nil
		}
		if err != nil {
			if c := context.Cause(ctx); c != nil {
				return c
			}
			sv := status.Convert(err)
			return &jobError{origin: "storage", err: fmt.Errorf("storage %s: %s (%s)", s.storage, sv.Message(), sv.Code())}
		}
		switch m := ev.Msg.(type) {
		case *pb.RestoreEvent_Mounted:
			mt := m.Mounted
			enc := "clear"
			if mt.Encrypted {
				enc = "encrypted, key " + mt.KeyFingerprint
			}
			r.logf(j, catalog.LogInfo, "Reading volume %s (%s) in drive %s of storage %s", mt.Volume, enc, mt.Drive, s.storage)
			j.update(func(x *Status) { x.Volume, x.Drive = mt.Volume, mt.Drive })
		case *pb.RestoreEvent_Progress:
			p := m.Progress
			j.update(func(x *Status) {
				x.StreamBytes = p.Bytes
				if p.Volume != "" {
					x.Volume = p.Volume
				}
			})
		case *pb.RestoreEvent_Done:
			rs.storeDone = m.Done
			r.logf(j, catalog.LogInfo, "Storage %s sent %d members, %d bytes, reading %d tape blocks from %s",
				s.storage, m.Done.Members, m.Done.Bytes, m.Done.BlocksRead, strings.Join(m.Done.Volumes, ", "))
		}
	}
}

// maxErrorLines bounds the file errors the job's error text names.
const maxErrorLines = 5

// restoreFiledLoop runs the client's restore and follows its events.
func (r *Runner) restoreFiledLoop(ctx context.Context, j *job, fc pb.FiledClient, req *pb.RestoreRequest) error {
	rs := j.restore
	fs, err := fc.Restore(ctx, req)
	if err != nil {
		return r.clientErr(ctx, j, err)
	}
	return followClient(r, ctx, j, "restore", fs.Recv, func() bool { return rs.filedDone != nil }, func(ev *pb.RestoreFiledEvent) error {
		switch m := ev.Msg.(type) {
		case *pb.RestoreFiledEvent_Progress:
			p := m.Progress
			j.update(func(x *Status) { x.Files, x.Bytes, x.Current = p.Files, p.Bytes, catalog.RenderPath(p.Current) })
		case *pb.RestoreFiledEvent_Error:
			e := m.Error
			rs.errors++
			line := fmt.Sprintf("%s: %s: %s", catalog.RenderPath(e.Path), e.Op, e.Message)
			if len(e.Target) > 0 && string(e.Target) != string(e.Path) {
				line = fmt.Sprintf("%s (to %s): %s: %s", catalog.RenderPath(e.Path), catalog.RenderPath(e.Target), e.Op, e.Message)
			}
			if len(rs.errorLines) < maxErrorLines {
				rs.errorLines = append(rs.errorLines, line)
			}
			j.update(func(x *Status) { x.Warnings = int(rs.errors) })
			r.logf(j, catalog.LogError, "Error: %s", line)
		case *pb.RestoreFiledEvent_Done:
			d := m.Done
			rs.filedDone = d
			if d.Errors > rs.errors {
				rs.errors = d.Errors
			}
			j.update(func(x *Status) { x.Files, x.Bytes, x.Current = d.Files, d.Bytes, "" })
			r.logf(j, catalog.LogInfo, "Client %s restored %d files, %d bytes (%d kept by replace=%s, %d errors)",
				j.client.Name, d.Files, d.Bytes, d.Skipped, orDash(req.Replace), d.Errors)
		}
		return nil
	})
}
