package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestAppendSmallestForm(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{int64(0), "00"}, {int64(127), "7f"}, {int64(128), "cc80"}, {int64(255), "ccff"},
		{int64(256), "cd0100"}, {int64(65535), "cdffff"}, {int64(65536), "ce00010000"},
		{int64(math.MaxUint32), "ceffffffff"}, {int64(math.MaxUint32 + 1), "cf0000000100000000"},
		{int64(-1), "ff"}, {int64(-32), "e0"}, {int64(-33), "d0df"}, {int64(-128), "d080"},
		{int64(-129), "d1ff7f"}, {int64(-32769), "d2ffff7fff"}, {int64(math.MinInt64), "d38000000000000000"},
		{uint64(math.MaxUint64), "cfffffffffffffffff"},
		{42.0, "cb4045000000000000"}, {float32(1.5), "cb3ff8000000000000"},
		{"", "a0"}, {strings.Repeat("a", 31), "bf" + strings.Repeat("61", 31)},
		{strings.Repeat("a", 32), "d920" + strings.Repeat("61", 32)},
		{strings.Repeat("a", 256), "da0100" + strings.Repeat("61", 256)},
		{nil, "c0"}, {true, "c3"}, {false, "c2"},
		{[]any{}, "90"}, {map[string]any{}, "80"}, {map[string]any(nil), "80"},
		{map[string]any{"b": 1, "a": 2}, "82a16102a16201"}, // sorted keys
		{[]string{"x"}, "91a178"}, {map[string]int{"z": 1, "y": 2}, "82a17902a17a01"},
	}
	for _, tt := range tests {
		got, err := AppendValue(nil, tt.v)
		if err != nil {
			t.Fatalf("AppendValue(%#v): %v", tt.v, err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("AppendValue(%#v) = %x, want %s", tt.v, got, tt.want)
		}
	}
	if got := hex.EncodeToString(AppendArrayHeader(nil, 16)); got != "dc0010" {
		t.Errorf("array header 16 = %s", got)
	}
	if got := hex.EncodeToString(AppendMapHeader(nil, 70000)); got != "df00011170" {
		t.Errorf("map header 70000 = %s", got)
	}
	if got := hex.EncodeToString(AppendBytes(nil, []byte{1})); got != "c40101" {
		t.Errorf("bin = %s", got)
	}
}

func TestReadValueKinds(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"2a", int64(42)}, {"ff", int64(-1)}, {"cc80", int64(128)}, {"d0df", int64(-33)},
		{"cfffffffffffffffff", uint64(math.MaxUint64)}, {"cf7fffffffffffffff", int64(math.MaxInt64)},
		{"ca3fc00000", 1.5}, {"cb4045000000000000", 42.0}, {"c0", nil}, {"c3", true},
		{"a3616263", "abc"}, {"d903616263", "abc"}, {"92c0a0", []any{nil, ""}},
		{"81a16181a16290", map[string]any{"a": map[string]any{"b": []any{}}}},
	}
	for _, tt := range tests {
		b, _ := hex.DecodeString(tt.in)
		r := NewReader(b)
		got, err := r.ReadValue()
		if err != nil || !reflect.DeepEqual(got, tt.want) || r.Len() != 0 {
			t.Errorf("ReadValue(%s) = %#v, %v (rest %d), want %#v", tt.in, got, err, r.Len(), tt.want)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	tests := map[string]string{
		"array32 of 4G":     "ddffffffff",
		"map32 of 4G":       "dfffffffff",
		"str32 of 4G":       "dbffffffff",
		"bin in JSON":       "c40100",
		"ext in JSON":       "d40100",
		"int key":           "810102",
		"truncated float":   "cb4045",
		"truncated str":     "a5616263",
		"map 2 of 1 entry":  "82a16101",
		"reserved byte":     "c1",
		"empty":             "",
		"deep arrays":       strings.Repeat("91", DefaultMaxDepth+1) + "c0",
		"deep maps":         strings.Repeat("81a161", DefaultMaxDepth+1) + "c0",
		"fixarray too long": "9f01",
	}
	for name, in := range tests {
		b, _ := hex.DecodeString(in)
		r := NewReader(b)
		if _, err := r.ReadValue(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ReadValue = %v, want ErrMalformed", name, err)
		}
		r = NewReader(b)
		if err := r.Skip(); err == nil && name != "bin in JSON" && name != "ext in JSON" && name != "int key" {
			t.Errorf("%s: Skip succeeded", name)
		}
	}
	ok, _ := hex.DecodeString(strings.Repeat("91", DefaultMaxDepth-1) + "c0")
	r := NewReader(ok)
	if _, err := r.ReadValue(); err != nil {
		t.Errorf("nesting just under the bound: %v", err)
	}
}

func TestAppendRefuses(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	deep := any(nil)
	for range DefaultMaxDepth + 1 {
		deep = []any{deep}
	}
	for name, v := range map[string]any{
		"chan": make(chan int), "func": func() {}, "bytes": []byte("x"), "byte array": [2]byte{},
		"int keys": map[int]string{}, "NaN": math.NaN(), "-Inf": math.Inf(-1), "struct": struct{}{},
		"complex": complex(1, 2), "cycle": cyclic, "deep": deep, "bad json.Number": jsonNumber("1x"),
	} {
		if _, err := AppendValue(nil, v); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: AppendValue = %v, want ErrUnsupported", name, err)
		}
	}
}

func TestReadNumbersIntoFixedWidths(t *testing.T) {
	b := AppendInt(nil, 300)
	r := NewReader(b)
	if _, err := r.ReadInt(8); err == nil {
		t.Error("300 read into int8")
	}
	if v, err := r.ReadInt(16); err != nil || v != 300 {
		t.Errorf("ReadInt(16) = %d, %v", v, err)
	}
	r = NewReader(AppendInt(nil, -1))
	if _, err := r.ReadUint(64); err == nil {
		t.Error("-1 read into uint64")
	}
	r = NewReader(AppendFloat(nil, 1.5))
	if _, err := r.ReadInt(64); err == nil {
		t.Error("1.5 read into int64")
	}
	r = NewReader(AppendInt(nil, 7))
	if f, err := r.ReadFloat(); err != nil || f != 7 {
		t.Errorf("ReadFloat of an integer = %v, %v", f, err)
	}
}

func TestTimestampFormat(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "2024-01-01T00:00:00Z"},
		{time.Date(2024, 1, 1, 0, 0, 0, 120_000_000, time.UTC), "2024-01-01T00:00:00.120Z"},
		{time.Date(2024, 1, 1, 0, 0, 0, 123_456_000, time.UTC), "2024-01-01T00:00:00.123456Z"},
		{time.Date(2024, 1, 1, 0, 0, 0, 1, time.UTC), "2024-01-01T00:00:00.000000001Z"},
		{time.Date(2024, 6, 10, 6, 13, 20, 123456789, time.UTC), "2024-06-10T06:13:20.123456789Z"},
		{time.Date(2024, 1, 1, 5, 30, 0, 0, time.FixedZone("", 5*3600+1800)), "2024-01-01T00:00:00Z"},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "0000-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		got, err := AppendTimestamp(nil, tt.t)
		if err != nil || string(got) != tt.want {
			t.Errorf("AppendTimestamp(%v) = %q, %v, want %q", tt.t, got, err, tt.want)
		}
		back, err := ParseTimestamp(tt.want)
		if err != nil || !back.Equal(tt.t) {
			t.Errorf("ParseTimestamp(%q) = %v, %v, want %v", tt.want, back, err, tt.t)
		}
	}
	if _, err := AppendTimestamp(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("year 10000: %v", err)
	}
}

func TestParseTimestampLenient(t *testing.T) {
	want := time.Date(2024, 6, 10, 6, 13, 20, 123456789, time.UTC)
	for _, s := range []string{
		"2024-06-10T06:13:20.123456789Z", "2024-06-10t06:13:20.123456789z",
		"2024-06-10 06:13:20.123456789Z", "2024-06-10T06:13:20.1234567891234Z",
		"2024-06-10T08:13:20.123456789+02:00", "2024-06-10T04:43:20.123456789-01:30",
		"2024-06-10T08:13:20.123456789+0200", "2024-06-10T08:13:20.123456789+02",
	} {
		got, err := ParseTimestamp(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{
		"", "2024-06-10", "2024-06-10T06:13:20", "2024-02-30T00:00:00Z", "2024-06-10T24:00:00Z",
		"2024-06-10T06:13:20.Z", "2024-06-10T06:13:20Zjunk", "2024/06/10T06:13:20Z", "2024-06-10T06:13:20+25:00",
		"２024-06-10T06:13:20Z",
	} {
		if _, err := ParseTimestamp(s); err == nil {
			t.Errorf("ParseTimestamp(%q) succeeded", s)
		}
	}
}

func TestReadTimeForms(t *testing.T) {
	want := time.Date(2024, 6, 10, 6, 13, 20, 123456789, time.UTC)
	str, _ := AppendTime(nil, want)
	ext8 := []byte{0xd7, 0xff}
	v := uint64(want.Nanosecond())<<34 | uint64(want.Unix())
	for i := 7; i >= 0; i-- {
		ext8 = append(ext8, byte(v>>(8*i)))
	}
	for _, b := range [][]byte{str, ext8} {
		r := NewReader(b)
		got, err := r.ReadTime()
		if err != nil || !got.Equal(want) {
			t.Errorf("ReadTime(%x) = %v, %v", b, got, err)
		}
	}
}

func TestReadUUIDForms(t *testing.T) {
	id := [16]byte{0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0, 0xc8}
	for _, b := range [][]byte{AppendUUID(nil, id), AppendString(nil, "67e55044-10b1-426f-9247-bb680e5fe0c8")} {
		r := NewReader(b)
		got, err := r.ReadUUID()
		if err != nil || got != id {
			t.Errorf("ReadUUID(%x) = %v, %v", b, got, err)
		}
	}
	for _, b := range [][]byte{AppendBytes(nil, id[:15]), AppendString(nil, "nope"), {0x01}} {
		r := NewReader(b)
		if _, err := r.ReadUUID(); !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadUUID(%x) = %v, want ErrMalformed", b, err)
		}
	}
}

func TestCapHintBoundsPreallocation(t *testing.T) {
	// 100k one-byte elements: the declared count is honest, the
	// preallocation still starts small and the result is complete.
	b := AppendArrayHeader(nil, 100_000)
	b = append(b, bytes.Repeat([]byte{0x01}, 100_000)...)
	r := NewReader(b)
	v, err := r.ReadValue()
	if err != nil || len(v.([]any)) != 100_000 {
		t.Fatalf("ReadValue of 100k elements: %v", err)
	}
}

type jsonNumber = json.Number

// TestBoxes checks the interface representation that slab boxing relies
// on: boxed values compare, type-switch and survive collection like
// ordinary ones.
func TestBoxes(t *testing.T) {
	var b boxes
	var vals []any
	for i := range 1000 {
		vals = append(vals, b.boxString(strings.Repeat("s", i%40)), b.boxFloat(float64(i)+0.5), b.boxInt(int64(i)*1000-7),
			b.boxArray([]any{int64(i), "x"}))
	}
	runtime.GC()
	for i := range 1000 {
		want := []any{strings.Repeat("s", i%40), float64(i) + 0.5, int64(i)*1000 - 7, []any{int64(i), "x"}}
		for j, w := range want {
			got := vals[4*i+j]
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("box %d/%d = %#v, want %#v", i, j, got, w)
			}
			switch got.(type) {
			case string, float64, int64, []any:
			default:
				t.Fatalf("box %d/%d has type %T", i, j, got)
			}
		}
	}
}
