package iscsi

import (
	"errors"
	"os"
	"time"
)

// startIdle runs the idle reader: between commands it reads what the
// target sends on its own — NOP-In pings (answered), asynchronous
// messages (noted for the next command) — so that a target that checks
// its initiators are alive does not drop an idle connection. It stops at
// stopIdle, leaving any PDU it has not started on in the buffer.
func (c *conn) startIdle(st *Stats) {
	c.idleStop.Store(false)
	c.idleErr = nil
	c.idleDone = make(chan struct{})
	c.nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(c.idleDone)
		idle := &task{}
		for {
			werr := c.r.Wait()
			c.mu.Lock()
			if werr != nil && !errors.Is(werr, os.ErrDeadlineExceeded) {
				// The target closed the connection (or it broke): say so
				// even when stopping, so that nothing is sent on it.
				c.idleErr = werr
				c.mu.Unlock()
				return
			}
			if c.idleStop.Load() {
				c.mu.Unlock()
				return
			}
			if werr != nil {
				c.idleErr = werr
				c.mu.Unlock()
				return
			}
			err := c.step(idle, time.Now().Add(pduTimeout), st)
			c.nc.SetReadDeadline(time.Time{})
			c.mu.Unlock()
			if err != nil {
				c.idleErr = err
				return
			}
		}
	}()
}

// stopIdle stops the idle reader and returns what ended it early, if
// anything (the target closed the connection, a protocol error): then
// the connection must not be used.
func (c *conn) stopIdle() error {
	if c.idleDone == nil {
		return nil
	}
	c.idleStop.Store(true)
	c.mu.Lock()
	c.nc.SetReadDeadline(time.Now()) // wakes a Wait with nothing to read
	c.mu.Unlock()
	<-c.idleDone
	c.idleDone = nil
	return c.idleErr
}

// alive reports whether the idle reader has seen nothing wrong.
func (c *conn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idleErr == nil
}
