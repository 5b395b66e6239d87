package keys

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Keyring holds the KEKs a daemon or tool knows, looked up by id: v1 KEKs
// (one of them active for new keys) and, for imported Bareos keys, Bareos
// KEKs. It is safe for concurrent use. It prints only ids.
type Keyring struct {
	mu     sync.RWMutex
	keks   map[string]*KEK
	bareos map[string]*BareosKEK
	active string
}

// NewKeyring returns a keyring holding keks; the first one is active.
func NewKeyring(keks ...*KEK) (*Keyring, error) {
	r := &Keyring{keks: map[string]*KEK{}, bareos: map[string]*BareosKEK{}}
	for _, k := range keks {
		if err := r.Add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Keyring) init() {
	if r.keks == nil {
		r.keks = map[string]*KEK{}
		r.bareos = map[string]*BareosKEK{}
	}
}

// Add adds a v1 KEK. The first v1 KEK added becomes the active one. Adding
// an id twice is an error.
func (r *Keyring) Add(k *KEK) error {
	if k == nil {
		return fmt.Errorf("keyring: nil KEK")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	if _, ok := r.keks[k.id]; ok {
		return fmt.Errorf("keyring: KEK %s is configured twice; list each KEK file once", k.id)
	}
	r.keks[k.id] = k
	if r.active == "" {
		r.active = k.id
	}
	return nil
}

// AddBareos adds a Bareos KEK (for unwrapping imported bareos-scheme keys).
func (r *Keyring) AddBareos(k *BareosKEK) error {
	if k == nil {
		return fmt.Errorf("keyring: nil Bareos KEK")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	if _, ok := r.bareos[k.id]; ok {
		return fmt.Errorf("keyring: Bareos KEK %s is configured twice; list each KEK once", k.id)
	}
	r.bareos[k.id] = k
	return nil
}

// SetActive makes the v1 KEK with this id the one new keys are wrapped
// under.
func (r *Keyring) SetActive(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keks[id]; !ok {
		return fmt.Errorf("keyring: cannot make KEK %s active: it is not in the keyring (it has: %s)", id, joinIDs(r.idsLocked()))
	}
	r.active = id
	return nil
}

// Active returns the active v1 KEK, or nil if the keyring has none.
func (r *Keyring) Active() *KEK {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keks[r.active]
}

// Get returns the v1 KEK with this id.
func (r *Keyring) Get(id string) (*KEK, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keks[id]
	return k, ok
}

// IDs returns the ids of all KEKs in the keyring (v1 and Bareos), sorted.
func (r *Keyring) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.idsLocked()
}

func (r *Keyring) idsLocked() []string {
	ids := make([]string, 0, len(r.keks)+len(r.bareos))
	for id := range r.keks {
		ids = append(ids, id)
	}
	for id := range r.bareos {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func joinIDs(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// String lists the ids and the active one.
func (r *Keyring) String() string {
	active := "none"
	if k := r.Active(); k != nil {
		active = k.id
	}
	return fmt.Sprintf("Keyring{active=%s ids=[%s]}", active, strings.Join(r.IDs(), " "))
}

// GoString is String.
func (r *Keyring) GoString() string { return r.String() }

// Destroy zeroes every KEK in the keyring.
func (r *Keyring) Destroy() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keks {
		k.Destroy()
	}
	for _, k := range r.bareos {
		k.Destroy()
	}
}

func (r *Keyring) activeKEK() (*KEK, error) {
	k := r.Active()
	if k == nil {
		return nil, fmt.Errorf("keyring has no active KEK; configure a KEK file")
	}
	return k, nil
}

// WrapNew makes a new random volume key, wraps it v1 under the active KEK
// and returns the stored form with its KEK id and fingerprint. The key
// bytes themselves are zeroed before WrapNew returns: whoever needs them
// later unwraps the stored key.
func (r *Keyring) WrapNew() (StoredKey, error) {
	k, err := NewVolumeKey()
	if err != nil {
		return StoredKey{}, err
	}
	defer clear(k)
	return r.Wrap(k)
}

// Wrap wraps a 32-byte drive key v1 under the active KEK.
func (r *Keyring) Wrap(driveKey []byte) (StoredKey, error) {
	kek, err := r.activeKEK()
	if err != nil {
		return StoredKey{}, err
	}
	return WrapV1(kek, driveKey)
}

// WrapV1 wraps a 32-byte drive key under kek in the v1 scheme.
func WrapV1(kek *KEK, driveKey []byte) (StoredKey, error) {
	if len(driveKey) != VolumeKeyLen {
		return StoredKey{}, &FormatError{What: "volume key", Want: "32 bytes", Got: len(driveKey), Unit: "bytes"}
	}
	w, err := Wrap(kek.b, driveKey)
	if err != nil {
		return StoredKey{}, err
	}
	return StoredKey{Scheme: SchemeV1, KEKID: kek.id, Value: EncodeV1(w), Fingerprint: Fingerprint(driveKey)}, nil
}

// UnwrapV1 unwraps a stored v1 string under kek and returns the 32-byte
// drive key. Failures are *UnwrapError naming kek's id.
func UnwrapV1(kek *KEK, value string) ([]byte, error) {
	w, err := DecodeV1(value)
	if err != nil {
		return nil, &UnwrapError{Scheme: SchemeV1, KEKID: kek.id, Err: err}
	}
	k, ok := unwrapRaw(kek.b, w)
	if !ok {
		return nil, &UnwrapError{Scheme: SchemeV1, KEKID: kek.id, Err: ErrIntegrity}
	}
	return k, nil
}

// Unwrap returns the 32-byte drive key of a stored key: for v1, the KEK is
// picked by sk.KEKID; for bareos, the 54-character form uses the Bareos
// KEK sk.KEKID (or the keyring's only Bareos KEK when sk.KEKID is empty)
// and the 43-character form needs none; the result is then BareosDriveKey.
// When sk.Fingerprint is set it must match the result. Every failure is an
// *UnwrapError; zero the result when done.
func (r *Keyring) Unwrap(sk StoredKey) ([]byte, error) {
	var key []byte
	switch sk.Scheme {
	case SchemeV1:
		if sk.KEKID == "" {
			return nil, &UnwrapError{Scheme: SchemeV1, Err: &FormatError{What: "stored v1 key", Detail: "has no KEK id",
				Hint: "a v1 key is stored with the id of the KEK that wrapped it (kek_id)"}}
		}
		kek, ok := r.Get(sk.KEKID)
		if !ok {
			return nil, &UnwrapError{Scheme: SchemeV1, KEKID: sk.KEKID, Err: &KEKNotFoundError{Needed: sk.KEKID, Have: r.IDs()}}
		}
		k, err := UnwrapV1(kek, sk.Value)
		if err != nil {
			return nil, err
		}
		key = k
	case SchemeBareos:
		var kek *BareosKEK
		if len(strings.TrimRight(sk.Value, "=")) != BareosPlainLen {
			var err error
			if kek, err = r.bareosKEK(sk.KEKID); err != nil {
				return nil, &UnwrapError{Scheme: SchemeBareos, KEKID: sk.KEKID, Err: err}
			}
		}
		p, err := UnwrapBareos(kek, sk.Value)
		if err != nil {
			return nil, err
		}
		key, _ = BareosDriveKey(p)
		clear(p)
	default:
		return nil, &UnwrapError{Scheme: sk.Scheme, KEKID: sk.KEKID, Err: &FormatError{What: "stored key", Detail: fmt.Sprintf("has unknown scheme %q", string(sk.Scheme)), Hint: `use "v1" or "bareos"`}}
	}
	if sk.Fingerprint != "" && Fingerprint(key) != sk.Fingerprint {
		clear(key)
		return nil, &UnwrapError{Scheme: sk.Scheme, KEKID: sk.KEKID, Err: &FormatError{What: "stored key",
			Detail: fmt.Sprintf("unwraps to a key whose fingerprint is not the recorded %s", sk.Fingerprint),
			Hint:   "the catalog row is inconsistent; do not load this key"}}
	}
	return key, nil
}

func (r *Keyring) bareosKEK(id string) (*BareosKEK, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id != "" {
		if k, ok := r.bareos[id]; ok {
			return k, nil
		}
		return nil, &KEKNotFoundError{Needed: id, Have: r.idsLocked()}
	}
	if len(r.bareos) == 1 {
		for _, k := range r.bareos {
			return k, nil
		}
	}
	return nil, &FormatError{What: "stored bareos key", Detail: fmt.Sprintf("is wrapped but names no KEK id, and the keyring has %d Bareos KEKs", len(r.bareos)),
		Hint: "configure exactly one Bareos KEK, or record the KEK id with the key"}
}

// Rewrap unwraps a stored key (any scheme) and wraps its drive key v1 under
// the active KEK; the fingerprint is unchanged. This is what rekey does,
// and how imported Bareos keys become v1 keys.
func (r *Keyring) Rewrap(sk StoredKey) (StoredKey, error) {
	k, err := r.Unwrap(sk)
	if err != nil {
		return StoredKey{}, err
	}
	defer clear(k)
	return r.Wrap(k)
}

// LoadKeyringFiles loads KEK files (plain, or sealed with the master
// keyset at opts.MasterKeysetPath; permissions checked) into a new
// keyring. The KEK from the file named active becomes the active one
// (active == "": the first file's). An error names the file.
func LoadKeyringFiles(paths []string, active string, opts LoadOptions) (*Keyring, error) {
	ring, err := NewKeyring()
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		kek, err := LoadKEKFile(p, opts)
		if err != nil {
			ring.Destroy()
			return nil, err
		}
		if err := ring.Add(kek); err != nil {
			ring.Destroy()
			return nil, err
		}
		if p == active || (active == "" && i == 0) {
			if err := ring.SetActive(kek.ID()); err != nil {
				ring.Destroy()
				return nil, err
			}
		}
	}
	return ring, nil
}
