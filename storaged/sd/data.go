package sd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
)

// Session is one data session on a mounted volume: a tape file written
// from a stream. It holds the drive until Close.
type Session struct {
	d      *Daemon
	dr     *Drive
	w      *tapeio.Writer
	volume string
	err    error
	full   bool
}

// SessionResult is what a session put on tape.
type SessionResult struct {
	Volume     string
	TapeFile   uint64
	Bytes      int64 // stream bytes on this volume
	Blocks     uint64
	VolumeFull bool // stream bytes past Bytes must go to the next volume
	Verified   bool // the first block read back encrypted (encrypted volumes)
}

// OpenSession starts a session at the end of data of the volume mounted in
// drive. For an encrypted volume the drive must hold its key (loaded at
// mount), and the first block is read back as encrypted before anything
// else is written (invariant 2).
func (d *Daemon) OpenSession(ctx context.Context, drive string) (*Session, error) {
	dr, err := d.lockDrive(drive)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Session, error) {
		dr.mu.Unlock()
		return nil, err
	}
	if dr.label == nil {
		return fail(fmt.Errorf("%s has no mounted volume; mount one first", dr.name))
	}
	lbl := dr.label
	if lbl.Encryption.Encrypted {
		if dr.keyFP != lbl.Encryption.Fingerprint {
			return fail(fmt.Errorf("%s: volume %s is encrypted but the drive does not hold its key (%s); mount it again", dr.name, lbl.Volume, lbl.Encryption.Fingerprint))
		}
		// Re-read the status page: a drive that lost its key (power cycle,
		// another host) must not get a clear write.
		st, err := dr.dev.Status()
		if err != nil {
			return fail(fmt.Errorf("%s: reading the encryption status before writing: %w", dr.name, err))
		}
		if !st.Encrypting() || st.KeyInstanceCounter != dr.kic {
			dr.clearKey("status changed under us")
			return fail(fmt.Errorf("%s: refusing to write volume %s: the drive reports %s (key instance counter %d, expected %d) — its key is not the one loaded at mount",
				dr.name, lbl.Volume, st, st.KeyInstanceCounter, dr.kic))
		}
	}
	if _, err := dr.dev.Space(scsi.SpaceEndOfData, 0); err != nil {
		return fail(fmt.Errorf("%s: positioning at end of data: %w", dr.name, err))
	}
	opts := tapeio.WriterOptions{BlockSize: lbl.BlockSize}
	if lbl.Encryption.Encrypted {
		opts.AfterFirstBlock = tapeio.VerifyFirstBlock([]byte(lbl.Encryption.Fingerprint))
	}
	w, err := tapeio.NewWriter(dr.dev, opts)
	if err != nil {
		return fail(err)
	}
	// Before the first data block: the director commits that the volume
	// holds data (so its key can no longer change) and only then answers.
	// Without that answer nothing is written.
	if err := d.director.BeginWrite(ctx, &pb.BeginWriteRequest{Volume: lbl.Volume, Drive: dr.name,
		TapeFile: uint32(w.Start().File), KeyFingerprint: dr.keyFP}); err != nil {
		st := status.Convert(err)
		code := st.Code()
		if directorUnreachable(err) {
			code = codes.Unavailable
		}
		dr.log.Error("write session refused: the director did not confirm it; nothing written", "volume", lbl.Volume, "error", st.Message())
		return fail(&DirectorRefusedError{Volume: lbl.Volume, Drive: dr.name, What: "the write session", Code: code,
			Msg: st.Message() + "; nothing was written (a volume takes data only once the director has recorded that it holds data)"})
	}
	dr.state = StateWriting
	dr.setView(lbl.Volume, StateWriting)
	return &Session{d: d, dr: dr, w: w, volume: lbl.Volume}, nil
}

// Mark returns where the next byte written lands.
func (s *Session) Mark() tapeio.Addr { return s.w.Mark() }

// Write writes stream bytes. At the end of the volume it returns the bytes
// taken and an error wrapping tapeio.ErrVolumeFull.
func (s *Session) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		if errors.Is(err, tapeio.ErrVolumeFull) {
			s.full = true
		} else {
			s.err = err
			if scsi.IsNotEncrypted(err) {
				s.dr.clearKey("written block was not encrypted")
				s.dr.fail(err)
				s.dr.log.Error("THE DRIVE WROTE A CLEAR BLOCK WITH ENCRYPTION REPORTED ON: the session is stopped and the drive is taken out of use", "volume", s.volume, "error", err.Error())
			}
		}
	}
	return n, err
}

// Close ends the session (the last block and the filemark) and releases
// the drive; the volume stays mounted and its key loaded.
func (s *Session) Close(ctx context.Context) (SessionResult, error) {
	defer s.dr.mu.Unlock()
	err := s.err
	if err == nil && !s.full {
		err = s.w.Close()
	}
	if errors.Is(err, tapeio.ErrVolumeFull) {
		s.full, err = true, nil
	}
	res := SessionResult{Volume: s.volume, TapeFile: s.w.Start().File, Bytes: s.w.OnTape(), Blocks: s.w.Blocks(),
		VolumeFull: s.full || s.w.EarlyWarning()}
	if s.dr.state == StateWriting {
		s.dr.state = StateMounted
	}
	if s.dr.label != nil {
		s.dr.setView(s.dr.label.Volume, StateMounted)
	}
	encrypted := s.dr.label != nil && s.dr.label.Encryption.Encrypted
	if encrypted && res.Blocks > 0 && s.err == nil {
		res.Verified = true
		if !s.dr.verified {
			s.dr.verified = true
			s.d.report(ctx, &pb.ReportVolumeRequest{Volume: s.volume, Drive: s.dr.name, Event: "verified",
				KeyFingerprint: s.dr.keyFP, KeyInstanceCounter: s.dr.kic, Detail: "first block of a session read back encrypted"})
		}
	}
	if res.Blocks > 0 {
		s.d.report(ctx, &pb.ReportVolumeRequest{Volume: s.volume, Drive: s.dr.name, Event: "written", Bytes: uint64(res.Bytes), Blocks: res.Blocks})
	}
	if res.VolumeFull {
		s.d.report(ctx, &pb.ReportVolumeRequest{Volume: s.volume, Drive: s.dr.name, Event: "full"})
	}
	return res, err
}

// ReadFrom streams the tape file at from on the volume mounted in drive to
// w (until the filemark ending the tape file).
func (d *Daemon) ReadSession(ctx context.Context, drive string, from tapeio.Addr, w io.Writer) (int64, error) {
	dr, err := d.lockDrive(drive)
	if err != nil {
		return 0, err
	}
	defer dr.mu.Unlock()
	if dr.label == nil {
		return 0, fmt.Errorf("%s has no mounted volume; mount one first", dr.name)
	}
	dr.state = StateReading
	defer func() {
		if dr.state == StateReading {
			dr.state = StateMounted
		}
	}()
	r, err := tapeio.NewReader(dr.dev, from, tapeio.ReaderOptions{BlockSize: dr.label.BlockSize})
	if err != nil {
		return 0, err
	}
	buf := make([]byte, dr.label.BlockSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// VolumeState says whether volume is in a drive of this daemon (mounted,
// being labelled or mounted), whether a write session is open on it, and —
// when it is mounted and the drive is not busy — whether data follows its
// key-check file, read from the tape's end of data (the tape is put back
// where it was).
func (d *Daemon) VolumeState(volume string) *pb.VolumeStateReply {
	out := &pb.VolumeStateReply{Volume: volume}
	for _, dr := range d.drives {
		v := dr.view.Load()
		if v == nil || v.volume != volume {
			continue
		}
		out.Mounted, out.Drive, out.Writing = true, dr.name, v.state == StateWriting
		if !dr.mu.tryQuery() {
			out.Detail = fmt.Sprintf("in %s, busy (%s): the tape's end of data was not read", dr.name, v.state)
			return out
		}
		defer dr.mu.Unlock()
		if dr.label == nil || dr.label.Volume != volume || dr.dev == nil {
			out.Detail = fmt.Sprintf("in %s (%s)", dr.name, v.state)
			return out
		}
		n, err := d.tapeDataFiles(dr)
		if err != nil {
			out.Detail = fmt.Sprintf("mounted in %s; reading its end of data failed: %v", dr.name, err)
			return out
		}
		out.DataKnown, out.HoldsData = true, n > 0
		out.Detail = fmt.Sprintf("mounted in %s; %d tape files after its label and key-check file", dr.name, n)
		return out
	}
	out.Detail = "not in any drive of storage " + d.cfg.Name
	return out
}

// tapeDataFiles counts the data tape files of the mounted volume and puts
// the tape back where it was. Called with dr.mu held.
func (d *Daemon) tapeDataFiles(dr *Drive) (uint64, error) {
	pos, err := dr.dev.ReadPosition()
	if err != nil {
		return 0, fmt.Errorf("reading the position: %w", err)
	}
	n, err := dataFiles(dr, *dr.label)
	if lerr := dr.dev.Locate(scsi.LocateBlock, pos.Block); lerr != nil {
		err = errors.Join(err, fmt.Errorf("returning to block %d: %w", pos.Block, lerr))
	}
	return n, err
}
