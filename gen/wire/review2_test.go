package wire_test

// Second review: Reader.Share and NewValueReader, from the outside.

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/gen/wire"
)

// A plain Reader's strings survive the input being overwritten (they
// share a private copy); a shared Reader's alias the input, as Share
// documents; neither changes what it reads.
func TestReview2ShareAliases(t *testing.T) {
	in := map[string]any{"k": "value", "long": strings.Repeat("x", 300), "arr": []any{"a", "a", "a"}}
	b, err := wire.AppendValueMap(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	orig := append([]byte{}, b...)
	plain := wire.NewReader(b)
	pm, err := plain.ReadValueMap()
	if err != nil {
		t.Fatal(err)
	}
	shared := wire.NewValueReader(b)
	shared.Share()
	sm, err := shared.ReadValueMap()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, orig) || !reflect.DeepEqual(pm, in) || !reflect.DeepEqual(sm, in) {
		t.Fatalf("%#v %#v", pm, sm)
	}
	for i := range b {
		if b[i] == 'v' || b[i] == 'x' {
			b[i] = 'Z'
		}
	}
	if !reflect.DeepEqual(pm, in) {
		t.Errorf("a plain Reader's strings changed with its input: %#v", pm)
	}
	if sm["k"] == "value" {
		t.Errorf("a shared Reader's strings do not alias the input (Share documents that they do)")
	}
}

// NewValueReader is strict for typed reads (ReadString, ReadFloat,
// ReadFloat32, the keys of ReadMap) but ReadValue keeps the JSON-like
// rules of the plain Reader: a NaN or infinity reads as nil, invalid
// UTF-8 is refused by both.
func TestReview2ValueReaderStrictness(t *testing.T) {
	nan := wire.AppendFloat(nil, math.NaN())
	for _, strict := range []bool{false, true} {
		read := func(b []byte) wire.Reader {
			if strict {
				return wire.NewValueReader(b)
			}
			return wire.NewReader(b)
		}
		r := read(nan)
		if v, err := r.ReadValue(); err != nil || v != nil {
			t.Errorf("strict %v: ReadValue of NaN: %v %v, want nil", strict, v, err)
		}
		r = read(nan)
		if _, err := r.ReadFloat(); (err != nil) != strict {
			t.Errorf("strict %v: ReadFloat of NaN: %v", strict, err)
		}
		r = read(wire.AppendString(nil, "\xff"))
		if _, err := r.ReadString(); (err != nil) != strict {
			t.Errorf("strict %v: ReadString of invalid UTF-8: %v", strict, err)
		}
		r = read(wire.AppendString(nil, "\xff"))
		if _, err := r.ReadValue(); err == nil {
			t.Errorf("strict %v: ReadValue of invalid UTF-8 accepted", strict)
		}
		long := wire.AppendString(wire.AppendMapHeader(nil, 1), strings.Repeat("k", 40)+"\xff")
		long = wire.AppendInt(long, 1)
		r = read(long)
		if _, err := r.ReadValue(); err == nil {
			t.Errorf("strict %v: ReadValue of a str8 key of invalid UTF-8 accepted", strict)
		}
		r = read(long)
		_, err := wire.ReadMap(&r, func(r *wire.Reader, v *int64) (err error) { *v, err = r.ReadInt(64); return })
		if (err != nil) != strict {
			t.Errorf("strict %v: ReadMap with an invalid UTF-8 key: %v", strict, err)
		}
		r = read(wire.AppendFloat(nil, 1e39))
		if _, err := r.ReadFloat32(); err == nil {
			t.Errorf("strict %v: ReadFloat32 of 1e39 accepted", strict)
		}
	}
}
