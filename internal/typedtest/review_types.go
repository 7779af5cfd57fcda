package typedtest

import (
	"time"

	"github.com/google/uuid"
)

// Types for the review tests (typed_review_test.go at the module root).

//go:generate go run ../../tools/cairngen -type ReviewState,ReviewLine,ReviewDefaults,ReviewLate,ReviewEvent,ReviewRenamed,ReviewKeep -output review_types_gen.go

// Qty, Label and Ratio are named types over basic ones.
type (
	Qty   int32
	Label string
	Ratio float32
)

// ReviewState has wire names whose byte order differs from the
// declaration order (upper case, underscore, non-ASCII, a long name), a
// key equal to a checkpoint field's name, named types, and more than 15
// fields (a map16 header).
type ReviewState struct {
	B        string                 `msgpack:"b"`
	Upper    string                 `msgpack:"Z"`
	Unicode  string                 `msgpack:"é"`
	Under    int                    `msgpack:"_x"`
	LongName string                 `msgpack:"a_wire_name_that_is_longer_than_thirty_one_bytes"`
	Neg      int64                  `msgpack:"neg"`
	Big      uint64                 `msgpack:"big"`
	F32      float32                `msgpack:"f32"`
	NegZero  float64                `msgpack:"negzero"`
	Qty      Qty                    `msgpack:"qty"`
	Label    Label                  `msgpack:"label"`
	Ratio    Ratio                  `msgpack:"ratio"`
	Wait     time.Duration          `msgpack:"wait"`
	When     time.Time              `msgpack:"when"`
	Any      any                    `msgpack:"any"`
	Values   map[string]any         `msgpack:"values"`
	Keys     map[string]int         `msgpack:"keys"`
	Lines    []ReviewLine           `msgpack:"lines"`
	Ptr      *ReviewLine            `msgpack:"ptr"`
	PtrMap   map[string]*ReviewLine `msgpack:"ptr_map"`
	Nested   [][]*ReviewLine        `msgpack:"nested"`
	Empty    []string               `msgpack:"empty"`
	IDs      map[string]uuid.UUID   `msgpack:"ids"`
	State    string                 `msgpack:"state"`
}

// ReviewLine is a line of ReviewState.
type ReviewLine struct {
	SKU string `msgpack:"sku,required"`
	Qty int    `msgpack:"qty" default:"1"`
}

// ReviewDefaults has a default of every kind, after one required field.
type ReviewDefaults struct {
	ID    string        `msgpack:"id,required"`
	Name  string        `msgpack:"name" default:"anon"`
	On    bool          `msgpack:"on" default:"true"`
	I8    int8          `msgpack:"i8" default:"-128"`
	Hex   int           `msgpack:"hex" default:"0x10"`
	U16   uint16        `msgpack:"u16" default:"65535"`
	F32   float32       `msgpack:"f32" default:"0.1"`
	F64   float64       `msgpack:"f64" default:"-2.5e-3"`
	Wait  time.Duration `msgpack:"wait" default:"1m30s"`
	Nanos time.Duration `msgpack:"nanos" default:"1500"`
	Label Label         `msgpack:"label" default:"x\"y"`
	Qty   Qty           `msgpack:"qty" default:"7"`
	Ratio Ratio         `msgpack:"ratio" default:"1.5"`
	Empty string        `msgpack:"empty" default:""`
	Line  ReviewLine    `msgpack:"line"`
}

// ReviewLate has a required field after optional ones.
type ReviewLate struct {
	A    string `msgpack:"a" default:"dflt"`
	B    int    `msgpack:"b"`
	Must string `msgpack:"must,required"`
	C    int    `msgpack:"c" default:"9"`
}

// ReviewEvent is a registered event type.
type ReviewEvent struct {
	ID uuid.UUID `msgpack:"id"`
	At time.Time `msgpack:"at"`
	N  int       `msgpack:"n,required"`
}

// ReviewRenamed reads two older names of one field.
type ReviewRenamed struct {
	Region string `msgpack:"region,alias:zone,alias:area"`
	Other  string `msgpack:"other"`
}

// ReviewKeep keeps the keys no field reads.
type ReviewKeep struct {
	B    string         `msgpack:"b"`
	Z    int            `msgpack:"z,alias:old"`
	Rest map[string]any `msgpack:",unknown"`
}
