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

// take returns n values of T, with the capacity of n: appending to them
// copies rather than overwrite the values the slab hands out next.
func (s *slab[T]) take(n int) []T {
	if len(s.free) < n {
		s.next = min(max(s.next*2, 8), 256)
		s.free = make([]T, max(s.next, n))
	}
	p := s.free[:n:n]
	s.free = s.free[n:]
	return p
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

// maxSlabArray is the longest array whose elements come from a slab:
// a longer one has an allocation of its own, which it would nearly
// fill.
const maxSlabArray = 16

// boxes are the slabs of one Reader. Slab chunks are never shared
// between Readers, and each value or array handed out has slots of its
// own, so a caller changing one decoded value changes no other.
type boxes struct {
	strings  slab[string]
	floats   slab[float64]
	integers slab[int64]
	arrays   slab[[]any]
	elems    slab[any] // the elements of small arrays
	// recent holds the last short string boxed of each length mod 8:
	// an enum-like value ("assistant", "user") repeated across a list
	// of records shares one box. A box is immutable, so sharing it is
	// not visible to callers.
	recent [8]any
}

// maxShared is the longest string boxString looks for in recent.
const maxShared = 16

func (b *boxes) boxString(s string) any {
	if len(s) > maxShared {
		return b.strings.box(s, stringType)
	}
	last := &b.recent[len(s)%len(b.recent)]
	if prev, ok := (*last).(string); ok && prev == s {
		return *last
	}
	*last = b.strings.box(s, stringType)
	return *last
}

func (b *boxes) boxFloat(f float64) any { return b.floats.box(f, float64Type) }

func (b *boxes) boxArray(a []any) any { return b.arrays.box(a, arrayType) }

func (b *boxes) boxInt(i int64) any {
	if i >= 0 && i < 256 {
		return i // the runtime boxes these without allocating
	}
	return b.integers.box(i, int64Type)
}
