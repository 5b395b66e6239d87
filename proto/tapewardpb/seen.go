package tapewardpb

import (
	"encoding/binary"
	"fmt"
)

// AppendPacked appends one path, the concatenation of parts, to a
// SeenPaths.packed buffer: its length as a uvarint, then its bytes.
func AppendPacked[P string | []byte](buf []byte, parts ...P) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	for _, p := range parts {
		buf = append(buf, p...)
	}
	return buf
}

// All returns the message's paths in order: those of paths, then the
// packed ones (slices of the message's buffer, not copies). A packed
// buffer that does not parse is an error naming where it breaks.
func (s *SeenPaths) All() ([][]byte, error) {
	packed := s.GetPacked()
	if len(packed) == 0 {
		return s.GetPaths(), nil
	}
	out := make([][]byte, len(s.GetPaths()), len(s.GetPaths())+len(packed)/32)
	copy(out, s.GetPaths())
	for off := 0; off < len(packed); {
		n, k := binary.Uvarint(packed[off:])
		if k <= 0 || n > uint64(len(packed)-off-k) {
			return nil, fmt.Errorf("packed seen paths: the length at byte %d of %d (path %d) does not fit the buffer", off, len(packed), len(out))
		}
		off += k
		out = append(out, packed[off:off+int(n):off+int(n)])
		off += int(n)
	}
	return out, nil
}
