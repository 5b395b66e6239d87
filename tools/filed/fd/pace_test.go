package fd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The pacer asks to wait exactly as long as keeps the bytes since the
// job's first at max per second (on an injected clock), never when the
// job is behind, and returns the context's cause when it ends while
// waiting. No limit: a nil pacer.
func TestPacerHoldsTheAverage(t *testing.T) {
	if newPacer(0) != nil || newPacer(-1) != nil {
		t.Fatal("a pacer without a limit is not nil")
	}
	if err := (*pacer)(nil).wait(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var slept []time.Duration
	p := newPacer(1 << 20) // 1 MiB/s
	p.now = func() time.Time { return now }
	p.sleep = func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}
	for _, c := range []struct {
		n       int
		advance time.Duration // time the job spends before the next wait
		want    time.Duration // the wait asked for (0: none)
	}{
		{1 << 20, 0, time.Second},              // 1 MiB at once: 1 s
		{512 << 10, 0, 500 * time.Millisecond}, // half more: 0.5 s
		{1 << 20, 3 * time.Second, 0},          // a slow producer: 2.5 MiB due at 2.5 s; it is 4.5 s
		{4 << 20, 0, 2 * time.Second},          // 6.5 MiB due at 6.5 s; it is 4.5 s
	} {
		slept = nil
		now = now.Add(c.advance)
		if err := p.wait(context.Background(), c.n); err != nil {
			t.Fatal(err)
		}
		var got time.Duration
		if len(slept) > 0 {
			got = slept[0]
		}
		if got != c.want {
			t.Errorf("wait(%d) after %v: slept %v, want %v", c.n, c.advance, got, c.want)
		}
	}

	// A job cancelled while held: the cause comes back at once.
	cause := errors.New("job cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	q := newPacer(MinBandwidth)
	start := time.Now()
	if err := q.wait(ctx, 64<<20); err != cause {
		t.Fatalf("wait with an ended context: %v, want %v", err, cause)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("wait with an ended context took %v", d)
	}
}
