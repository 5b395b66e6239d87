//go:build !linux

// Package sgio is the Linux SG_IO transport; on other systems Open fails.
package sgio

import (
	"errors"
	"runtime"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Options controls Open.
type Options struct {
	Types     []byte
	Exclusive bool
}

// Transport is unavailable on this system.
type Transport struct{}

// Open always fails: SG_IO exists only on Linux.
func Open(path string, opts Options) (*Transport, error) {
	return nil, errors.New("open " + path + ": SG_IO is only available on Linux, not " + runtime.GOOS)
}

func (t *Transport) Do(*scsi.Command) (scsi.Result, error) {
	return scsi.Result{}, errors.New("sgio: unsupported")
}
func (t *Transport) Addr() string { return "" }
func (t *Transport) Close() error { return nil }
