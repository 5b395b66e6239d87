package sd

import (
	"fmt"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/cryptocache"
)

// cacheRecoveryPB is what Status says of a crypto cache found corrupt at
// start-up (nil: it was read normally). No stored string.
func cacheRecoveryPB(r *cryptocache.Recovery) *pb.CacheRecovery {
	if r == nil {
		return nil
	}
	out := &pb.CacheRecovery{KeptAs: r.Corrupt.MovedTo, Reason: r.Corrupt.Reason, Conflicts: uint32(r.Conflicts), TimeUnix: r.Time.Unix()}
	if r.Corrupt.Line > 0 {
		out.Reason = fmt.Sprintf("line %d: %s", r.Corrupt.Line, r.Corrupt.Reason)
	}
	if r.SalvageErr != nil {
		out.Error = r.SalvageErr.Error()
	}
	if s := r.Salvage; s != nil {
		out.Volumes, out.LinesRecovered, out.LinesLost, out.Checksum = uint32(len(s.Entries)), uint32(s.Recovered), uint32(len(s.Lost)), s.Checksum
	}
	return out
}
