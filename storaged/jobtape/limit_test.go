package jobtape

import (
	"errors"
	"fmt"
	"testing"
)

// A volume byte limit (Options.VolumeLimit, from max_volume_bytes) ends
// the part like early warning, far before the tape's end: each volume
// holds at most its limit plus a block and a cut's drain, the part says
// MaxBytes, NextVolume gets a reason wrapping ErrMaxVolumeBytes, and every
// member is reported. The last volume (no limit) takes the rest and the
// index.
func TestVolumeLimitRollsToNextVolume(t *testing.T) {
	const bs = 64 << 10
	const limit = 3 << 20
	lib := newLib(t, 3, 3, 64<<20)
	var vols []*vol
	for i := range 3 {
		vols = append(vols, mount(t, lib, i+1, i, fmt.Sprintf("TW%04dL8", i+1), true, bs))
	}
	files := makeFiles(5, 300, 4<<20) // about 8 MiB with one member past a limit
	limits := map[string]int64{vols[0].name: limit, vols[1].name: limit}
	asked := map[string]int{}
	j := runJob(t, vols, files, Options{BlockSize: bs, FlushEvery: 1 << 20, VolumeLimit: func(v string) int64 { asked[v]++; return limits[v] },
		OnPart: func(p Part) error { return nil }})
	if j.err != nil {
		t.Fatal(j.err)
	}
	for i, r := range j.reasons {
		if !errors.Is(r, ErrMaxVolumeBytes) {
			t.Errorf("NextVolume reason %d = %v, want ErrMaxVolumeBytes", i+1, r)
		}
	}
	if want := fmt.Sprintf("volume %s at its byte limit after part 1 (tape file 1): max_volume_bytes reached (%d bytes allowed on it)", vols[0].name, limit); len(j.reasons) != 2 || j.reasons[0].Error() != want {
		t.Errorf("NextVolume reasons %q, want 2, the first %q", j.reasons, want)
	}
	if len(j.sum.Parts) != 3 {
		t.Fatalf("%d parts, want 3 (two volumes at their limit, the rest on the third): %+v", len(j.sum.Parts), j.sum.Parts)
	}
	for i, p := range j.sum.Parts[:2] {
		if !p.MaxBytes || !p.EarlyWarning {
			t.Errorf("part %d: MaxBytes %v EarlyWarning %v, want both", i+1, p.MaxBytes, p.EarlyWarning)
		}
		if p.Bytes < limit || p.Bytes > limit+bs+preferDataCut+64<<10 {
			t.Errorf("part %d on %s holds %d bytes, want the limit %d plus at most a block and a drain", i+1, p.Volume, p.Bytes, limit)
		}
	}
	if last := j.sum.Parts[2]; last.MaxBytes || last.Volume != vols[2].name || j.sum.Index.Volume != vols[2].name {
		t.Errorf("last part %+v, index on %s; want both on %s, no limit", last, j.sum.Index.Volume, vols[2].name)
	}
	if asked[vols[0].name] != 1 || asked[vols[2].name] != 1 {
		t.Errorf("VolumeLimit asked %v, want once per volume", asked)
	}
	if got := len(j.reported()); got != len(files) {
		t.Fatalf("%d records reported, want %d", got, len(files))
	}
}
