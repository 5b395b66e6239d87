package sd

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sync"
	"sync/atomic"
)

// ticket is a session's one-time admission of one client's data stream
// (a backup's JobData, a restore's RestoreData): the token storaged hands
// the director for that client only, spent by the first stream that
// presents it with that client's certificate.
type ticket struct {
	token    []byte
	client   string      // the certificate name the director named
	attached atomic.Bool // a client presented the token
}

// issue makes t.s token (random) for client.
func (t *ticket) issue(client string) {
	t.client = client
	t.token = []byte(randomHex(32))
}

// admit checks token and peer against t and spends it: why is "" when
// the client is admitted, else the reason (never the token).
func (t *ticket) admit(token, peer string) (why string) {
	if subtle.ConstantTimeCompare([]byte(token), t.token) != 1 {
		return "the token is not this session's"
	}
	if peer != t.client {
		return fmt.Sprintf("the certificate names client %q, the session is for client %q", peer, t.client)
	}
	if !t.attached.CompareAndSwap(false, true) {
		return "the token was already used"
	}
	return ""
}

// noSession is why a data stream naming an unknown session is refused.
const noSession = "no such session here (ended, or never opened)"

// refuseData logs and counts a refused data stream and returns its
// *TokenError: what ("job data", "restore data"), the session it named,
// why, and what did not happen ("nothing was written").
func (d *Daemon) refuseData(what, session, peer, why, nothing string) error {
	d.log.Warn(what+" refused", "session", session, "peer", peer, "why", why)
	d.metrics.errors.WithLabelValues("token").Inc()
	return &TokenError{Msg: fmt.Sprintf("%s for session %q refused: %s; %s", what, session, why, nothing)}
}

// ending is a data session's first reason to end: Abort (backup or
// restore) records it once, closes abortCh and cancels the session.
type ending struct {
	abortOnce sync.Once
	abortCh   chan struct{}
	abortErr  error
}

func (e *ending) end(err error, cancel context.CancelCauseFunc) {
	e.abortOnce.Do(func() {
		e.abortErr = err
		close(e.abortCh)
		cancel(err)
	})
}
