package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
)

// KeySize is the size of a key's secret: 32 bytes (AES-256).
const KeySize = 32

// A Key is one key of a Keyring: an ID, stored in the clear with every
// object it seals so that readers pick the right key, and a secret.
type Key struct {
	// ID names the key: 1 to 32 of [a-z0-9-], e.g. "2026-11". It is not
	// secret.
	ID string
	// Secret is KeySize random bytes (GenerateKey).
	Secret []byte
}

// A Keyring holds the key that seals from now on (the primary) and the
// older keys that still open what they sealed. It is immutable and safe
// for concurrent use; Rotate and Retire return new keyrings.
type Keyring struct {
	primary string
	keys    map[string][]byte // ID -> secret
	ids     []string          // in the order given, primary first
}

// Errors of keyrings.
var (
	// ErrBadKeyring: a keyring or key is malformed (see Key, ParseKeyring).
	ErrBadKeyring = errors.New("seal: bad keyring")
)

// GenerateKey returns a key with id and a secret from crypto/rand.
func GenerateKey(id string) (Key, error) {
	if err := checkID(id); err != nil {
		return Key{}, err
	}
	k := Key{ID: id, Secret: make([]byte, KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		return Key{}, err
	}
	return k, nil
}

func checkID(id string) error {
	if id == "" || len(id) > 32 {
		return fmt.Errorf("%w: key ID %q: 1 to 32 bytes", ErrBadKeyring, id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: key ID %q: only a-z, 0-9 and '-'", ErrBadKeyring, id)
		}
	}
	return nil
}

// NewKeyring returns a keyring whose primary is primary and which also
// opens what older sealed. IDs must be distinct and secrets KeySize bytes.
// The secrets are copied.
func NewKeyring(primary Key, older ...Key) (*Keyring, error) {
	kr := &Keyring{primary: primary.ID, keys: map[string][]byte{}}
	for _, k := range append([]Key{primary}, older...) {
		if err := checkID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("%w: key %q has a secret of %d bytes, not %d", ErrBadKeyring, k.ID, len(k.Secret), KeySize)
		}
		if _, dup := kr.keys[k.ID]; dup {
			return nil, fmt.Errorf("%w: key ID %q twice", ErrBadKeyring, k.ID)
		}
		kr.keys[k.ID] = bytes.Clone(k.Secret)
		kr.ids = append(kr.ids, k.ID)
	}
	return kr, nil
}

// Primary returns the ID of the key that seals.
func (kr *Keyring) Primary() string { return kr.primary }

// IDs returns the IDs of the keys, the primary first.
func (kr *Keyring) IDs() []string { return slices.Clone(kr.ids) }

// Has reports whether the keyring holds the key id.
func (kr *Keyring) Has(id string) bool { _, ok := kr.keys[id]; return ok }

func (kr *Keyring) key(id string) Key { return Key{ID: id, Secret: kr.keys[id]} }

// Rotate returns a keyring whose primary is next, keeping every key of
// kr for opening. Objects sealed from then on use next; `cairn rekey`
// (Rekey) moves the existing ones to it.
func (kr *Keyring) Rotate(next Key) (*Keyring, error) {
	older := make([]Key, len(kr.ids))
	for i, id := range kr.ids {
		older[i] = kr.key(id)
	}
	return NewKeyring(next, older...)
}

// Retire returns kr without the key id, which must not be the primary.
// Retire a key once Rekey has verified that nothing needs it (and no
// noncurrent version a recovery may read: see the package doc).
func (kr *Keyring) Retire(id string) (*Keyring, error) {
	if id == kr.primary {
		return nil, fmt.Errorf("%w: cannot retire the primary key %q", ErrBadKeyring, id)
	}
	if !kr.Has(id) {
		return nil, fmt.Errorf("%w: no key %q", ErrBadKeyring, id)
	}
	var older []Key
	for _, k := range kr.ids[1:] {
		if k != id {
			older = append(older, kr.key(k))
		}
	}
	return NewKeyring(kr.key(kr.primary), older...)
}

// PrimaryOnly returns a keyring with kr's primary key alone: what opens
// a bucket once every object is sealed with it (Verify uses it).
func (kr *Keyring) PrimaryOnly() *Keyring {
	only, _ := NewKeyring(kr.key(kr.primary))
	return only
}

// NameKey returns a secret derived from the primary key for naming
// content without revealing it (package durable names blobs with an
// HMAC under it, so that an observer of the bucket cannot test a guess of
// a blob's content against its name).
func (kr *Keyring) NameKey() []byte {
	k, err := hkdf.Key(sha256.New, kr.keys[kr.primary], nil, "cairn seal v1 content names", KeySize)
	if err != nil {
		panic(err) // only for lengths hkdf cannot make; KeySize is not one
	}
	return k
}

// keyringFile is the JSON form of a keyring.
type keyringFile struct {
	Primary string     `json:"primary"`
	Keys    []fileKeys `json:"keys"`
}

type fileKeys struct {
	ID     string `json:"id"`
	Secret []byte `json:"secret"` // base64 in JSON
}

// MaxKeyringFile bounds the size of a keyring file LoadKeyring reads.
const MaxKeyringFile = 1 << 20

// ParseKeyring parses a keyring from its JSON form:
//
//	{"primary": "2026-11",
//	 "keys": [{"id": "2026-11", "secret": "<base64 of 32 bytes>"},
//	          {"id": "2026-05", "secret": "..."}]}
//
// The primary must be one of the keys. Unknown fields are refused.
func ParseKeyring(data []byte) (*Keyring, error) {
	if len(data) > MaxKeyringFile {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrBadKeyring, len(data), MaxKeyringFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f keyringFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKeyring, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the keyring", ErrBadKeyring)
	}
	var primary *Key
	var older []Key
	for _, k := range f.Keys {
		key := Key{ID: k.ID, Secret: k.Secret}
		if k.ID == f.Primary && primary == nil {
			primary = &key
			continue
		}
		older = append(older, key)
	}
	if primary == nil {
		return nil, fmt.Errorf("%w: primary %q is none of the keys", ErrBadKeyring, f.Primary)
	}
	return NewKeyring(*primary, older...)
}

// MarshalJSON returns the keyring's JSON form without its secrets (its
// primary and key IDs), so that a keyring logged or marshaled by accident
// (in an options struct, by slog's JSON handler) shows none. Export
// returns the form ParseKeyring reads.
func (kr *Keyring) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Primary string   `json:"primary"`
		Keys    []string `json:"keys"`
	}{kr.primary, kr.ids})
}

// LogValue is the keyring without its secrets, for log/slog.
func (kr *Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

// GoString is the keyring without its secrets, for %#v.
func (kr *Keyring) GoString() string { return kr.String() }

// Export returns the keyring's JSON form (ParseKeyring), secrets
// included: write it only where secrets belong.
func (kr *Keyring) Export() ([]byte, error) {
	f := keyringFile{Primary: kr.primary}
	for _, id := range kr.ids {
		f.Keys = append(f.Keys, fileKeys{ID: id, Secret: kr.keys[id]})
	}
	return json.MarshalIndent(f, "", "  ")
}

// LoadKeyring reads a keyring file (ParseKeyring). The file should be
// readable by its owner alone; LoadKeyring does not check.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyringFile+1))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	kr, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// String describes the keyring without its secrets.
func (kr *Keyring) String() string {
	return fmt.Sprintf("keyring(primary %s, keys %v)", kr.primary, kr.ids)
}
