package wire

import (
	"math"
)

// AppendNil appends the MessagePack nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends a MessagePack boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendInt appends v in the smallest MessagePack integer form that holds it.
// Non-negative values use the unsigned forms, as rmp-serde does.
func AppendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return AppendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xd3, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// AppendUint appends v in the smallest MessagePack unsigned form.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, 0xcf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// AppendFloat appends v as a MessagePack float64, always: Blazen's JSON
// values hold f64 only, and a float must never come back as an integer.
func AppendFloat(b []byte, v float64) []byte {
	u := math.Float64bits(v)
	return append(b, 0xcb, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
		byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// AppendString appends s as a MessagePack str.
func AppendString(b []byte, s string) []byte {
	b = appendLen(b, len(s), 0xa0, 31, 0xd9, 0xda, 0xdb)
	return append(b, s...)
}

// AppendBytes appends p as MessagePack bin. A nil p is an empty bin.
func AppendBytes(b []byte, p []byte) []byte {
	b = appendLen(b, len(p), 0, -1, 0xc4, 0xc5, 0xc6)
	return append(b, p...)
}

// AppendMapHeader appends the header of a map with n entries.
func AppendMapHeader(b []byte, n int) []byte {
	return appendLen(b, n, 0x80, 15, 0, 0xde, 0xdf)
}

// AppendArrayHeader appends the header of an array with n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	return appendLen(b, n, 0x90, 15, 0, 0xdc, 0xdd)
}

// appendLen writes a length prefix: the fix form (fix|n) when n <= fixMax,
// else the 8-bit form (when c8 != 0), the 16-bit or the 32-bit one.
func appendLen(b []byte, n int, fix byte, fixMax int, c8, c16, c32 byte) []byte {
	switch {
	case n <= fixMax:
		return append(b, fix|byte(n))
	case c8 != 0 && n <= math.MaxUint8:
		return append(b, c8, byte(n))
	case n <= math.MaxUint16:
		return append(b, c16, byte(n>>8), byte(n))
	}
	return append(b, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendUUID appends a UUID as bin of 16 bytes, as rmp-serde writes
// uuid::Uuid. Never as a string.
func AppendUUID(b []byte, id [16]byte) []byte {
	b = append(b, 0xc4, 16)
	return append(b, id[:]...)
}
