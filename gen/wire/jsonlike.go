package wire

import (
	"slices"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ValueMarshaler is implemented by types with a generated codec: they
// append themselves in the JSON-like form of a checkpoint's state, the
// bytes that [AppendValue] writes for the map[string]any they convert to.
// A struct becomes a map of its fields sorted by wire name (as map keys are
// written), a UUID the string form of [uuid.UUID.String], a time the RFC
// 3339 string of [AppendTime], a float32 a float64. What JSON cannot hold
// (raw bytes, NaN and infinities, strings and keys that are not valid
// UTF-8) gives an error wrapping [ErrUnsupported] that names the field.
type ValueMarshaler interface {
	AppendMsgpackValue(b []byte) ([]byte, error)
}

// AppendValueString appends s as a str of a JSON-like value: valid UTF-8
// only.
func AppendValueString(b []byte, s string) ([]byte, error) {
	if !isASCII(s) && !utf8.ValidString(s) {
		return b, unsupported(errUTF8)
	}
	return AppendString(b, s), nil
}

// AppendValueKey appends k as the key of a JSON-like map: valid UTF-8 only.
func AppendValueKey(b []byte, k string) ([]byte, error) {
	if !isASCII(k) && !utf8.ValidString(k) {
		return b, unsupported("%s in a map key", errUTF8)
	}
	return AppendString(b, k), nil
}

// AppendValueFloat appends f as a float64 of a JSON-like value: finite
// only.
func AppendValueFloat(b []byte, f float64) ([]byte, error) { return appendFloat(b, f) }

// AppendValueBytes refuses raw bytes, which a JSON-like value cannot hold.
func AppendValueBytes(b []byte, _ []byte) ([]byte, error) {
	return b, unsupported("raw bytes in a JSON value")
}

// AppendUUIDString appends id as a str in its canonical form
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, lower case), which
// [Reader.ReadUUID] reads back.
func AppendUUIDString(b []byte, id uuid.UUID) []byte {
	b = append(b, 0xd9, 36) // str8: 36 bytes do not fit a fixstr
	var s [36]byte
	hex := "0123456789abcdef"
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return append(b, s[:]...)
}

// FirstFields returns the bits of the first n fields of a struct, those a
// positional record of n elements holds.
func FirstFields(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return uint64(1)<<n - 1
}

// ExtraKeys returns, sorted, the keys of m that known (sorted) does not
// hold: the unknown keys a struct that keeps them writes back. A key a
// field reads (its name or an alias) is left out: the field wins.
func ExtraKeys(m map[string]any, known []string) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if _, found := slices.BinarySearch(known, k); !found {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// AppendExtra appends the entries of m under keys as JSON-like values.
func AppendExtra(b []byte, m map[string]any, keys []string) ([]byte, error) {
	b, _, err := AppendExtraBefore(b, m, keys, 0, "")
	return b, err
}

// AppendExtraBefore appends the entries of m under keys[j:] whose keys sort
// before limit (all of them when limit is ""), and returns the index of the
// first key it did not write: the unknown keys that go before a field, in
// the JSON-like form whose keys are sorted.
func AppendExtraBefore(b []byte, m map[string]any, keys []string, j int, limit string) ([]byte, int, error) {
	for ; j < len(keys) && (limit == "" || keys[j] < limit); j++ {
		var err error
		if b, err = AppendValueKey(b, keys[j]); err != nil {
			return b, j, atKey(keys[j], err)
		}
		if b, err = AppendValue(b, m[keys[j]]); err != nil {
			return b, j, atKey(keys[j], err)
		}
	}
	return b, j, nil
}

// ReadExtra reads the value of the unknown key into m, which it makes
// when nil, and returns m: how a struct keeps the keys no field reads.
func ReadExtra(r *Reader, m map[string]any, key []byte) (map[string]any, error) {
	k := string(key)
	if !isASCII(k) && !utf8.ValidString(k) {
		return m, atKey(k, r.errorf("%s in a map key", errUTF8))
	}
	v, err := r.ReadValue()
	if err != nil {
		return m, atKey(k, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m, nil
}
