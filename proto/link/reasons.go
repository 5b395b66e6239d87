package link

// ErrorInfo reasons (google.rpc.ErrorInfo, domain ErrorDomain) that one
// daemon attaches to a gRPC status so the other can tell two errors with
// the same code apart without reading their text.
const (
	ErrorDomain = "tapeward"

	// ReasonVolumeHoldsData: storaged refused to relabel a volume because
	// data follows its key-check file (FailedPrecondition). The director
	// then undoes the key change it made.
	ReasonVolumeHoldsData = "VOLUME_HOLDS_DATA"

	// ReasonCatalogUnavailable: the director answered, but its catalog
	// (PostgreSQL) did not (Unavailable). storaged falls back to its
	// crypto cache as for an unreachable director, and says which it was.
	ReasonCatalogUnavailable = "CATALOG_UNAVAILABLE"
)

// TrailerShredNotEdited is the gRPC trailer key with which storaged's
// ShredKeys names the copies of its crypto cache it keeps but did not
// edit (corrupt files kept aside, as found): they may still hold the
// shredded volumes' keys, and an operator destroys them by hand. One
// value per file.
const TrailerShredNotEdited = "tapeward-shred-not-edited"
