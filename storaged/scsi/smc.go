package scsi

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// ElementType is an SMC element type code (§6.3).
type ElementType byte

const (
	ElementAll          ElementType = 0
	ElementTransport    ElementType = 1 // medium transport (picker)
	ElementStorage      ElementType = 2 // slot
	ElementImportExport ElementType = 3 // mail slot
	ElementDataTransfer ElementType = 4 // drive
)

func (t ElementType) String() string {
	switch t {
	case ElementAll:
		return "all"
	case ElementTransport:
		return "transport"
	case ElementStorage:
		return "storage"
	case ElementImportExport:
		return "import/export"
	case ElementDataTransfer:
		return "data transfer"
	}
	return fmt.Sprintf("element type %d", byte(t))
}

// MarshalText prints the type's name in JSON.
func (t ElementType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ReadElementStatusOpts selects what READ ELEMENT STATUS reports.
type ReadElementStatusOpts struct {
	Type    ElementType
	VolTag  bool // report barcodes
	DVCID   bool // report drive identifiers (data transfer elements)
	CurData bool
	Start   uint16
	Count   uint16
	Alloc   uint32 // 24-bit allocation length
}

// ReadElementStatusCDB builds READ ELEMENT STATUS (0xB8).
func ReadElementStatusCDB(o ReadElementStatusOpts) []byte {
	c := make([]byte, 12)
	c[0] = OpReadElementStatus
	c[1] = byte(o.Type) & 0x0F
	if o.VolTag {
		c[1] |= 0x10
	}
	binary.BigEndian.PutUint16(c[2:], o.Start)
	binary.BigEndian.PutUint16(c[4:], o.Count)
	if o.CurData {
		c[6] |= 0x02
	}
	if o.DVCID {
		c[6] |= 0x01
	}
	put24(c[7:10], o.Alloc)
	return c
}

// MoveMediumCDB builds MOVE MEDIUM (0xA5).
func MoveMediumCDB(transport, src, dst uint16, invert bool) []byte {
	c := make([]byte, 12)
	c[0] = OpMoveMedium
	binary.BigEndian.PutUint16(c[2:], transport)
	binary.BigEndian.PutUint16(c[4:], src)
	binary.BigEndian.PutUint16(c[6:], dst)
	if invert {
		c[10] = 1
	}
	return c
}

// InitializeElementStatusCDB is `07 00 00 00 00 00`.
func InitializeElementStatusCDB() []byte { return []byte{OpInitializeElementStat, 0, 0, 0, 0, 0} }

// DeviceID is the DVCID identifier of a data transfer element.
type DeviceID struct {
	CodeSet byte   `json:"code_set"` // 2 = ASCII
	Type    byte   `json:"type"`     // 0 serial only, 1 T10 vendor ID (vendor 8 + product 16 + serial)
	Raw     []byte `json:"raw,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	Product string `json:"product,omitempty"`
	Serial  string `json:"serial,omitempty"`
}

func (id DeviceID) String() string {
	if id.Vendor != "" || id.Product != "" {
		return strings.TrimSpace(id.Vendor + " " + id.Product + " " + id.Serial)
	}
	if id.Serial != "" {
		return id.Serial
	}
	return fmt.Sprintf("%X", id.Raw)
}

// Element is one element descriptor, of any type.
type Element struct {
	Type    ElementType `json:"type"`
	Address uint16      `json:"address"`
	Full    bool        `json:"full"`
	ImpExp  bool        `json:"impexp,omitempty"` // I/E: placed by the operator
	Except  bool        `json:"except,omitempty"`
	Access  bool        `json:"access"`
	ExEnab  bool        `json:"exenab,omitempty"`
	InEnab  bool        `json:"inenab,omitempty"`
	ASC     byte        `json:"asc,omitempty"`
	ASCQ    byte        `json:"ascq,omitempty"`
	// Data transfer only.
	NotBus     bool `json:"not_bus,omitempty"`
	IDValid    bool `json:"id_valid,omitempty"`
	LUValid    bool `json:"lu_valid,omitempty"`
	LUN        byte `json:"lun,omitempty"`
	BusAddress byte `json:"bus_address,omitempty"`

	SValid     bool   `json:"svalid,omitempty"`
	Invert     bool   `json:"invert,omitempty"`
	ED         bool   `json:"ed,omitempty"`
	MediumType byte   `json:"medium_type,omitempty"` // 1 data, 2 cleaning, 4 WORM …
	Source     uint16 `json:"source,omitempty"`      // valid when SValid

	VolumeTag    string `json:"volume_tag,omitempty"` // primary (barcode)
	VolumeSeq    uint16 `json:"volume_seq,omitempty"`
	AltVolumeTag string `json:"alt_volume_tag,omitempty"`

	DeviceID *DeviceID `json:"device_id,omitempty"`

	// Cut: the changer's answer ended inside this descriptor. The fixed
	// fields are valid; a volume tag is kept only if it is known to be
	// whole (its identifier ended before the cut), the device identifier
	// only if it arrived entirely.
	Cut bool `json:"cut,omitempty"`
	// TagCut: a volume tag was requested but its identifier was cut off.
	TagCut bool `json:"tag_cut,omitempty"`
}

func (e Element) String() string {
	s := fmt.Sprintf("%s 0x%04X", e.Type, e.Address)
	if e.Full {
		s += " full"
		if e.VolumeTag != "" {
			s += " " + e.VolumeTag
		}
		if e.SValid {
			s += fmt.Sprintf(" (from 0x%04X)", e.Source)
		}
	} else {
		s += " empty"
	}
	if e.Except {
		s += " EXCEPT " + MakeASCQ(e.ASC, e.ASCQ).String()
	}
	if e.DeviceID != nil {
		s += " [" + e.DeviceID.String() + "]"
	}
	return s
}

// ElementStatus is a decoded READ ELEMENT STATUS response.
type ElementStatus struct {
	FirstAddress uint16 `json:"first_address"`
	Available    uint16 `json:"available"`
	// ReportBytes is the byte count of report available; when larger than
	// what was received, the answer was truncated by the allocation length.
	ReportBytes uint32    `json:"report_bytes"`
	Truncated   bool      `json:"truncated,omitempty"`
	Elements    []Element `json:"elements"`

	received int // report bytes that arrived (after the 8-byte header)
}

func volTag(b []byte) (string, uint16) {
	tag := strings.TrimRight(string(b[:32]), " \x00")
	return asciiField([]byte(tag)), binary.BigEndian.Uint16(b[34:36])
}

// ParseElementStatus decodes READ ELEMENT STATUS data: the 8-byte header,
// then per element type a page header and descriptors. A response cut by
// the allocation length is decoded as far as whole descriptors reach and
// marked Truncated.
func ParseElementStatus(b []byte) (*ElementStatus, error) {
	if len(b) < 8 {
		return nil, short("READ ELEMENT STATUS header", 8, len(b))
	}
	es := &ElementStatus{
		FirstAddress: binary.BigEndian.Uint16(b[0:2]),
		Available:    binary.BigEndian.Uint16(b[2:4]),
		ReportBytes:  uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]),
	}
	body := b[8:]
	es.received = min(len(body), int(es.ReportBytes))
	if int(es.ReportBytes) > len(body) {
		es.Truncated = true
	} else {
		body = body[:es.ReportBytes]
	}
	for len(body) > 0 {
		if len(body) < 8 {
			es.Truncated = true
			break
		}
		typ := ElementType(body[0] & 0x0F)
		pvol := body[1]&0x80 != 0
		avol := body[1]&0x40 != 0
		dl := int(binary.BigEndian.Uint16(body[2:4]))
		count := int(uint32(body[5])<<16 | uint32(body[6])<<8 | uint32(body[7]))
		body = body[8:]
		if dl < 12 {
			if count == 0 {
				continue
			}
			return es, fmt.Errorf("element status page (%s): descriptor length %d is below the minimum of 12", typ, dl)
		}
		page := body
		if count < len(page) {
			page = page[:count]
		} else if count > len(page) {
			es.Truncated = true
		}
		for len(page) >= dl {
			es.Elements = append(es.Elements, parseElement(page[:dl], typ, pvol, avol))
			page = page[dl:]
		}
		if len(page) > 0 {
			es.Truncated = true
			// The answer ends inside a descriptor (some changers, e.g.
			// tgt, send fewer bytes than their own byte counts say). The
			// element is kept when its fixed part arrived; what lies past
			// the cut (the DVCID identifier, maybe the volume tag) is left
			// out and the element is marked Cut.
			if len(page) >= 12 {
				e := parseElement(page, typ, pvol, avol)
				e.Cut = true
				es.Elements = append(es.Elements, e)
			}
		}
		if count >= len(body) {
			break
		}
		body = body[count:]
	}
	return es, nil
}

func parseElement(d []byte, typ ElementType, pvol, avol bool) Element {
	e := Element{
		Type:       typ,
		Address:    binary.BigEndian.Uint16(d[0:2]),
		Full:       d[2]&0x01 != 0,
		ImpExp:     d[2]&0x02 != 0,
		Except:     d[2]&0x04 != 0,
		Access:     d[2]&0x08 != 0,
		ASC:        d[4],
		ASCQ:       d[5],
		SValid:     d[9]&0x80 != 0,
		Invert:     d[9]&0x40 != 0,
		ED:         d[9]&0x08 != 0,
		MediumType: d[9] & 0x07,
		Source:     binary.BigEndian.Uint16(d[10:12]),
	}
	if typ == ElementImportExport {
		e.ExEnab = d[2]&0x10 != 0
		e.InEnab = d[2]&0x20 != 0
	}
	if typ == ElementDataTransfer {
		e.NotBus = d[6]&0x80 != 0
		e.IDValid = d[6]&0x20 != 0
		e.LUValid = d[6]&0x10 != 0
		e.LUN = d[6] & 0x07
		e.BusAddress = d[7]
	}
	off := 12
	if pvol && off+36 <= len(d) {
		e.VolumeTag, e.VolumeSeq = volTag(d[off : off+36])
		off += 36
	} else if pvol {
		// A cut descriptor: the identifier is whole only if it ended
		// (padding) before the cut.
		tag := d[off:]
		if n := len(tag); n > 0 && (tag[n-1] == ' ' || tag[n-1] == 0) || n >= 32 {
			e.VolumeTag = asciiField([]byte(strings.TrimRight(string(tag[:min(n, 32)]), " \x00")))
		} else {
			e.TagCut = true
		}
		return e
	}
	if avol && off+36 <= len(d) {
		e.AltVolumeTag, _ = volTag(d[off : off+36])
		off += 36
	}
	if typ == ElementDataTransfer && off+4 <= len(d) {
		idl := int(d[off+3])
		if idl > 0 && off+4+idl <= len(d) {
			raw := d[off+4 : off+4+idl]
			id := &DeviceID{CodeSet: d[off] & 0x0F, Type: d[off+1] & 0x0F, Raw: append([]byte(nil), raw...)}
			if id.Type == 1 && len(raw) >= 24 {
				id.Vendor = asciiField(raw[0:8])
				id.Product = asciiField(raw[8:24])
				id.Serial = strings.TrimSpace(asciiField(raw[24:]))
			} else if id.CodeSet == 2 || id.CodeSet == 3 {
				id.Serial = strings.TrimSpace(asciiField(raw))
			}
			e.DeviceID = id
		}
	}
	return e
}

// ReadElementStatus runs one READ ELEMENT STATUS and decodes it. If the
// report was cut by the allocation length, it is re-issued once with the
// length the device reported.
func (d *Device) ReadElementStatus(o ReadElementStatusOpts) (*ElementStatus, error) {
	if o.Count == 0 {
		o.Count = 0xFFFF
	}
	if o.Alloc == 0 {
		o.Alloc = 0xFFFF // some changers only use the lower 2 bytes (§6.3)
	}
	for try := 0; ; try++ {
		b, err := d.dataIn(ReadElementStatusCDB(o), int(o.Alloc))
		if err != nil {
			return nil, err
		}
		es, err := ParseElementStatus(b)
		if err != nil {
			return nil, &CommandError{Addr: d.Addr(), Op: "READ ELEMENT STATUS", Err: err}
		}
		need := es.ReportBytes + 8
		if !es.Truncated || try > 0 || need <= o.Alloc || need > 0xFFFFFF {
			return es, nil
		}
		o.Alloc = need
	}
}

// Inventory reads every element type separately with volume tags, and the
// drives' identifiers (DVCID). Changers that cannot return DVCID together
// with VOLTAG (an ILLEGAL REQUEST, or an answer cut short as tgt's is) get
// a query without DVCID and a DVCID-only one whose whole identifiers are
// merged. A descriptor cut at its end is kept (see Element.Cut); an
// answer that still misses elements, or the barcode of a full element, is
// an error naming the changer.
func (d *Device) Inventory() ([]Element, error) {
	var out []Element
	for _, t := range []ElementType{ElementTransport, ElementStorage, ElementImportExport, ElementDataTransfer} {
		o := ReadElementStatusOpts{Type: t, VolTag: true, DVCID: t == ElementDataTransfer}
		es, err := d.ReadElementStatus(o)
		if t == ElementDataTransfer && (err != nil && IsIllegalRequest(err) || err == nil && es.Truncated) {
			first := es
			o.DVCID = false
			es, err = d.ReadElementStatus(o)
			if err == nil {
				if first != nil {
					mergeIDs(es.Elements, first.Elements)
				}
				if ids, err2 := d.ReadElementStatus(ReadElementStatusOpts{Type: t, DVCID: true}); err2 == nil {
					mergeIDs(es.Elements, ids.Elements)
				}
				if first != nil && len(first.Elements) > len(es.Elements) {
					// The query without DVCID lost more than the one with it.
					mergeIDs(first.Elements, es.Elements)
					es = first
				}
			}
		}
		if err != nil {
			return nil, err
		}
		n := 0
		for _, e := range es.Elements {
			if e.Type != t {
				continue
			}
			if e.Full && e.TagCut {
				return nil, fmt.Errorf("%s: READ ELEMENT STATUS (%s): the answer was cut inside the volume tag of element 0x%04X, so its barcode is unknown; the changer sends fewer bytes than its byte count says", d.Addr(), t, e.Address)
			}
			out = append(out, e)
			n++
		}
		if es.Truncated && n < int(es.Available) {
			return nil, fmt.Errorf("%s: READ ELEMENT STATUS (%s): the changer reports %d elements but its answer holds only %d (cut short: %d of %d report bytes arrived)", d.Addr(), t, es.Available, n, es.received, es.ReportBytes)
		}
	}
	return out, nil
}

// mergeIDs copies whole device identifiers from src to the elements of dst
// with the same address that lack one.
func mergeIDs(dst, src []Element) {
	for i := range dst {
		if dst[i].DeviceID != nil {
			continue
		}
		for _, x := range src {
			if x.Address == dst[i].Address && x.DeviceID != nil {
				dst[i].DeviceID = x.DeviceID
			}
		}
	}
}

// MoveMedium moves a cartridge from src to dst (element addresses) with
// transport 0 (the default picker).
func (d *Device) MoveMedium(transport, src, dst uint16) error {
	return d.noData(MoveMediumCDB(transport, src, dst, false))
}

// InitializeElementStatus makes the changer re-inventory (may take minutes).
func (d *Device) InitializeElementStatus() error { return d.noData(InitializeElementStatusCDB()) }

// ElementAddressAssignment is mode page 0x1D of a changer.
type ElementAddressAssignment struct {
	FirstTransport    uint16 `json:"first_transport"`
	NumTransport      uint16 `json:"num_transport"`
	FirstStorage      uint16 `json:"first_storage"`
	NumStorage        uint16 `json:"num_storage"`
	FirstImportExport uint16 `json:"first_import_export"`
	NumImportExport   uint16 `json:"num_import_export"`
	FirstDataTransfer uint16 `json:"first_data_transfer"`
	NumDataTransfer   uint16 `json:"num_data_transfer"`
}

// ElementAddressAssignmentCDB is `1A 08 1D 00 FF 00` (DBD=1).
func ElementAddressAssignmentCDB() []byte {
	return ModeSense6CDB(true, PageControlCurrent, 0x1D, 0, 0xFF)
}

// ParseElementAddressPage decodes page 0x1D from a MODE SENSE(6) response.
func ParseElementAddressPage(b []byte) (*ElementAddressAssignment, error) {
	m, err := ParseModeSense6(b)
	if err != nil {
		return nil, err
	}
	p, ok := m.Page(0x1D)
	if !ok {
		return nil, fmt.Errorf("MODE SENSE: no element address assignment page (0x1D) in the answer")
	}
	if len(p.Data) < 18 {
		return nil, short("element address assignment page", 18, len(p.Data))
	}
	u := func(i int) uint16 { return binary.BigEndian.Uint16(p.Data[i : i+2]) }
	return &ElementAddressAssignment{
		FirstTransport: u(2), NumTransport: u(4),
		FirstStorage: u(6), NumStorage: u(8),
		FirstImportExport: u(10), NumImportExport: u(12),
		FirstDataTransfer: u(14), NumDataTransfer: u(16),
	}, nil
}

// ElementAddresses reads mode page 0x1D.
func (d *Device) ElementAddresses() (*ElementAddressAssignment, error) {
	b, err := d.dataIn(ElementAddressAssignmentCDB(), 0xFF)
	if err != nil {
		return nil, err
	}
	a, err := ParseElementAddressPage(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "MODE SENSE(6)", Err: err}
	}
	return a, nil
}
