package wire

import "unsafe"

// Storing a string, float64, large int64 or slice in an interface allocates a
// box for it, one allocation per value; that is most of what decoding
// JSON-like values costs. A slab hands out boxes from chunks instead, one
// allocation per chunk. This relies on the representation of an empty
// interface (a type word and a pointer to the value), which has been stable
// since Go 1.4 and which TestBoxes checks.

type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType  = typeWord("")
	float64Type = typeWord(float64(0))
	int64Type   = typeWord(int64(0))
	arrayType   = typeWord([]any(nil))
)

// slab hands out boxes of T. Chunks grow from 8 to 256 values, so a small
// decode wastes little and a large one allocates rarely. A chunk stays
// alive while any interface boxed in it does; values are never changed
// after they are boxed.
type slab[T any] struct {
	free []T
	next int
}

func (s *slab[T]) box(v T, typ unsafe.Pointer) any {
	if len(s.free) == 0 {
		s.next = min(max(s.next*2, 8), 256)
		s.free = make([]T, s.next)
	}
	p := &s.free[0]
	*p = v
	s.free = s.free[1:]
	var out any
	*(*eface)(unsafe.Pointer(&out)) = eface{typ: typ, data: unsafe.Pointer(p)}
	return out
}

// boxes are the slabs of one Reader.
type boxes struct {
	strings  slab[string]
	floats   slab[float64]
	integers slab[int64]
	arrays   slab[[]any]
}

func (b *boxes) boxString(s string) any { return b.strings.box(s, stringType) }

func (b *boxes) boxFloat(f float64) any { return b.floats.box(f, float64Type) }

func (b *boxes) boxArray(a []any) any { return b.arrays.box(a, arrayType) }

func (b *boxes) boxInt(i int64) any {
	if i >= 0 && i < 256 {
		return i // the runtime boxes these without allocating
	}
	return b.integers.box(i, int64Type)
}
