package tapeio

// Extent is the part of a spanned stream on one volume: one tape file.
type Extent struct {
	// Volume is the index of the volume in the span (0 = the first).
	Volume int `json:"volume"`
	// Drive is the address of the drive that wrote it.
	Drive string `json:"drive"`
	// File is the tape file number.
	File uint64 `json:"file"`
	// FirstBlock and LastBlock are the logical object numbers of the
	// extent's first and last data block (LastBlock = FirstBlock-1 when
	// the extent is empty).
	FirstBlock uint64 `json:"first_block"`
	LastBlock  uint64 `json:"last_block"`
	// Bytes of the stream in the extent; Offset is the stream offset of
	// its first byte.
	Bytes  int64 `json:"bytes"`
	Offset int64 `json:"offset"`
	// BlockSize is the size of every block of the extent but its last.
	BlockSize int `json:"block_size"`
	// EarlyWarning: the volume was full (early warning or overflow).
	EarlyWarning bool `json:"early_warning,omitempty"`
}

// Start is the address of the extent's first byte.
func (e Extent) Start() Addr { return Addr{File: e.File, Block: e.FirstBlock} }

// Resolve maps a stream offset (a Writer.Offset mark, or a job's
// stream offset over its parts) to the extent holding it and its address. Every block of an
// extent but the last is full, so the address is exact. ok is false for an
// offset outside the extents.
func Resolve(exts []Extent, off int64) (e Extent, a Addr, ok bool) {
	for _, e := range exts {
		if off >= e.Offset && off < e.Offset+e.Bytes {
			rel := off - e.Offset
			bs := int64(e.BlockSize)
			return e, Addr{File: e.File, Block: e.FirstBlock + uint64(rel/bs), Offset: int(rel % bs)}, true
		}
	}
	return Extent{}, Addr{}, false
}
