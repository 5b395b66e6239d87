package core

import (
	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

// relocator checks a restore's relocation as filed will apply it
// (tools/lib/relocate, the same code): bad rules are refused before
// anything runs.
func relocator(rel *pb.Relocation) (*relocate.Relocator, error) {
	return relocate.New(relocate.Rules{Where: rel.Where, StripPrefix: rel.StripPrefix, AddPrefix: rel.AddPrefix,
		AddSuffix: rel.AddSuffix, RegexWhere: rel.Regexwhere})
}

// dryRun lists where each selected member would be written (a member
// planned with write_as under that path); a member the rules would put
// outside the target, or whose stored path is refused, says why.
func dryRun(sel catalog.Selection, rel *pb.Relocation) ([]RestoreDryRunFile, error) {
	r, err := relocator(rel)
	if err != nil {
		return nil, err
	}
	out := make([]RestoreDryRunFile, 0, len(sel.Members))
	for _, m := range sel.Members {
		stored := m.Path
		if m.WriteAs != nil {
			stored = m.WriteAs
		}
		f := RestoreDryRunFile{Path: catalog.RenderPath(stored), Type: m.Type, Size: m.Size, Volume: m.At.Volume}
		if t, err := r.Target(string(stored)); err != nil {
			f.Error = err.Error()
		} else {
			f.Target = catalog.RenderPath([]byte(t))
		}
		out = append(out, f)
	}
	return out, nil
}
