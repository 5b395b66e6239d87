package archive

import (
	"bytes"
	"io"
	"testing"
)

// FuzzParsePartHeader: any bytes give a part header or an error, never a
// panic; a parsed header encodes to one that parses the same.
func FuzzParsePartHeader(f *testing.F) {
	ph := testPartHeader()
	b, _ := ph.Encode()
	f.Add(b)
	ph.Cut = &Cut{Path: "a/b", Size: 4096, Offset: 1024}
	b, _ = ph.Encode()
	f.Add(b)
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParsePartHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if h.Cut != nil && (h.Cut.Offset%BlockSize != 0 || h.Cut.Offset >= h.Cut.Size) {
			return // Encode refuses such a cut; parsing it is fine
		}
		b, err := h.Encode()
		if err != nil {
			return // e.g. NUL in a name
		}
		h2, err := ParsePartHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-encoded header does not parse: %v", err)
		}
		if h2.JobID != h.JobID || h2.Part != h.Part || h2.Volume != h.Volume || h2.StreamOffset != h.StreamOffset || (h2.Cut == nil) != (h.Cut == nil) {
			t.Fatalf("round trip changed %+v into %+v", h, h2)
		}
	})
}

// FuzzReader: any bytes after NewReader's success read to the end or an
// error, never a panic, with header offsets that only grow. The fuzzed
// bytes are read as they are and after a valid part header (so the
// members, not the header's checksum, take the mutations).
func FuzzReader(f *testing.F) {
	ph, _ := testPartHeader().Encode()
	part, _ := writeSet(f, testPartHeader(), memberSet()[:8])
	f.Add(part)
	f.Add(part[len(ph):])
	f.Add(part[len(ph) : len(part)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		readAll(t, data)
		readAll(t, append(append([]byte(nil), ph...), data...))
	})
}

func readAll(t *testing.T, data []byte) {
	{
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		last := int64(-1)
		for range 1000 {
			e, err := r.Next()
			if err != nil {
				return
			}
			if e.Offset <= last || e.Offset%BlockSize != 0 {
				t.Fatalf("member %q at offset %d after %d", e.Header.Name, e.Offset, last)
			}
			last = e.Offset
			io.CopyN(io.Discard, r, 1<<20)
		}
	}
}

// FuzzDecodeIndex: any bytes decode to entries or an error, never a
// panic; decoded entries encode and decode to themselves.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(f, indexEntries(20)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []IndexEntry
		_, err := DecodeIndex(bytes.NewReader(data), func(e IndexEntry) error {
			if len(got) < 100 {
				got = append(got, e)
			}
			return nil
		})
		if err != nil || len(got) == 0 {
			return
		}
		var buf bytes.Buffer
		iw, err := NewIndexWriter(&buf, testPartHeader())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			if err := iw.Add(e); err != nil {
				t.Fatalf("a decoded entry does not encode: %v", err)
			}
		}
		iw.Close()
		i := 0
		if _, err := DecodeIndex(&buf, func(e IndexEntry) error {
			if e.Path != got[i].Path || e.SHA256 != got[i].SHA256 || e.Address != got[i].Address {
				t.Fatalf("entry %d changed: %+v -> %+v", i, got[i], e)
			}
			i++
			return nil
		}); err != nil {
			t.Fatalf("re-encoded index: %v", err)
		}
	})
}
