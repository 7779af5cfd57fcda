package orders_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/examples/orders"
	"github.com/cairnstore/cairn/memstore"
	"github.com/google/uuid"
)

// A Go engine saves typed state and typed pending events, and resumes the
// run from whatever store holds it, getting its types back.
func Example() {
	ctx := context.Background()
	var events cairn.EventRegistry
	if err := cairn.RegisterEvent[orders.OrderPlaced](&events, "myapp::OrderPlaced"); err != nil {
		panic(err)
	}
	if err := cairn.RegisterEvent[orders.PaymentCaptured](&events, "myapp::PaymentCaptured"); err != nil {
		panic(err)
	}

	state := orders.OrderState{
		Customer: "c-42",
		Lines:    []orders.Line{{SKU: "sku-1", Quantity: 2}, {SKU: "sku-9", Quantity: 1}},
		Total:    59.5,
		Placed:   time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	stateValue, err := cairn.ToValue(&state)
	if err != nil {
		panic(err)
	}
	placed, err := events.Event(&orders.OrderPlaced{OrderID: "o-7", Lines: 2})
	if err != nil {
		panic(err)
	}

	store := memstore.New(nil)
	defer store.Close(ctx)
	run := uuid.MustParse("0b7e9d1c-5f1a-4c39-9d6e-3f6b8a0f2c11")
	err = store.Save(ctx, &cairn.Checkpoint{
		WorkflowName:  "orders",
		RunID:         run,
		Timestamp:     time.Date(2025, 5, 1, 12, 0, 1, 0, time.UTC),
		State:         map[string]any{"order": stateValue},
		PendingEvents: []cairn.Event{placed},
	})
	if err != nil {
		panic(err)
	}

	// Resume: load the checkpoint and get the types back.
	cp, err := store.Load(ctx, run)
	if err != nil {
		panic(err)
	}
	var resumed orders.OrderState
	if err := cairn.FromValue(cp.State["order"], &resumed); err != nil {
		panic(err)
	}
	fmt.Printf("%s ordered %d lines, total %.2f, placed %s\n",
		resumed.Customer, len(resumed.Lines), resumed.Total, resumed.Placed.Format(time.RFC3339))
	for _, e := range cp.PendingEvents {
		typed, err := events.Decode(e)
		if err != nil {
			panic(err)
		}
		switch ev := typed.(type) {
		case *orders.OrderPlaced:
			fmt.Printf("pending %s: order %s with %d lines\n", e.EventType, ev.OrderID, ev.Lines)
		case *orders.PaymentCaptured:
			fmt.Printf("pending %s: %.2f\n", e.EventType, ev.Amount)
		}
	}
	// What a Blazen engine sees in the state: plain JSON-like values.
	fmt.Println(cp.State["order"].(map[string]any)["lines"])

	// Output:
	// c-42 ordered 2 lines, total 59.50, placed 2025-05-01T12:00:00Z
	// pending myapp::OrderPlaced: order o-7 with 2 lines
	// [map[quantity:2 sku:sku-1] map[quantity:1 sku:sku-9]]
}
