package keys

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// defaultIV is the RFC 3394 §2.2.3.1 default initial value.
var defaultIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// Wrap wraps data under kek with the RFC 3394 AES key wrap and the default
// IV. kek must be 16, 24 or 32 bytes (AES-128/192/256); data must be at least
// 16 bytes and a multiple of 8. The result is len(data)+8 bytes. Neither
// argument is modified.
func Wrap(kek, data []byte) ([]byte, error) {
	if err := checkKEKLen(kek); err != nil {
		return nil, err
	}
	if len(data) < 16 || len(data)%8 != 0 {
		return nil, fmt.Errorf("key wrap: data to wrap must be at least 16 bytes and a multiple of 8 bytes; got %d bytes", len(data))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key wrap: %d-byte KEK rejected by AES", len(kek))
	}
	n := len(data) / 8
	out := make([]byte, 8+len(data))
	copy(out[:8], defaultIV[:])
	copy(out[8:], data)
	var b [16]byte
	defer clear(b[:])
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			copy(b[:8], out[:8])
			copy(b[8:], r)
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(r, b[8:])
		}
	}
	return out, nil
}

// Unwrap reverses Wrap: it unwraps an RFC 3394 wrapped key (at least 24
// bytes, a multiple of 8) under kek (16, 24 or 32 bytes) and checks the
// default IV in constant time. Every failure caused by the wrapped input is
// an *UnwrapError whose KEKID is KEKIDOf(kek); a failed integrity check
// matches errors.Is(err, ErrIntegrity). On failure nothing is returned and
// the intermediate buffer is zeroed.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	if err := checkKEKLen(kek); err != nil {
		return nil, err
	}
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, &UnwrapError{KEKID: KEKIDOf(kek), Err: &FormatError{
			What: "wrapped key", Want: "at least 24 bytes and a multiple of 8 bytes", Got: len(wrapped), Unit: "bytes"}}
	}
	plain, ok := unwrapRaw(kek, wrapped)
	if !ok {
		return nil, &UnwrapError{KEKID: KEKIDOf(kek), Err: ErrIntegrity}
	}
	return plain, nil
}

// unwrapRaw does the RFC 3394 unwrap; lengths must already be checked.
func unwrapRaw(kek, wrapped []byte) ([]byte, bool) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, false
	}
	n := len(wrapped)/8 - 1
	var a [8]byte
	copy(a[:], wrapped[:8])
	r := make([]byte, 8*n)
	copy(r, wrapped[8:])
	var b [16]byte
	defer clear(b[:])
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
			ri := r[8*(i-1) : 8*i]
			copy(b[8:], ri)
			block.Decrypt(b[:], b[:])
			copy(a[:], b[:8])
			copy(ri, b[8:])
		}
	}
	if subtle.ConstantTimeCompare(a[:], defaultIV[:]) != 1 {
		clear(r)
		return nil, false
	}
	return r, true
}

func checkKEKLen(kek []byte) error {
	switch len(kek) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("key wrap: KEK must be 16, 24 or 32 bytes (AES-128/192/256); got %d bytes", len(kek))
}
