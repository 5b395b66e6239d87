package fd

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// ChunkSize is the size of the data messages filed sends: the chunks
// it cuts the stream into, and the buffers it lends archive.Writer for
// a large file's data (then the chunk before it and a file's last
// buffer may be shorter).
const ChunkSize = 1 << 20

// inFlight is how many full chunks may wait for the sender besides the
// one being filled and the one being sent (until the stream has written it):
// the pipeline's memory is (inFlight+2) × ChunkSize whatever the tree.
const inFlight = 3

// maxRecordsMessage bounds one records message (storaged accepts 8 MiB
// messages): a batch larger than this goes in several messages.
const maxRecordsMessage = 1 << 20

// item is what the producer hands the sender, in stream order.
type item struct {
	data []byte             // a chunk of the stream (a pooled buffer), or nil
	recs []*pb.MemberRecord // records whose bytes are all in this and earlier chunks
	end  *pb.JobDataEnd     // the last item
}

// dataStream is the client side of Storage.JobData: an io.Writer for
// archive.Writer that cuts the stream into ChunkSize data messages (and
// an archive.BufferWriter, whose filled buffers go out as they are), and
// one goroutine that sends them (and the records, and keepalives while
// nothing else is sent). Reading the disk (the producer) and sending
// overlap; buffers are reused.
type dataStream struct {
	stream    pb.Storage_JobDataClient
	flush     func() error // writes what the stream gathered (DirectClientStream.Flush)
	keepalive time.Duration
	metrics   *Metrics
	pace      *pacer // max_bandwidth_per_job (nil: none)

	// Producer side.
	cur     []byte
	off     int64 // stream bytes written into the chunker
	pending []pendingRec
	allocs  int

	items chan item
	free  chan []byte

	sent       atomic.Int64 // stream bytes sent
	keepalives atomic.Int64

	done  chan struct{} // closed when the sender stops
	err   error         // why it stopped (nil: end sent and the reply read); set before done
	reply *pb.JobDataReply
	once  sync.Once
}

type pendingRec struct {
	end int64 // stream offset after the member's last byte
	rec *pb.MemberRecord
}

// newDataStream returns the writer at once and starts the sender, which
// first opens the stream (connect, then open sent) while the producer
// fills the first chunks: the walk does not wait for the connection and
// TLS handshake to storaged. If the stream cannot be opened, or the
// sender stops on an error later, failed is called with the error (the
// job stops its walk) and the producer's next call returns it.
func newDataStream(ctx context.Context, connect func() (pb.Storage_JobDataClient, func() error, error), open *pb.JobDataOpen, keepalive time.Duration, m *Metrics, pace *pacer, failed func(error)) *dataStream {
	d := &dataStream{keepalive: keepalive, metrics: m, pace: pace,
		items: make(chan item, inFlight), free: make(chan []byte, inFlight+2), done: make(chan struct{})}
	go func() {
		stream, flush, err := connect()
		d.flush = flush
		if err == nil {
			if err = stream.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: open}}); err != nil {
				err = streamError(stream, err)
			}
		}
		if err != nil {
			d.once.Do(func() { d.err = err; close(d.done) })
		} else {
			d.stream = stream
			d.run(ctx)
		}
		if d.err != nil {
			failed(d.err)
		}
	}()
	return d
}

// streamError turns a Send error into the status storaged ended the
// call with (Send only says io.EOF then).
func streamError(stream pb.Storage_JobDataClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, rerr := stream.CloseAndRecv()
		if rerr != nil {
			return rerr
		}
		return errors.New("the storage daemon ended the data stream early without an error")
	}
	return err
}

// Write implements io.Writer for archive.Writer.
func (d *dataStream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if d.cur == nil {
			b, err := d.Buffer()
			if err != nil {
				return n, err
			}
			d.cur = b[:0]
		}
		c := copy(d.cur[len(d.cur):cap(d.cur)], p)
		d.cur = d.cur[:len(d.cur)+c]
		p = p[c:]
		n += c
		d.off += int64(c)
		if len(d.cur) == cap(d.cur) {
			if err := d.emit(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

var _ archive.BufferWriter = (*dataStream)(nil)

// WriteBuffer sends b, a buffer from Buffer, as a data message of its
// own, as it is: the chunk being filled goes first (a shorter message);
// an empty b is only taken back.
func (d *dataStream) WriteBuffer(b []byte) error {
	if len(b) == 0 {
		d.back(b)
		return nil
	}
	if d.cur != nil { // never empty: Write fills what it takes
		if err := d.emit(); err != nil {
			return err
		}
	}
	d.cur = b
	d.off += int64(len(b))
	return d.emit()
}

// Buffer returns a free chunk buffer, allocating while fewer than the
// pipeline holds exist, else waiting for the sender to return one: for
// Write's chunks, and lent to archive.Writer for a large file's data
// (archive.BufferWriter), which comes back filled to WriteBuffer.
func (d *dataStream) Buffer() ([]byte, error) {
	select {
	case b := <-d.free:
		return b, nil
	default:
	}
	if d.allocs < inFlight+2 {
		d.allocs++
		return make([]byte, ChunkSize), nil
	}
	select {
	case b := <-d.free:
		return b, nil
	case <-d.done:
		return nil, d.err
	}
}

// record queues a member's record; end is the stream offset after its
// last byte (archive.Writer.Offset after WriteMember).
func (d *dataStream) record(end int64, rec *pb.MemberRecord) {
	d.pending = append(d.pending, pendingRec{end: end, rec: rec})
}

// emit hands the current chunk to the sender with the records whose
// bytes it completes.
func (d *dataStream) emit() error {
	it := item{data: d.cur}
	d.cur = nil
	n := 0
	for n < len(d.pending) && d.pending[n].end <= d.off {
		n++
	}
	if n > 0 {
		it.recs = make([]*pb.MemberRecord, n)
		for i := range n {
			it.recs[i] = d.pending[i].rec
		}
		d.pending = append(d.pending[:0], d.pending[n:]...)
	}
	return d.put(it)
}

// back takes a chunk buffer back from the stream once it has written
// (or dropped) the data message sent from it: the chunk goes to the
// stream as it is (link.DataOut), not copied into one of the stream's. It
// never blocks: free has room for every buffer there is.
func (d *dataStream) back(b []byte) {
	select {
	case d.free <- b[:cap(b)]:
	default:
	}
}

func (d *dataStream) put(it item) error {
	select {
	case d.items <- it:
		return nil
	case <-d.done:
		return d.err
	}
}

// finish sends what is left of the stream, the remaining records and
// end, then waits for storaged's reply.
func (d *dataStream) finish(members uint64) (*pb.JobDataReply, error) {
	if len(d.cur) > 0 {
		if err := d.emit(); err != nil {
			return nil, err
		}
	}
	if len(d.pending) > 0 {
		it := item{}
		for _, p := range d.pending {
			it.recs = append(it.recs, p.rec)
		}
		d.pending = nil
		if err := d.put(it); err != nil {
			return nil, err
		}
	}
	if err := d.put(item{end: &pb.JobDataEnd{StreamBytes: d.off, Members: members}}); err != nil {
		return nil, err
	}
	<-d.done
	return d.reply, d.err
}

// run is the sender: the only goroutine that calls stream.Send after
// open.
func (d *dataStream) run(ctx context.Context) {
	stop := func(err error) {
		d.once.Do(func() { d.err = err; close(d.done) })
	}
	timer := time.NewTimer(d.keepalive)
	defer timer.Stop()
	send := func(m any) bool {
		if err := d.stream.SendMsg(m); err != nil {
			stop(streamError(d.stream, err))
			return false
		}
		timer.Reset(d.keepalive)
		return true
	}
	for {
		select {
		case it := <-d.items:
			if !d.sendItem(ctx, it, send, stop) {
				return
			}
			continue
		default:
		}
		// Nothing to send at once: what the stream gathered goes out
		// before waiting.
		if err := d.flush(); err != nil {
			stop(streamError(d.stream, err))
			return
		}
		select {
		case <-ctx.Done():
			stop(context.Cause(ctx))
			return
		case <-timer.C:
			if !send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Keepalive{Keepalive: true}}) {
				return
			}
			d.keepalives.Add(1)
		case it := <-d.items:
			if !d.sendItem(ctx, it, send, stop) {
				return
			}
		}
	}
}

// sendItem sends one item (its data, its records; for the end, the end
// and then it reads the reply); false when the stream has stopped.
func (d *dataStream) sendItem(ctx context.Context, it item, send func(any) bool, stop func(error)) bool {
	if it.data != nil {
		if err := d.pace.wait(ctx, len(it.data)); err != nil {
			stop(err)
			return false
		}
		if !send(&link.DataOut{Msg: &pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: it.data}}, Done: d.back}) {
			return false
		}
		d.sent.Add(int64(len(it.data)))
		if d.metrics != nil {
			d.metrics.sent(int64(len(it.data)), 0, 0)
		}
	}
	for recs := it.recs; len(recs) > 0; {
		n, size := 0, 0
		for n < len(recs) {
			rs := proto.Size(recs[n])
			if n > 0 && size+rs >= maxRecordsMessage {
				break
			}
			size += rs + 8
			n++
		}
		if !send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: recs[:n]}}}) {
			return false
		}
		recs = recs[n:]
	}
	if it.end != nil {
		if !send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: it.end}}) {
			return false
		}
		reply, err := d.stream.CloseAndRecv()
		d.reply = reply
		stop(err)
		return false
	}
	return true
}
