package iscsi

import "time"

// SetAbortWait shortens the wait for ABORT TASK's answer for a test.
func SetAbortWait(d time.Duration) (restore func()) {
	old := abortWait
	abortWait = d
	return func() { abortWait = old }
}
