package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/google/uuid"
)

// A Reader decodes MessagePack from a byte slice it never modifies.
//
// Strings it returns share one private copy of the input, made when the
// first string is read: a decode costs one allocation for all its strings
// instead of one each, the input may be reused as soon as decoding is done,
// and the copy lives as long as any string read from it. Byte slices are
// copied one by one. A Reader is not safe for concurrent use; its zero
// value reads nothing.
type Reader struct {
	buf      []byte
	off      int
	depth    int
	maxDepth int
	strs     string // copy of buf once a string has been read
	boxes    *boxes // allocated by the first ReadValue that needs one
	strict   bool   // strings valid UTF-8 and floats finite, as in JSON
	shared   bool   // buf never changes: strings alias it
}

// NewReader returns a Reader over b with the default depth bound.
func NewReader(b []byte) Reader { return Reader{buf: b, maxDepth: DefaultMaxDepth} }

// NewValueReader returns a Reader over b for JSON-like records, such as a
// checkpoint whose state a generated codec reads: as with NewReader, and
// ReadString also refuses a string that is not valid UTF-8, and ReadFloat
// (so ReadFloat32) a NaN or an infinity, which JSON cannot hold, so that
// whatever is read can be written in the JSON-like form again.
func NewValueReader(b []byte) Reader {
	return Reader{buf: b, maxDepth: DefaultMaxDepth, strict: true}
}

// Share promises that the input will never change while any string read
// from it is in use (it is a cached record, say): strings then alias the
// input instead of a copy of it, which spares copying it.
func (r *Reader) Share() { r.shared = true }

// Rest returns the bytes not consumed yet.
func (r *Reader) Rest() []byte { return r.buf[r.off:] }

// Offset returns the number of bytes consumed so far.
func (r *Reader) Offset() int { return r.off }

// Len returns the number of bytes that remain.
func (r *Reader) Len() int { return len(r.buf) - r.off }

func (r *Reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, fmt.Sprintf(format, args...), r.off)
}

func (r *Reader) eof(what string) error { return r.errorf("truncated %s", what) }

// Enter records one more level of nesting and fails past the depth bound.
// Every Enter that succeeds must be paired with a Leave.
func (r *Reader) Enter() error {
	max := r.maxDepth
	if max == 0 {
		max = DefaultMaxDepth
	}
	if r.depth >= max {
		return r.errorf("nesting deeper than %d", max)
	}
	r.depth++
	return nil
}

// Leave undoes one Enter.
func (r *Reader) Leave() { r.depth-- }

// Peek returns the next byte without consuming it.
func (r *Reader) Peek() (byte, error) {
	if r.off >= len(r.buf) {
		return 0, r.eof("input")
	}
	return r.buf[r.off], nil
}

// TryNil consumes a nil and reports true if the next value is nil.
func (r *Reader) TryNil() bool {
	if r.off < len(r.buf) && r.buf[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// readN returns the next n bytes without copying them.
func (r *Reader) readN(n int, what string) ([]byte, error) {
	if n < 0 || n > len(r.buf)-r.off {
		return nil, r.eof(what)
	}
	p := r.buf[r.off : r.off+n]
	r.off += n
	return p, nil
}

// uintN reads a big-endian unsigned integer of size bytes.
func (r *Reader) uintN(size int, what string) (uint64, error) {
	p, err := r.readN(size, what)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// length reads a length of size bytes and checks that at least
// n*minBytes bytes remain, so a hostile prefix cannot make the caller
// allocate for elements that are not there.
func (r *Reader) length(size, minBytes int, what string) (int, error) {
	n, err := r.uintN(size, what)
	if err != nil {
		return 0, err
	}
	return r.checkLen(n, minBytes, what)
}

func (r *Reader) checkLen(n uint64, minBytes int, what string) (int, error) {
	if n > uint64(len(r.buf)-r.off)/uint64(minBytes) {
		return 0, r.errorf("%s declares %d elements but only %d bytes remain", what, n, len(r.buf)-r.off)
	}
	return int(n), nil
}

// ReadMapHeader reads a map header and returns its number of entries.
func (r *Reader) ReadMapHeader() (int, error) {
	n, isMap, err := r.ReadContainerHeader()
	if err != nil {
		return 0, err
	}
	if !isMap {
		r.off-- // point the message at the header
		return 0, r.errorf("array where a map was expected")
	}
	return n, nil
}

// ReadArrayHeader reads an array header and returns its number of elements.
func (r *Reader) ReadArrayHeader() (int, error) {
	n, isMap, err := r.ReadContainerHeader()
	if err != nil {
		return 0, err
	}
	if isMap {
		return 0, r.errorf("map where an array was expected")
	}
	return n, nil
}

// ReadContainerHeader reads a map or array header. Records are accepted in
// either form: rmp-serde writes structs as maps (to_vec_named) or as
// positional arrays (to_vec).
func (r *Reader) ReadContainerHeader() (n int, isMap bool, err error) {
	c, err := r.Peek()
	if err != nil {
		return 0, false, err
	}
	r.off++
	switch {
	case c&0xf0 == 0x80:
		n, err = r.checkLen(uint64(c&0x0f), 2, "map")
		return n, true, err
	case c&0xf0 == 0x90:
		n, err = r.checkLen(uint64(c&0x0f), 1, "array")
		return n, false, err
	case c == 0xde:
		n, err = r.length(2, 2, "map")
		return n, true, err
	case c == 0xdf:
		n, err = r.length(4, 2, "map")
		return n, true, err
	case c == 0xdc:
		n, err = r.length(2, 1, "array")
		return n, false, err
	case c == 0xdd:
		n, err = r.length(4, 1, "array")
		return n, false, err
	}
	r.off--
	return 0, false, r.errorf("%s where a map or array was expected", typeName(c))
}

// ReadStr reads a str and returns its bytes without copying: they alias the
// input and are valid only as long as it is. Generated decoders use it to
// match field names without allocating.
func (r *Reader) ReadStr() ([]byte, error) {
	c, err := r.Peek()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		r.off++
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xda || c == 0xdb:
		r.off++
		n, err = r.length(1<<(c-0xd9), 1, "str")
		if err != nil {
			return nil, err
		}
	default:
		return nil, r.errorf("%s where a string was expected", typeName(c))
	}
	return r.readN(n, "str")
}

// ReadString reads a str.
func (r *Reader) ReadString() (string, error) {
	p, err := r.ReadStr()
	if err != nil || len(p) == 0 {
		return "", err
	}
	s := r.str(len(p))
	if r.strict && !isASCII(s) && !utf8.ValidString(s) {
		r.off -= len(p)
		return "", r.errorf(errUTF8)
	}
	return s, nil
}

// str returns the n bytes before the read position as a string that
// aliases the Reader's private copy of the input.
func (r *Reader) str(n int) string {
	if r.shared {
		return unsafe.String(&r.buf[r.off-n], n)
	}
	if len(r.strs) != len(r.buf) {
		r.strs = string(r.buf)
	}
	return r.strs[r.off-n : r.off]
}

// ReadBytes reads a bin (or a str, which older encoders wrote for bytes)
// and returns a copy. An empty bin gives a non-nil empty slice.
func (r *Reader) ReadBytes() ([]byte, error) {
	c, err := r.Peek()
	if err != nil {
		return nil, err
	}
	if c == 0xc4 || c == 0xc5 || c == 0xc6 {
		r.off++
		n, err := r.length(1<<(c-0xc4), 1, "bin")
		if err != nil {
			return nil, err
		}
		p, err := r.readN(n, "bin")
		return append([]byte{}, p...), err
	}
	p, err := r.ReadStr()
	if err != nil {
		return nil, r.errorf("%s where bytes were expected", typeName(c))
	}
	return append([]byte{}, p...), nil
}

// ReadBool reads a boolean.
func (r *Reader) ReadBool() (bool, error) {
	c, err := r.Peek()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		r.off++
		return false, nil
	case 0xc3:
		r.off++
		return true, nil
	}
	return false, r.errorf("%s where a bool was expected", typeName(c))
}

// readNumber reads any integer or float. For integers it returns the value
// as int64 (neg true or the value fits) or uint64, for floats as float64.
func (r *Reader) readNumber() (i int64, u uint64, f float64, kind numKind, err error) {
	c, err := r.Peek()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	switch {
	case c <= 0x7f:
		r.off++
		return int64(c), uint64(c), 0, kindInt, nil
	case c >= 0xe0:
		r.off++
		return int64(int8(c)), 0, 0, kindInt, nil
	case c >= 0xcc && c <= 0xcf:
		r.off++
		v, err := r.uintN(1<<(c-0xcc), "uint")
		if err != nil {
			return 0, 0, 0, 0, err
		}
		if v > math.MaxInt64 {
			return 0, v, 0, kindUint, nil
		}
		return int64(v), v, 0, kindInt, nil
	case c >= 0xd0 && c <= 0xd3:
		r.off++
		size := 1 << (c - 0xd0)
		v, err := r.uintN(size, "int")
		if err != nil {
			return 0, 0, 0, 0, err
		}
		shift := 64 - 8*size
		return int64(v<<shift) >> shift, 0, 0, kindInt, nil
	case c == 0xca:
		r.off++
		v, err := r.uintN(4, "float32")
		return 0, 0, float64(math.Float32frombits(uint32(v))), kindFloat, err
	case c == 0xcb:
		r.off++
		v, err := r.uintN(8, "float64")
		return 0, 0, math.Float64frombits(v), kindFloat, err
	}
	return 0, 0, 0, 0, r.errorf("%s where a number was expected", typeName(c))
}

type numKind uint8

const (
	kindInt numKind = iota + 1
	kindUint
	kindFloat
)

// ReadInt reads an integer that must fit in a signed integer of the given
// bit size (8, 16, 32 or 64).
func (r *Reader) ReadInt(bits int) (int64, error) {
	start := r.off
	i, _, _, kind, err := r.readNumber()
	if err != nil {
		return 0, err
	}
	if kind != kindInt || (bits < 64 && (i < -1<<(bits-1) || i > 1<<(bits-1)-1)) {
		r.off = start
		return 0, r.errorf("number does not fit in int%d", bits)
	}
	return i, nil
}

// ReadUint reads an integer that must fit in an unsigned integer of the
// given bit size (8, 16, 32 or 64).
func (r *Reader) ReadUint(bits int) (uint64, error) {
	start := r.off
	i, u, _, kind, err := r.readNumber()
	if err != nil {
		return 0, err
	}
	if kind == kindInt && i >= 0 {
		u = uint64(i)
	} else if kind != kindUint {
		r.off = start
		return 0, r.errorf("number does not fit in uint%d", bits)
	}
	if bits < 64 && u > 1<<bits-1 {
		r.off = start
		return 0, r.errorf("number does not fit in uint%d", bits)
	}
	return u, nil
}

// ReadFloat reads a float32 or float64, or an integer (as serde does when
// it reads an f64).
func (r *Reader) ReadFloat() (float64, error) {
	start := r.off
	i, u, f, kind, err := r.readNumber()
	switch kind {
	case kindInt:
		return float64(i), err
	case kindUint:
		return float64(u), err
	}
	if r.strict && err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		r.off = start
		return 0, r.errorf("%v where a JSON number was expected", f)
	}
	return f, err
}

// ReadTime reads a timestamp: a str in RFC 3339 form (parsed leniently, see
// ParseTimestamp), or MessagePack's timestamp extension (-1), which the
// reflective encoder writes for time.Time. The result is in UTC.
func (r *Reader) ReadTime() (time.Time, error) {
	c, err := r.Peek()
	if err != nil {
		return time.Time{}, err
	}
	if c == 0xd6 || c == 0xd7 || c == 0xc7 {
		return r.readTimeExt()
	}
	start := r.off
	p, err := r.ReadStr()
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseTimestamp(string(p))
	if !ok {
		r.off = start
		return time.Time{}, r.errorf("%v %s", errTimestamp, quote(string(p)))
	}
	return t, nil
}

func (r *Reader) readTimeExt() (time.Time, error) {
	start := r.off
	c := r.buf[r.off]
	r.off++
	n := 4
	switch c {
	case 0xd7:
		n = 8
	case 0xc7:
		v, err := r.uintN(1, "ext")
		if err != nil {
			return time.Time{}, err
		}
		n = int(v)
	}
	typ, err := r.uintN(1, "ext")
	if err != nil {
		return time.Time{}, err
	}
	p, err := r.readN(n, "ext")
	if err != nil {
		return time.Time{}, err
	}
	if int8(typ) != -1 {
		r.off = start
		return time.Time{}, r.errorf("extension type %d where a timestamp was expected", int8(typ))
	}
	switch n {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(p)), 0).UTC(), nil
	case 8:
		v := binary.BigEndian.Uint64(p)
		return time.Unix(int64(v&(1<<34-1)), int64(v>>34)).UTC(), nil
	case 12:
		ns := binary.BigEndian.Uint32(p)
		return time.Unix(int64(binary.BigEndian.Uint64(p[4:])), int64(ns)).UTC(), nil
	}
	r.off = start
	return time.Time{}, r.errorf("timestamp extension of %d bytes", n)
}

// ReadUUID reads a UUID: bin of 16 bytes (how rmp-serde writes uuid::Uuid),
// or a str in any form uuid.Parse accepts.
func (r *Reader) ReadUUID() (uuid.UUID, error) {
	c, err := r.Peek()
	if err != nil {
		return uuid.UUID{}, err
	}
	start := r.off
	var id uuid.UUID
	if c == 0xc4 {
		r.off++
		n, err := r.length(1, 1, "bin")
		if err != nil {
			return id, err
		}
		p, err := r.readN(n, "bin")
		if err != nil {
			return id, err
		}
		if n != 16 {
			r.off = start
			return id, r.errorf("UUID of %d bytes", n)
		}
		copy(id[:], p)
		return id, nil
	}
	p, err := r.ReadStr()
	if err != nil {
		return id, r.errorf("%s where a UUID was expected", typeName(c))
	}
	id, err = uuid.ParseBytes(p)
	if err != nil {
		r.off = start
		return id, r.errorf("invalid UUID %s", quote(string(p)))
	}
	return id, nil
}

// Skip consumes one value of any type, nested ones included.
func (r *Reader) Skip() error {
	c, err := r.Peek()
	if err != nil {
		return err
	}
	var n int
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.off++
		return nil
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
		_, err = r.ReadStr()
		return err
	case c == 0xc4 || c == 0xc5 || c == 0xc6:
		r.off++
		n, err = r.length(1<<(c-0xc4), 1, "bin")
	case c >= 0xcc && c <= 0xd3 || c == 0xca || c == 0xcb:
		_, _, _, _, err = r.readNumber()
		return err
	case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
		r.off++
		n = 1 + 1<<(c-0xd4)
	case c >= 0xc7 && c <= 0xc9:
		r.off++
		n, err = r.length(1<<(c-0xc7), 1, "ext")
		n++ // the type byte
	case c&0xf0 == 0x80 || c&0xf0 == 0x90 || c >= 0xdc && c <= 0xdf:
		n, isMap, err := r.ReadContainerHeader()
		if err != nil {
			return err
		}
		if isMap {
			n *= 2
		}
		if err := r.Enter(); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.Skip(); err != nil {
				return err
			}
		}
		r.Leave()
		return nil
	default:
		return r.errorf("reserved byte 0x%02x", c)
	}
	if err != nil {
		return err
	}
	_, err = r.readN(n, "value")
	return err
}

func typeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || c >= 0xcc && c <= 0xd3:
		return "integer"
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		return "map"
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		return "array"
	case c&0xe0 == 0xa0 || c >= 0xd9 && c <= 0xdb:
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2 || c == 0xc3:
		return "bool"
	case c == 0xca || c == 0xcb:
		return "float"
	case c >= 0xc4 && c <= 0xc6:
		return "bin"
	case c >= 0xc7 && c <= 0xc9 || c >= 0xd4 && c <= 0xd8:
		return "extension"
	}
	return fmt.Sprintf("reserved byte 0x%02x", c)
}
