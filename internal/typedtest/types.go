// Package typedtest holds the typed states and events that the tests of
// cairn.Typed store: Blazen's golden vectors as Go types, a state of
// every field kind, and two versions of one state type for the schema
// evolution tests.
package typedtest

import (
	"time"

	"github.com/google/uuid"
)

//go:generate go run ../../tools/cairngen -type Counter,JSONCounter,Wrapped,StartEvent,Kitchen,Item,OrderV1,ItemV1,OrderV2,ItemV2,OrderRetyped,ItemRetyped,OrderApproved -output types_gen.go

// Counter is the state of Blazen's golden vector A: {"counter": 42}.
type Counter struct {
	Counter int64 `msgpack:"counter"`
}

// JSONCounter is the state of golden vector B: {"counter": {"Json": 42}}.
type JSONCounter struct {
	Counter Wrapped `msgpack:"counter"`
}

// Wrapped is the {"Json": n} of golden vector B.
type Wrapped struct {
	JSON int64 `msgpack:"Json"`
}

// StartEvent is the event "blazen::StartEvent" of golden vector A.
type StartEvent struct {
	Input string `msgpack:"input"`
}

// Status is a named string.
type Status string

// Kitchen has a field of every kind a typed state may hold, declared out
// of the order of their wire names.
type Kitchen struct {
	Zeta    string               `msgpack:"zeta"`
	ID      uuid.UUID            `msgpack:"id"`
	When    time.Time            `msgpack:"when"`
	Wait    time.Duration        `msgpack:"wait"`
	F32     float32              `msgpack:"f32"`
	F64     float64              `msgpack:"f64"`
	I8      int8                 `msgpack:"i8"`
	I64     int64                `msgpack:"i64"`
	U64     uint64               `msgpack:"u64"`
	Flag    bool                 `msgpack:"flag"`
	Status  Status               `msgpack:"status"`
	Names   []string             `msgpack:"names"`
	Tags    map[string]string    `msgpack:"tags"`
	Items   []Item               `msgpack:"items"`
	ByName  map[string]*Item     `msgpack:"by_name"`
	Ptr     *Item                `msgpack:"ptr"`
	Nil     *Item                `msgpack:"nil"`
	Any     any                  `msgpack:"any"`
	Values  map[string]any       `msgpack:"values"`
	IDs     []uuid.UUID          `msgpack:"ids"`
	Times   map[string]time.Time `msgpack:"times"`
	Grid    [][]int              `msgpack:"grid"`
	Alpha   string               `msgpack:"Alpha"`
	Untaged string
}

// Item is a struct inside Kitchen.
type Item struct {
	SKU string    `msgpack:"sku"`
	Qty int       `msgpack:"qty"`
	Ref uuid.UUID `msgpack:"ref"`
}

// OrderV1 is version 1 of an order state, as the deploy before a change
// had it. It keeps the keys it does not know, so that during a rolling
// deploy it saves back what version 2 wrote.
type OrderV1 struct {
	Customer string         `msgpack:"customer"`
	Zone     string         `msgpack:"zone"`
	Total    float64        `msgpack:"total"`
	Legacy   string         `msgpack:"legacy"`
	Items    []ItemV1       `msgpack:"items"`
	Extra    map[string]any `msgpack:",unknown"`
}

// ItemV1 is a line of OrderV1.
type ItemV1 struct {
	SKU   string         `msgpack:"sku"`
	Qty   int            `msgpack:"qty"`
	Extra map[string]any `msgpack:",unknown"`
}

// OrderV2 is version 2: zone renamed to region, legacy dropped, fields
// added with and without defaults, customer and sku now required.
type OrderV2 struct {
	Customer string        `msgpack:"customer,required"`
	Region   string        `msgpack:"region,alias:zone"`
	Total    float64       `msgpack:"total"`
	Currency string        `msgpack:"currency" default:"EUR"`
	Retries  int           `msgpack:"retries" default:"3"`
	Deadline time.Duration `msgpack:"deadline" default:"90s"`
	Express  bool          `msgpack:"express" default:"true"`
	Note     string        `msgpack:"note"`
	Items    []ItemV2      `msgpack:"items"`
}

// ItemV2 is a line of OrderV2, with a field added.
type ItemV2 struct {
	SKU  string `msgpack:"sku,required"`
	Qty  int    `msgpack:"qty"`
	Gift bool   `msgpack:"gift"`
}

// OrderRetyped changes the type of a line's quantity, which version 1's
// records cannot be read as.
type OrderRetyped struct {
	Items []ItemRetyped `msgpack:"items"`
}

// ItemRetyped is a line of OrderRetyped.
type ItemRetyped struct {
	Qty string `msgpack:"qty"`
}

// OrderApproved requires a field that version 1 never wrote.
type OrderApproved struct {
	Customer string `msgpack:"customer"`
	Approver string `msgpack:"approver,required"`
}
