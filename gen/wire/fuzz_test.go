package wire

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"ddffffffff", "dfffffffff", "dbffffffff", "c6ffffffff", "c9ffffffff01",
		"9f", "8f", "81a16181a16290", "92c0a0", "cb4045000000000000", "d7ff0000000000000000",
		"c41067e5504410b1426f9247bb680e5fe0c8", "dc0010", "de0001a1",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		skipErr := r.Skip()
		r = NewReader(b)
		v, err := r.ReadValue()
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ReadValue error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if skipErr != nil {
			t.Fatalf("ReadValue read what Skip refused: %v", skipErr)
		}
		out, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("a value read back cannot be written: %v", err)
		}
		r = NewReader(out)
		again, err := r.ReadValue()
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("rewritten value reads as %#v, %v; want %#v", again, err, v)
		}
		for _, read := range []func(*Reader) error{
			func(r *Reader) error { _, err := r.ReadTime(); return err },
			func(r *Reader) error { _, err := r.ReadUUID(); return err },
			func(r *Reader) error { _, err := r.ReadBytes(); return err },
			func(r *Reader) error { _, err := r.ReadInt(32); return err },
			func(r *Reader) error { _, err := r.ReadUint(16); return err },
			func(r *Reader) error { _, err := r.ReadFloat(); return err },
		} {
			r := NewReader(b)
			if err := read(&r); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
		}
	})
}
