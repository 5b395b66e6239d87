package core

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// catalogDown is the catalog line of "status director" when a catalog
// query failed: "DOWN (reason)".
func catalogDown(err error) string {
	return "DOWN (" + status.Convert(catalogStatus(err)).Message() + ")"
}

// storagesWithoutCatalog asks each configured storage for its status
// when the catalog cannot say which pushes are pending.
func (d *Director) storagesWithoutCatalog(ctx context.Context) []storageCache {
	var out []storageCache
	for _, name := range slices.Sorted(maps.Keys(d.storages)) {
		c := storageCache{Storage: name}
		c.ask(ctx, d.storages[name])
		out = append(out, c)
	}
	return out
}

// labelTargets resolves label's storage (given, else the only configured
// one) and pool (given, else default_pool). What cannot be resolved is
// named all at once, with the choices.
func (d *Director) labelTargets(ctx context.Context, cmd console.Command, progress Progress) (storage, pool string, err error) {
	storage, pool = cmd.Str("storage"), cmd.Str("pool")
	var missing []string
	if storage == "" {
		names := slices.Sorted(maps.Keys(d.storages))
		switch len(names) {
		case 0:
			missing = append(missing, fmt.Sprintf("storage=NAME (no [[storage]] is configured in %s)", d.cfg.Path))
		case 1:
			storage = names[0]
			progress("using storage %s (the only one configured)", storage)
		default:
			missing = append(missing, fmt.Sprintf("storage=NAME (one of %s)", strings.Join(names, ", ")))
		}
	}
	if pool == "" {
		if d.cfg.DefaultPool != "" {
			pool = d.cfg.DefaultPool
			progress("using pool %s (default_pool)", pool)
		} else {
			what := "pool=NAME (no default_pool is set in " + d.cfg.Path
			if ps, err := d.store.ListPools(ctx); err == nil && len(ps) > 0 {
				var names []string
				for _, p := range ps {
					names = append(names, p.Name)
				}
				what += "; existing pools: " + strings.Join(names, ", ")
			}
			missing = append(missing, what+"; a new name creates the pool)")
		}
	}
	if len(missing) > 0 {
		return "", "", status.Errorf(codes.InvalidArgument, "label: missing %s (usage: %s)", strings.Join(missing, "; missing "), console.Lookup("label").Usage())
	}
	return storage, pool, nil
}

// checkSlots refuses a slot list the changer does not have, before
// anything is written.
func checkSlots(storage string, ch *pb.ChangerInventory, slots []int) error {
	var bad []int
	for _, n := range slots {
		if n < 1 || n > len(ch.Slots) {
			bad = append(bad, n)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "changer %s of storage %s has slots 1-%d; slot %s does not exist: nothing was labelled (no pool, key or volume was created)",
		ch.Name, storage, len(ch.Slots), console.FormatSlots(bad))
}

// encryptedCell is the ENCRYPTED column of a label row: what the volume
// is, not what was asked (a failed row is never "yes").
func encryptedCell(r SlotResult, requested bool) string {
	switch {
	case r.OK:
		return yesNo(requested, r.Verified)
	case r.NotAttempted:
		return "-"
	case requested && r.KeyKept:
		return "no: key kept, not verified"
	}
	return "no"
}

// answers reports whether a storage that returned Unavailable still
// answers (it was busy, not gone).
func (d *Director) answers(ctx context.Context, link *storageLink) bool {
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := link.client.Hello(hctx, &pb.HelloRequest{})
	return err == nil
}

// relabelledText ends update volume's reply once the label on tape was
// rewritten: only an encrypted volume has a key verified on tape.
func relabelledText(m catalog.Media) string {
	if m.Encrypted {
		return "; label rewritten and the new key verified on tape"
	}
	return "; label rewritten without a key (data written from now on is not encrypted)"
}

// BadKey is a stored key the keyring cannot unwrap (volume, KEK id and
// fingerprint; never the key).
type BadKey struct {
	Volume      string `json:"volume"`
	History     bool   `json:"history"` // a key of the volume's history
	KEKID       string `json:"kek_id"`
	Fingerprint string `json:"key_fingerprint"`
	Problem     string `json:"problem"`
	// BlocksRekey: the key is not under the active KEK (v1), so rekey
	// would have to rewrap it and refuses.
	BlocksRekey bool `json:"blocks_rekey"`
}

// unwrapAll unwraps every stored key (current and history) with the
// keyring and returns the ones that fail.
func (d *Director) unwrapAll(ctx context.Context, active string) ([]BadKey, error) {
	ks, err := d.store.AllStoredKeys(ctx)
	if err != nil {
		return nil, err
	}
	var bad []BadKey
	for _, k := range ks {
		key, err := d.ring.Unwrap(k.Key)
		if err == nil {
			clear(key)
			continue
		}
		bad = append(bad, BadKey{Volume: k.Volume, History: k.History, KEKID: k.Key.KEKID, Fingerprint: k.Key.Fingerprint,
			Problem: err.Error(), BlocksRekey: k.Key.KEKID != active || k.Key.Scheme != keys.SchemeV1})
	}
	return bad, nil
}

// badKeysText lists the keys that fail to unwrap, every one of them.
func badKeysText(bad []BadKey, blocking int, refused bool) string {
	var b strings.Builder
	switch {
	case refused:
		fmt.Fprintf(&b, "rekey refused, nothing was changed: %d stored keys cannot be unwrapped with the configured KEKs, so they cannot be rewrapped:\n", blocking)
	case blocking > 0:
		fmt.Fprintf(&b, "%d stored keys cannot be unwrapped with the configured KEKs: \"rekey yes\" would refuse (nothing is changed) until each is fixed (add its KEK to [[keys.kek]]):\n", len(bad))
	default:
		fmt.Fprintf(&b, "%d stored keys under the active KEK cannot be unwrapped (rekey does not need to rewrap them, but no drive can load them):\n", len(bad))
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tKEY\tKEK ID\tFINGERPRINT\tPROBLEM")
	for _, k := range bad {
		if refused && !k.BlocksRekey {
			continue
		}
		which := "current"
		if k.History {
			which = "history"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Volume, which, dash(k.KEKID), dash(k.Fingerprint), k.Problem)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// maxReportText bounds each text field of a storage's report as recorded.
const maxReportText = 512

// checkReport cleans what a storage reports about one of its volumes
// before anything is recorded: control characters (escape sequences,
// newlines) and invalid UTF-8 in its text fields become visible escapes,
// long fields are cut; and a key fingerprint it names must be the
// volume's current key or one of its history — any other is refused
// (nothing recorded) and logged as a warning: a storage that reports
// keys the catalog never gave it is broken or forged.
func (d *Director) checkReport(ctx context.Context, storage string, r *pb.ReportVolumeRequest) error {
	r.Drive, r.Detail = cleanText(r.Drive, maxReportText), cleanText(r.Detail, maxReportText)
	r.KeyFingerprint, r.KekId = cleanText(r.KeyFingerprint, 64), cleanText(r.KekId, 64)
	if r.KeyFingerprint == "" {
		return nil
	}
	match, err := d.store.MatchFingerprint(ctx, r.Volume, r.KeyFingerprint)
	if err != nil {
		return catalogStatus(err)
	}
	if match == catalog.KeyUnknown {
		d.log.Warn("refused a volume report naming a key the volume never had", "volume", r.Volume, "storage", storage,
			"event", cleanText(r.Event, 32), "reported_fingerprint", r.KeyFingerprint)
		return status.Errorf(codes.FailedPrecondition, "volume %s: key fingerprint %s is neither its current key nor one of its history; the %s report was not recorded",
			r.Volume, r.KeyFingerprint, cleanText(r.Event, 32))
	}
	return nil
}

// cleanText makes text from another program safe to record and print:
// control characters and invalid UTF-8 become visible escapes (\x1b,
// \n, \xff) and it is cut to max bytes (then "…").
func cleanText(s string, max int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			clean = false
			break
		}
	}
	if clean && len(s) <= max {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsPrint(r) || r == ' ':
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
		if b.Len() > max {
			break
		}
	}
	out := b.String()
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}
