package kinds

import (
	"time"

	ext "example.com/elsewhere"
	"example.com/mod/v2"
	gouuid "github.com/google/uuid"
)

//go:generate go run ../../tools/cairngen -type Kinds,Node,Empty -msgpack-shims

type (
	Status  string
	Level   int8
	Size    uint
	Score   float32
	Flag    bool
	Blob    []byte
	Tags    []string
	Attrs   map[string]any
	Timeout time.Duration
	Payload = map[string][]*Node
)

// Kinds has one field of each kind the generator supports.
type Kinds struct {
	S      string            `msgpack:"s"`
	B      bool              `msgpack:"b"`
	I      int               `msgpack:"i"`
	I8     int8              `msgpack:"i8"`
	I64    int64             `msgpack:"i64"`
	U      uint              `msgpack:"u"`
	U16    uint16            `msgpack:"u16"`
	U64    uint64            `msgpack:"u64"`
	F32    float32           `msgpack:"f32"`
	F64    float64           `msgpack:"f64"`
	Raw    []byte            `msgpack:"raw"`
	Status Status            `msgpack:"status"`
	Level  Level             `msgpack:"level"`
	Size   Size              `msgpack:"size"`
	Score  Score             `msgpack:"score"`
	Flag   Flag              `msgpack:"flag"`
	Blob   Blob              `msgpack:"blob"`
	Tags   Tags              `msgpack:"tags"`
	Attrs  Attrs             `msgpack:"attrs"`
	When   time.Time         `msgpack:"when"`
	Wait   time.Duration     `msgpack:"wait"`
	Limit  Timeout           `msgpack:"limit"`
	ID     gouuid.UUID       `msgpack:"id"`
	Any    any               `msgpack:"any"`
	Iface  interface{}       `msgpack:"iface"`
	Values map[string]any    `msgpack:"values"`
	List   []map[string]Size `msgpack:"list"`
	Nodes  map[string][]*Node
	Tree   Payload       `msgpack:"tree"`
	Node   Node          `msgpack:"node"`
	Ptr    *Node         `msgpack:"ptr,optional"`
	Ext    ext.Record    `msgpack:"ext"`
	Mod    []*mod.Record `msgpack:"mod"`
	Odd    string        `msgpack:"we\"ird\tname"`
	Long   string        `msgpack:"a_field_name_that_is_longer_than_31"`
	Note   string        `msgpack:",optional"`
	Skip   string        `msgpack:"-"`
	hidden int
}

// Node refers to itself.
type Node struct {
	Name     string `msgpack:"name"`
	Children []Node `msgpack:"children"`
	Stamp    time.Time
}

// Empty has no encoded fields.
type Empty struct {
	Skip   string `msgpack:"-"`
	hidden int
}
