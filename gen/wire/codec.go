package wire

import (
	"fmt"
	"slices"
	"strings"
)

// Marshaler is implemented by types with a generated codec.
type Marshaler interface {
	// AppendMsgpack appends the value's MessagePack encoding to b. On
	// error the returned slice holds partial output.
	AppendMsgpack(b []byte) ([]byte, error)
}

// Unmarshaler is implemented by pointers to types with a generated codec.
type Unmarshaler interface {
	// ReadMsgpack decodes one value from r into the receiver, replacing
	// every field it has.
	ReadMsgpack(r *Reader) error
}

// Unmarshal decodes b, which must hold exactly one value, into u.
func Unmarshal(b []byte, u Unmarshaler) error {
	r := NewReader(b)
	if err := u.ReadMsgpack(&r); err != nil {
		return err
	}
	if r.Len() != 0 {
		return r.errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// MissingFields reports the fields of typ whose bits are not set in seen.
func MissingFields(typ string, fields []string, seen uint64) error {
	var missing []string
	for i, f := range fields {
		if seen&(1<<i) == 0 {
			missing = append(missing, f)
		}
	}
	return &pathError{typ: typ, err: fmt.Errorf("%w: missing field %s", ErrMalformed, strings.Join(missing, ", "))}
}

// ShortArray reports a positional record with fewer elements than fields.
func ShortArray(typ string, n, want int) error {
	return &pathError{typ: typ, err: fmt.Errorf("%w: positional record of %d fields, want %d", ErrMalformed, n, want)}
}

// CapHint bounds the capacity a decoder allocates up front for n declared
// elements. A declared count is only checked against the bytes that
// remain, and one byte of input can declare an element that takes dozens
// of bytes in memory; growing by append past this bound keeps memory
// proportional to what was actually decoded.
func CapHint(n int) int { return min(n, 256) }

// SortedKeys returns the keys of m in ascending byte order, as map keys are
// written.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ReadSlice reads an array whose elements read reads. A nil reads as an
// empty slice; the result is never nil.
func ReadSlice[T any](r *Reader, read func(*Reader, *T) error) ([]T, error) {
	if r.TryNil() {
		return []T{}, nil
	}
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, err
	}
	if err := r.Enter(); err != nil {
		return nil, err
	}
	s := make([]T, 0, CapHint(n))
	var zero T
	for i := range n {
		// Reading in place: a local passed to read, an indirect call,
		// would escape and cost an allocation per element.
		s = append(s, zero)
		if err := read(r, &s[len(s)-1]); err != nil {
			return nil, atIndex(i, err)
		}
	}
	r.Leave()
	return s, nil
}

// ReadMap reads a map with string keys whose values read reads. A nil
// reads as an empty map; the result is never nil.
func ReadMap[V any](r *Reader, read func(*Reader, *V) error) (map[string]V, error) {
	if r.TryNil() {
		return map[string]V{}, nil
	}
	n, err := r.ReadMapHeader()
	if err != nil {
		return nil, err
	}
	if err := r.Enter(); err != nil {
		return nil, err
	}
	m := make(map[string]V, CapHint(n))
	var v, zero V // one v for all entries: it escapes to read
	for range n {
		k, err := r.ReadString()
		if err != nil {
			return nil, err
		}
		v = zero
		if err := read(r, &v); err != nil {
			return nil, atKey(k, err)
		}
		m[k] = v
	}
	r.Leave()
	return m, nil
}
