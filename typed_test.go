package cairn_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/internal/typedtest"
	"github.com/cairnstore/cairn/memstore"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// blazenEvents registers the event of Blazen's golden vectors.
func blazenEvents(t testing.TB) *cairn.EventRegistry {
	t.Helper()
	reg := new(cairn.EventRegistry)
	if err := cairn.RegisterEvent[typedtest.StartEvent](reg, "blazen::StartEvent"); err != nil {
		t.Fatal(err)
	}
	return reg
}

// recordOf returns the stored record of run in a RecordStore.
func recordOf(t testing.TB, s cairn.RecordStore, run uuid.UUID) []byte {
	t.Helper()
	rec, err := s.LoadRecord(context.Background(), run, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// A typed Save writes Blazen's golden vectors byte for byte, from Go
// types, and a typed Load reads them back.
func TestTypedGoldenBytes(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	a := cairn.NewTyped[typedtest.Counter](s, &cairn.TypedOptions{Events: blazenEvents(t)})
	ca := &cairn.TypedCheckpoint[typedtest.Counter]{
		WorkflowName:  "demo",
		RunID:         goldenRun,
		Timestamp:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		State:         typedtest.Counter{Counter: 42},
		PendingEvents: []cairn.TypedEvent{&typedtest.StartEvent{Input: "hello"}},
	}
	if err := a.Save(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(recordOf(t, s, goldenRun)); got != goldenA {
		t.Fatalf("typed record %s\nwant         %s", got, goldenA)
	}
	back, err := a.Load(ctx, goldenRun)
	if err != nil {
		t.Fatal(err)
	}
	ca.Metadata = map[string]any{}
	if !reflect.DeepEqual(back, ca) {
		t.Fatalf("Load = %#v\nwant %#v", back, ca)
	}
	// The map path reads what the typed path wrote as Blazen wrote it.
	cp, err := s.Load(ctx, goldenRun)
	if err != nil || !reflect.DeepEqual(cp, goldenCheckpoints()[goldenA]) {
		t.Fatalf("map Load = %#v, %v", cp, err)
	}

	b := cairn.NewTyped[typedtest.JSONCounter](s, nil)
	cb := &cairn.TypedCheckpoint[typedtest.JSONCounter]{
		WorkflowName: "demo",
		RunID:        goldenRun,
		Timestamp:    time.Date(2024, 6, 10, 6, 13, 20, 123456789, time.UTC),
		State:        typedtest.JSONCounter{Counter: typedtest.Wrapped{JSON: 42}},
		Metadata:     map[string]any{"run_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"},
	}
	if err := b.Save(ctx, cb); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(recordOf(t, s, goldenRun)); got != goldenB {
		t.Fatalf("typed record %s\nwant         %s", got, goldenB)
	}
	backB, err := b.Load(ctx, goldenRun)
	if err != nil || backB.State != cb.State || len(backB.PendingEvents) != 0 || backB.Metadata["run_id"] != cb.Metadata["run_id"] {
		t.Fatalf("Load = %#v, %v", backB, err)
	}
}

// randomKitchen fills every field of a Kitchen from rng.
func randomKitchen(rng *rand.Rand) typedtest.Kitchen {
	str := func() string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789 -_éλ😀"
		r := []rune(chars)
		n := rng.IntN(40)
		var b strings.Builder
		for range n {
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	id := func() uuid.UUID {
		var u uuid.UUID
		for i := range u {
			u[i] = byte(rng.IntN(256))
		}
		return u
	}
	when := func() time.Time {
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)*int64(rng.IntN(2))).UTC()
	}
	item := func() typedtest.Item { return typedtest.Item{SKU: str(), Qty: rng.IntN(1e6) - 5e5, Ref: id()} }
	k := typedtest.Kitchen{
		Zeta: str(), ID: id(), When: when(), Wait: time.Duration(rng.Int64()),
		F32: float32(rng.NormFloat64()), F64: rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20)),
		I8: int8(rng.IntN(256) - 128), I64: rng.Int64() - rng.Int64(), U64: rng.Uint64(), Flag: rng.IntN(2) == 0,
		Status: typedtest.Status(str()), Alpha: str(), Untaged: str(),
		Any:    map[string]any{"n": int64(rng.IntN(1000)), "s": str(), "l": []any{1.5, true, nil, str()}},
		Values: map[string]any{"x": str(), "y": int64(rng.IntN(1 << 40))},
	}
	for range rng.IntN(5) {
		k.Names = append(k.Names, str())
		k.Items = append(k.Items, item())
		k.IDs = append(k.IDs, id())
		k.Grid = append(k.Grid, []int{rng.IntN(100), -rng.IntN(1 << 30)})
	}
	if rng.IntN(2) == 0 {
		k.Tags = map[string]string{str(): str(), str(): str()}
		k.ByName = map[string]*typedtest.Item{str(): {SKU: str()}, str(): nil}
		k.Times = map[string]time.Time{str(): when()}
		it := item()
		k.Ptr = &it
	}
	return k
}

// The typed path writes, for random states of every field kind, the bytes
// the map path writes for the Checkpoint whose State is ToValue(&state),
// and reads back what it wrote.
func TestTypedSameBytesAsMapPath(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 1))
	s := memstore.New(nil)
	typed := cairn.NewTyped[typedtest.Kitchen](s, nil)
	for i := range 300 {
		k := randomKitchen(rng)
		run := uuid.New()
		c := &cairn.TypedCheckpoint[typedtest.Kitchen]{WorkflowName: "kitchen", RunID: run,
			Timestamp: time.Now(), State: k, Metadata: map[string]any{"i": int64(i)}}
		c.PendingEvents = []cairn.TypedEvent{&cairn.Event{EventType: "raw", Data: map[string]any{"k": str(i)}}}
		if err := typed.Save(ctx, c); err != nil {
			t.Fatalf("%d: typed Save: %v", i, err)
		}
		got := recordOf(t, s, run)

		state, err := cairn.ToValue(&k)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cairn.DefaultCodec().EncodeRecord(nil, &cairn.Checkpoint{WorkflowName: "kitchen", RunID: run,
			Timestamp: c.Timestamp, State: state.(map[string]any), Metadata: c.Metadata,
			PendingEvents: []cairn.Event{{EventType: "raw", Data: map[string]any{"k": str(i)}}}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d: typed record differs from the map path's:\n%x\n%x", i, got, want)
		}

		back, err := typed.Load(ctx, run)
		if err != nil {
			t.Fatalf("%d: typed Load: %v", i, err)
		}
		// What was read writes the same bytes again.
		run2 := uuid.New()
		back.RunID = run2
		if err := typed.Save(ctx, back); err != nil {
			t.Fatal(err)
		}
		again := recordOf(t, s, run2)
		if !bytes.Equal(again[bytes.Index(again, []byte("\xa9timestamp")):], got[bytes.Index(got, []byte("\xa9timestamp")):]) {
			t.Fatalf("%d: a loaded state saved again writes other bytes", i)
		}
		// And FromValue reads the JSON-like form into the same value.
		var fromMap typedtest.Kitchen
		if err := cairn.FromValue(state, &fromMap); err != nil {
			t.Fatalf("%d: FromValue: %v", i, err)
		}
		if !reflect.DeepEqual(fromMap, back.State) {
			t.Fatalf("%d: FromValue = %+v\nLoad = %+v", i, fromMap, back.State)
		}
	}
}

func str(i int) string { return fmt.Sprint("v", i) }

// hideRecords is a Store that is not a RecordStore: Typed converts
// through the JSON-like form for it.
type hideRecords struct{ cairn.Store }

// Typed works the same through every store: the three RecordStores and a
// plain Store.
func TestTypedStores(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) cairn.Store{
		"memstore": func(t *testing.T) cairn.Store { return memstore.New(nil) },
		"durable": func(t *testing.T) cairn.Store {
			s, err := durable.New(bucket.NewMem(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"tiered/write-back": func(t *testing.T) cairn.Store {
			s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"tiered/write-through": func(t *testing.T) cairn.Store {
			s, err := tiered.New(bucket.NewMem(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"plain": func(t *testing.T) cairn.Store { return hideRecords{memstore.New(nil)} },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			defer s.Close(ctx)
			reg := blazenEvents(t)
			typed := cairn.NewTyped[typedtest.Kitchen](s, &cairn.TypedOptions{Events: reg})
			rng := rand.New(rand.NewPCG(3, 4))
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var runs []uuid.UUID
			for i := range 5 {
				run := uuid.New()
				runs = append(runs, run)
				c := &cairn.TypedCheckpoint[typedtest.Kitchen]{WorkflowName: "kitchen", RunID: run,
					Timestamp: base.Add(time.Duration(i) * time.Minute), State: randomKitchen(rng),
					PendingEvents: []cairn.TypedEvent{&typedtest.StartEvent{Input: "go"}, &cairn.Event{EventType: "other::Event", Data: "x"}}}
				c.Metadata = map[string]any{cairn.LabelsKey: map[string]any{"parity": fmt.Sprint(i % 2)}}
				if err := typed.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
				back, err := typed.Load(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if !sameKitchen(t, &back.State, &c.State) || back.WorkflowName != "kitchen" || !back.Timestamp.Equal(c.Timestamp) {
					t.Fatalf("Load = %+v", back)
				}
				if e, ok := back.PendingEvents[0].(*typedtest.StartEvent); !ok || e.Input != "go" {
					t.Fatalf("registered event = %#v", back.PendingEvents[0])
				}
				if e, ok := back.PendingEvents[1].(*cairn.Event); !ok || e.EventType != "other::Event" || e.Data != "x" {
					t.Fatalf("unregistered event = %#v", back.PendingEvents[1])
				}
				// The map path reads it as JSON-like values.
				cp, err := s.Load(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if cp.State["id"] != c.State.ID.String() || cp.PendingEvents[0].EventType != "blazen::StartEvent" {
					t.Fatalf("map Load = %+v", cp)
				}
			}
			page, err := typed.List(ctx, &cairn.ListOptions{WithCheckpoints: true, Labels: map[string]string{"parity": "0"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Runs) != 3 || page.Runs[0].RunID != runs[4] || page.Runs[2].RunID != runs[0] {
				t.Fatalf("List = %+v", page.Runs)
			}
			for _, r := range page.Runs {
				if r.Checkpoint == nil || r.Checkpoint.RunID != r.RunID || r.Labels["parity"] != "0" {
					t.Fatalf("List run %+v", r)
				}
			}
			page, err = typed.List(ctx, &cairn.ListOptions{Limit: 2})
			if err != nil || len(page.Runs) != 2 || page.Runs[0].Checkpoint != nil || page.Next == "" {
				t.Fatalf("List without checkpoints = %+v, %v", page, err)
			}
			if err := typed.Delete(ctx, runs[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := typed.Load(ctx, runs[0]); !errors.Is(err, cairn.ErrNotFound) {
				t.Fatalf("Load of a deleted run: %v", err)
			}
			if _, err := typed.Load(ctx, uuid.Nil); !errors.Is(err, cairn.ErrInvalid) {
				t.Fatalf("Load of uuid.Nil: %v", err)
			}
			// A map Save of a state that does not fit Kitchen.
			bad := &cairn.Checkpoint{WorkflowName: "kitchen", RunID: runs[1], Timestamp: base,
				State: map[string]any{"items": []any{map[string]any{"qty": "many"}}}}
			if err := s.Save(ctx, bad); err != nil {
				t.Fatal(err)
			}
			_, err = typed.Load(ctx, runs[1])
			if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state.items[0].qty: ") {
				t.Fatalf("Load of a state of the wrong type: %v", err)
			}
			// An unsavable state is refused, naming the field, and
			// leaves the run as it was.
			c := &cairn.TypedCheckpoint[typedtest.Kitchen]{WorkflowName: "kitchen", RunID: runs[2], Timestamp: base,
				State: typedtest.Kitchen{Items: []typedtest.Item{{}, {SKU: "bad\xff"}}}}
			err = typed.Save(ctx, c)
			if !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "Checkpoint.state.items[1].sku: ") {
				t.Fatalf("Save of invalid UTF-8: %v", err)
			}
			c.State = typedtest.Kitchen{F64: math.NaN()}
			if err := typed.Save(ctx, c); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "Checkpoint.state.f64: ") {
				t.Fatalf("Save of NaN: %v", err)
			}
			c.State = typedtest.Kitchen{}
			c.PendingEvents = []cairn.TypedEvent{nil}
			if err := typed.Save(ctx, c); !errors.Is(err, cairn.ErrInvalid) {
				t.Fatalf("Save of a nil event: %v", err)
			}
			c.PendingEvents = []cairn.TypedEvent{&typedtest.Item{}}
			if err := typed.Save(ctx, c); !errors.Is(err, cairn.ErrUnknownEvent) {
				t.Fatalf("Save of an unregistered event type: %v", err)
			}
			if _, err := typed.Load(ctx, runs[2]); err != nil {
				t.Fatalf("the run after refused Saves: %v", err)
			}
		})
	}
}

// sameKitchen compares two states by their encodings, which the typed
// path keeps whatever nil slices become.
func sameKitchen(t testing.TB, a, b *typedtest.Kitchen) bool {
	t.Helper()
	x, err := a.AppendMsgpackValue(nil)
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.AppendMsgpackValue(nil)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// orderV1Golden is a record that "version 1" of an order state wrote;
// CAIRN_UPDATE_GOLDEN=1 writes it again.
var orderV1Golden = filepath.Join("testdata", "typed", "order-v1.msgpack")

var orderRun = uuid.MustParse("0d6f4a2e-8d7b-4c1a-9e3f-5b2c7a1d9e40")

// Records written by version 1 of a state type load into version 2: a
// renamed field through its alias, added fields at their defaults or zero,
// a dropped field ignored. What version 2 cannot read is ErrCorrupt naming
// the field.
func TestTypedSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	if os.Getenv("CAIRN_UPDATE_GOLDEN") != "" {
		s := memstore.New(nil)
		v1 := cairn.NewTyped[typedtest.OrderV1](s, nil)
		err := v1.Save(ctx, &cairn.TypedCheckpoint[typedtest.OrderV1]{WorkflowName: "orders", RunID: orderRun,
			Timestamp: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC),
			State: typedtest.OrderV1{Customer: "c-42", Zone: "eu-west", Total: 99.5, Legacy: "old",
				Items: []typedtest.ItemV1{{SKU: "a", Qty: 1}, {SKU: "b", Qty: 2}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(orderV1Golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(orderV1Golden, recordOf(t, s, orderRun), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(orderV1Golden)
	if err != nil {
		t.Fatal(err)
	}
	// Stored as the store keeps it: a map Save of the record's checkpoint
	// puts the very bytes back.
	cp, err := cairn.DefaultCodec().DecodeRecord(golden)
	if err != nil {
		t.Fatal(err)
	}
	s := memstore.New(nil)
	if err := s.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(recordOf(t, s, orderRun), golden) {
		t.Fatal("the golden record did not round-trip")
	}

	v2 := cairn.NewTyped[typedtest.OrderV2](s, nil)
	got, err := v2.Load(ctx, orderRun)
	if err != nil {
		t.Fatal(err)
	}
	want := typedtest.OrderV2{Customer: "c-42", Region: "eu-west", Total: 99.5, Currency: "EUR", Retries: 3,
		Deadline: 90 * time.Second, Express: true, Items: []typedtest.ItemV2{{SKU: "a", Qty: 1}, {SKU: "b", Qty: 2}}}
	if !reflect.DeepEqual(got.State, want) {
		t.Fatalf("version 2 read %+v\nwant %+v", got.State, want)
	}
	// Saved by version 2, the record holds version 2's names only.
	if err := v2.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	rec := recordOf(t, s, orderRun)
	if !bytes.Contains(rec, []byte("\xa6region")) || bytes.Contains(rec, []byte("\xa4zone")) || bytes.Contains(rec, []byte("legacy")) {
		t.Fatalf("version 2's record: %q", rec)
	}
	// A value written by a Blazen engine in another language: a field
	// version 2 requires is missing.
	if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "orders", RunID: orderRun, Timestamp: time.Now(),
		State: map[string]any{"customer": "c", "items": []any{map[string]any{"qty": int64(1)}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = v2.Load(ctx, orderRun)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state.items[0]: ") ||
		!strings.Contains(err.Error(), "missing field sku") {
		t.Fatalf("a missing required field: %v", err)
	}
	if err := s.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}
	_, err = cairn.NewTyped[typedtest.OrderApproved](s, nil).Load(ctx, orderRun)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state: ") ||
		!strings.Contains(err.Error(), "missing field approver") {
		t.Fatalf("a required field version 1 never wrote: %v", err)
	}
	_, err = cairn.NewTyped[typedtest.OrderRetyped](s, nil).Load(ctx, orderRun)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state.items[0].qty: ") {
		t.Fatalf("a field of another type: %v", err)
	}
}

// ToValue and FromValue convert UUIDs and times to and from strings, and
// name the field of every conversion error.
func TestTypedConversions(t *testing.T) {
	id := uuid.MustParse("67e55044-10b1-426f-9247-bb680e5fe0c8")
	k := typedtest.Kitchen{ID: id, When: time.Date(2026, 11, 30, 1, 2, 3, 4000, time.UTC), IDs: []uuid.UUID{id},
		Items: []typedtest.Item{{SKU: "s", Ref: id}}}
	v, err := cairn.ToValue(&k)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["id"] != id.String() || m["when"] != "2026-11-30T01:02:03.000004Z" || m["ids"].([]any)[0] != id.String() ||
		m["items"].([]any)[0].(map[string]any)["ref"] != id.String() {
		t.Fatalf("ToValue = %v", m)
	}
	var back typedtest.Kitchen
	if err := cairn.FromValue(v, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != id || !back.When.Equal(k.When) || back.Items[0].Ref != id {
		t.Fatalf("FromValue = %+v", back)
	}
	for _, tc := range []struct {
		name string
		k    typedtest.Kitchen
		path string
	}{
		{"utf-8", typedtest.Kitchen{Names: []string{"ok", "\xff"}}, "Kitchen.names[1]: "},
		{"map key", typedtest.Kitchen{Tags: map[string]string{"\xfe": "v"}}, `Kitchen.tags["\xfe"]: `},
		{"nan", typedtest.Kitchen{Items: []typedtest.Item{{}}, F32: float32(math.Inf(1))}, "Kitchen.f32: "},
		{"year", typedtest.Kitchen{Times: map[string]time.Time{"t": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}, `Kitchen.times["t"]: `},
		{"nested", typedtest.Kitchen{ByName: map[string]*typedtest.Item{"x": {SKU: "\xc3"}}}, `Kitchen.by_name["x"].sku: `},
	} {
		if _, err := cairn.ToValue(&tc.k); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: ToValue = %v, want ErrInvalid naming %s", tc.name, err, tc.path)
		}
	}
	for _, tc := range []struct {
		name string
		v    map[string]any
		path string
	}{
		{"uuid", map[string]any{"ids": []any{id.String(), "not-a-uuid"}}, "Kitchen.ids[1]: "},
		{"time", map[string]any{"times": map[string]any{"t": "yesterday"}}, `Kitchen.times["t"]: `},
		{"int", map[string]any{"items": []any{map[string]any{}, map[string]any{"qty": 1.5}}}, "Kitchen.items[1].qty: "},
		{"int8", map[string]any{"i8": int64(300)}, "Kitchen.i8: "},
		{"grid", map[string]any{"grid": []any{[]any{}, []any{int64(1), "x"}}}, "Kitchen.grid[1][1]: "},
	} {
		var got typedtest.Kitchen
		if err := cairn.FromValue(tc.v, &got); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: FromValue = %v, want ErrInvalid naming %s", tc.name, err, tc.path)
		}
	}
}

// Damaged and hostile records give ErrCorrupt, never a panic: every prefix
// of a record, and records whose run ID is another run's.
func TestTypedLoadRefusesDamage(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	typed := cairn.NewTyped[typedtest.Kitchen](s, &cairn.TypedOptions{Events: blazenEvents(t)})
	run := uuid.New()
	c := &cairn.TypedCheckpoint[typedtest.Kitchen]{WorkflowName: "w", RunID: run, Timestamp: time.Now(),
		State: randomKitchen(rand.New(rand.NewPCG(5, 6))), PendingEvents: []cairn.TypedEvent{&typedtest.StartEvent{Input: "i"}}}
	if err := typed.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	rec := recordOf(t, s, run)
	for n := range len(rec) {
		fake := &fakeRecords{Store: s, rec: rec[:n]}
		_, err := cairn.NewTyped[typedtest.Kitchen](fake, &cairn.TypedOptions{Events: blazenEvents(t)}).Load(ctx, run)
		if !errors.Is(err, cairn.ErrCorrupt) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	fake := &fakeRecords{Store: s, rec: rec}
	if _, err := cairn.NewTyped[typedtest.Kitchen](fake, nil).Load(ctx, uuid.New()); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("another run's record: %v", err)
	}
	fake.rec = append(append([]byte{}, rec...), 0xc0)
	if _, err := cairn.NewTyped[typedtest.Kitchen](fake, nil).Load(ctx, run); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("trailing bytes: %v", err)
	}
}

// fakeRecords serves one record for every LoadRecord.
type fakeRecords struct {
	*memstore.Store
	rec []byte
}

func (f *fakeRecords) LoadRecord(context.Context, uuid.UUID, *cairn.LoadRecordOptions) ([]byte, error) {
	return f.rec, nil
}

// During a rolling deploy, version 1 loads and saves runs that version 2
// wrote: with a field tagged `msgpack:",unknown"` it keeps what it does
// not know, and version 2 gets its fields back, defaults not reapplied.
func TestTypedRollingDeploy(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	v1 := cairn.NewTyped[typedtest.OrderV1](s, nil)
	v2 := cairn.NewTyped[typedtest.OrderV2](s, nil)
	want := typedtest.OrderV2{Customer: "c-7", Region: "us-east", Total: 10, Currency: "USD", Retries: 5,
		Deadline: time.Minute, Express: false, Note: "n", Items: []typedtest.ItemV2{{SKU: "a", Qty: 1, Gift: true}}}
	c := &cairn.TypedCheckpoint[typedtest.OrderV2]{WorkflowName: "orders", RunID: orderRun, Timestamp: time.Now(), State: want}
	if err := v2.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	old, err := v1.Load(ctx, orderRun)
	if err != nil {
		t.Fatal(err)
	}
	if old.State.Zone != "" || old.State.Extra["region"] != "us-east" || old.State.Items[0].Extra["gift"] != true {
		t.Fatalf("version 1 read %+v", old.State)
	}
	old.State.Total++
	if err := v1.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	// What version 1 wrote is what the map path writes for its value.
	v, err := cairn.ToValue(&old.State)
	if err != nil {
		t.Fatal(err)
	}
	if v.(map[string]any)["retries"] != int64(5) {
		t.Fatalf("ToValue kept no unknown key: %v", v)
	}
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, &cairn.Checkpoint{WorkflowName: "orders", RunID: orderRun,
		Timestamp: old.Timestamp, State: v.(map[string]any), Metadata: map[string]any{}})
	if err != nil || !bytes.Equal(rec, recordOf(t, s, orderRun)) {
		t.Fatalf("version 1's record is not the map path's: %v", err)
	}
	back, err := v2.Load(ctx, orderRun)
	if err != nil {
		t.Fatal(err)
	}
	want.Total++
	if !reflect.DeepEqual(back.State, want) {
		t.Fatalf("version 2 got back %+v\nwant %+v", back.State, want)
	}
}

// The record form (AppendMsgpack) keeps unknown keys too, after the
// fields, and a key a field reads is never written twice.
func TestUnknownKeysRecordForm(t *testing.T) {
	o := typedtest.OrderV1{Customer: "c", Extra: map[string]any{"b": int64(2), "a": "x", "customer": "shadow", "zone": nil}}
	b, err := o.AppendMsgpack(nil)
	if err != nil {
		t.Fatal(err)
	}
	var back typedtest.OrderV1
	if err := wire.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Customer != "c" || !reflect.DeepEqual(back.Extra, map[string]any{"a": "x", "b": int64(2)}) {
		t.Fatalf("read back %+v", back)
	}
	// Decoding replaces what the value held, unknown keys included.
	if err := wire.Unmarshal([]byte("\x81\xa8customer\xa1d"), &back); err != nil || back.Extra != nil {
		t.Fatalf("decoding into a used value: %+v, %v", back, err)
	}
	// An unknown key that is not JSON-like is refused, naming it.
	o.Extra = map[string]any{"bad": math.NaN()}
	if _, err := o.AppendMsgpackValue(nil); err == nil || !strings.Contains(err.Error(), `OrderV1["bad"]: `) {
		t.Fatalf("NaN in an unknown key: %v", err)
	}
}

// SaveLeased of a typed checkpoint holds the lease as the map path's does:
// the lease stamp is written, and a lease taken over fails with
// ErrConflict.
func TestTypedSaveLeased(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	typed := cairn.NewTyped[typedtest.Counter](s, nil)
	run := uuid.New()
	c := &cairn.TypedCheckpoint[typedtest.Counter]{WorkflowName: "w", RunID: run, Timestamp: time.Now(), State: typedtest.Counter{Counter: 1}}
	if err := typed.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, run, &cairn.ClaimOptions{Owner: "worker-1"})
	if err != nil {
		t.Fatal(err)
	}
	c.State.Counter = 2
	if err := typed.SaveLeased(ctx, l, c); err != nil {
		t.Fatal(err)
	}
	back, err := typed.Load(ctx, run)
	if err != nil || back.State.Counter != 2 {
		t.Fatalf("Load = %+v, %v", back, err)
	}
	if epoch, leased := cairn.LeaseStamp(back.Metadata); !leased || epoch != l.Epoch {
		t.Fatalf("lease stamp %v %v in %v", epoch, leased, back.Metadata)
	}
	// A plain typed Save of what was loaded keeps the epoch, not the owner.
	if err := typed.Save(ctx, back); err != nil {
		t.Fatal(err)
	}
	again, err := typed.Load(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if epoch, leased := cairn.LeaseStamp(again.Metadata); leased || epoch != l.Epoch {
		t.Fatalf("after a plain Save: lease stamp %v %v", epoch, leased)
	}
	if err := typed.SaveLeased(ctx, l, c); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("SaveLeased after another writer: %v", err)
	}
	if err := cairn.NewTyped[typedtest.Counter](hideRecords{s}, nil).SaveLeased(ctx, l, c); !errors.Is(err, cairn.ErrInvalid) {
		t.Fatalf("SaveLeased through a store that does not lease: %v", err)
	}
}

// A zero Record is refused by every RecordStore, and nothing is written.
func TestSaveRecordRefusesZero(t *testing.T) {
	ctx := context.Background()
	d, err := durable.New(bucket.NewMem(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []cairn.RecordStore{memstore.New(nil), d, tr} {
		if err := s.SaveRecord(ctx, cairn.Record{}); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("%T: SaveRecord of a zero Record: %v", s, err)
		}
		page, err := s.List(ctx, nil)
		if err != nil || len(page.Runs) != 0 {
			t.Errorf("%T: List after: %+v, %v", s, page, err)
		}
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	}
}
