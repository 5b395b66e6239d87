//go:build linux

package extract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

// BenchmarkWriter: the writer alone, members from memory (no network):
// 4 files of 32 MiB, and 2,000 files of 4 KiB in 2 directories; each
// read from a bytes.Reader (copied into the writer's buffer) and lent in
// 16 KiB pieces, as filed's receive buffers are (lend).
func BenchmarkWriter(b *testing.B) {
	for _, lend := range []bool{false, true} {
		name := "read"
		if lend {
			name = "lend"
		}
		b.Run(name, func(b *testing.B) { benchWriter(b, lend) })
	}
}

func benchWriter(b *testing.B, lend bool) {
	for _, c := range []struct {
		name  string
		n     int
		size  int
		files func(i int) string
	}{
		{"large", 4, 32 << 20, func(i int) string { return fmt.Sprintf("/big/f%02d", i) }},
		{"small", 2000, 4096, func(i int) string { return fmt.Sprintf("/small/d%d/f%05d", i/1000, i) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ms []archive.Member
			var data [][]byte
			content := rnd(1, c.size)
			for i := range c.n {
				ms = append(ms, archive.Member{Path: c.files(i), Type: archive.TypeReg, Size: int64(c.size), Mode: 0o644, Mtime: time.Unix(1e9, 0)})
				data = append(data, content)
			}
			items := archiveOf(b, ms, data)
			out := b.TempDir()
			b.SetBytes(int64(c.n * c.size))
			b.ResetTimer()
			for i := range b.N {
				where := filepath.Join(out, fmt.Sprint(i))
				rl, err := relocate.New(relocate.Rules{Where: where})
				if err != nil {
					b.Fatal(err)
				}
				w, err := New(Options{Relocator: rl})
				if err != nil {
					b.Fatal(err)
				}
				for _, it := range items {
					var src io.Reader = bytes.NewReader(it.pax)
					if lend {
						src = &lender{b: it.pax, piece: 16 << 10, direct: true}
					}
					if err := w.Restore(context.Background(), it.m, src); err != nil {
						b.Fatal(err)
					}
				}
				w.Close()
				if st := w.Stats(); st.Errors > 0 || st.Files != int64(c.n) {
					b.Fatalf("stats %+v", st)
				}
				b.StopTimer()
				os.RemoveAll(where)
				b.StartTimer()
			}
			b.ReportMetric(float64(c.n*b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
