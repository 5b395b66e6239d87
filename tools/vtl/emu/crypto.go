package emu

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/vtl/cart"
)

const (
	gcmNonce    = 12
	gcmTag      = 16
	gcmOverhead = gcmTag
	keySize     = 32
	maxUKAD     = 32
	maxAKAD     = 60
)

// Scope codes (SDE byte 4 b7..b5, DES byte 4).
const (
	scopePublic = 0
	scopeLocal  = 1
	scopeAll    = 2
)

// Modes.
const (
	encDisable  = 0
	encExternal = 1
	encEncrypt  = 2
	decDisable  = 0
	decRaw      = 1
	decDecrypt  = 2
	decMixed    = 3
)

// encParams is one set of data encryption parameters (§4.1). The key lives
// only here, in memory.
type encParams struct {
	scope                byte
	lock                 bool
	ceem, rdmc           byte
	ckod                 bool
	encMode, decMode     byte
	algIndex             byte
	keyFormat, kadFormat byte
	key                  []byte
	fp                   string
	fpb                  [16]byte
	aead                 cipher.AEAD
	ukad, akad           []byte
}

func (p *encParams) encrypts() bool { return p != nil && p.encMode == encEncrypt }

// checkWriteLock implements the LOCK/KIC rule of §4.4: a nexus that set
// its parameters with LOCK=1 gets 07/2A/13 on WRITE once the key instance
// counter has moved on (someone else changed the parameters).
func checkWriteLock(nx *Nexus, kic uint32) *sense {
	if nx.locked && nx.lockKIC != kic {
		return checkSense(scsi.SenseDataProtect, scsi.ASCKeyInstanceCounterChanged)
	}
	return nil
}

// nonceGen makes the 96-bit GCM nonce of each block: random (crypto/rand),
// so nonces stay unique across power cycles and cartridges that share a key.
type nonceGen struct{}

func (nonceGen) next(dst *[12]byte) {
	if _, err := rand.Read(dst[:]); err != nil {
		panic("vtl: no randomness for a GCM nonce: " + err.Error())
	}
}

// params returns the parameters that apply to nx (nil = all disabled).
func (d *Drive) params(nx *Nexus) *encParams {
	if nx.useLocal {
		return nx.local
	}
	return d.public
}

// rdmdFor says whether blocks written under p are marked not raw-readable.
func (d *Drive) rdmdFor(p *encParams) bool {
	switch d.pers.RDMCC {
	case 0b110, 0b001:
		return true
	case 0b111:
		return false
	case 0b101:
		return p.rdmc == 0b11
	}
	return p.rdmc != 0b10 // 100b: default disabled
}

func (d *Drive) writeEncrypted(p *encParams, blk []byte) error {
	need := len(blk) + gcmOverhead
	if cap(d.scratch) < need {
		d.scratch = make([]byte, need)
	}
	d.meta = cart.Meta{Flags: cart.FlagEncrypted, KADFormat: p.kadFormat, UKAD: p.ukad, AKAD: p.akad,
		Fingerprint: p.fpb, PlainLen: len(blk)}
	if d.rdmdFor(p) {
		d.meta.Flags |= cart.FlagNotRawReadable
	}
	d.nonce.next(&d.meta.Nonce)
	sealed := p.aead.Seal(d.scratch[:0], d.meta.Nonce[:], blk, p.akad)
	return d.cart.AppendBlock(&d.meta, sealed)
}

// decryptForRead applies the §4.5 table to the block (payload aliases the
// nexus buffer; decryption is in place). A probe (read-ahead) leaves the
// drive's state alone.
func (d *Drive) decryptForRead(nx *Nexus, m *cart.Meta, pay []byte, probe bool) ([]byte, *sense) {
	p := d.params(nx)
	var dec byte
	if p != nil {
		dec = p.decMode
	}
	if m.Flags&cart.FlagEncrypted == 0 {
		if dec == decDecrypt {
			return nil, checkSense(scsi.SenseDataProtect, scsi.ASCUnencryptedWhileDecrypt)
		}
		return pay, nil
	}
	switch dec {
	case decDisable:
		return nil, checkSense(scsi.SenseDataProtect, scsi.ASCUnableToDecrypt)
	case decRaw:
		if m.Flags&cart.FlagNotRawReadable != 0 {
			return nil, checkSense(scsi.SenseDataProtect, scsi.ASCQ(d.pers.NotRawReadASC))
		}
		// Raw: nonce, ciphertext, tag. The nonce sits just before the KADs
		// in the record header, so give it its own copy in front.
		out := append(nx.out[:0], m.Nonce[:]...)
		out = append(out, pay...)
		nx.out = out[:0]
		return out, nil
	}
	if p.key == nil || m.Fingerprint != p.fpb {
		if !probe {
			d.wrongKeyReads++
		}
		return nil, checkSense(scsi.SenseDataProtect, scsi.ASCIncorrectEncryptionKey)
	}
	if p.ceem == 0b11 && m.Flags&cart.FlagExternal == 0 || p.ceem == 0b10 && m.Flags&cart.FlagExternal != 0 {
		return nil, checkSense(scsi.SenseDataProtect, scsi.ASCEncryptionModeMismatch)
	}
	plain, err := p.aead.Open(pay[:0], m.Nonce[:], pay, m.AKAD)
	if err != nil {
		if !probe {
			d.tapeAlert |= taFlag(3)
		}
		return nil, checkSense(scsi.SenseDataProtect, scsi.ASCIntegrityValidationFailed)
	}
	if !probe {
		d.wrongKeyReads = 0
	}
	return plain, nil
}

// clearCKOD clears parameters set with CKOD at demount (§4.4); the other
// nexuses see 06/2A/12.
func (d *Drive) clearCKOD(by *Nexus) {
	cleared := false
	if d.public != nil && d.public.ckod {
		d.public = nil
		cleared = true
	}
	for nx := range d.nexuses {
		if nx.local != nil && nx.local.ckod {
			nx.local = nil
			if nx != by {
				nx.addUA(scsi.ASCEncParamsChangedByVendor)
			}
		}
	}
	if cleared {
		d.kic++
		d.uaOthers(by, scsi.ASCEncParamsChangedByVendor)
	}
}

// --- SECURITY PROTOCOL IN ---

func (d *Drive) spin(nx *Nexus, cdb []byte) reply {
	if len(cdb) < 12 {
		return fail(invalidCDB(0))
	}
	proto := cdb[1]
	page := be16(cdb[2:4])
	if cdb[4]&0x80 != 0 {
		return fail(invalidCDBBit(4, 7))
	}
	alloc := int(be32(cdb[6:10]))
	var b []byte
	switch proto {
	case scsi.SecProtoInfo:
		switch page {
		case scsi.PageSupportedProtos:
			b = append(nx.out[:0], 0, 0, 0, 0, 0, 0, 0, 2, 0x00, 0x20)
		case scsi.PageCertificate:
			b = append(nx.out[:0], 0, 0, 0, 0)
		default:
			return fail(invalidCDB(2))
		}
	case scsi.SecProtoTapeEncrypt:
		switch page {
		case scsi.PageTDEInSupport:
			b = append(nx.out[:0], 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x11, 0x00, 0x12, 0x00, 0x20, 0x00, 0x21)
		case scsi.PageTDEOutSupport:
			b = append(nx.out[:0], 0x00, 0x01, 0x00, 0x02, 0x00, 0x10)
		case scsi.PageDataEncCaps:
			b = d.decPage(nx.out[:0])
		case scsi.PageSupportedKeyFmts:
			b = append(nx.out[:0], 0x00, 0x11, 0x00, 0x01, 0x00)
		case scsi.PageDataEncMgmtCaps:
			b = append(nx.out[:0], 0x00, 0x12, 0x00, 0x0C, 0x01, 0x07, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, 0)
		case scsi.PageDataEncStatus:
			b = d.desPage(nx, nx.out[:0])
		case scsi.PageNextBlockEncStat:
			if s := d.ready(); s != nil {
				return fail(s)
			}
			var s *sense
			b, s = d.nbesPage(nx, nx.out[:0])
			if s != nil {
				return fail(s)
			}
		default:
			return fail(invalidCDB(2))
		}
	default:
		return fail(invalidCDB(1))
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

func (d *Drive) mounted() bool {
	if d.state == stLoading {
		d.ready()
	}
	return d.state == stReady && d.cart != nil
}

// decPage builds Data Encryption Capabilities (§3.3, §11).
func (d *Drive) decPage(b []byte) []byte {
	b = append(b, 0x00, 0x10, 0x00, 0x28, 0x09)
	b = append(b, make([]byte, 15)...)
	b1, b2 := byte(0x3A), byte(0x0C)
	if d.mounted() {
		if d.cart.Header().Density >= 0x46 {
			b1 |= 0x80
		}
		if !d.cart.Header().WriteProtected {
			b2 |= 0x80
		}
	}
	b12 := byte(0b11<<6 | 0b10<<4 | d.pers.RDMCC<<1 | 1)
	b = append(b, 0x01, 0x00, 0x00, 0x14, b1, b2, 0x00, maxUKAD, 0x00, maxAKAD, 0x00, keySize, b12,
		0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x14)
	return b
}

func appendKAD(b []byte, typ, auth byte, v []byte) []byte {
	b = append(b, typ, auth, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

// desPage builds Data Encryption Status for nx (§3.6).
func (d *Drive) desPage(nx *Nexus, b []byte) []byte {
	p := d.params(nx)
	b = append(b, 0x00, 0x20, 0, 0)
	b = append(b, make([]byte, 20)...)
	if p != nil {
		nexusScope := byte(scopePublic)
		if nx.useLocal {
			nexusScope = scopeLocal
		} else if p.scope == scopeAll {
			nexusScope = scopeAll
		}
		b[4] = nexusScope<<5 | p.scope
		b[5], b[6] = p.encMode, p.decMode
		if p.encMode != encDisable || p.decMode != decDisable {
			b[7] = p.algIndex
		}
	}
	put32(b[8:], d.kic)
	b[12] = 0x10 // PARAMETERS CONTROL 001
	if d.mounted() && d.cart.EncryptedBlocks() > 0 {
		b[12] |= 0x08
	}
	if p != nil {
		b[12] |= p.ceem << 1
		if p.encMode == encEncrypt && d.rdmdFor(p) {
			b[12] |= 0x01
		}
		b[13] = p.kadFormat
		if p.encMode == encEncrypt {
			if p.ukad != nil {
				b = appendKAD(b, 0x00, 1, p.ukad)
			}
			if p.akad != nil {
				b = appendKAD(b, 0x01, 1, p.akad)
			}
		}
	}
	put16(b[2:], len(b)-4)
	return b
}

// nbesPage builds Next Block Encryption Status (§3.7).
func (d *Drive) nbesPage(nx *Nexus, b []byte) ([]byte, *sense) {
	b = append(b, 0x00, 0x21, 0, 0)
	b = append(b, make([]byte, 12)...)
	put64(b[4:], uint64(d.pos))
	status := byte(2) // not a logical block (filemark, EOD)
	if d.pos < d.cart.EOD() && d.cart.Entry(d.pos).Kind == cart.KindBlock {
		var m cart.Meta
		if err := d.cart.ReadMeta(d.pos, &nx.meta, &m); err != nil {
			return nil, d.ioError(err).sense
		}
		if m.Flags&cart.FlagEncrypted == 0 {
			status = 3
		} else {
			p := d.params(nx)
			can := p != nil && p.key != nil && m.Fingerprint == p.fpb &&
				(p.decMode == decDecrypt || p.decMode == decMixed)
			status = 6
			aauth := byte(2)
			if can {
				status, aauth = 5, 3
			}
			b[13] = 1
			if m.Flags&cart.FlagExternal != 0 {
				b[14] |= 0x02
			}
			if m.Flags&cart.FlagNotRawReadable != 0 {
				b[14] |= 0x01
			}
			b[15] = m.KADFormat
			if len(m.UKAD) > 0 {
				b = appendKAD(b, 0x00, 1, m.UKAD)
			}
			if len(m.AKAD) > 0 {
				b = appendKAD(b, 0x01, aauth, m.AKAD)
			}
		}
	}
	b[12] = status
	put16(b[2:], len(b)-4)
	return b, nil
}

// --- SECURITY PROTOCOL OUT (§4.3 checklist) ---

func (d *Drive) spout(nx *Nexus, cdb []byte, data []byte) reply {
	if len(cdb) < 12 {
		return fail(invalidCDB(0))
	}
	// 1. protocol and page in the CDB
	if cdb[1] != scsi.SecProtoTapeEncrypt {
		return fail(invalidCDB(1))
	}
	if be16(cdb[2:4]) != scsi.PageSetDataEncryption {
		return fail(invalidCDB(2))
	}
	if cdb[4]&0x80 != 0 {
		return fail(invalidCDBBit(4, 7))
	}
	if l := d.pers.WrongKeyLimit; l > 0 && d.wrongKeyReads >= l {
		return fail(checkSense(scsi.SenseDataProtect, scsi.ASCDecryptionKeyFailLimit))
	}
	// 2. transfer length
	tl := int(be32(cdb[6:10]))
	if tl > len(data) {
		return fail(checkSense(scsi.SenseAbortedCommand, ascDataPhaseError))
	}
	p := data[:tl]
	if tl < 20 || 4+be16(p[2:4]) != tl {
		return fail(illegal(scsi.ASCParameterListLengthError))
	}
	// 3. page code
	if be16(p[0:2]) != scsi.PageSetDataEncryption {
		return fail(invalidParam(0))
	}
	// 4. scope
	scope := p[4] >> 5
	if scope > scopeAll || p[4]&0x1E != 0 {
		return fail(invalidParam(4))
	}
	lock := p[4]&1 != 0
	if scope == scopePublic {
		// Use the public parameters; everything but LOCK is ignored.
		nx.useLocal, nx.local = false, nil
		d.kic++
		nx.locked, nx.lockKIC = lock, d.kic
		return good(nil)
	}
	ceem, rdmc := p[5]>>6, p[5]>>4&3
	sdk, ckod := p[5]&0x08 != 0, p[5]&0x04 != 0
	if rdmc == 0b01 || sdk {
		return fail(invalidParam(5))
	}
	if rdmc != 0 && d.pers.RDMCC != 0b100 && d.pers.RDMCC != 0b101 {
		return fail(invalidParam(5)) // RDMC not controllable on this drive
	}
	if ckod && !d.mounted() {
		return fail(invalidParam(5)) // §4.3 item 11
	}
	// 5. modes
	encMode, decMode := p[6], p[7]
	if encMode > encEncrypt || encMode == encExternal {
		// EXTERNAL needs an M-KAD and externally encrypted data; vtl does
		// not implement it (see README).
		return fail(invalidParam(6))
	}
	if decMode > decMixed || decMode == decRaw && d.pers.RDMCC == 0b001 {
		return fail(invalidParam(7))
	}
	needKey := encMode == encEncrypt || decMode == decDecrypt || decMode == decMixed
	keyLen := be16(p[18:20])
	if 20+keyLen > tl {
		return fail(invalidParam(18))
	}
	np := &encParams{scope: scope, lock: lock, ceem: ceem, rdmc: rdmc, ckod: ckod,
		encMode: encMode, decMode: decMode, algIndex: p[8], keyFormat: p[9], kadFormat: p[10]}
	if needKey {
		// 6–8. algorithm, key format, key length
		if p[8] != 1 {
			return fail(invalidParam(8))
		}
		if p[9] != 0 {
			return fail(invalidParam(9))
		}
		if keyLen != keySize {
			return fail(invalidParam(18))
		}
		if p[10] > 2 {
			return fail(invalidParam(10))
		}
		// 9. KAD descriptors
		for off := 20 + keyLen; off < tl; {
			if tl-off < 4 {
				return fail(invalidParam(uint16(off)))
			}
			typ, l := p[off], be16(p[off+2:off+4])
			if off+4+l > tl {
				return fail(invalidParam(uint16(off + 2)))
			}
			v := p[off+4 : off+4+l]
			switch typ {
			case 0x00:
				if l > maxUKAD || np.ukad != nil {
					return fail(invalidParam(uint16(off + 2)))
				}
				np.ukad = append([]byte{}, v...)
			case 0x01:
				if l > maxAKAD || np.akad != nil {
					return fail(invalidParam(uint16(off + 2)))
				}
				np.akad = append([]byte{}, v...)
			default:
				return fail(invalidParam(uint16(off)))
			}
			off += 4 + l
		}
		np.key = append(make([]byte, 0, keySize), p[20:20+keySize]...)
		blk, err := aes.NewCipher(np.key)
		if err != nil {
			return fail(invalidParam(18))
		}
		if np.aead, err = cipher.NewGCM(blk); err != nil {
			return fail(checkSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure))
		}
		np.fp = keys.Fingerprint(np.key)
		copy(np.fpb[:], np.fp)
	} else {
		// Both clear forms: key length 0, or bareos' 32 zero bytes; any key
		// and KADs are ignored.
		np.algIndex, np.kadFormat = 0, 0
	}
	d.kic++
	nx.locked, nx.lockKIC = lock, d.kic
	if scope == scopeAll {
		d.public = np
		nx.useLocal, nx.local = false, nil
		d.uaOthers(nx, scsi.ASCEncParamsChangedByNexus)
	} else {
		nx.local, nx.useLocal = np, true
	}
	return good(nil)
}
