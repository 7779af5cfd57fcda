package wire

import (
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
