package cairn_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/internal/typedtest"
	"github.com/cairnstore/cairn/memstore"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
)

// FuzzUnmarshal feeds the envelope anything: it must refuse with
// ErrCorrupt or return a checkpoint that survives its own round trip.
func FuzzUnmarshal(f *testing.F) {
	for _, data := range hostileInputs(f) {
		if len(data) < 4096 {
			f.Add(data)
		}
	}
	f.Add(bomb(f))
	f.Add(mustHex(f, goldenA))
	f.Add(mustHex(f, goldenB))
	f.Add([]byte(`{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{}}`))
	codec := cairn.DefaultCodec()
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := codec.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, cairn.ErrCorrupt) {
				t.Fatalf("Unmarshal error is not ErrCorrupt: %v", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("an error message of %d bytes: %.500s", len(err.Error()), err)
			}
			return
		}
		stored, err := codec.Marshal(cp)
		if err != nil {
			// A record may name the nil run or the zero time, which
			// Save refuses; nothing else read may be unwritable.
			if !errors.Is(err, cairn.ErrInvalid) || (cp.RunID != uuid.Nil && !cp.Timestamp.IsZero()) {
				t.Fatalf("a decoded checkpoint cannot be written: %v", err)
			}
			return
		}
		again, err := codec.Unmarshal(stored)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		if d := storetest.Diff(again, cp); d != "" {
			t.Fatalf("round trip changed the checkpoint: %s", d)
		}
	})
}

// FuzzTypedLoad feeds a typed Load any record: it must refuse with
// ErrCorrupt, in a message of bounded size, or return a checkpoint that a
// typed Save writes and a Load reads back the same.
func FuzzTypedLoad(f *testing.F) {
	f.Add(mustHex(f, goldenA))
	f.Add(mustHex(f, goldenB))
	s := memstore.New(nil)
	typed := cairn.NewTyped[typedtest.Kitchen](s, &cairn.TypedOptions{Events: blazenEvents(f)})
	rng := rand.New(rand.NewPCG(8, 9))
	for range 4 {
		c := &cairn.TypedCheckpoint[typedtest.Kitchen]{WorkflowName: "w", RunID: goldenRun, Timestamp: time.Now(),
			State: randomKitchen(rng), PendingEvents: []cairn.TypedEvent{&typedtest.StartEvent{Input: "i"}, &cairn.Event{EventType: "x", Data: 1.5}}}
		if err := typed.Save(context.Background(), c); err != nil {
			f.Fatal(err)
		}
		f.Add(recordOf(f, s, goldenRun))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		fake := &fakeRecords{Store: memstore.New(nil), rec: data}
		typed := cairn.NewTyped[typedtest.Kitchen](fake, &cairn.TypedOptions{Events: blazenEvents(t)})
		c, err := typed.Load(ctx, goldenRun)
		if err != nil {
			if !errors.Is(err, cairn.ErrCorrupt) {
				t.Fatalf("Load error is not ErrCorrupt: %v", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("an error message of %d bytes: %.500s", len(err.Error()), err)
			}
			return
		}
		s := memstore.New(nil)
		back := cairn.NewTyped[typedtest.Kitchen](s, &cairn.TypedOptions{Events: blazenEvents(t)})
		if err := back.Save(ctx, c); err != nil {
			// A record may hold the zero time, or strings of typed
			// fields that are not UTF-8 (not checked when read), which
			// Save refuses.
			if !errors.Is(err, cairn.ErrInvalid) {
				t.Fatalf("a loaded checkpoint cannot be saved: %v", err)
			}
			return
		}
		again, err := back.Load(ctx, goldenRun)
		if err != nil {
			t.Fatalf("a saved checkpoint does not load: %v", err)
		}
		if !sameKitchen(t, &again.State, &c.State) || len(again.PendingEvents) != len(c.PendingEvents) {
			t.Fatalf("round trip changed the checkpoint")
		}
	})
}
