package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// ReadValue reads a JSON-like value (see the package doc). A bin or an
// extension is refused: JSON has no slot for raw bytes, and serde_json
// would refuse it too. Map keys must be strings. A NaN or infinite float
// reads as nil, as serde_json reads it into a Value.
func (r *Reader) ReadValue() (any, error) {
	c, err := r.Peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f: // the commonest case, and boxing small ints is free
		r.off++
		return int64(c), nil
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
		s, err := r.ReadString()
		if err != nil || s == "" {
			return s, err
		}
		if !isASCII(s) && !utf8.ValidString(s) {
			return nil, r.errorf(errUTF8)
		}
		return r.box().boxString(s), nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		return r.readMap()
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		a, err := r.readArray()
		if err != nil {
			return nil, err
		}
		return r.box().boxArray(a), nil
	case c == 0xc0:
		r.off++
		return nil, nil
	case c == 0xc2 || c == 0xc3:
		return r.ReadBool()
	}
	i, u, f, kind, err := r.readNumber()
	if err != nil {
		return nil, r.errorf("%s in a JSON value", typeName(c))
	}
	switch kind {
	case kindInt:
		return r.box().boxInt(i), nil
	case kindUint:
		return u, nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil // as serde_json reads them: JSON has no NaN
	}
	return r.box().boxFloat(f), nil
}

func (r *Reader) box() *boxes {
	if r.boxes == nil {
		r.boxes = new(boxes)
	}
	return r.boxes
}

// ReadValueMap reads a map of JSON-like values. A nil reads as an empty
// map; the result is never nil.
func (r *Reader) ReadValueMap() (map[string]any, error) {
	if r.TryNil() {
		return map[string]any{}, nil
	}
	return r.readMap()
}

func (r *Reader) readMap() (map[string]any, error) {
	n, err := r.ReadMapHeader()
	if err != nil {
		return nil, err
	}
	if err := r.Enter(); err != nil {
		return nil, err
	}
	m := make(map[string]any, CapHint(n))
	for range n {
		k, err := r.ReadString()
		if err != nil {
			return nil, err
		}
		if !isASCII(k) && !utf8.ValidString(k) {
			return nil, atKey(k, r.errorf("%s in a map key", errUTF8))
		}
		v, err := r.ReadValue()
		if err != nil {
			return nil, atKey(k, err)
		}
		m[k] = v
	}
	r.Leave()
	return m, nil
}

func (r *Reader) readArray() ([]any, error) {
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, err
	}
	if err := r.Enter(); err != nil {
		return nil, err
	}
	a := make([]any, 0, CapHint(n))
	for i := range n {
		v, err := r.ReadValue()
		if err != nil {
			return nil, atIndex(i, err)
		}
		a = append(a, v)
	}
	r.Leave()
	return a, nil
}

// AppendValue appends a JSON-like value (see the package doc for what is
// accepted). On error the returned slice holds partial output; callers
// discard it.
func AppendValue(b []byte, v any) ([]byte, error) { return appendValue(b, v, 0) }

// AppendValueMap appends a map of JSON-like values with its keys sorted. A
// nil map is written as an empty map, never as nil.
func AppendValueMap(b []byte, m map[string]any) ([]byte, error) {
	return appendMap(b, m, 0)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case string:
		if !isASCII(x) && !utf8.ValidString(x) {
			return b, unsupported(errUTF8)
		}
		return AppendString(b, x), nil
	case bool:
		return AppendBool(b, x), nil
	case int:
		return AppendInt(b, int64(x)), nil
	case int64:
		return AppendInt(b, x), nil
	case int32:
		return AppendInt(b, int64(x)), nil
	case int16:
		return AppendInt(b, int64(x)), nil
	case int8:
		return AppendInt(b, int64(x)), nil
	case uint:
		return AppendUint(b, uint64(x)), nil
	case uint64:
		return AppendUint(b, x), nil
	case uint32:
		return AppendUint(b, uint64(x)), nil
	case uint16:
		return AppendUint(b, uint64(x)), nil
	case uint8:
		return AppendUint(b, uint64(x)), nil
	case float64:
		return appendFloat(b, x)
	case float32:
		return appendFloat(b, float64(x))
	case map[string]any:
		return appendMap(b, x, depth)
	case []any:
		if depth >= DefaultMaxDepth {
			return b, unsupported("nesting deeper than %d", DefaultMaxDepth)
		}
		b = AppendArrayHeader(b, len(x))
		var err error
		for i, e := range x {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, atIndex(i, err)
			}
		}
		return b, nil
	case json.Number:
		return appendNumber(b, x)
	case []byte:
		return b, unsupported("raw bytes in a JSON value")
	}
	return appendReflect(b, reflect.ValueOf(v), depth)
}

func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, unsupported("%v in a JSON value", f)
	}
	return AppendFloat(b, f), nil
}

func appendNumber(b []byte, n json.Number) ([]byte, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return AppendInt(b, i), nil
	}
	if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return AppendUint(b, u), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return b, unsupported("json.Number %s", quote(string(n)))
	}
	return appendFloat(b, f)
}

func appendMap(b []byte, m map[string]any, depth int) ([]byte, error) {
	if depth >= DefaultMaxDepth {
		return b, unsupported("nesting deeper than %d", DefaultMaxDepth)
	}
	b = AppendMapHeader(b, len(m))
	// One pass collects the entries, so no key is hashed twice; small
	// maps (most of them) sort on the stack by insertion, moving one-byte
	// indexes rather than entries.
	var stack [8]entry
	es := stack[:0]
	for k, v := range m {
		es = append(es, entry{k, v})
	}
	var err error
	if len(es) > len(stack) {
		slices.SortFunc(es, func(x, y entry) int { return strings.Compare(x.k, y.k) })
		for _, e := range es {
			if !isASCII(e.k) && !utf8.ValidString(e.k) {
				return b, keyError(e.k)
			}
			b = AppendString(b, e.k)
			if b, err = appendValue(b, e.v, depth+1); err != nil {
				return b, atKey(e.k, err)
			}
		}
		return b, nil
	}
	var order [8]uint8
	for i := range es {
		order[i] = uint8(i)
		for j := i; j > 0 && less(es[order[j]].k, es[order[j-1]].k); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for _, i := range order[:len(es)] {
		e := &es[i]
		if !isASCII(e.k) && !utf8.ValidString(e.k) {
			return b, keyError(e.k)
		}
		b = AppendString(b, e.k)
		if b, err = appendValue(b, e.v, depth+1); err != nil {
			return b, atKey(e.k, err)
		}
	}
	return b, nil
}

// keyError is the error of a map key that is not valid UTF-8.
func keyError(k string) error { return atKey(k, unsupported("%s in a map key", errUTF8)) }

// isASCII reports whether every byte of s is below 0x80, which nearly every
// key and value is; callers check the rest with utf8.ValidString. It ORs
// the bytes eight at a time with no branch per word, and is small enough
// to inline: a call per string would cost more than the check.
func isASCII(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	var or uint64
	for ; len(b) >= 8; b = b[8:] {
		or |= binary.LittleEndian.Uint64(b)
	}
	if len(b) >= 4 {
		or |= uint64(binary.LittleEndian.Uint32(b) | binary.LittleEndian.Uint32(b[len(b)-4:]))
	} else {
		for _, c := range b {
			or |= uint64(c)
		}
	}
	return or&0x8080808080808080 == 0
}

// less is a < b with the first bytes compared inline: map keys mostly
// differ there, and it spares a call to the runtime's compare.
func less(a, b string) bool {
	if a != "" && b != "" && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
}

type entry struct {
	k string
	v any
}

// appendReflect handles the named and composite types that the type switch
// in appendValue does not: named strings and numbers, pointers, and
// slices, arrays and string-keyed maps of JSON-like values.
func appendReflect(b []byte, v reflect.Value, depth int) ([]byte, error) {
	switch v.Kind() {
	case reflect.String:
		return appendValue(b, v.String(), depth)
	case reflect.Bool:
		return AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return AppendInt(b, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return AppendUint(b, v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(b, v.Float())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 0xc0), nil
		}
		if depth >= DefaultMaxDepth {
			return b, unsupported("nesting deeper than %d", DefaultMaxDepth)
		}
		return appendReflect(b, v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return b, unsupported("raw bytes (%s) in a JSON value", v.Type())
		}
		if depth >= DefaultMaxDepth {
			return b, unsupported("nesting deeper than %d", DefaultMaxDepth)
		}
		n := v.Len()
		b = AppendArrayHeader(b, n)
		var err error
		for i := range n {
			if b, err = appendValue(b, v.Index(i).Interface(), depth+1); err != nil {
				return b, atIndex(i, err)
			}
		}
		return b, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return b, unsupported("map with %s keys in a JSON value", v.Type().Key())
		}
		if depth >= DefaultMaxDepth {
			return b, unsupported("nesting deeper than %d", DefaultMaxDepth)
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(x, y reflect.Value) int {
			switch xs, ys := x.String(), y.String(); {
			case xs < ys:
				return -1
			case xs > ys:
				return 1
			}
			return 0
		})
		b = AppendMapHeader(b, len(keys))
		var err error
		for _, k := range keys {
			ks := k.String()
			if !isASCII(ks) && !utf8.ValidString(ks) {
				return b, keyError(ks)
			}
			b = AppendString(b, ks)
			if b, err = appendValue(b, v.MapIndex(k).Interface(), depth+1); err != nil {
				return b, atKey(ks, err)
			}
		}
		return b, nil
	case reflect.Invalid:
		return append(b, 0xc0), nil
	}
	return b, unsupported("%s in a JSON value", v.Type())
}
