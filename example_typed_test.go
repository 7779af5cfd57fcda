package cairn_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/examples/orders"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// A Go engine whose state is a struct saves and resumes it with Typed: the
// state goes straight between the struct and the stored record through
// the codec cairngen generated for it (go generate, see the gen package),
// and the record is the one a Blazen engine reads.
func ExampleTyped() {
	ctx := context.Background()
	store, err := tiered.Open(ctx, "mem://", &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := store.Close(ctx); err != nil { // flushes: its error matters
			log.Fatal(err)
		}
	}()

	events := new(cairn.EventRegistry)
	if err := cairn.RegisterEvent[orders.OrderPlaced](events, "myapp::OrderPlaced"); err != nil {
		log.Fatal(err)
	}
	typed := cairn.NewTyped[orders.OrderState](store, &cairn.TypedOptions{Events: events})

	run := uuid.MustParse("0b7e9d1c-5f1a-4c39-9d6e-3f6b8a0f2c11")
	err = typed.Save(ctx, &cairn.TypedCheckpoint[orders.OrderState]{
		WorkflowName: "orders",
		RunID:        run,
		Timestamp:    time.Date(2026, 11, 30, 12, 0, 1, 0, time.UTC),
		State: orders.OrderState{
			Customer: "c-42",
			Lines:    []orders.Line{{SKU: "sku-1", Quantity: 2}, {SKU: "sku-9", Quantity: 1}},
			Total:    59.5,
			Placed:   time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		},
		PendingEvents: []cairn.TypedEvent{&orders.OrderPlaced{OrderID: "o-7", Lines: 2}},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Resume, in this process or another: the types come back.
	cp, err := typed.Load(ctx, run)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s ordered %d lines, total %.2f\n", cp.State.Customer, len(cp.State.Lines), cp.State.Total)
	if placed, ok := cp.PendingEvents[0].(*orders.OrderPlaced); ok {
		fmt.Println("pending order", placed.OrderID)
	}

	// Any other reader sees JSON-like values: each field is a state key.
	plain, err := store.Load(ctx, run)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(plain.State["customer"], plain.State["placed"], plain.PendingEvents[0].EventType)
	// Output:
	// c-42 ordered 2 lines, total 59.50
	// pending order o-7
	// c-42 2026-11-30T12:00:00Z myapp::OrderPlaced
}
