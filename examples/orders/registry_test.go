package orders_test

import (
	"errors"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/examples/orders"
)

func TestRegistryRefusals(t *testing.T) {
	var reg cairn.EventRegistry
	if err := cairn.RegisterEvent[orders.OrderPlaced](&reg, "myapp::OrderPlaced"); err != nil {
		t.Fatal(err)
	}
	if err := cairn.RegisterEvent[orders.PaymentCaptured](&reg, "myapp::OrderPlaced"); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("a name registered twice: %v, want ErrInvalid", err)
	}
	if err := cairn.RegisterEvent[orders.OrderPlaced](&reg, "other"); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("a type registered twice: %v, want ErrInvalid", err)
	}
	if _, err := reg.Event(&orders.PaymentCaptured{}); !errors.Is(err, cairn.ErrUnknownEvent) || !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("Event of an unregistered type: %v", err)
	}
	if _, err := reg.Decode(cairn.Event{EventType: "nope", Data: map[string]any{}}); !errors.Is(err, cairn.ErrUnknownEvent) {
		t.Errorf("Decode of an unregistered name: %v", err)
	}
	// Data that does not fit the registered type.
	for _, data := range []any{
		map[string]any{"order_id": 7, "lines": int64(1)}, // number for a string
		map[string]any{"order_id": "o", "lines": 1.5},    // float for an int
		"just a string",
	} {
		if _, err := reg.Decode(cairn.Event{EventType: "myapp::OrderPlaced", Data: data}); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("Decode(%v): %v, want ErrInvalid", data, err)
		}
	}
	// A missing field is its zero value (the event type gained it later).
	got, err := reg.Decode(cairn.Event{EventType: "myapp::OrderPlaced", Data: map[string]any{"order_id": "o-1"}})
	if err != nil || *got.(*orders.OrderPlaced) != (orders.OrderPlaced{OrderID: "o-1"}) {
		t.Errorf("Decode without a field = %v, %v", got, err)
	}
	// Extra fields are ignored, as Blazen's serde structs ignore them.
	got, err = reg.Decode(cairn.Event{EventType: "myapp::OrderPlaced",
		Data: map[string]any{"order_id": "o-1", "lines": int64(3), "added_later": true}})
	if err != nil || *got.(*orders.OrderPlaced) != (orders.OrderPlaced{OrderID: "o-1", Lines: 3}) {
		t.Errorf("Decode with an extra field = %v, %v", got, err)
	}
}
