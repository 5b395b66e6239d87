package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func indexEntries(n int) []IndexEntry {
	out := make([]IndexEntry, 0, n)
	for i := range n {
		e := IndexEntry{Path: fmt.Sprintf("home/user%d/file %d.txt", i%97, i), Type: TypeReg, Size: int64(i) * 1000,
			Mtime: testTime.UnixNano() + int64(i), Mode: 0o644, UID: 1000, GID: 100, Uname: "alice", Gname: "users",
			SHA256: sum([]byte(fmt.Sprint(i))), Address: Address{Volume: "TW0001L8", TapeFile: 2, Block: int64(i / 100), Offset: int64(i%100) * 512}}
		switch i % 7 {
		case 1:
			e.Type, e.Size, e.SHA256, e.Path = TypeDir, 0, [32]byte{}, e.Path+"/"
		case 2:
			e.Type, e.Size, e.SHA256, e.Linkname = TypeSymlink, 0, [32]byte{}, "../target\xff"
		case 3:
			e.Path = fmt.Sprintf("bad-\xfe-utf8/%d\nnewline", i)
		case 4:
			e.Sparse = true
			e.Parts = []PartAddress{{Address: Address{Volume: "TW0002L8", TapeFile: 2, Block: 0, Offset: 1536}, Part: 2, DataOffset: 512 * 1000}}
		}
		out = append(out, e)
	}
	return out
}

func encodeIndex(t testing.TB, entries []IndexEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	i := 0
	err := EncodeIndex(&buf, testPartHeader(), func() (IndexEntry, bool, error) {
		if i == len(entries) {
			return IndexEntry{}, false, nil
		}
		i++
		return entries[i-1], true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexRoundTrip: DecodeIndex gives back every entry, invalid UTF-8
// paths and continuation parts included, across several index members.
func TestIndexRoundTrip(t *testing.T) {
	entries := indexEntries(20000)
	b := encodeIndex(t, entries)
	var got []IndexEntry
	ph, err := DecodeIndex(bytes.NewReader(b), func(e IndexEntry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ph.Kind != KindIndex || ph.JobID != 42 {
		t.Errorf("index header %+v", ph)
	}
	if len(got) != len(entries) {
		t.Fatalf("decoded %d entries, encoded %d", len(got), len(entries))
	}
	for i := range entries {
		if !reflect.DeepEqual(got[i], entries[i]) {
			t.Fatalf("entry %d: decoded %+v, encoded %+v", i, got[i], entries[i])
		}
	}
	if n := bytes.Count(b, []byte("TAPEWARD-INDEX-job42.000002.jsonl")); n == 0 {
		t.Errorf("%d bytes of index in one member: the chunking is not exercised", len(b))
	}
}

// TestIndexWithTar: `tar -xOf -` prints the index as JSON lines, one a
// member, and bsdtar lists its members.
func TestIndexWithTar(t *testing.T) {
	entries := indexEntries(5000)
	b := encodeIndex(t, entries)
	out, _ := runTool(t, b, t.TempDir(), "tar", "-xOf", "-")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(entries) {
		t.Fatalf("tar -xOf printed %d lines, want %d", len(lines), len(entries))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["path"] != entries[0].Path || first["sha256"] == nil {
		t.Errorf("first line %s (%v): want the first entry with its digest", lines[0], err)
	}
	list, _ := runTool(t, b, t.TempDir(), "bsdtar", "-tf", "-")
	if !strings.HasPrefix(list, "TAPEWARD-INDEX-job42.000001.jsonl\n") {
		t.Errorf("bsdtar -tf lists %q", list)
	}
}

// TestIndexMemoryBounded: 100,000 entries keep the encoder's buffer at
// one chunk.
func TestIndexMemoryBounded(t *testing.T) {
	iw, err := NewIndexWriter(io.Discard, testPartHeader())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range indexEntries(100000) {
		if err := iw.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if c := iw.buf.Cap(); c > 2*IndexChunk {
		t.Errorf("after 100,000 entries the encoder holds a %d-byte buffer, want at most %d", c, 2*IndexChunk)
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}
	if iw.n < 10 {
		t.Errorf("100,000 entries went into %d members", iw.n)
	}
}

// TestIndexRefusesData: a data part is not an index; a bad line is
// reported with its number.
func TestIndexRefusesData(t *testing.T) {
	part, _ := writeSet(t, testPartHeader(), memberSet()[:3])
	if _, err := DecodeIndex(bytes.NewReader(part), func(IndexEntry) error { return nil }); err == nil || !strings.Contains(err.Error(), "not an index") {
		t.Errorf("a data part decoded as an index: %v", err)
	}
	if _, err := decodeIndexLine([]byte(`{"path":"x","type":"file","mode":"0644","sha256":"zz"}`), 7); err == nil || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("bad digest: %v", err)
	}
}
