package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// HostReclaim says whether this machine is a virtual machine whose
// balloon device hands freed memory back to the host (virtio-balloon
// free page reporting). There the first write into a page freed a while
// ago stops until the host has faulted it in again, so a benchmark's
// figures depend on whose writes land in long-freed memory: on the
// 2-core development VM (2026-12-04) `tapextract extract` of 2 GiB took
// 1.4–1.6 s of system time with reporting off and 7.8–8.3 s in five runs
// of six with it on, and its ratio against `tar xf`, which runs right
// after the extract's files are deleted and so writes into memory not
// yet handed back, swung from 0.19 to 0.79 between runs of the same
// binaries.
type HostReclaim struct {
	// Active: the balloon device offers free page reporting and blocks
	// of order Order and up are reported (Order ≤ maxPageOrder).
	Active bool
	Order  int
}

// Linux's largest buddy order on x86-64 and arm64 with 4 KiB pages: a
// page_reporting_order above it reports nothing.
const maxPageOrder = 10

// reportingBit is VIRTIO_BALLOON_F_REPORTING in a virtio device's
// features (sysfs spells them as one '0'/'1' character per bit).
const reportingBit = 5

const reportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"

// HostMemoryReclaim reads sysfs; a machine without a balloon device, or
// whose kernel has no page reporting, is not Active.
func HostMemoryReclaim() HostReclaim { return hostMemoryReclaim("/") }

// hostMemoryReclaim reads the sysfs files under root.
func hostMemoryReclaim(root string) HostReclaim {
	devs, _ := filepath.Glob(filepath.Join(root, "sys/bus/virtio/drivers/virtio_balloon/virtio*/features"))
	if !slices.ContainsFunc(devs, offersReporting) {
		return HostReclaim{}
	}
	raw, err := os.ReadFile(filepath.Join(root, reportingOrder))
	if err != nil {
		return HostReclaim{}
	}
	order, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || order > maxPageOrder {
		return HostReclaim{Order: order}
	}
	return HostReclaim{Active: true, Order: order}
}

// offersReporting reports whether the virtio features file at path has
// the free page reporting bit set.
func offersReporting(path string) bool {
	f, err := os.ReadFile(path)
	return err == nil && len(f) > reportingBit && f[reportingBit] == '1'
}

// Warn logs, when Active, what the figures that follow are worth and how
// to measure the code instead of the host.
func (h HostReclaim) Warn(tb testing.TB) {
	tb.Helper()
	if !h.Active {
		return
	}
	tb.Logf("WARNING: this VM hands freed memory back to its host (virtio-balloon free page reporting, "+
		"page_reporting_order=%d): writes into memory freed a while ago wait for the host, so these figures "+
		"depend on the order of the runs more than on the code. To measure the code, as root: "+
		"echo %d > %s (and echo %d > it afterwards)", h.Order, maxPageOrder+1, reportingOrder, h.Order)
}
