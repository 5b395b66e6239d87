package core

import (
	"fmt"
	"strings"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// cacheRecoveryText is what "status storage" and "status director" say of
// a crypto cache that storaged found corrupt at start-up, kept and
// salvaged (StatusReply.cache_recovery); "" when there is nothing to say.
// entries is the number of volumes in the cache now.
func cacheRecoveryText(entries uint32, r *pb.CacheRecovery) string {
	if r == nil {
		return ""
	}
	kept := cleanText(r.KeptAs, 1024)
	cache, _, _ := strings.Cut(kept, ".corrupt-")
	var b strings.Builder
	if r.Error != "" {
		fmt.Fprintf(&b, "crypto cache: %d volumes — CORRUPT at start-up and NOTHING salvaged (kept as %s; %s; %s); inspect it: tapekey cache dump %s --salvage",
			entries, kept, cleanText(r.Reason, 512), cleanText(r.Error, 512), kept)
		return b.String()
	}
	fmt.Fprintf(&b, "crypto cache: %d volumes — RECOVERED from a corrupt file (kept as %s; %s): %d volumes (%d key lines) salvaged, %d lines lost, checksum %s",
		entries, kept, cleanText(r.Reason, 512), r.Volumes, r.LinesRecovered, r.LinesLost, dash(cleanText(r.Checksum, 16)))
	if r.Conflicts > 0 {
		fmt.Fprintf(&b, ", %d conflicts (see storaged's log)", r.Conflicts)
	}
	fmt.Fprintf(&b, "; check with tapekey cache verify %s --kek …", cache)
	if r.LinesLost > 0 {
		fmt.Fprintf(&b, "; the lost lines: tapekey cache dump %s --salvage", kept)
	}
	return b.String()
}
