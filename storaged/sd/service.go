package sd

import (
	"context"
	"errors"
	"io"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Service is the gRPC Storage service over a Daemon.
type Service struct {
	pb.UnimplementedStorageServer
	D *Daemon
}

// rpcError maps the daemon's typed errors to gRPC codes; the text is the
// daemon's own (no key material is ever in it).
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err // already a status (argument checks)
	}
	if code, ok := jobCode(err); ok {
		return status.Error(code, err.Error())
	}
	var (
		nf  *NotFoundError
		bz  *BusyError
		cr  *CryptoRefusedError
		ex  *ExistingLabelError
		hd  *HasDataError
		fd  *ForeignDataError
		uw  *keys.UnwrapError
		knf *keys.KEKNotFoundError
		cnf *cryptocache.NotFoundError
		dre *DirectorRefusedError
		lm  *LabelMismatchError
		ls  *LibraryStateError
	)
	code := codes.Internal
	switch {
	case errors.As(err, &dre):
		code = dre.Code
	case errors.As(err, &lm):
		code = codes.FailedPrecondition
	case errors.As(err, &hd):
		// The director undoes a key change when a relabel finds data: it
		// recognises this refusal by its reason.
		st, derr := status.New(codes.FailedPrecondition, err.Error()).WithDetails(&errdetails.ErrorInfo{
			Reason: link.ReasonVolumeHoldsData, Domain: link.ErrorDomain, Metadata: map[string]string{"volume": hd.Volume, "tape_files": strconv.FormatUint(hd.Files, 10)}})
		if derr == nil {
			return st.Err()
		}
		code = codes.FailedPrecondition
	case errors.As(err, &ex):
		code = codes.AlreadyExists
	case errors.As(err, &nf), errors.As(err, &cnf):
		code = codes.NotFound
	case errors.As(err, &ls) && ls.NoSuch:
		code = codes.NotFound
	case errors.As(err, &ls):
		code = codes.FailedPrecondition
	case errors.As(err, &bz):
		// Busy, not gone: Unavailable would say this daemon cannot be
		// reached (and the director stops a label batch on it).
		code = codes.Aborted
	case errors.As(err, &cr), errors.As(err, &fd), errors.As(err, &uw), errors.As(err, &knf):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

func (s *Service) Hello(ctx context.Context, _ *pb.HelloRequest) (*pb.HelloReply, error) {
	r := &pb.HelloReply{Name: s.D.cfg.Name, Version: Version, KekIds: s.D.KEKIDs()}
	for _, dr := range s.D.drives {
		r.Drives = append(r.Drives, dr.name)
	}
	for _, c := range s.D.cfg.Changers {
		r.Changers = append(r.Changers, c.Name)
	}
	counts, unknown, err := s.D.CacheKEKs()
	if err != nil {
		return nil, rpcError(err)
	}
	r.CacheKeks, r.CacheUnknownKekIds = counts, unknown
	return r, nil
}

// PushKeys puts the keys the director pushes (after a rekey: the
// rewrapped current and history keys of this storage's volumes) into the
// crypto cache, in one atomic update; nothing is removed. added +
// unchanged is less than the keys pushed when history keys of volumes the
// cache holds no key of were left out (logged).
func (s *Service) PushKeys(ctx context.Context, req *pb.PushKeysRequest) (*pb.PushKeysReply, error) {
	pks := make([]cryptocache.PushKey, 0, len(req.Keys))
	for i, k := range req.Keys {
		if k.Key == nil {
			return nil, status.Errorf(codes.InvalidArgument, "PushKeys: key %d (volume %q) has no wrapped key", i+1, k.Volume)
		}
		scheme, err := keys.ParseScheme(k.Key.Scheme)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "PushKeys: volume %q: %v", k.Volume, err)
		}
		pks = append(pks, cryptocache.PushKey{Volume: k.Volume, Current: k.Current,
			Key: keys.StoredKey{Scheme: scheme, KEKID: k.Key.KekId, Value: k.Key.Stored, Fingerprint: k.Key.Fingerprint}})
	}
	res, err := s.D.PushKeys(pks, req.Reason)
	if err != nil {
		var (
			ie *cryptocache.InvalidEntryError
			ce *cryptocache.ConflictError
			pr *PushRefusedError
		)
		if errors.As(err, &ie) || errors.As(err, &ce) || errors.As(err, &pr) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, rpcError(err)
	}
	return &pb.PushKeysReply{Added: uint32(res.Added), Unchanged: uint32(res.Unchanged), CacheKeks: res.KEKs}, nil
}

// ShredKeys destroys the keys of the named volumes here (crypto-shredding,
// after the director's `shred volume=V yes`): every stored string in the
// crypto cache, and the key of a drive holding one of them. Corrupt cache
// copies that still name a volume are kept as found and named in the
// trailer link.TrailerShredNotEdited.
func (s *Service) ShredKeys(ctx context.Context, req *pb.ShredKeysRequest) (*pb.ShredKeysReply, error) {
	if len(req.Volumes) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ShredKeys: name at least one volume")
	}
	for _, v := range req.Volumes {
		if v == "" {
			return nil, status.Error(codes.InvalidArgument, "ShredKeys: a volume name is empty")
		}
	}
	res, err := s.D.ShredKeys(ctx, req.Volumes, req.Reason)
	if len(res.NotEdited) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs(pairs(link.TrailerShredNotEdited, res.NotEdited)...)) //nolint:errcheck // best effort: also logged
	}
	if err != nil {
		return nil, rpcError(err)
	}
	return &pb.ShredKeysReply{Destroyed: uint32(res.Destroyed), Absent: res.Absent}, nil
}

// pairs makes key, v1, key, v2, … for metadata.Pairs.
func pairs(key string, values []string) []string {
	out := make([]string, 0, 2*len(values))
	for _, v := range values {
		out = append(out, key, v)
	}
	return out
}

func (s *Service) Inventory(ctx context.Context, req *pb.InventoryRequest) (*pb.InventoryReply, error) {
	inv, err := s.D.Inventory(req.Changer)
	return inv, rpcError(err)
}

func (s *Service) ExportVolume(ctx context.Context, req *pb.ExportVolumeRequest) (*pb.ExportVolumeReply, error) {
	r, err := s.D.ExportVolume(req.Changer, req.Barcode, req.Volume, req.IeSlot)
	return r, rpcError(err)
}

func (s *Service) ImportVolume(ctx context.Context, req *pb.ImportVolumeRequest) (*pb.ImportVolumeReply, error) {
	r, err := s.D.ImportVolume(req.Changer, req.IeSlot, req.Barcode)
	return r, rpcError(err)
}

func (s *Service) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusReply, error) {
	return s.D.Status(), nil
}

func (s *Service) LabelVolume(ctx context.Context, req *pb.LabelVolumeRequest) (*pb.LabelVolumeReply, error) {
	r := LabelRequest{Changer: req.Changer, Slot: req.Slot, Drive: req.Drive, Volume: req.Volume, Pool: req.Pool,
		MediaType: req.MediaType, Encrypt: req.Encrypt, Relabel: req.Relabel, Recycle: req.Recycle}
	if req.Key != nil {
		scheme, err := keys.ParseScheme(req.Key.Scheme)
		if err != nil && req.Encrypt {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		r.Key = keys.StoredKey{Scheme: scheme, KEKID: req.Key.KekId, Value: req.Key.Stored, Fingerprint: req.Key.Fingerprint}
		r.Escrow = keys.Escrow{KeyID: req.Key.EscrowKeyId, Envelope: req.Key.EscrowEnvelope}
	}
	res, err := s.D.Label(ctx, r)
	if err != nil {
		return nil, rpcError(err)
	}
	out := &pb.LabelVolumeReply{Volume: res.Volume, Barcode: res.Barcode, Slot: res.Slot, Drive: res.Drive,
		LabelTimeUnix: res.Label.LabelTime.Unix(), Encrypted: res.Label.Encryption.Encrypted,
		EncryptionVerified: res.Verified, KeyInstanceCounter: res.KIC, KeyFingerprint: res.Label.Encryption.Fingerprint}
	if res.Verified {
		out.VerifiedTimeUnix = s.D.clock().Unix()
	}
	return out, nil
}

// VolumeState says whether a volume is in a drive here and holds data; the
// director asks before it changes a volume's key.
func (s *Service) VolumeState(ctx context.Context, req *pb.VolumeStateRequest) (*pb.VolumeStateReply, error) {
	if req.Volume == "" {
		return nil, status.Error(codes.InvalidArgument, "VolumeState needs a volume name")
	}
	return s.D.VolumeState(req.Volume), nil
}

func (s *Service) Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountReply, error) {
	res, err := s.D.Mount(ctx, MountRequest{Changer: req.Changer, Slot: req.Slot, Drive: req.Drive, ForWrite: req.ForWrite})
	if err != nil {
		return nil, rpcError(err)
	}
	return &pb.MountReply{Volume: res.Label.Volume, Barcode: res.Barcode, Drive: res.Drive, Pool: res.Label.Pool,
		Encrypted: res.Label.Encryption.Encrypted, KeyFingerprint: res.Label.Encryption.Fingerprint,
		KeyInstanceCounter: res.KIC, KeySource: res.KeySource}, nil
}

func (s *Service) Unmount(ctx context.Context, req *pb.UnmountRequest) (*pb.UnmountReply, error) {
	vol, slot, err := s.D.Unmount(ctx, req.Drive)
	if err != nil {
		return nil, rpcError(err)
	}
	return &pb.UnmountReply{Volume: vol, Slot: slot}, nil
}

func (s *Service) Release(ctx context.Context, req *pb.ReleaseRequest) (*pb.ReleaseReply, error) {
	return &pb.ReleaseReply{}, rpcError(s.D.Release(ctx, req.Drive))
}

// WriteData runs one raw session from a stream: an open message, then
// data, written as one tape file on the volume mounted in the drive.
// Requested marks (stream offsets) come back as tape addresses. It never
// spans: at a full volume it stops and says volume_full (the bytes past
// `bytes` are the caller's to send elsewhere). Backups spanning volumes
// are job sessions (Job, JobData), where storaged asks the director for
// the next volume and continues the stream itself.
func (s *Service) WriteData(stream pb.Storage_WriteDataServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "WriteData: the first message must open the session (drive, marks)")
	}
	sess, err := s.D.OpenSession(stream.Context(), open.Drive)
	if err != nil {
		return rpcError(err)
	}
	marks := open.Marks
	var (
		offset int64
		addrs  []*pb.BlockAddress
		werr   error
	)
	for werr == nil {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			werr = err
			break
		}
		data := msg.GetData()
		for len(data) > 0 && werr == nil {
			// Split the chunk at the next requested mark.
			chunk := data
			for len(marks) > 0 && int64(marks[0]) < offset {
				marks = marks[1:] // a mark behind us (unsorted input): skip
			}
			if len(marks) > 0 && int64(marks[0]) == offset {
				a := sess.Mark()
				addrs = append(addrs, &pb.BlockAddress{Volume: sess.volume, TapeFile: uint32(a.File), Block: a.Block, Offset: uint32(a.Offset)})
				marks = marks[1:]
			}
			if len(marks) > 0 && int64(marks[0]) < offset+int64(len(chunk)) {
				chunk = chunk[:int64(marks[0])-offset]
			}
			n, err := sess.Write(chunk)
			offset += int64(n)
			data = data[n:]
			if err != nil {
				werr = err
			}
		}
	}
	res, cerr := sess.Close(stream.Context())
	if errors.Is(werr, tapeio.ErrVolumeFull) {
		werr = nil
	}
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		return rpcError(werr)
	}
	return stream.SendAndClose(&pb.WriteDataReply{Volume: res.Volume, TapeFile: uint32(res.TapeFile), Bytes: uint64(res.Bytes),
		Blocks: res.Blocks, Marks: addrs, VolumeFull: res.VolumeFull, EncryptionVerified: res.Verified})
}

// streamWriter sends what it is given as ReadData replies.
type streamWriter struct{ s pb.Storage_ReadDataServer }

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.s.Send(&pb.ReadDataReply{Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Service) ReadData(req *pb.ReadDataRequest, stream pb.Storage_ReadDataServer) error {
	if req.From == nil {
		return status.Error(codes.InvalidArgument, "ReadData needs a from address")
	}
	from := tapeio.Addr{File: uint64(req.From.TapeFile), Block: req.From.Block, Offset: int(req.From.Offset)}
	_, err := s.D.ReadSession(stream.Context(), req.Drive, from, streamWriter{stream})
	return rpcError(err)
}
