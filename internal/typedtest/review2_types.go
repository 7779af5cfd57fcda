package typedtest

// Types for the second review's tests (*_review2_test.go).

//go:generate go run ../../tools/cairngen -type Review2Outer,Review2Inner,Review2Floats,Review2Strings,Review2Bytes -output review2_types_gen.go

// Review2Outer keeps unknown keys and holds structs that keep theirs too,
// directly, in a slice, behind a pointer and in a map.
type Review2Outer struct {
	Name  string                  `msgpack:"name"`
	Inner Review2Inner            `msgpack:"inner"`
	List  []Review2Inner          `msgpack:"list"`
	Ptr   *Review2Inner           `msgpack:"ptr"`
	ByKey map[string]Review2Inner `msgpack:"by_key"`
	Rest  map[string]any          `msgpack:",unknown"`
}

// Review2Inner keeps unknown keys and renames a field.
type Review2Inner struct {
	A     int            `msgpack:"a"`
	M     string         `msgpack:"m,alias:mm"`
	Extra map[string]any `msgpack:",unknown"`
}

// Review2Floats has floats in every position.
type Review2Floats struct {
	F32  float32            `msgpack:"f32"`
	F64  float64            `msgpack:"f64"`
	L32  []float32          `msgpack:"l32"`
	M64  map[string]float64 `msgpack:"m64"`
	R    Ratio              `msgpack:"r"`
	Deep [][]float64        `msgpack:"deep"`
}

// Review2Strings has strings in every position.
type Review2Strings struct {
	S    string                  `msgpack:"s"`
	L    []string                `msgpack:"l"`
	MS   map[string]string       `msgpack:"ms"`
	MI   map[string]int          `msgpack:"mi"`
	MM   map[string][]string     `msgpack:"mm"`
	Lab  Label                   `msgpack:"lab"`
	Nest map[string]Review2Inner `msgpack:"nest"`
}

// Review2Bytes has a []byte field, which JSON cannot hold.
type Review2Bytes struct {
	Data []byte `msgpack:"data"`
	S    string `msgpack:"s"`
}
