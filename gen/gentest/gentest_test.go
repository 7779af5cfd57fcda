package gentest_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn/gen/gentest"
	"github.com/cairnstore/cairn/gen/gentest/other"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
)

// The mirror types have the fields and tags of the generated types but no
// methods, so vmihailenco/msgpack encodes and decodes them by reflection.
// Field order matches, so copyValue can convert between the two.
//
// T is the type of the time slots. With time.Time the reflective encoder
// writes MessagePack's timestamp extension, which the generated decoder
// reads. The generated encoder writes a timestamp as an RFC 3339 str (the
// wire format of blazen-persist, which has no extension), and the
// reflective decoder refuses a str for a time.Time struct field (its
// registered extension decoder insists on the extension), so decoding
// generated output uses T = string: what any reader without a custom
// decoder sees.
type mirrorEverything[T any] struct {
	Str     string  `msgpack:"str"`
	Bool    bool    `msgpack:"bool"`
	Int     int     `msgpack:"int"`
	Int8    int8    `msgpack:"int8"`
	Int16   int16   `msgpack:"int16"`
	Int32   int32   `msgpack:"int32"`
	Int64   int64   `msgpack:"int64"`
	Rune    rune    `msgpack:"rune"`
	Uint    uint    `msgpack:"uint"`
	Uint8   uint8   `msgpack:"uint8"`
	Byte    byte    `msgpack:"byte"`
	Uint16  uint16  `msgpack:"uint16"`
	Uint32  uint32  `msgpack:"uint32"`
	Uint64  uint64  `msgpack:"uint64"`
	Float32 float32 `msgpack:"float32"`
	Float64 float64 `msgpack:"float64"`
	Bytes   []byte  `msgpack:"bytes"`

	Status gentest.Status `msgpack:"status"`
	Level  gentest.Level  `msgpack:"level"`
	Big    gentest.Big    `msgpack:"big"`
	Count  gentest.Count  `msgpack:"count"`
	Score  gentest.Score  `msgpack:"score"`
	Ratio  gentest.Ratio  `msgpack:"ratio"`
	Flag   gentest.Flag   `msgpack:"flag"`
	Blob   gentest.Blob   `msgpack:"blob"`

	Time     T             `msgpack:"time"`
	Duration time.Duration `msgpack:"duration"`
	ID       uuid.UUID     `msgpack:"id"`

	Any    any            `msgpack:"any"`
	Iface  interface{}    `msgpack:"iface"`
	Alias  any            `msgpack:"alias"`
	Values map[string]any `msgpack:"values"`
	Attrs  gentest.Attrs  `msgpack:"attrs"`

	Strings []string             `msgpack:"strings"`
	Tags    gentest.Tags         `msgpack:"tags"`
	Anys    []any                `msgpack:"anys"`
	Times   []T                  `msgpack:"times"`
	IDs     map[string]uuid.UUID `msgpack:"ids"`
	Scores  []gentest.Score      `msgpack:"scores"`
	Ints    map[string]int32     `msgpack:"ints"`
	Counts  gentest.Counts       `msgpack:"counts"`
	Blobs   [][]byte             `msgpack:"blobs"`

	Leaf     mirrorLeaf                      `msgpack:"leaf"`
	LeafPtr  *mirrorLeaf                     `msgpack:"leaf_ptr"`
	Items    []mirrorItem                    `msgpack:"items"`
	ItemPtrs []*mirrorItem                   `msgpack:"item_ptrs"`
	ItemMap  map[string]mirrorItem           `msgpack:"item_map"`
	Nested   map[string][]*mirrorItem        `msgpack:"nested"`
	Deep     [][]map[string][]gentest.Status `msgpack:"deep"`
	Thing    mirrorThing[T]                  `msgpack:"thing"`
	ThingPtr *mirrorThing[T]                 `msgpack:"thing_ptr"`
	Things   map[string]*mirrorThing[T]      `msgpack:"things"`
	Empty    mirrorEmpty                     `msgpack:"empty"`
	Sparse   *mirrorSparse[T]                `msgpack:"sparse"`

	Untagged string
	Long     string `msgpack:"a_wire_name_longer_than_thirty_one_bytes"`
	Note     string `msgpack:"note"`

	Skipped string `msgpack:"-"`
}

type mirrorItem struct {
	Name string       `msgpack:"name"`
	Tags gentest.Tags `msgpack:"tags"`
	Next *mirrorItem  `msgpack:"next"`
	Data any          `msgpack:"data"`
}

type mirrorLeaf struct {
	N int `msgpack:"n"`
}

type mirrorEmpty struct{}

type mirrorSparse[T any] struct {
	A     string       `msgpack:"a"`
	B     int64        `msgpack:"b"`
	C     []mirrorLeaf `msgpack:"c"`
	D     *mirrorItem  `msgpack:"d"`
	Stamp T            `msgpack:"stamp"`
}

type mirrorThing[T any] struct {
	Label string `msgpack:"label"`
	When  T      `msgpack:"when"`
}

const rounds = 300

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rounds {
		want := randomEverything(rng)
		b, err := want.AppendMsgpack(nil)
		if err != nil {
			t.Fatalf("round %d: encode: %v", i, err)
		}
		var got gentest.Everything
		if err := wire.Unmarshal(b, &got); err != nil {
			t.Fatalf("round %d: decode: %v", i, err)
		}
		assertEqual(t, i, &got, want)

		// Deterministic: the decoded value encodes to the same bytes.
		again, err := got.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round %d: re-encoding differs:\n%x\n%x", i, b, again)
		}
	}
}

// TestFromReflective decodes, with the generated codec, what the reflective
// encoder writes for the mirror: as a map and as a positional array, with
// timestamps as the extension and as strings.
func TestFromReflective(t *testing.T) {
	for _, asArray := range []bool{false, true} {
		t.Run(fmt.Sprintf("array=%v/time=ext", asArray), func(t *testing.T) {
			fromReflective[time.Time](t, asArray)
		})
		t.Run(fmt.Sprintf("array=%v/time=str", asArray), func(t *testing.T) {
			fromReflective[string](t, asArray)
		})
	}
}

func fromReflective[T any](t *testing.T, asArray bool) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range rounds {
		want := randomEverything(rng)
		var m mirrorEverything[T]
		copyValue(reflect.ValueOf(&m).Elem(), reflect.ValueOf(want).Elem())

		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		enc.UseCompactInts(true)
		enc.UseArrayEncodedStructs(asArray)
		if err := enc.Encode(&m); err != nil {
			t.Fatalf("round %d: reflective encode: %v", i, err)
		}
		var got gentest.Everything
		if err := got.UnmarshalMsgpack(buf.Bytes()); err != nil {
			t.Fatalf("round %d: generated decode: %v\n%x", i, err, buf.Bytes())
		}
		assertEqual(t, i, &got, want)
	}
}

// TestToReflective decodes, with the reflective decoder, what the generated
// codec writes.
func TestToReflective(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range rounds {
		want := randomEverything(rng)
		b, err := want.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		dec := msgpack.NewDecoder(bytes.NewReader(b))
		dec.UseLooseInterfaceDecoding(true)
		var m mirrorEverything[string]
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("round %d: reflective decode: %v\n%x", i, err, b)
		}
		var got gentest.Everything
		copyValue(reflect.ValueOf(&got).Elem(), reflect.ValueOf(&m).Elem())
		assertEqual(t, i, &got, want)
	}
}

// TestThroughMsgpackLibrary checks that msgpack.Marshal and Unmarshal use
// the generated codec (EncodeMsgpack, DecodeMsgpack) and round-trip.
func TestThroughMsgpackLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range rounds / 10 {
		want := randomEverything(rng)
		b, err := msgpack.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := want.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, direct) {
			t.Fatalf("round %d: msgpack.Marshal did not use the generated encoder", i)
		}
		var got gentest.Everything
		if err := msgpack.Unmarshal(b, &got); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		assertEqual(t, i, &got, want)

		// Nested in a reflective value, and in a slice of them.
		type holder struct {
			E  *gentest.Everything   `msgpack:"e"`
			Es []*gentest.Everything `msgpack:"es"`
		}
		hb, err := msgpack.Marshal(holder{E: want, Es: []*gentest.Everything{want, want}})
		if err != nil {
			t.Fatal(err)
		}
		var h holder
		if err := msgpack.Unmarshal(hb, &h); err != nil {
			t.Fatalf("round %d: nested: %v", i, err)
		}
		assertEqual(t, i, h.E, want)
		assertEqual(t, i, h.Es[1], want)
	}
}

func TestWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var want gentest.Wide
	fill(rng, reflect.ValueOf(&want).Elem(), 0)
	b, err := want.AppendMsgpack(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xde || b[1] != 0 || b[2] != 64 {
		t.Errorf("header % x, want map16 of 64", b[:3])
	}
	var got gentest.Wide
	if err := got.UnmarshalMsgpack(b); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// From the reflective encoder, which writes the same field names.
	type mirrorWide gentest.Wide // a defined type has none of the methods
	rb, err := msgpack.Marshal((*mirrorWide)(&want))
	if err != nil {
		t.Fatal(err)
	}
	got = gentest.Wide{}
	if err := got.UnmarshalMsgpack(rb); err != nil || got != want {
		t.Errorf("from reflective: %v, %+v", err, got)
	}
	// The last field missing is reported.
	err = got.UnmarshalMsgpack(encodeMap(t, "F00", 1))
	if err == nil || !strings.HasSuffix(err.Error(), "F62, F63") {
		t.Errorf("missing fields: %v", err)
	}
}

func TestNilsAreWrittenEmpty(t *testing.T) {
	var zero gentest.Everything
	b, err := zero.AppendMsgpack(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got gentest.Everything
	if err := got.UnmarshalMsgpack(b); err != nil {
		t.Fatal(err)
	}
	if got.Bytes == nil || got.Strings == nil || got.Values == nil || got.Nested == nil || got.Blob == nil {
		t.Errorf("nil slices and maps must read back empty, not nil: %+v", got)
	}
	if got.LeafPtr != nil || got.Sparse != nil || got.Any != nil {
		t.Errorf("nil pointers and interfaces must read back nil: %+v", got)
	}
	// The reflective encoder writes nil for nil slices, maps and []byte.
	var m mirrorEverything[time.Time]
	mb, err := msgpack.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mb, []byte("\xa5bytes\xc0")) {
		t.Fatalf("expected the reflective encoder to write a nil []byte as nil: %x", mb)
	}
	var got2 gentest.Everything
	if err := got2.UnmarshalMsgpack(mb); err != nil {
		t.Fatal(err)
	}
	if got2.Bytes == nil || got2.Strings == nil || got2.Values == nil {
		t.Errorf("nil on the wire must read as empty: %+v", got2)
	}
}

// encodeMap writes a map with the given keys and values, in order.
func encodeMap(t *testing.T, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for _, v := range kv {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestOptionalAndRequired(t *testing.T) {
	stamp := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	full := gentest.Sparse{A: "a", B: 2, C: []gentest.Leaf{{N: 1}}, D: &gentest.Item{Name: "d", Tags: gentest.Tags{}}, Stamp: stamp}

	// Optional fields absent: they are reset to zero, even when decoding
	// into a value that held something.
	got := full
	if err := got.UnmarshalMsgpack(encodeMap(t, "b", 7, "unknown", []int{1, 2})); err != nil {
		t.Fatal(err)
	}
	if want := (gentest.Sparse{B: 7}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// The required field absent.
	err := got.UnmarshalMsgpack(encodeMap(t, "a", "x", "stamp", "2024-01-01T00:00:00Z"))
	if !errors.Is(err, wire.ErrMalformed) || !strings.HasPrefix(err.Error(), "Sparse: ") || !strings.HasSuffix(err.Error(), "missing field b") {
		t.Errorf("missing required field: got %v", err)
	}

	// Everything without its required fields names them all, but not the
	// optional one.
	var e gentest.Everything
	err = e.UnmarshalMsgpack(encodeMap(t, "str", "s", "note", "n"))
	if err == nil || !strings.Contains(err.Error(), "missing field bool, int, ") || strings.Contains(err.Error(), "note") {
		t.Errorf("missing fields of Everything: got %v", err)
	}

	// Positional records: trailing optional fields may be left out, the
	// required one may not.
	got = full
	if err := got.UnmarshalMsgpack([]byte{0x92, 0xa1, 'z', 0x05}); err != nil {
		t.Fatal(err)
	}
	if want := (gentest.Sparse{A: "z", B: 5}); !reflect.DeepEqual(got, want) {
		t.Errorf("positional: got %+v, want %+v", got, want)
	}
	err = got.UnmarshalMsgpack([]byte{0x91, 0xa1, 'z'})
	if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), "positional record of 1 fields, want 2") {
		t.Errorf("short positional record: got %v", err)
	}
	// Extra positional elements are skipped.
	b := []byte{0x96, 0xa0, 0x01, 0x90, 0xc0, 0xb4}
	b = append(b, "2024-01-01T00:00:00Z"...)
	b = append(b, 0x81, 0xa1, 'x', 0x02)
	got = gentest.Sparse{}
	if err := got.UnmarshalMsgpack(b); err != nil {
		t.Fatal(err)
	}
	if want := (gentest.Sparse{B: 1, C: []gentest.Leaf{}, Stamp: stamp}); !reflect.DeepEqual(got, want) {
		t.Errorf("positional with extras: got %+v, want %+v", got, want)
	}
}

func TestFieldErrors(t *testing.T) {
	// A value that does not fit its field names the type and the field.
	err := new(gentest.Leaf).UnmarshalMsgpack(encodeMap(t, "n", "seven"))
	if !errors.Is(err, wire.ErrMalformed) || !strings.HasPrefix(err.Error(), "Leaf.n: ") {
		t.Errorf("got %v", err)
	}
	var e gentest.Everything
	err = e.UnmarshalMsgpack(encodeMap(t, "int8", 300))
	if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), "Everything.int8: ") ||
		!strings.Contains(err.Error(), "int8") {
		t.Errorf("got %v", err)
	}
	// Nested errors name the path.
	err = e.UnmarshalMsgpack(encodeMap(t, "items", []any{map[string]any{"name": 1}}))
	if !errors.Is(err, wire.ErrMalformed) || !strings.HasPrefix(err.Error(), "Everything.items[0].name: ") {
		t.Errorf("got %v", err)
	}
	// Encoding errors too.
	bad := gentest.Everything{Items: []gentest.Item{{Data: make(chan int)}}}
	_, err = bad.AppendMsgpack(nil)
	if !errors.Is(err, wire.ErrUnsupported) || !strings.HasPrefix(err.Error(), "Everything.items[0].data: ") {
		t.Errorf("got %v", err)
	}
	bad = gentest.Everything{ThingPtr: &other.Thing{When: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	_, err = bad.AppendMsgpack(nil)
	if !errors.Is(err, wire.ErrUnsupported) || !strings.HasPrefix(err.Error(), "Everything.thing_ptr.when: ") {
		t.Errorf("got %v", err)
	}
}

// TestTruncated feeds every prefix of an encoding: each must fail cleanly.
func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	want := randomEverything(rng)
	b, err := want.AppendMsgpack(nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		var got gentest.Everything
		if err := got.UnmarshalMsgpack(b[:n]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: got %v", n, err)
		}
	}
}

func FuzzReadMsgpack(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 4 {
		b, err := randomEverything(rng).AppendMsgpack(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got gentest.Everything
		if err := got.UnmarshalMsgpack(b); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		// Whatever decodes must encode, and decode again to the same.
		enc, err := got.AppendMsgpack(nil)
		if err != nil {
			return // e.g. a timestamp outside 0000-9999 read from an extension
		}
		var again gentest.Everything
		if err := again.UnmarshalMsgpack(enc); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}

// --- random values ---

var (
	timeType = reflect.TypeFor[time.Time]()
	uuidType = reflect.TypeFor[uuid.UUID]()
)

func randomEverything(rng *rand.Rand) *gentest.Everything {
	var e gentest.Everything
	fill(rng, reflect.ValueOf(&e).Elem(), 0)
	return &e
}

// fill sets v to a random value. Slices and maps are never nil (the
// generated codec writes nil as empty); pointers sometimes are.
func fill(rng *rand.Rand, v reflect.Value, depth int) {
	t := v.Type()
	switch t {
	case timeType:
		sec := rng.Int64N(200 * 365 * 86400) // 1970 to 2170
		ns := []int64{0, rng.Int64N(1000) * 1e6, rng.Int64N(1e6) * 1e3, rng.Int64N(1e9)}[rng.IntN(4)]
		v.Set(reflect.ValueOf(time.Unix(sec, ns).UTC()))
		return
	case uuidType:
		var id uuid.UUID
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		v.Set(reflect.ValueOf(id))
		return
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(randomString(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		n := rng.Int64() >> (64 - bits)
		if rng.IntN(3) == 0 {
			n = []int64{0, 1, -1, 127, 128, -32, -33, math.MaxInt8, math.MinInt8}[rng.IntN(9)]
		}
		if rng.IntN(2) == 0 {
			n >>= rng.IntN(bits) // small values in every width
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := t.Bits()
		n := rng.Uint64() >> (64 - bits)
		if rng.IntN(2) == 0 {
			n >>= rng.IntN(bits)
		}
		v.SetUint(n)
	case reflect.Float32:
		v.SetFloat(float64(float32(rng.NormFloat64() * 1e3)))
	case reflect.Float64:
		v.SetFloat(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20)))
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p := make([]byte, rng.IntN(40))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			v.Set(reflect.ValueOf(p).Convert(t))
			return
		}
		n := rng.IntN(3)
		if depth > 3 {
			n = 0
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			fill(rng, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(t)
		n := rng.IntN(3)
		if depth > 3 {
			n = 0
		}
		for range n {
			e := reflect.New(t.Elem()).Elem()
			fill(rng, e, depth+1)
			m.SetMapIndex(reflect.ValueOf(randomString(rng)), e)
		}
		v.Set(m)
	case reflect.Pointer:
		if depth > 3 || rng.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(t.Elem())
		fill(rng, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Interface:
		if x := randomJSON(rng, depth); x != nil {
			v.Set(reflect.ValueOf(x))
		} else {
			v.SetZero()
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("msgpack") == "-" {
				continue
			}
			fill(rng, v.Field(i), depth+1)
		}
	default:
		panic("fill: unexpected " + t.String())
	}
}

func randomString(rng *rand.Rand) string {
	alphabet := []string{"a", "b", "z", "_", "é", "日本", "\x00", "🙂", " "}
	n := []int{0, 1, 5, 31, 32, 300}[rng.IntN(6)]
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// randomJSON returns a JSON-like value as the generated decoder returns it:
// int64 (uint64 only above MaxInt64), float64, string, bool, nil, []any,
// map[string]any.
func randomJSON(rng *rand.Rand, depth int) any {
	k := rng.IntN(9)
	if depth > 4 && k >= 7 {
		k = 0
	}
	switch k {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 1
	case 2:
		return rng.Int64() >> rng.IntN(64)
	case 3:
		return -(rng.Int64() >> rng.IntN(64))
	case 4:
		if rng.IntN(4) == 0 {
			return uint64(math.MaxInt64) + 1 + rng.Uint64N(math.MaxInt64)
		}
		return rng.NormFloat64() * 1e6
	case 5:
		return randomString(rng)
	case 6:
		return float64(rng.IntN(100)) // an integral float stays a float
	case 7:
		a := make([]any, rng.IntN(4))
		for i := range a {
			a[i] = randomJSON(rng, depth+1)
		}
		return a
	}
	m := map[string]any{}
	for range rng.IntN(4) {
		m[randomString(rng)] = randomJSON(rng, depth+1)
	}
	return m
}

// --- conversion and comparison ---

// copyValue copies src into dst, a value of a structurally identical type
// (a generated type and its mirror), formatting or parsing timestamps where
// one has a time.Time and the other a string.
func copyValue(dst, src reflect.Value) {
	switch {
	case src.Type() == timeType && dst.Kind() == reflect.String:
		b, err := wire.AppendTimestamp(nil, src.Interface().(time.Time))
		if err != nil {
			panic(err)
		}
		dst.SetString(string(b))
		return
	case src.Kind() == reflect.String && dst.Type() == timeType:
		tm, err := wire.ParseTimestamp(src.String())
		if err != nil {
			panic(err)
		}
		dst.Set(reflect.ValueOf(tm))
		return
	}
	switch src.Kind() {
	case reflect.Struct:
		if src.Type() == timeType {
			dst.Set(src)
			return
		}
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				copyValue(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		p := reflect.New(dst.Type().Elem())
		copyValue(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			copyValue(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		m := reflect.MakeMapWithSize(dst.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			e := reflect.New(dst.Type().Elem()).Elem()
			copyValue(e, it.Value())
			m.SetMapIndex(it.Key(), e)
		}
		dst.Set(m)
	case reflect.Interface:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		dst.Set(reflect.ValueOf(copyJSON(src.Interface())))
	default:
		dst.Set(src.Convert(dst.Type()))
	}
}

func copyJSON(x any) any {
	switch x := x.(type) {
	case []any:
		if x == nil {
			return x
		}
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = copyJSON(e)
		}
		return c
	case map[string]any:
		if x == nil {
			return x
		}
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = copyJSON(e)
		}
		return c
	}
	return x
}

// normalize makes equal what the wire cannot tell apart: nil and empty
// slices and maps, time zones (the reflective decoder returns local time),
// and the integer types of JSON-like values (it returns uint64 for
// positive integers in uint forms; the generated one int64).
func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normalize(v.Field(i))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			normalize(e)
			v.SetMapIndex(it.Key(), e)
		}
	case reflect.Interface:
		if !v.IsNil() {
			v.Set(reflect.ValueOf(normalizeJSON(v.Interface())))
		}
	}
}

func normalizeJSON(x any) any {
	switch x := x.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case []any:
		for i := range x {
			x[i] = normalizeJSON(x[i])
		}
		if x == nil {
			return []any{}
		}
	case map[string]any:
		for k, v := range x {
			x[k] = normalizeJSON(v)
		}
	}
	return x
}

func assertEqual(t *testing.T, round int, got, want *gentest.Everything) {
	t.Helper()
	var g, w gentest.Everything
	copyValue(reflect.ValueOf(&g).Elem(), reflect.ValueOf(got).Elem())
	copyValue(reflect.ValueOf(&w).Elem(), reflect.ValueOf(want).Elem())
	normalize(reflect.ValueOf(&g).Elem())
	normalize(reflect.ValueOf(&w).Elem())
	if reflect.DeepEqual(g, w) {
		return
	}
	gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
	for i := range gv.NumField() {
		if f := gv.Type().Field(i); f.IsExported() && !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("round %d: field %s differs:\n got  %#v\n want %#v", round, f.Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	t.FailNow()
}
