package main

import (
	"fmt"
	"os"
)

// writeAddrFile writes addr (where the director listens: with listen =
// "127.0.0.1:0" the kernel picks the port) to path, whole (renamed into
// place), for --addr-file; path "" writes nothing.
func writeAddrFile(path, addr string) error {
	if path == "" {
		return nil
	}
	err := os.WriteFile(path+".tmp", []byte(addr+"\n"), 0o644)
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		return fmt.Errorf("--addr-file %s: cannot write it: %v", path, err)
	}
	return nil
}
