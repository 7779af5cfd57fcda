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

	Status Status `msgpack:"status"`
	Level  Level  `msgpack:"level"`
	Big    Big    `msgpack:"big"`
	Count  Count  `msgpack:"count"`
	Score  Score  `msgpack:"score"`
	Ratio  Ratio  `msgpack:"ratio"`
	Flag   Flag   `msgpack:"flag"`
	Blob   Blob   `msgpack:"blob"`

	Time     time.Time     `msgpack:"time"`
	Duration time.Duration `msgpack:"duration"`
	ID       uuid.UUID     `msgpack:"id"`

	Any    any            `msgpack:"any"`
	Iface  interface{}    `msgpack:"iface"`
	Alias  JSON           `msgpack:"alias"`
	Values map[string]any `msgpack:"values"`
	Attrs  Attrs          `msgpack:"attrs"`

	Strings []string             `msgpack:"strings"`
	Tags    Tags                 `msgpack:"tags"`
	Anys    []any                `msgpack:"anys"`
	Times   []time.Time          `msgpack:"times"`
	IDs     map[string]uuid.UUID `msgpack:"ids"`
	Scores  []Score              `msgpack:"scores"`
	Ints    map[string]int32     `msgpack:"ints"`
	Counts  Counts               `msgpack:"counts"`
	Blobs   [][]byte             `msgpack:"blobs"`

	Leaf     Leaf                    `msgpack:"leaf"`
	LeafPtr  *Leaf                   `msgpack:"leaf_ptr"`
	Items    []Item                  `msgpack:"items"`
	ItemPtrs []*Item                 `msgpack:"item_ptrs"`
	ItemMap  map[string]Item         `msgpack:"item_map"`
	Nested   map[string][]*Item      `msgpack:"nested"`
	Deep     [][]map[string][]Status `msgpack:"deep"`
	Thing    other.Thing             `msgpack:"thing"`
	ThingPtr *other.Thing            `msgpack:"thing_ptr"`
	Things   map[string]*other.Thing `msgpack:"things"`
	Empty    Empty                   `msgpack:"empty"`
	Sparse   *Sparse                 `msgpack:"sparse"`

	// Untagged: the wire name is the Go name.
	Untagged string
	// A name too long for a fixstr.
	Long string `msgpack:"a_wire_name_longer_than_thirty_one_bytes"`
	// Optional: may be absent when reading.
	Note string `msgpack:"note,optional"`

	Skipped    string `msgpack:"-"`
	unexported int
}

// Item is a struct of this package, used by value, by pointer, in slices
// and maps, and recursively.
type Item struct {
	Name string `msgpack:"name"`
	Tags Tags   `msgpack:"tags"`
	Next *Item  `msgpack:"next"`
	Data any    `msgpack:"data"`
}

// Leaf is a small struct with an int field.
type Leaf struct {
	N int `msgpack:"n"`
}

// Empty has no fields: it is written as an empty map.
type Empty struct{}

// Sparse has optional fields around a required one, so a positional record
// of it may stop after its second element.
type Sparse struct {
	A     string    `msgpack:"a,optional"`
	B     int64     `msgpack:"b"`
	C     []Leaf    `msgpack:"c,optional"`
	D     *Item     `msgpack:"d,optional"`
	Stamp time.Time `msgpack:"stamp,optional"`
}

// Wide has the most fields a generated type may have, declared together
// and untagged, so their Go names are their wire names.
type Wide struct {
	F00, F01, F02, F03, F04, F05, F06, F07, F08, F09, F10, F11, F12, F13, F14, F15, F16, F17, F18, F19, F20, F21, F22, F23, F24, F25, F26, F27, F28, F29, F30, F31, F32, F33, F34, F35, F36, F37, F38, F39, F40, F41, F42, F43, F44, F45, F46, F47, F48, F49, F50, F51, F52, F53, F54, F55, F56, F57, F58, F59, F60, F61, F62, F63 uint8
}
