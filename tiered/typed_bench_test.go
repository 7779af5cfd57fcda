package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/examples/orders"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// orderState returns the examples/orders state with n lines (400 make a
// record of about 10 KB).
func orderState(n int) orders.OrderState {
	o := orders.OrderState{Customer: "c-42", Total: 1234.5, Placed: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC), Note: "gift"}
	for i := range n {
		o.Lines = append(o.Lines, orders.Line{SKU: fmt.Sprintf("sku-%06d", i), Quantity: 1 + i%5})
	}
	return o
}

// appendEnvelope appends a checkpoint record around state's value
// encoding, by hand: the floor of what any Save of typed state encodes.
func appendEnvelope(b []byte, run uuid.UUID, ts time.Time, state *orders.OrderState) ([]byte, error) {
	b = append(b, "\x86\xadworkflow_name"...)
	b = wire.AppendString(b, "orders")
	b = append(b, "\xa6run_id"...)
	b = wire.AppendUUID(b, run)
	b = append(b, "\xa9timestamp"...)
	b, _ = wire.AppendTime(b, ts)
	b = append(b, "\xa5state"...)
	b, err := state.AppendMsgpackValue(b)
	b = append(b, "\xaepending_events\x90\xa8metadata\x80"...)
	return b, err
}

// kept keeps the last record a floor benchmark made, as a store would.
var kept []byte

// BenchmarkTyped10KB: a typed engine's Save (write-back) and Load (cache
// hit) of the examples/orders state with 400 lines, about 10 KB, through
// Typed and through the map path (ToValue + Save, Load + FromValue),
// beside their floors: the generated codec alone, with the record
// envelope for the encode.
func BenchmarkTyped10KB(b *testing.B) {
	ctx := context.Background()
	state := orderState(400)
	run := uuid.MustParse("67e55044-10b1-426f-9247-bb680e5fe0c8")
	ts := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec, err := appendEnvelope(nil, run, ts, &state)
	if err != nil {
		b.Fatal(err)
	}
	stateRec, _ := state.AppendMsgpackValue(nil)
	b.Logf("record %d bytes, state %d bytes", len(rec), len(stateRec))

	b.Run("save/floor-encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(rec))
		for b.Loop() {
			if buf, err = appendEnvelope(buf[:0], run, ts, &state); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same into a new buffer each time: what any Save pays whose
	// store keeps the record (a cache entry cannot share a buffer that the
	// next Save overwrites).
	b.Run("save/floor-encode-fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := make([]byte, 0, len(rec)+len(rec)/16+256)
			if buf, err = appendEnvelope(buf, run, ts, &state); err != nil {
				b.Fatal(err)
			}
			kept = buf
		}
	})
	newStore := func(b *testing.B) *tiered.Store {
		s := open(b, bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, MaxDirtyBytes: 1 << 30})
		b.Cleanup(func() { s.Close(ctx) })
		return s
	}
	b.Run("save/typed", func(b *testing.B) {
		typed := cairn.NewTyped[orders.OrderState](newStore(b), nil)
		c := &cairn.TypedCheckpoint[orders.OrderState]{WorkflowName: "orders", RunID: run, Timestamp: ts, State: state}
		b.ReportAllocs()
		for b.Loop() {
			if err := typed.Save(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("save/map", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		for b.Loop() {
			v, err := cairn.ToValue(&state)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "orders", RunID: run, Timestamp: ts, State: v.(map[string]any)}); err != nil {
				b.Fatal(err)
			}
		}
	})

	// The same two with the store's cache about full (4,000 runs of this
	// state, 45 MB, within the default 64 MiB), as in a process that has
	// been running: the garbage collector, which a new buffer per Save
	// drives, then runs once per tens of megabytes allocated rather than
	// once per megabyte, as it does over the nearly empty heap above.
	full := newStore(b)
	typedFull := cairn.NewTyped[orders.OrderState](full, nil)
	for range 4000 {
		c := &cairn.TypedCheckpoint[orders.OrderState]{WorkflowName: "orders", RunID: uuid.New(), Timestamp: ts, State: state}
		if err := typedFull.Save(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if err := full.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("save/floor-encode-fresh/full-cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := make([]byte, 0, len(rec)+len(rec)/16+256)
			if buf, err = appendEnvelope(buf, run, ts, &state); err != nil {
				b.Fatal(err)
			}
			kept = buf
		}
	})
	b.Run("save/typed/full-cache", func(b *testing.B) {
		c := &cairn.TypedCheckpoint[orders.OrderState]{WorkflowName: "orders", RunID: run, Timestamp: ts, State: state}
		b.ReportAllocs()
		for b.Loop() {
			if err := typedFull.Save(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := full.Close(ctx); err != nil {
		b.Fatal(err)
	}

	b.Run("load/floor-decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out orders.OrderState
			if err := wire.Unmarshal(stateRec, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	loaded := func(b *testing.B) *tiered.Store {
		s := newStore(b)
		c := &cairn.TypedCheckpoint[orders.OrderState]{WorkflowName: "orders", RunID: run, Timestamp: ts, State: state}
		if err := cairn.NewTyped[orders.OrderState](s, nil).Save(ctx, c); err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("load/typed-cache-hit", func(b *testing.B) {
		typed := cairn.NewTyped[orders.OrderState](loaded(b), nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := typed.Load(ctx, run); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load/map-cache-hit", func(b *testing.B) {
		s := loaded(b)
		b.ReportAllocs()
		for b.Loop() {
			cp, err := s.Load(ctx, run)
			if err != nil {
				b.Fatal(err)
			}
			var out orders.OrderState
			if err := cairn.FromValue(cp.State, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
