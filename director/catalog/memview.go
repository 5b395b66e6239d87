package catalog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
)

// DefaultMemCompareRows bounds the chains whose view Deletions compares
// in the director's memory (WithMemCompareRows): up to this many file rows
// (the sum of the chain's jobs' files_count) the paths are read into a
// table (pathTable) while the client walks and each batch of seen paths
// is compared as it arrives, so that the comparison is over when the walk
// is (about 50 bytes of memory per path plus the path: 97 bytes per
// 48-byte path in BenchmarkDeletions, ~100 MB at the bound; Bareos's
// accurate mode keeps the same list in its file daemon's memory). Larger
// chains are compared by PostgreSQL once the walk is over (a hash join of
// a temporary table of the seen paths with the chain's rows).
const DefaultMemCompareRows = 1_000_000

// memView is the view of a Deletions' chain in memory: every path of the
// chain's file rows with the rank of its latest row, and the paths the
// chain recorded deleted with the rank of the latest deletion. Seen paths
// are marked as they arrive; those unchanged by their times that the view
// lacks are kept for Unknown, and the paths never marked are the ones
// Finish records deleted.
type memView struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the load (and the batches before it) ended

	mu      sync.Mutex
	err     error // the load's
	loaded  bool
	pending []seenBatch // batches that came before the load ended
	tab     *pathTable
	dels    map[string]int64
	unknown [][]byte
}

// startMemView loads the chain's view in a goroutine (on a connection of
// its own, for as long as the query runs).
func (s *Store) startMemView(ctx context.Context, op string, chain []int64, rows int64) *memView {
	ctx, cancel := context.WithCancel(ctx)
	m := newMemView(rows)
	m.cancel = cancel
	go func() {
		defer close(m.done)
		err := m.load(ctx, s, chain)
		if err != nil {
			err = dbErr(op+": reading the paths of the backups before it", err)
		}
		m.endLoad(err)
	}()
	return m
}

func newMemView(rows int64) *memView {
	return &memView{cancel: func() {}, done: make(chan struct{}),
		tab: newPathTable(rows), dels: map[string]int64{}}
}

// endLoad marks the batches that came during the load, or keeps the
// load's error for every later call.
func (m *memView) endLoad(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.err, m.pending = err, nil
		return
	}
	m.loaded = true
	for _, b := range m.pending {
		m.mark(b)
	}
	m.pending = nil
}

func (m *memView) load(ctx context.Context, s *Store, chain []int64) error {
	// One query per job of the chain, its rank (1, 2, …) known here: no
	// join for PostgreSQL, one column per row to send.
	for i, id := range chain {
		rows, err := s.pool.Query(ctx, `SELECT path FROM files WHERE job_id = $1`,
			pgx.QueryResultFormats{pgx.BinaryFormatCode}, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			raw := rows.RawValues()
			if len(raw) != 1 {
				rows.Close()
				return fmt.Errorf("unexpected row shape")
			}
			m.tab.put(raw[0], int64(i+1))
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT x.path, max(c.rank) FROM file_deletions x JOIN unnest($1::bigint[]) WITH ORDINALITY AS c(id, rank) ON c.id = x.job_id
		GROUP BY x.path`, chain)
	if err != nil {
		return err
	}
	var (
		p    []byte
		rank int64
	)
	for rows.Next() {
		if err := rows.Scan(&p, &rank); err != nil {
			rows.Close()
			return err
		}
		m.dels[string(p)] = rank
	}
	return rows.Err()
}

// add marks a batch now, or keeps it for the end of the load.
func (m *memView) add(b seenBatch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.err != nil:
		return m.err
	case !m.loaded:
		m.pending = append(m.pending, b)
	default:
		m.mark(b)
	}
	return nil
}

// mark marks a batch's paths seen and keeps those unchanged by their times
// that the view lacks: no row of the chain has them, or a job of the
// chain recorded them deleted after its latest row. Called with mu held.
func (m *memView) mark(b seenBatch) {
	for i, p := range b.paths {
		e := m.tab.lookup(p)
		if e != nil {
			e.seen = true
		}
		if !b.isUnchanged(i) {
			continue
		}
		if e != nil {
			if r, deleted := m.dels[string(p)]; !deleted || r <= e.rank {
				continue
			}
		}
		m.unknown = append(m.unknown, bytes.Clone(p))
	}
}

// wait waits for the load and the batches before it.
func (m *memView) wait() error {
	<-m.done
	m.cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// unknownPaths returns the unchanged seen paths the view lacks, in byte
// order (after wait).
func (m *memView) unknownPaths() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	slices.SortFunc(m.unknown, bytes.Compare)
	return m.unknown
}

// unseen returns the view's paths never seen, with the rank of their
// latest row (after wait; the paths are the view's, not copies).
func (m *memView) unseen() (paths [][]byte, ranks []int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.tab.ents {
		if e := &m.tab.ents[i]; !e.seen {
			paths, ranks = append(paths, m.tab.path(int32(i))), append(ranks, e.rank)
		}
	}
	return paths, ranks
}
