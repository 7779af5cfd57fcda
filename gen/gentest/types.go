// Package gentest holds types that exercise every kind of field cairngen
// supports; its tests check the generated codecs against the reflective
// codec of vmihailenco/msgpack. Its codecs are generated with
// -msgpack-shims, so the tests also check that the library uses them
// (other.Thing, without shims, is reached only through them).
package gentest

import (
	"time"

	"github.com/cairnstore/cairn/gen/gentest/other"
	"github.com/google/uuid"
)

//go:generate go run ../../tools/cairngen -type Everything,Item,Leaf,Empty,Sparse,Wide -msgpack-shims

// Named types over the basic kinds, converted to and from them.
type (
	Status string
	Level  int8
	Big    int
	Count  uint16
	Score  float32
	Ratio  float64
	Flag   bool
	Blob   []byte
)

// Named composite types, assigned where Go allows.
type (
	Tags   []string
	Attrs  map[string]any
	Counts map[string]int32
)

// JSON is an alias of any: a JSON-like value.
type JSON = any

// Everything has a field of every supported kind, more than 15 of them so
// that its map header is a map16.
type Everything struct {
	Str     string  `msgpack:"str,required"`
	Bool    bool    `msgpack:"bool,required"`
	Int     int     `msgpack:"int,required"`
	Int8    int8    `msgpack:"int8,required"`
	Int16   int16   `msgpack:"int16,required"`
	Int32   int32   `msgpack:"int32,required"`
	Int64   int64   `msgpack:"int64,required"`
	Rune    rune    `msgpack:"rune,required"`
	Uint    uint    `msgpack:"uint,required"`
	Uint8   uint8   `msgpack:"uint8,required"`
	Byte    byte    `msgpack:"byte,required"`
	Uint16  uint16  `msgpack:"uint16,required"`
	Uint32  uint32  `msgpack:"uint32,required"`
	Uint64  uint64  `msgpack:"uint64,required"`
	Float32 float32 `msgpack:"float32,required"`
	Float64 float64 `msgpack:"float64,required"`
	Bytes   []byte  `msgpack:"bytes,required"`

	Status Status `msgpack:"status,required"`
	Level  Level  `msgpack:"level,required"`
	Big    Big    `msgpack:"big,required"`
	Count  Count  `msgpack:"count,required"`
	Score  Score  `msgpack:"score,required"`
	Ratio  Ratio  `msgpack:"ratio,required"`
	Flag   Flag   `msgpack:"flag,required"`
	Blob   Blob   `msgpack:"blob,required"`

	Time     time.Time     `msgpack:"time,required"`
	Duration time.Duration `msgpack:"duration,required"`
	ID       uuid.UUID     `msgpack:"id,required"`

	Any    any            `msgpack:"any,required"`
	Iface  interface{}    `msgpack:"iface,required"`
	Alias  JSON           `msgpack:"alias,required"`
	Values map[string]any `msgpack:"values,required"`
	Attrs  Attrs          `msgpack:"attrs,required"`

	Strings []string             `msgpack:"strings,required"`
	Tags    Tags                 `msgpack:"tags,required"`
	Anys    []any                `msgpack:"anys,required"`
	Times   []time.Time          `msgpack:"times,required"`
	IDs     map[string]uuid.UUID `msgpack:"ids,required"`
	Scores  []Score              `msgpack:"scores,required"`
	Ints    map[string]int32     `msgpack:"ints,required"`
	Counts  Counts               `msgpack:"counts,required"`
	Blobs   [][]byte             `msgpack:"blobs,required"`

	Leaf     Leaf                    `msgpack:"leaf,required"`
	LeafPtr  *Leaf                   `msgpack:"leaf_ptr,required"`
	Items    []Item                  `msgpack:"items,required"`
	ItemPtrs []*Item                 `msgpack:"item_ptrs,required"`
	ItemMap  map[string]Item         `msgpack:"item_map,required"`
	Nested   map[string][]*Item      `msgpack:"nested,required"`
	Deep     [][]map[string][]Status `msgpack:"deep,required"`
	Thing    other.Thing             `msgpack:"thing,required"`
	ThingPtr *other.Thing            `msgpack:"thing_ptr,required"`
	Things   map[string]*other.Thing `msgpack:"things,required"`
	Empty    Empty                   `msgpack:"empty,required"`
	Sparse   *Sparse                 `msgpack:"sparse,required"`

	// Untagged: the wire name is the Go name.
	Untagged string
	// A name too long for a fixstr.
	Long string `msgpack:"a_wire_name_longer_than_thirty_one_bytes,required"`
	// Optional: may be absent when reading.
	Note string `msgpack:"note"`

	Skipped    string `msgpack:"-"`
	unexported int
}

// Item is a struct of this package, used by value, by pointer, in slices
// and maps, and recursively.
type Item struct {
	Name string `msgpack:"name,required"`
	Tags Tags   `msgpack:"tags,required"`
	Next *Item  `msgpack:"next,required"`
	Data any    `msgpack:"data,required"`
}

// Leaf is a small struct with an int field.
type Leaf struct {
	N int `msgpack:"n,required"`
}

// Empty has no fields: it is written as an empty map.
type Empty struct{}

// Sparse has optional fields around a required one, so a positional record
// of it may stop after its second element.
type Sparse struct {
	A     string    `msgpack:"a"`
	B     int64     `msgpack:"b,required"`
	C     []Leaf    `msgpack:"c"`
	D     *Item     `msgpack:"d"`
	Stamp time.Time `msgpack:"stamp"`
}

// Wide has the most fields a generated type may have, declared together
// and untagged, so their Go names are their wire names.
type Wide struct {
	F00, F01, F02, F03, F04, F05, F06, F07, F08, F09, F10, F11, F12, F13, F14, F15, F16, F17, F18, F19, F20, F21, F22, F23, F24, F25, F26, F27, F28, F29, F30, F31, F32, F33, F34, F35, F36, F37, F38, F39, F40, F41, F42, F43, F44, F45, F46, F47, F48, F49, F50, F51, F52, F53, F54, F55, F56, F57, F58, F59, F60, F61, F62, F63 uint8 `msgpack:",required"`
}
