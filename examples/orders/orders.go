// Package orders is a workflow engine's own typed state and events, stored
// in Cairn checkpoints through codecs that cairngen generates: the way a Go
// engine keeps its types and still writes records a Blazen engine reads.
package orders

import "time"

//go:generate go run github.com/cairnstore/cairn/tools/cairngen -type OrderState,Line,OrderPlaced,PaymentCaptured -output orders_gen.go

// OrderState is the typed state of one order run, stored under the "order"
// key of Checkpoint.State.
type OrderState struct {
	Customer string    `msgpack:"customer"`
	Lines    []Line    `msgpack:"lines"`
	Total    float64   `msgpack:"total"`
	Placed   time.Time `msgpack:"placed"`
	Note     string    `msgpack:"note"`
}

// Line is one line of an order.
type Line struct {
	SKU      string `msgpack:"sku"`
	Quantity int    `msgpack:"quantity"`
}

// OrderPlaced is the event "myapp::OrderPlaced".
type OrderPlaced struct {
	OrderID string `msgpack:"order_id"`
	Lines   int    `msgpack:"lines"`
}

// PaymentCaptured is the event "myapp::PaymentCaptured".
type PaymentCaptured struct {
	OrderID string  `msgpack:"order_id"`
	Amount  float64 `msgpack:"amount"`
}
