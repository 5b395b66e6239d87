package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/tapeward/tapeward/storaged/cryptocache"
)

// The salvage of a damaged crypto cache: "cache dump FILE --salvage" lists
// what can be recovered, "cache salvage FILE --into CACHE" merges it.

func init() {
	cacheGroup.commands = append(cacheGroup.commands, &command{
		name:     "salvage",
		synopsis: "CORRUPT_FILE --into CACHE [--json]",
		summary:  "recover every well-formed entry of a damaged cache file and merge it into a (new or existing) cache",
		detail: "CORRUPT_FILE (e.g. storaged.cryptocache.corrupt-<time>) is read and never changed. Every well-formed\n" +
			"line is recovered; each line that is not is listed with its number and why (never its content), and\n" +
			"the checksum is reported. The merge is one atomic update of CACHE that never removes or replaces a\n" +
			"stored key: a volume CACHE lacks gets the salvaged entry (times, earlier keys); for a volume it has,\n" +
			"salvaged keys it does not hold are added to the entry's history. A salvaged current key that is\n" +
			"not CACHE's is a conflict: CACHE's stays current, the salvaged one goes to the history; conflicts\n" +
			"are listed (exit status 0). Then check: tapekey cache verify CACHE --kek ...",
		run: cacheSalvage,
	})
}

type lineInfo struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

type salvageInfo struct {
	Checksum  string     `json:"checksum"`
	HeaderOK  bool       `json:"header_ok"`
	Volumes   int        `json:"volumes"`
	Recovered int        `json:"lines_recovered"`
	Lost      []lineInfo `json:"lines_lost"`
	Notes     []lineInfo `json:"notes"`
}

func salvageSummary(r *cryptocache.SalvageReport) salvageInfo {
	s := salvageInfo{Checksum: r.Checksum, HeaderOK: r.HeaderOK, Volumes: len(r.Entries), Recovered: r.Recovered, Lost: []lineInfo{}, Notes: []lineInfo{}}
	for _, l := range r.Lost {
		s.Lost = append(s.Lost, lineInfo{l.Line, l.Reason})
	}
	for _, l := range r.Notes {
		s.Notes = append(s.Notes, lineInfo{l.Line, l.Reason})
	}
	return s
}

// printSalvageLines prints the lost lines and notes of r.
func printSalvageLines(c *cli, r *cryptocache.SalvageReport) {
	for _, l := range r.Lost {
		fmt.Fprintf(c.stdout, "lost      %s\n", l)
	}
	for _, l := range r.Notes {
		fmt.Fprintf(c.stdout, "note      %s\n", l)
	}
}

// salvageFile salvages path, warning when it is open to group or others.
func salvageFile(c *cli, path string) (*cryptocache.SalvageReport, error) {
	r, err := cryptocache.SalvageFile(path)
	if err != nil {
		return nil, err
	}
	warnMode(c, path)
	return r, nil
}

// cacheDumpSalvage is "cache dump FILE --salvage".
func cacheDumpSalvage(c *cli, path string, asJSON bool) error {
	r, err := salvageFile(c, path)
	if err != nil {
		return err
	}
	infos := entryInfos(r.Entries)
	if asJSON {
		return printJSON(c.stdout, struct {
			File    string           `json:"file"`
			Format  string           `json:"format"`
			Salvage salvageInfo      `json:"salvage"`
			Entries []cacheEntryInfo `json:"entries"`
		}{path, cryptocache.Header, salvageSummary(r), infos})
	}
	if err := printEntryTable(c, infos); err != nil {
		return err
	}
	printSalvageLines(c, r)
	_, err = fmt.Fprintf(c.stdout, "%s: salvage: %s; recover them into a cache with: tapekey cache salvage %s --into CACHE\n", path, r.Summary(), path)
	return err
}

func cacheSalvage(c *cli, f *flags, args []string) error {
	into := f.String("into", "", "the cache to merge the recovered entries into (created if missing)")
	asJSON := f.Bool("json", false, "print JSON")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	src, err := oneFile(f, pos, "damaged cache file")
	if err != nil {
		return err
	}
	if err := f.required("into", *into); err != nil {
		return err
	}
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(*into); err == nil && os.SameFile(a, b) {
			return fmt.Errorf("%s and --into %s are the same file; salvage reads a kept copy into another cache (storaged keeps a corrupt cache as %s.corrupt-<time> and salvages it itself at start-up)",
				src, *into, cryptocache.FileName)
		}
	}
	r, err := salvageFile(c, src)
	if err != nil {
		return err
	}
	if len(r.Entries) == 0 {
		return fmt.Errorf("%s: nothing to salvage (%s); %s was not changed", src, r.Summary(), *into)
	}
	cc, err := openCache(c, *into)
	if err != nil {
		return fmt.Errorf("%v; nothing was merged from %s", err, src)
	}
	res, err := cc.Merge(r.Entries)
	if err != nil {
		return fmt.Errorf("%v; nothing was merged", err)
	}
	counts := map[cryptocache.PutResult]int{}
	conflicts := 0
	type mergeInfo struct {
		Volume       string   `json:"volume"`
		Result       string   `json:"result"`
		HistoryAdded int      `json:"history_added"`
		Conflicts    []string `json:"conflicts"`
	}
	var merged []mergeInfo
	for _, m := range res {
		counts[m.Result]++
		conflicts += len(m.Conflicts)
		merged = append(merged, mergeInfo{m.Volume, m.Result.String(), m.HistoryAdded, append([]string{}, m.Conflicts...)})
	}
	if *asJSON {
		return printJSON(c.stdout, struct {
			File    string      `json:"file"`
			Into    string      `json:"into"`
			Salvage salvageInfo `json:"salvage"`
			Merged  []mergeInfo `json:"merged"`
		}{src, *into, salvageSummary(r), merged})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	for i, m := range res {
		e := r.Entries[i]
		extra := ""
		if m.HistoryAdded > 0 {
			extra = fmt.Sprintf("\t+%d earlier keys", m.HistoryAdded)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tkek %s\tfingerprint %s%s\n", m.Result, e.Volume, e.Key.Scheme, dash(e.Key.KEKID), dash(e.Key.Fingerprint), extra)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range res {
		for _, cf := range m.Conflicts {
			fmt.Fprintf(c.stdout, "conflict  %s: %s\n", m.Volume, cf)
		}
	}
	printSalvageLines(c, r)
	_, err = fmt.Fprintf(c.stdout, "%s: salvage: %s\n%s: merged %d added, %d updated, %d unchanged, %d conflicts (%s was not changed); check with: tapekey cache verify %s --kek ...\n",
		src, r.Summary(), *into, counts[cryptocache.Added], counts[cryptocache.Updated], counts[cryptocache.Unchanged], conflicts, src, *into)
	return err
}
