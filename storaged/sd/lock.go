package sd

import "sync"

// opLock serialises the operations on one drive. Status and VolumeState
// queries take it only when it is free (tryQuery) and hold it for one short
// query; an operation that finds it held by such a query waits for the
// query to end instead of failing busy, so a console polling status never
// makes a mount, unmount or write fail. An operation held by another
// operation is refused at once (TryLock false): the caller says busy.
type opLock struct {
	mu    sync.Mutex
	held  bool
	query bool          // held by a query
	free  chan struct{} // closed when the holder releases
	// onRelease runs, still holding the lock, just before each release:
	// the drive publishes its status snapshot there.
	onRelease func()
}

func (l *opLock) take(query bool) {
	l.held, l.query, l.free = true, query, make(chan struct{})
}

// TryLock takes the lock for an operation: at once when it is free, after
// the running query when a query holds it, and not at all (false) when
// another operation holds it.
func (l *opLock) TryLock() bool {
	for {
		l.mu.Lock()
		if !l.held {
			l.take(false)
			l.mu.Unlock()
			return true
		}
		if !l.query {
			l.mu.Unlock()
			return false
		}
		ch := l.free
		l.mu.Unlock()
		<-ch
	}
}

// Lock takes the lock for an operation, waiting for any holder.
func (l *opLock) Lock() {
	for {
		l.mu.Lock()
		if !l.held {
			l.take(false)
			l.mu.Unlock()
			return
		}
		ch := l.free
		l.mu.Unlock()
		<-ch
	}
}

// tryQuery takes the lock for a query only when nobody holds it.
func (l *opLock) tryQuery() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return false
	}
	l.take(true)
	return true
}

// Unlock publishes (onRelease) and releases.
func (l *opLock) Unlock() {
	if l.onRelease != nil {
		l.onRelease()
	}
	l.mu.Lock()
	if !l.held {
		l.mu.Unlock()
		panic("sd: unlock of an unlocked drive")
	}
	l.held, l.query = false, false
	close(l.free)
	l.mu.Unlock()
}
