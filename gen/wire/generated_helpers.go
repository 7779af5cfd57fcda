package wire

import (
	"math"
	"strconv"
)

// IntSize is the size in bits of int and uint, which generated decoders
// pass to [Reader.ReadInt] and [Reader.ReadUint] for fields of those types.
const IntSize = strconv.IntSize

// AppendFloat32 appends v as a MessagePack float32. Generated encoders use
// it for float32 fields: the value is exact in either width, and a float32
// is what the reflective decoder of vmihailenco/msgpack (which refuses a
// float64 where a float32 goes) and rmp-serde (for an f32) expect.
// JSON-like values are always written as float64 by [AppendValue].
func AppendFloat32(b []byte, v float32) []byte {
	u := math.Float32bits(v)
	return append(b, 0xca, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// ReadBin reads bytes as [Reader.ReadBytes] does, and also accepts a nil,
// which the reflective encoder writes for a nil []byte. The result is never
// nil, as with [ReadSlice].
func (r *Reader) ReadBin() ([]byte, error) {
	if r.TryNil() {
		return []byte{}, nil
	}
	return r.ReadBytes()
}

// ReadFloat32 reads a number as [Reader.ReadFloat] does, for a float32
// field: a finite value beyond float32's range is an error, as an integer
// out of range of its field is, rather than a silent infinity.
func (r *Reader) ReadFloat32() (float64, error) {
	start := r.off
	f, err := r.ReadFloat()
	if err == nil && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
		r.off = start
		return 0, r.errorf("number does not fit in float32")
	}
	return f, err
}
