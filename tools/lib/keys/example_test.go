package keys_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The director wraps a new volume key under the active KEK and stores the
// three columns; the storage daemon unwraps it by KEK id.
func ExampleKeyring() {
	kek, _ := keys.NewKEK(bytes.Repeat([]byte{1}, 32)) // normally keys.LoadKEKFile
	ring, _ := keys.NewKeyring(kek)

	volumeKey := bytes.Repeat([]byte{2}, 32) // normally ring.WrapNew()
	sk, _ := ring.Wrap(volumeKey)
	fmt.Println(sk.Scheme, sk.KEKID == kek.ID(), len(sk.Value), sk.Fingerprint == keys.Fingerprint(volumeKey))

	driveKey, _ := ring.Unwrap(sk)
	defer clear(driveKey)
	fmt.Println(bytes.Equal(driveKey, volumeKey))

	other, _ := keys.NewKEK(bytes.Repeat([]byte{3}, 32))
	wrongRing, _ := keys.NewKeyring(other)
	sk.KEKID = other.ID()
	_, err := wrongRing.Unwrap(sk)
	var ue *keys.UnwrapError
	fmt.Println(errors.As(err, &ue), ue.KEKID == other.ID(), errors.Is(err, keys.ErrIntegrity))
	// Output:
	// v1 true 54 true
	// true
	// true true true
}

// A Bareos key as the Bareos catalog stores it, and what the drive gets.
func ExampleUnwrapBareos() {
	kek, _ := keys.ParseBareosKEK("0123456789abcdefFEDCBA9876543210")
	pass, _ := keys.UnwrapBareos(kek, "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g")
	driveKey, _ := keys.BareosDriveKey(pass)
	fmt.Printf("%s %q\n", pass, driveKey[28:])
	// Output: ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef "cde\x00"
}
