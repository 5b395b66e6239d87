package fd

import (
	"context"
	"time"
)

// MinBandwidth is the smallest Options.MaxBandwidth (filed.toml
// max_bandwidth_per_job): at it one data message (ChunkSize) takes 4 s,
// well within the keepalive interval.
const MinBandwidth = 256 << 10

// pacer holds one job's data stream to max bytes per second on average
// since the job's first byte (filed.toml max_bandwidth_per_job). A nil
// pacer does not limit.
type pacer struct {
	max   float64
	start time.Time
	n     int64
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// newPacer returns a pacer of max bytes per second, or nil for max <= 0.
func newPacer(max int64) *pacer {
	if max <= 0 {
		return nil
	}
	return &pacer{max: float64(max), now: time.Now, sleep: sleepCtx}
}

// wait counts n more bytes and returns once they are within the limit
// (at once when they are), or with ctx's cause when ctx ends first.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p == nil {
		return nil
	}
	if p.start.IsZero() {
		p.start = p.now()
	}
	p.n += int64(n)
	due := p.start.Add(time.Duration(float64(p.n) / p.max * float64(time.Second)))
	if d := due.Sub(p.now()); d > 0 {
		return p.sleep(ctx, d)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
