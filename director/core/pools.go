package core

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
)

// Pools (jobs.md §4): director.toml is the source of truth for a pool;
// the catalog keeps a copy (pools) and each volume its own copy of the
// limits, taken when it is labelled and re-applied by `update pool=`.

// poolSpec turns a [[pool]] into what the catalog records.
func poolSpec(p *configs.Pool) (catalog.PoolSpec, catalog.PoolLimits) {
	return catalog.PoolSpec{
			Name: p.Name, Encrypt: p.EncryptsVolumes(), Storage: p.Storage,
			VolumeRetention: p.VolumeRetention.Duration, MaxVolumeBytes: int64(p.MaxVolumeBytes),
		}, catalog.PoolLimits{
			MaxVolumeJobs: p.MaxVolumeJobs, VolumeUseDuration: p.VolumeUseDuration.Duration, Recycle: p.Recycles(),
		}
}

// syncPool records the configured pool name in the catalog as
// director.toml describes it. ok is false when director.toml has no such
// pool.
func (d *Director) syncPool(ctx context.Context, name string) (ok bool, err error) {
	p, ok := d.cfg.PoolNamed(name)
	if !ok {
		return false, nil
	}
	spec, lim := poolSpec(p)
	_, err = d.store.SyncPool(ctx, spec, lim)
	return true, err
}

// PoolRow is one line of "list pools".
type PoolRow struct {
	Pool              string         `json:"pool"`
	Configured        bool           `json:"configured"` // in director.toml (otherwise only in the catalog)
	MediaType         string         `json:"media_type,omitempty"`
	Storage           string         `json:"storage,omitempty"`
	Encrypted         bool           `json:"encrypted"`
	VolumeRetention   string         `json:"volume_retention,omitempty"`
	MaxVolumeBytes    int64          `json:"max_volume_bytes"`
	MaxVolumeJobs     int            `json:"max_volume_jobs"`
	VolumeUseDuration string         `json:"volume_use_duration,omitempty"`
	Recycle           bool           `json:"recycle"`
	AutoPrune         bool           `json:"auto_prune"`
	ScratchPool       string         `json:"scratch_pool,omitempty"`
	RecyclePool       string         `json:"recycle_pool,omitempty"`
	Volumes           map[string]int `json:"volumes"` // status → count
}

func period(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return configs.Period{Duration: d}.String()
}

func (d *Director) listPools(ctx context.Context) (*Output, error) {
	counts, err := d.store.PoolVolumeCounts(ctx)
	if err != nil {
		return nil, err
	}
	cat, err := d.store.ListPools(ctx)
	if err != nil {
		return nil, err
	}
	var rows []PoolRow
	seen := map[string]bool{}
	for i := range d.cfg.Pools {
		p := &d.cfg.Pools[i]
		seen[p.Name] = true
		rows = append(rows, PoolRow{Pool: p.Name, Configured: true, MediaType: p.MediaType, Storage: p.Storage,
			Encrypted: p.EncryptsVolumes(), VolumeRetention: period(p.VolumeRetention.Duration),
			MaxVolumeBytes: int64(p.MaxVolumeBytes), MaxVolumeJobs: p.MaxVolumeJobs,
			VolumeUseDuration: period(p.VolumeUseDuration.Duration), Recycle: p.Recycles(), AutoPrune: p.AutoPrunes(),
			ScratchPool: p.ScratchPool, RecyclePool: p.RecyclePool})
	}
	for _, p := range cat {
		if seen[p.Name] {
			continue
		}
		rows = append(rows, PoolRow{Pool: p.Name, Storage: p.Storage, Encrypted: p.Encrypt,
			VolumeRetention: period(p.VolumeRetention), MaxVolumeBytes: p.MaxVolumeBytes})
	}
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].Pool < rows[b].Pool })
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tSTORAGE\tENCRYPTED\tRETENTION\tMAX BYTES\tMAX JOBS\tUSE DURATION\tRECYCLE\tAUTO PRUNE\tSCRATCH POOL\tRECYCLE POOL\tVOLUMES")
	yn := map[bool]string{true: "yes", false: "no"}
	for i := range rows {
		r := &rows[i]
		r.Volumes = map[string]int{}
		for st, n := range counts[r.Pool] {
			r.Volumes[string(st)] = n
		}
		maxBytes, maxJobs := "-", "-"
		if r.MaxVolumeBytes > 0 {
			maxBytes = configs.SizeLimit(r.MaxVolumeBytes).String()
		}
		if r.MaxVolumeJobs > 0 {
			maxJobs = fmt.Sprint(r.MaxVolumeJobs)
		}
		vols := catalog.FormatCounts(counts[r.Pool])
		if !r.Configured {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s (not in director.toml)\n", r.Pool, dash(r.Storage), yn[r.Encrypted],
				dash(r.VolumeRetention), maxBytes, vols)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Pool, dash(r.Storage), yn[r.Encrypted],
			dash(r.VolumeRetention), maxBytes, maxJobs, dash(r.VolumeUseDuration), yn[r.Recycle], yn[r.AutoPrune],
			dash(r.ScratchPool), dash(r.RecyclePool), vols)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d pools", len(rows))
	return &Output{Text: b.String(), JSON: rows}, nil
}

// UpdatePoolResult is the JSON of "update pool".
type UpdatePoolResult struct {
	Pool    string `json:"pool"`
	Volumes int64  `json:"volumes_changed"`
}

// updatePool records the pool as director.toml says and copies its limits
// into every volume of the pool.
func (d *Director) updatePool(ctx context.Context, cmd console.Command) (*Output, error) {
	name := cmd.Str("pool")
	ok, err := d.syncPool(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		var names []string
		for _, p := range d.cfg.Pools {
			names = append(names, p.Name)
		}
		return nil, status.Errorf(codes.NotFound, "no pool %q in %s (configured: %s): update pool re-applies a [[pool]] of director.toml; add it there first",
			name, d.cfg.Path, dash(strings.Join(names, ", ")))
	}
	n, err := d.store.ApplyPoolLimits(ctx, name)
	if err != nil {
		return nil, err
	}
	return &Output{Text: fmt.Sprintf("pool %s: limits of director.toml applied to %d volumes", name, n),
		JSON: UpdatePoolResult{Pool: name, Volumes: n}}, nil
}

// VolumeStatusResult is the JSON of "update volume status=".
type VolumeStatusResult struct {
	Volume  string `json:"volume"`
	From    string `json:"from"`
	To      string `json:"to"`
	Changed bool   `json:"changed"`
}

// updateVolumeStatus moves a volume to the status an operator asks for,
// when jobs.md §4 allows it.
func (d *Director) updateVolumeStatus(ctx context.Context, actor string, cmd console.Command) (*Output, error) {
	volume, to := cmd.Str("volume"), catalog.Status(cmd.Str("status"))
	reason := ""
	if to == catalog.StatusError {
		reason = "set by console " + actor
	}
	from, changed, err := d.store.SetVolumeStatus(ctx, volume, to, "console:"+actor, reason)
	if err != nil {
		return nil, err
	}
	r := VolumeStatusResult{Volume: volume, From: string(from), To: string(to), Changed: changed}
	if !changed {
		return &Output{Text: fmt.Sprintf("volume %s: status %s (unchanged)", volume, to), JSON: r}, nil
	}
	return &Output{Text: fmt.Sprintf("volume %s: status %s → %s", volume, from, to), JSON: r}, nil
}
