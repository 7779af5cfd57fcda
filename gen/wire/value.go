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
//
// The forms JSON-like state is mostly made of (small non-negative
// integers, strings under 256 bytes, small maps, float64) are read here
// without a further call; the rest in readOther.
func (r *Reader) ReadValue() (any, error) {
	if r.off >= len(r.buf) {
		return nil, r.eof("input")
	}
	switch c := r.buf[r.off]; {
	case c <= 0x7f: // boxing an integer below 256 is free
		r.off++
		return int64(c), nil
	case c&0xe0 == 0xa0:
		r.off++
		return r.strValue(int(c & 0x1f))
	case c&0xf0 == 0x80:
		r.off++
		n, err := r.checkLen(uint64(c&0x0f), 2, "map")
		if err != nil {
			return nil, err
		}
		m, err := r.mapOf(n)
		if err != nil {
			return nil, err
		}
		return m, nil
	case c == 0xcb && len(r.buf)-r.off > 8:
		f := math.Float64frombits(binary.BigEndian.Uint64(r.buf[r.off+1:]))
		r.off += 9
		return r.floatValue(f), nil
	case c == 0xd9 && len(r.buf)-r.off > 1: // str8: text too long for a fixstr
		r.off += 2
		return r.strValue(int(r.buf[r.off-1]))
	}
	return r.readOther()
}

// readOther reads the value forms ReadValue does not.
func (r *Reader) readOther() (any, error) {
	c := r.buf[r.off]
	switch {
	case c == 0xd9 || c == 0xda || c == 0xdb:
		r.off++
		n, err := r.length(1<<(c-0xd9), 1, "str")
		if err != nil {
			return nil, err
		}
		return r.strValue(n)
	case c == 0xde || c == 0xdf:
		m, err := r.readMap()
		if err != nil {
			return nil, err
		}
		return m, nil
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		n, err := r.ReadArrayHeader()
		if err != nil {
			return nil, err
		}
		a, err := r.arrayOf(n)
		if err != nil {
			return nil, err
		}
		return r.box().boxArray(a), nil
	case c == 0xc0:
		r.off++
		return nil, nil
	case c == 0xc2 || c == 0xc3:
		r.off++
		return c == 0xc3, nil
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
	return r.floatValue(f), nil
}

// strValue reads the n bytes of a str whose header has been read.
func (r *Reader) strValue(n int) (any, error) {
	if n > len(r.buf)-r.off {
		return nil, r.eof("str")
	}
	if n == 0 {
		return "", nil
	}
	r.off += n
	s := r.str(n)
	if !textASCII(s) && !utf8.ValidString(s) {
		return nil, r.errorf(errUTF8)
	}
	return r.box().boxString(s), nil
}

// floatValue boxes f, or gives nil for a NaN or an infinity, as serde_json
// reads them: JSON has no NaN.
func (r *Reader) floatValue(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return r.box().boxFloat(f)
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
	return r.mapOf(n)
}

// mapOf reads the n entries of a map whose header has been read (and n
// checked against the bytes that remain).
func (r *Reader) mapOf(n int) (map[string]any, error) {
	if err := r.Enter(); err != nil {
		return nil, err
	}
	// A map of up to 8 entries fits the one group a small map has, which
	// its first entry allocates whatever the hint; an empty literal takes
	// the runtime's shorter path for small maps to the same result.
	var m map[string]any
	if n <= 8 {
		m = map[string]any{}
	} else {
		m = make(map[string]any, CapHint(n))
	}
	for range n {
		k, err := r.key()
		if err != nil {
			return nil, err
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

// key reads a map key, which must be a valid UTF-8 str.
func (r *Reader) key() (string, error) {
	k, ok := r.fixstr()
	if !ok {
		var err error
		if k, err = r.ReadString(); err != nil {
			return "", err
		}
	}
	if !isASCII(k) && !utf8.ValidString(k) {
		return "", atKey(k, r.errorf("%s in a map key", errUTF8))
	}
	return k, nil
}

// fixstr reads a fixstr, the form of nearly every key, if one is next
// and whole; else it reads nothing and reports false.
func (r *Reader) fixstr() (string, bool) {
	if r.off >= len(r.buf) {
		return "", false
	}
	c := r.buf[r.off]
	n := int(c & 0x1f)
	if c&0xe0 != 0xa0 || n >= len(r.buf)-r.off {
		return "", false
	}
	r.off += 1 + n
	return r.str(n), true
}

// arrayOf reads the n elements of an array whose header has been read.
// Small arrays take their elements from a slab, capped at their length so
// that an append by the caller copies instead of overwriting a neighbour.
func (r *Reader) arrayOf(n int) ([]any, error) {
	if err := r.Enter(); err != nil {
		return nil, err
	}
	var a []any
	switch {
	case n == 0:
		a = []any{}
	case n <= maxSlabArray:
		a = r.box().elems.take(n)
	default:
		a = make([]any, 0, CapHint(n))
	}
	for i := range n {
		v, err := r.ReadValue()
		if err != nil {
			return nil, atIndex(i, err)
		}
		if i < len(a) { // the slots a slab gave, filled in place
			a[i] = v
		} else {
			a = append(a, v)
		}
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
// to inline: a call per string would cost more than the check. textASCII
// is faster for long texts.
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

// textASCII is isASCII for strings of any length: a long one is read 32
// bytes per round, then its last 32, which may overlap.
func textASCII(s string) bool {
	if len(s) < 64 {
		return isASCII(s)
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	var or uint64
	for i := 0; i+32 <= len(b); i += 32 {
		w := b[i : i+32 : i+32]
		or |= binary.LittleEndian.Uint64(w) | binary.LittleEndian.Uint64(w[8:]) |
			binary.LittleEndian.Uint64(w[16:]) | binary.LittleEndian.Uint64(w[24:])
	}
	w := b[len(b)-32:]
	or |= binary.LittleEndian.Uint64(w) | binary.LittleEndian.Uint64(w[8:]) |
		binary.LittleEndian.Uint64(w[16:]) | binary.LittleEndian.Uint64(w[24:])
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
