package tapewardpb

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// Packed seen paths survive the wire in order after the repeated ones,
// whatever their lengths (a one-byte and a two-byte uvarint, an empty
// path), and a buffer cut short is an error, never a short list.
func TestSeenPathsPacked(t *testing.T) {
	want := [][]byte{[]byte("/old/form"), []byte("/a"), {}, []byte("/dir/"), bytes.Repeat([]byte("x"), 300)}
	packed := AppendPacked(nil, "/", "a")
	for _, p := range want[2:] {
		packed = AppendPacked(packed, p)
	}
	data, err := proto.Marshal(&SeenPaths{Paths: want[:1], Packed: packed})
	if err != nil {
		t.Fatal(err)
	}
	var got SeenPaths
	if err := proto.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	all, err := got.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("%d paths, want %d", len(all), len(want))
	}
	for i := range want {
		if !bytes.Equal(all[i], want[i]) {
			t.Fatalf("path %d = %q, want %q", i, all[i], want[i])
		}
	}
	for _, cut := range []int{len(packed) - 1, len(packed) - 300, 1} {
		s := &SeenPaths{Packed: packed[:cut]}
		if l, err := s.All(); err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Fatalf("packed cut to %d bytes: %d paths, %v (want an error)", cut, len(l), err)
		}
	}
	s := &SeenPaths{Packed: []byte{0xff}} // a uvarint that never ends
	if _, err := s.All(); err == nil {
		t.Fatal("an unterminated length parsed")
	}
}
