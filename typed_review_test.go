package cairn_test

// Review tests of cairn.Typed, written from the outside, as an engine
// author adopting typed checkpoints would use them. Tests named
// TestReviewFixed* fail on purpose: each documents a defect.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
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

type rvState = typedtest.ReviewState

// rvPlain hides the RecordStore methods of a store.
type rvPlain struct{ cairn.Store }

// rvFake serves one record for every LoadRecord.
type rvFake struct {
	*memstore.Store
	rec []byte
}

func (f *rvFake) LoadRecord(context.Context, uuid.UUID, *cairn.LoadRecordOptions) ([]byte, error) {
	return f.rec, nil
}

func rvRecord(t testing.TB, s cairn.RecordStore, run uuid.UUID) []byte {
	t.Helper()
	rec, err := s.LoadRecord(context.Background(), run, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(rec)
}

func rvEvents(t testing.TB) *cairn.EventRegistry {
	t.Helper()
	reg := new(cairn.EventRegistry)
	if err := cairn.RegisterEvent[typedtest.ReviewEvent](reg, "review::Event"); err != nil {
		t.Fatal(err)
	}
	return reg
}

// rvTricky returns states with values whose encodings are easy to get
// wrong.
func rvTricky() []rvState {
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -(9*3600 + 59*60))
	line := func(s string, q int) *typedtest.ReviewLine { return &typedtest.ReviewLine{SKU: s, Qty: q} }
	many := map[string]any{}
	for i := range 20 { // more than the 8 entries sorted on the stack
		many[fmt.Sprintf("k%02d\u00e9", 19-i)] = int64(i - 10)
	}
	return []rvState{
		{}, // every zero value: nil slices, maps, pointers, any
		{
			B: "b", Upper: "Z", Unicode: "日本", Under: -1, LongName: strings.Repeat("x", 300),
			Neg: math.MinInt64, Big: math.MaxUint64, F32: math.MaxFloat32, NegZero: math.Copysign(0, -1),
			Qty: math.MinInt32, Label: "é", Ratio: math.SmallestNonzeroFloat32,
			Wait: time.Duration(math.MinInt64), When: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			Any:    []any{json.Number("12345678901234567890"), json.Number("-0"), json.Number("1e2"), int8(-3), uint16(300), float32(0.1), math.Copysign(0, -1), []string{}, map[string]string{"é": "1", "Z": "2", "a": "3"}},
			Values: many,
			Keys:   map[string]int{"é": 1, "e": 2, "E": 3, "": 4, "\u00ff": 5, "\U0001F600": 6, "ab": 7, "a": 8, "b": 9, "a\x00": 10},
			Lines:  []typedtest.ReviewLine{}, Ptr: line("p", 0), PtrMap: map[string]*typedtest.ReviewLine{"nil": nil, "x": line("x", -5)},
			Nested: [][]*typedtest.ReviewLine{nil, {}, {nil, line("n", 1)}},
			Empty:  []string{}, IDs: map[string]uuid.UUID{"z": uuid.Max, "a": {}}, State: "not the checkpoint's",
		},
		{
			F32: 0.1, NegZero: 5e-324, Big: 1 << 63, Neg: -33, Under: 128, Qty: 65536, Wait: time.Duration(math.MaxInt64),
			When: time.Date(2024, 2, 29, 1, 2, 3, 4000, east), Any: map[string]any{"t": "x", "n": nil, "f": 1.0, "b": false},
			Values: map[string]any{}, Keys: map[string]int{}, PtrMap: map[string]*typedtest.ReviewLine{}, IDs: map[string]uuid.UUID{},
		},
		{
			When: time.Date(1, 1, 1, 0, 0, 0, 1e6, west), Any: int64(-1), F32: -0.0, Ratio: typedtest.Ratio(1.0 / 3),
			Nested: [][]*typedtest.ReviewLine{{line("", math.MinInt64)}},
		},
		{Any: json.Number("1.5"), Wait: -1, When: time.Unix(0, 0).In(east)},
		{Any: uint64(math.MaxUint64), F32: float32(math.Copysign(0, -1))},
	}
}

// A typed Save writes the same bytes as Store.Save of the checkpoint
// whose state is ToValue(&state), for values that are easy to get wrong,
// through every RecordStore and through a plain Store; and a typed Load
// reads what FromValue reads from a map Load.
func TestReviewSameBytesTricky(t *testing.T) {
	ctx := context.Background()
	ts := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for i, st := range rvTricky() {
		run := uuid.New()
		meta := map[string]any{cairn.LabelsKey: map[string]any{"b": "2", "a": "1"}, "z": []any{1.5, nil}}
		tc := &cairn.TypedCheckpoint[rvState]{WorkflowName: "wf", RunID: run, Timestamp: ts, State: st, Metadata: meta,
			PendingEvents: []cairn.TypedEvent{
				&typedtest.ReviewEvent{ID: uuid.Max, At: ts, N: -7},
				&cairn.Event{EventType: "other::E", Data: map[string]any{"z": 1.0, "a": []any{}}},
				&cairn.Event{EventType: "", Data: nil},
			}}
		typedStore := memstore.New(nil)
		if err := cairn.NewTyped[rvState](typedStore, &cairn.TypedOptions{Events: rvEvents(t)}).Save(ctx, tc); err != nil {
			t.Fatalf("%d: typed Save: %v", i, err)
		}
		got := rvRecord(t, typedStore, run)

		state, err := cairn.ToValue(&st)
		if err != nil {
			t.Fatalf("%d: ToValue: %v", i, err)
		}
		evData, err := cairn.ToValue(tc.PendingEvents[0])
		if err != nil {
			t.Fatal(err)
		}
		mapStore := memstore.New(nil)
		cp := &cairn.Checkpoint{WorkflowName: "wf", RunID: run, Timestamp: ts, State: state.(map[string]any), Metadata: meta,
			PendingEvents: []cairn.Event{{EventType: "review::Event", Data: evData}, *tc.PendingEvents[1].(*cairn.Event), {}}}
		if err := mapStore.Save(ctx, cp); err != nil {
			t.Fatalf("%d: map Save: %v", i, err)
		}
		want := rvRecord(t, mapStore, run)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d: typed record differs from the map path's\ntyped %x\nmap   %x", i, got, want)
		}

		// Through every store, the same bytes.
		for name, s := range rvStores(t) {
			typed := cairn.NewTyped[rvState](s, &cairn.TypedOptions{Events: rvEvents(t)})
			if err := typed.Save(ctx, tc); err != nil {
				t.Fatalf("%d %s: Save: %v", i, name, err)
			}
			back, err := typed.Load(ctx, run)
			if err != nil {
				t.Fatalf("%d %s: Load: %v", i, name, err)
			}
			// Load of what was saved, saved again: same bytes.
			again := memstore.New(nil)
			if err := cairn.NewTyped[rvState](again, &cairn.TypedOptions{Events: rvEvents(t)}).Save(ctx, back); err != nil {
				t.Fatalf("%d %s: Save of the loaded checkpoint: %v", i, name, err)
			}
			// The timestamp comes back in UTC, which writes the same string.
			if b := rvRecord(t, again, run); !bytes.Equal(b, want) {
				t.Fatalf("%d %s: loaded and saved again, other bytes\n%x\n%x", i, name, b, want)
			}
			if rs, ok := s.(cairn.RecordStore); ok {
				if b := rvRecord(t, rs, run); !bytes.Equal(b, want) {
					t.Fatalf("%d %s: stored other bytes", i, name)
				}
			}
			// FromValue of the map Load's state gives what the typed Load gave.
			mcp, err := s.Load(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			var fv rvState
			if err := cairn.FromValue(mcp.State, &fv); err != nil {
				t.Fatalf("%d %s: FromValue: %v", i, name, err)
			}
			if !reflect.DeepEqual(fv, back.State) {
				t.Fatalf("%d %s: FromValue(map Load) = %+v\ntyped Load = %+v", i, name, fv, back.State)
			}
			if _, ok := back.PendingEvents[0].(*typedtest.ReviewEvent); !ok {
				t.Fatalf("%d %s: registered event loaded as %T", i, name, back.PendingEvents[0])
			}
			if e, ok := back.PendingEvents[1].(*cairn.Event); !ok || e.EventType != "other::E" {
				t.Fatalf("%d %s: unregistered event loaded as %#v", i, name, back.PendingEvents[1])
			}
		}
	}
}

// rvStores returns one of each store, fresh.
func rvStores(t testing.TB) map[string]cairn.Store {
	t.Helper()
	d, err := durable.New(bucket.NewMem(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close(context.Background()) })
	return map[string]cairn.Store{"memstore": memstore.New(nil), "durable": d, "tiered": tw, "plain": rvPlain{memstore.New(nil)}}
}

// --- building records by hand, as another engine writes them ---

// rvV is the encoding of a JSON-like value.
func rvV(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wire.AppendValue(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rvMap encodes a map of keys to encoded values: kv alternates a string
// key and a []byte value, in the order given (duplicates kept).
func rvMap(kv ...any) []byte {
	b := wire.AppendMapHeader(nil, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		b = wire.AppendString(b, kv[i].(string))
		b = append(b, kv[i+1].([]byte)...)
	}
	return b
}

// rvArr encodes an array of encoded values.
func rvArr(vs ...[]byte) []byte {
	b := wire.AppendArrayHeader(nil, len(vs))
	for _, v := range vs {
		b = append(b, v...)
	}
	return b
}

func rvTime(ts time.Time) []byte {
	b, err := wire.AppendTime(nil, ts)
	if err != nil {
		panic(err)
	}
	return b
}

var rvTS = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// rvCheckpoint is a map-form record of run whose state is the encoded
// state, with the given encoded events array.
func rvCheckpoint(t testing.TB, run uuid.UUID, state, events []byte) []byte {
	t.Helper()
	if events == nil {
		events = rvArr()
	}
	return rvMap("workflow_name", rvV(t, "wf"), "run_id", wire.AppendUUID(nil, run), "timestamp", rvTime(rvTS),
		"state", state, "pending_events", events, "metadata", rvMap())
}

// rvLoad loads rec through a fake RecordStore, typed as S.
func rvLoad[S any, P cairn.StatePtr[S]](t testing.TB, run uuid.UUID, rec []byte, reg *cairn.EventRegistry) (c *cairn.TypedCheckpoint[S], err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Load panicked on %x: %v", rec, p)
		}
	}()
	return cairn.NewTyped[S, P](&rvFake{Store: memstore.New(nil), rec: rec}, &cairn.TypedOptions{Events: reg}).Load(context.Background(), run)
}

// Records written by another engine: Blazen's positional arrays (the
// checkpoint, its events and the state), fields in another order, an
// event's data before its type, unknown keys at every level, run IDs as
// strings, duplicate keys (the last wins, as in the map path), legacy
// JSON. The typed Load reads each as the map Load plus FromValue does.
func TestReviewForeignRecords(t *testing.T) {
	run := uuid.New()
	reg := rvEvents(t)
	evID := uuid.New()
	evData := rvMap("n", rvV(t, int64(3)), "id", rvV(t, evID.String()), "at", rvV(t, "2025-01-02T03:04:05+02:00"), "extra", rvV(t, []any{1.0}))
	state := rvMap("qty", rvV(t, int64(4)), "unknown", rvV(t, map[string]any{"deep": []any{nil}}), "b", rvV(t, "x"))
	cases := map[string][]byte{
		"positional": rvArr(rvV(t, "wf"), wire.AppendUUID(nil, run), rvTime(rvTS), state,
			rvArr(rvArr(rvV(t, "review::Event"), evData), rvArr(rvV(t, "x::Y"), rvV(t, 1.0))), rvMap(), rvV(t, "extra element")),
		"reordered, data first, unknown keys, uuid string": rvMap(
			"metadata", rvMap("k", rvV(t, "v")), "zzz", rvV(t, nil),
			"pending_events", rvArr(rvMap("data", evData, "other", rvV(t, 1.0), "event_type", rvV(t, "review::Event"))),
			"state", state, "timestamp", rvV(t, "2025-01-02T05:04:05+02:00"), "run_id", rvV(t, strings.ToUpper(run.String())),
			"workflow_name", rvV(t, "wf")),
		"duplicate keys": rvMap("workflow_name", rvV(t, "first"), "run_id", wire.AppendUUID(nil, run), "timestamp", rvTime(rvTS),
			"state", rvMap("b", rvV(t, "old"), "qty", rvV(t, int64(1))), "state", rvMap("b", rvV(t, "new"), "b", rvV(t, "newer")),
			"pending_events", rvArr(), "metadata", rvMap(), "workflow_name", rvV(t, "wf")),
		"legacy JSON": []byte(`{"workflow_name":"wf","run_id":"` + run.String() + `","timestamp":"2025-01-02T03:04:05Z",` +
			`"state":{"qty":4,"b":"x","when":"2025-01-02T03:04:05.5+01:00","lines":[{"sku":"s"}]},` +
			`"pending_events":[{"event_type":"review::Event","data":{"n":3,"id":"` + evID.String() + `"}},{"event_type":"x::Y","data":[1,2]}],"metadata":{}}`),
	}
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := rvLoad[rvState](t, run, rec, reg)
			if err != nil {
				t.Fatalf("typed Load: %v", err)
			}
			cp, err := cairn.DefaultCodec().DecodeRecord(rec)
			if err != nil {
				t.Fatalf("map decode: %v", err)
			}
			var want rvState
			if err := cairn.FromValue(cp.State, &want); err != nil {
				t.Fatalf("FromValue: %v", err)
			}
			if !reflect.DeepEqual(c.State, want) {
				t.Errorf("typed state %+v\nmap state %+v", c.State, want)
			}
			if c.WorkflowName != cp.WorkflowName || c.RunID != cp.RunID || !c.Timestamp.Equal(cp.Timestamp) ||
				len(c.PendingEvents) != len(cp.PendingEvents) || !reflect.DeepEqual(c.Metadata, cp.Metadata) {
				t.Errorf("typed %+v\nmap %+v", c, cp)
			}
			for i, e := range c.PendingEvents {
				if cp.PendingEvents[i].EventType == "review::Event" {
					ev, ok := e.(*typedtest.ReviewEvent)
					if !ok || ev.ID != evID || ev.N != 3 {
						t.Errorf("event %d: %#v", i, e)
					}
				} else if ev, ok := e.(*cairn.Event); !ok || !reflect.DeepEqual(*ev, cp.PendingEvents[i]) {
					t.Errorf("event %d: %#v, map path %#v", i, e, cp.PendingEvents[i])
				}
			}
		})
	}
}

// A state written as a positional array (which the map path refuses: a
// state is a map there) reads positionally.
func TestReviewPositionalState(t *testing.T) {
	run := uuid.New()
	c, err := rvLoad[rvState](t, run, rvCheckpoint(t, run, rvArr(rvV(t, "b"), rvV(t, "Z"), rvV(t, "é")), nil), nil)
	if err != nil || c.State.B != "b" || c.State.Upper != "Z" || c.State.Unicode != "é" {
		t.Fatalf("%+v %v", c, err)
	}
}

// Absent fields take their default tags, in maps and in positional arrays
// shorter than the struct, at the top and inside slices; a required field
// missing (from a map, or past the end of a short array) is ErrCorrupt
// naming its path.
func TestReviewDefaultsAndRequired(t *testing.T) {
	run := uuid.New()
	all := typedtest.ReviewDefaults{ID: "i", Name: "anon", On: true, I8: -128, Hex: 16, U16: 65535, F32: 0.1, F64: -2.5e-3,
		Wait: 90 * time.Second, Nanos: 1500, Label: `x"y`, Qty: 7, Ratio: 1.5}
	for name, state := range map[string][]byte{
		"map":              rvMap("id", rvV(t, "i")),
		"array of one":     rvArr(rvV(t, "i")),
		"map, unknown key": rvMap("nope", rvV(t, 1.0), "id", rvV(t, "i")),
	} {
		c, err := rvLoad[typedtest.ReviewDefaults](t, run, rvCheckpoint(t, run, state, nil), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(c.State, all) {
			t.Errorf("%s: %+v\nwant %+v", name, c.State, all)
		}
	}
	// A positional array of three: the first three from it, the rest defaults.
	c, err := rvLoad[typedtest.ReviewDefaults](t, run, rvCheckpoint(t, run, rvArr(rvV(t, "i"), rvV(t, "n"), rvV(t, false)), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := all
	want.Name, want.On = "n", false
	if !reflect.DeepEqual(c.State, want) {
		t.Errorf("array of three: %+v", c.State)
	}
	// Present values win over defaults, including zero ones.
	c, err = rvLoad[typedtest.ReviewDefaults](t, run, rvCheckpoint(t, run, rvMap("id", rvV(t, "i"), "qty", rvV(t, int64(0)), "name", rvV(t, "")), nil), nil)
	if err != nil || c.State.Qty != 0 || c.State.Name != "" || c.State.Hex != 16 {
		t.Errorf("zero values present: %+v %v", c, err)
	}

	late := []struct {
		name  string
		state []byte
		want  *typedtest.ReviewLate
		path  string
	}{
		{"array without must", rvArr(rvV(t, "a"), rvV(t, int64(1))), nil, "Checkpoint.state"},
		{"map without must", rvMap("a", rvV(t, "a"), "c", rvV(t, int64(1))), nil, "must"},
		{"array up to must", rvArr(rvV(t, "a"), rvV(t, int64(1)), rvV(t, "m")), &typedtest.ReviewLate{A: "a", B: 1, Must: "m", C: 9}, ""},
		{"map with must only", rvMap("must", rvV(t, "m")), &typedtest.ReviewLate{A: "dflt", Must: "m", C: 9}, ""},
		{"must of the wrong type", rvMap("must", rvV(t, int64(1))), nil, "Checkpoint.state.must"},
	}
	for _, tc := range late {
		c, err := rvLoad[typedtest.ReviewLate](t, run, rvCheckpoint(t, run, tc.state, nil), nil)
		if tc.want != nil {
			if err != nil || !reflect.DeepEqual(c.State, *tc.want) {
				t.Errorf("%s: %+v, %v", tc.name, c, err)
			}
			continue
		}
		if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want ErrCorrupt naming %s", tc.name, err, tc.path)
		}
	}

	// Deep paths in errors.
	st := rvMap("lines", rvArr(rvMap("sku", rvV(t, "a")), rvMap("sku", rvV(t, "b"), "qty", rvV(t, "three"))))
	_, err = rvLoad[rvState](t, run, rvCheckpoint(t, run, st, nil), nil)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state.lines[1].qty") {
		t.Errorf("wrong type deep: %v", err)
	}
	st = rvMap("ptr_map", rvMap("k", rvMap("qty", rvV(t, int64(1)))))
	_, err = rvLoad[rvState](t, run, rvCheckpoint(t, run, st, nil), nil)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), `Checkpoint.state.ptr_map["k"]`) || !strings.Contains(err.Error(), "sku") {
		t.Errorf("missing required deep: %v", err)
	}
	// An alias reads the old names; with both present the field's own name wins (README).
	for _, tc := range []struct {
		state []byte
		want  string
	}{
		{rvMap("zone", rvV(t, "z")), "z"},
		{rvMap("area", rvV(t, "a")), "a"},
		{rvMap("region", rvV(t, "r"), "zone", rvV(t, "z")), "r"},
		{rvMap("zone", rvV(t, "z"), "region", rvV(t, "r")), "r"},
	} {
		c, err := rvLoad[typedtest.ReviewRenamed](t, run, rvCheckpoint(t, run, tc.state, nil), nil)
		if err != nil || c.State.Region != tc.want {
			t.Errorf("alias %x: %+v %v", tc.state, c, err)
		}
	}
}

// DEFECT. A pending event that is a nil pointer of a registered type is
// ErrInvalid ("nil event") through a RecordStore, but through a Store
// that is not one (and through Typed.Checkpoint, which SaveLeased users
// call, Typed.SaveLeased, and EventRegistry.Event) it panics with a nil dereference in the
// generated AppendMsgpackValue. Expected: ErrInvalid everywhere, never a
// panic; Typed.Save promises ErrInvalid for what cannot be saved.
func TestReviewFixedTypedNilEventPanicsWithoutRecordStore(t *testing.T) {
	ctx := context.Background()
	c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Now(),
		PendingEvents: []cairn.TypedEvent{(*typedtest.ReviewEvent)(nil)}}
	try := func(name string, f func() error) {
		t.Helper()
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("%s panicked: %v", name, p)
			}
		}()
		if err := f(); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	opts := &cairn.TypedOptions{Events: rvEvents(t)}
	try("Save through a RecordStore", func() error { return cairn.NewTyped[rvState](memstore.New(nil), opts).Save(ctx, c) })
	try("Save through a plain Store", func() error {
		return cairn.NewTyped[rvState](rvPlain{memstore.New(nil)}, opts).Save(ctx, c)
	})
	try("Typed.Checkpoint", func() error {
		_, err := cairn.NewTyped[rvState](memstore.New(nil), opts).Checkpoint(c)
		return err
	})
	func() { // SaveLeased converts through Typed.Checkpoint too; whatever its error, no panic
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("SaveLeased panicked: %v", p)
			}
		}()
		_ = cairn.NewTyped[rvState](memstore.New(nil), opts).SaveLeased(ctx, &cairn.Lease{}, c)
	}()
	try("EventRegistry.Event", func() error {
		_, err := opts.Events.Event((*typedtest.ReviewEvent)(nil))
		return err
	})
}

// DEFECT. RegisterEvent accepts a name that is not valid UTF-8. Through a
// RecordStore, Typed.Save then writes it unchecked as the event_type, so
// the Save succeeds and the run can never be loaded again (ErrCorrupt,
// by both Load and the typed Load), nor by Blazen (rmp-serde refuses
// invalid UTF-8). Through a plain Store the same Save is ErrInvalid.
// Expected: RegisterEvent refuses the name (ErrInvalid), or at least Save
// refuses it before writing, as Store.Save does for an Event's type.
func TestReviewFixedInvalidUTF8EventNameSavedUnloadable(t *testing.T) {
	ctx := context.Background()
	reg := new(cairn.EventRegistry)
	if err := cairn.RegisterEvent[typedtest.ReviewEvent](reg, "bad\xff"); err != nil {
		if !errors.Is(err, cairn.ErrInvalid) {
			t.Fatalf("RegisterEvent: %v, want ErrInvalid", err)
		}
		return // refused up front: fine
	}
	s := memstore.New(nil)
	run := uuid.New()
	err := cairn.NewTyped[rvState](s, &cairn.TypedOptions{Events: reg}).Save(ctx, &cairn.TypedCheckpoint[rvState]{
		WorkflowName: "w", RunID: run, Timestamp: time.Now(), PendingEvents: []cairn.TypedEvent{&typedtest.ReviewEvent{N: 1}}})
	if !errors.Is(err, cairn.ErrInvalid) {
		_, lerr := s.Load(ctx, run)
		t.Errorf("Save with an event name of invalid UTF-8: %v, want ErrInvalid; the stored run now loads as: %v", err, lerr)
	}
}

// DEFECT. decodeTyped is documented to accept what DecodeRecord accepts,
// and the Typed doc says a record loads as any other. A record whose state
// is nil (MessagePack nil) is read by the map path as an empty state, but
// a typed Load refuses it as ErrCorrupt, although every field of the state
// type is optional. Expected: the typed Load reads it as an empty state
// (every field at its default), as FromValue of the map Load's state does.
func TestReviewFixedNilStateRefusedByTypedLoad(t *testing.T) {
	run := uuid.New()
	rec := rvCheckpoint(t, run, wire.AppendNil(nil), nil)
	cp, err := cairn.DefaultCodec().DecodeRecord(rec)
	if err != nil {
		t.Fatalf("map path: %v", err)
	}
	var want typedtest.ReviewRenamed
	if err := cairn.FromValue(cp.State, &want); err != nil {
		t.Fatalf("FromValue of the map path's state: %v", err)
	}
	c, err := rvLoad[typedtest.ReviewRenamed](t, run, rec, nil)
	if err != nil {
		t.Fatalf("typed Load of a record the map path reads: %v", err)
	}
	if !reflect.DeepEqual(c.State, want) {
		t.Errorf("typed %+v, map path %+v", c.State, want)
	}
}

// DEFECT. A typed Load accepts floats that the next typed Save refuses,
// and that the map path does not read as such: a float64 NaN or infinity
// in a float field loads as NaN/Inf (the map path reads it as nil, as
// serde_json does, and FromValue of that refuses nil for a float), and a
// float64 beyond float32's range in a float32 field loads silently as
// +Inf (integers, by contrast, are range-checked). The engine then fails
// its next Save with ErrInvalid far from the cause. Expected: ErrCorrupt
// on Load naming the field (Checkpoint.state.f32), as for an integer out
// of range; or the same result as the map path.
func TestReviewFixedNonFiniteFloatsLoadSilently(t *testing.T) {
	ctx := context.Background()
	run := uuid.New()
	for name, state := range map[string][]byte{
		"NaN float64":            rvMap("negzero", wire.AppendFloat(nil, math.NaN())),
		"+Inf float64":           rvMap("negzero", wire.AppendFloat(nil, math.Inf(1))),
		"1e300 into float32":     rvMap("f32", wire.AppendFloat(nil, 1e300)),
		"-1e39 into named float": rvMap("ratio", wire.AppendFloat(nil, -1e39)),
	} {
		c, err := rvLoad[rvState](t, run, rvCheckpoint(t, run, state, nil), nil)
		if err != nil {
			if !errors.Is(err, cairn.ErrCorrupt) {
				t.Errorf("%s: %v, want ErrCorrupt", name, err)
			}
			continue
		}
		serr := cairn.NewTyped[rvState](memstore.New(nil), nil).Save(ctx, c)
		t.Errorf("%s: Load succeeded (f32=%v negzero=%v ratio=%v); saving it back: %v", name, c.State.F32, c.State.NegZero, c.State.Ratio, serr)
	}
	// The integer counterpart, which holds: out of range is ErrCorrupt.
	_, err := rvLoad[rvState](t, run, rvCheckpoint(t, run, rvMap("qty", rvV(t, int64(math.MaxInt32)+1)), nil), nil)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "Checkpoint.state.qty") {
		t.Errorf("int32 out of range: %v", err)
	}
}

// Hostile records never panic and are always ErrCorrupt: random mutations
// of a valid record (byte flips, insertions, deletions, length bytes set
// high), huge declared lengths, deep nesting, events with bad data or
// types, a record of another run, trailing bytes, an empty record.
func TestReviewHostileRecords(t *testing.T) {
	ctx := context.Background()
	run := uuid.New()
	reg := rvEvents(t)
	s := memstore.New(nil)
	st := rvTricky()[1]
	st.LongName = "short"
	if err := cairn.NewTyped[rvState](s, &cairn.TypedOptions{Events: reg}).Save(ctx, &cairn.TypedCheckpoint[rvState]{
		WorkflowName: "w", RunID: run, Timestamp: rvTS, State: st,
		PendingEvents: []cairn.TypedEvent{&typedtest.ReviewEvent{N: 1}, &cairn.Event{EventType: "u", Data: []any{1.5}}}}); err != nil {
		t.Fatal(err)
	}
	good := rvRecord(t, s, run)
	check := func(what string, rec []byte, mustFail bool) {
		t.Helper()
		c, err := rvLoad[rvState](t, run, rec, reg)
		if err == nil {
			if mustFail {
				t.Errorf("%s: loaded %+v", what, c)
			}
			return
		}
		if !errors.Is(err, cairn.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", what, err)
		}
		if len(err.Error()) > 2000 {
			t.Errorf("%s: error of %d bytes", what, len(err.Error()))
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 3000 {
		rec := bytes.Clone(good)
		for range 1 + rng.IntN(3) {
			p := rng.IntN(len(rec))
			switch rng.IntN(5) {
			case 0:
				rec[p] ^= byte(1 << rng.IntN(8))
			case 1:
				rec[p] = []byte{0xc0, 0xdd, 0xdf, 0xdb, 0xc6, 0xcb, 0xff, 0x00, 0x9f, 0x8f}[rng.IntN(10)]
			case 2:
				rec = append(rec[:p], append([]byte{byte(rng.Uint32())}, rec[p:]...)...)
			case 3:
				rec = append(rec[:p], rec[p+1:]...)
			case 4:
				rec = append(rec[:p], append([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, rec[p:]...)...)
			}
			if len(rec) == 0 {
				rec = []byte{0x80}
			}
		}
		check(fmt.Sprint("mutation ", i), rec, false)
	}
	deep := func(n int, open, close byte) []byte {
		return append(bytes.Repeat([]byte{open}, n), close)
	}
	for name, rec := range map[string][]byte{
		"empty":               {},
		"nil":                 {0xc0},
		"another run":         rvCheckpoint(t, uuid.New(), rvMap(), nil),
		"trailing":            append(bytes.Clone(good), 0xc0),
		"array32 of 2^32-1":   rvCheckpoint(t, run, rvMap("lines", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}), nil),
		"map32 in any":        rvCheckpoint(t, run, rvMap("any", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}), nil),
		"str32 huge":          rvCheckpoint(t, run, rvMap("b", []byte{0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'}), nil),
		"deep any":            rvCheckpoint(t, run, rvMap("any", deep(100000, 0x91, 0xc0)), nil),
		"deep grid":           rvCheckpoint(t, run, rvMap("nested", deep(100000, 0x91, 0x90)), nil),
		"deep unknown key":    rvCheckpoint(t, run, rvMap("unknown", deep(100000, 0x81, 0xc0)), nil),
		"deep metadata":       bytes.Replace(rvCheckpoint(t, run, rvMap(), nil), []byte("\xa8metadata\x80"), append([]byte("\xa8metadata\x81\xa1a"), deep(100000, 0x91, 0xc0)...), 1),
		"deep event data":     rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "u"), "data", deep(100000, 0x91, 0xc0)))),
		"deep registered":     rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "review::Event"), "data", deep(100000, 0x91, 0xc0)))),
		"deep state pointer":  rvCheckpoint(t, run, bytes.Repeat([]byte{0x81, 0xa3, 'p', 't', 'r'}, 50000), nil),
		"event bad data":      rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "review::Event"), "data", rvV(t, "str")))),
		"event data missing":  rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "u")))),
		"event type missing":  rvCheckpoint(t, run, rvMap(), rvArr(rvMap("data", rvV(t, nil)))),
		"event type number":   rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, int64(1)), "data", rvV(t, nil)))),
		"event short array":   rvCheckpoint(t, run, rvMap(), rvArr(rvArr(rvV(t, "u")))),
		"event data bin":      rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "u"), "data", wire.AppendBytes(nil, []byte{1})))),
		"event nil":           rvCheckpoint(t, run, rvMap(), rvArr(wire.AppendNil(nil))),
		"events not array":    rvCheckpoint(t, run, rvMap(), rvMap()),
		"registered missing":  rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "review::Event"), "data", rvMap()))),
		"registered bad uuid": rvCheckpoint(t, run, rvMap(), rvArr(rvMap("event_type", rvV(t, "review::Event"), "data", rvMap("n", rvV(t, int64(1)), "id", rvV(t, "zz"))))),
		"short checkpoint":    rvArr(rvV(t, "wf"), wire.AppendUUID(nil, run)),
		"missing metadata":    rvMap("workflow_name", rvV(t, "wf"), "run_id", wire.AppendUUID(nil, run), "timestamp", rvTime(rvTS), "state", rvMap(), "pending_events", rvArr()),
		"workflow not utf8":   bytes.Replace(rvCheckpoint(t, run, rvMap(), nil), []byte("\xa2wf"), []byte("\xa2w\xff"), 1),
		"run id 15 bytes":     bytes.Replace(rvCheckpoint(t, run, rvMap(), nil), []byte{0xc4, 16}, []byte{0xc4, 15}, 1),
		"key not a string":    append([]byte{0x81, 0x01}, 0xc0),
		"state key not str":   rvCheckpoint(t, run, []byte{0x81, 0x01, 0xc0}, nil),
		"json garbage":        []byte(`{"workflow_name":`),
		"json deep":           append([]byte(`{"state":`), bytes.Repeat([]byte("["), 100000)...),
		"zstd magic":          {0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0},
	} {
		check(name, rec, true)
	}
}

// Many goroutines Save, Load, List (with checkpoints) and Delete through
// one Typed, over a write-back tiered store and a memstore, under -race:
// every Load sees a whole checkpoint some Save wrote.
func TestReviewConcurrent(t *testing.T) {
	ctx := context.Background()
	for name, s := range rvStores(t) {
		t.Run(name, func(t *testing.T) {
			typed := cairn.NewTyped[rvState](s, &cairn.TypedOptions{Events: rvEvents(t), Parallel: 3})
			runs := make([]uuid.UUID, 4)
			for i := range runs {
				runs[i] = uuid.New()
			}
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						run := runs[(g+i)%len(runs)]
						switch i % 4 {
						case 0, 1:
							st := rvState{B: fmt.Sprint(g, "-", i), Neg: int64(g), Keys: map[string]int{"g": g, "i": i}, Lines: []typedtest.ReviewLine{{SKU: "s", Qty: i}}}
							c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "c", RunID: run, Timestamp: time.Now(), State: st,
								PendingEvents: []cairn.TypedEvent{&typedtest.ReviewEvent{N: i}}, Metadata: map[string]any{cairn.LabelsKey: map[string]any{"g": fmt.Sprint(g)}}}
							if err := typed.Save(ctx, c); err != nil {
								errs <- err
							}
						case 2:
							c, err := typed.Load(ctx, run)
							if errors.Is(err, cairn.ErrNotFound) {
								continue
							}
							if err != nil {
								errs <- err
								continue
							}
							var g2, i2 int
							if _, err := fmt.Sscanf(c.State.B, "%d-%d", &g2, &i2); err != nil || c.State.Keys["g"] != g2 || c.State.Keys["i"] != i2 ||
								c.State.Lines[0].Qty != i2 || c.PendingEvents[0].(*typedtest.ReviewEvent).N != i2 {
								errs <- fmt.Errorf("torn checkpoint %+v", c.State)
							}
						case 3:
							if g%4 == 0 && i%8 == 3 {
								if err := typed.Delete(ctx, run); err != nil && !errors.Is(err, cairn.ErrNotFound) {
									errs <- err
								}
								continue
							}
							p, err := typed.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
							if err != nil {
								errs <- err
								continue
							}
							for _, r := range p.Runs {
								if r.Checkpoint == nil || r.Checkpoint.RunID != r.RunID {
									errs <- fmt.Errorf("list: %+v", r)
								}
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// Write-back tiered store: a Load right after a Save sees it (from the
// cache, before any flush); List WithCheckpoints while the flusher runs
// returns each run's latest; with SkipUnchanged a typed Save of an
// unchanged state costs no request, as a map Save of it does.
func TestReviewTieredWriteBack(t *testing.T) {
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, SkipUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	typed := cairn.NewTyped[rvState](s, nil)
	runs := make([]uuid.UUID, 20)
	for i := range runs {
		runs[i] = uuid.New()
	}
	done := make(chan struct{})
	listErr := make(chan error, 1)
	go func() { // List while Saves and flushes go on
		defer close(listErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			p, err := typed.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
			if err != nil {
				listErr <- err
				return
			}
			for _, r := range p.Runs {
				if r.Checkpoint == nil || !r.Checkpoint.Timestamp.Equal(r.Timestamp) && r.Checkpoint.Timestamp.Before(r.Timestamp) {
					listErr <- fmt.Errorf("run %v: summary %v, checkpoint %+v", r.RunID, r.Timestamp, r.Checkpoint)
					return
				}
			}
		}
	}()
	base := time.Now()
	for round := range 5 {
		for i, run := range runs {
			ts := base.Add(time.Duration(round) * time.Second)
			c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: run, Timestamp: ts, State: rvState{Under: round*100 + i}}
			if err := typed.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			got, err := typed.Load(ctx, run)
			if err != nil || got.State.Under != round*100+i || !got.Timestamp.Equal(ts) {
				t.Fatalf("Load right after Save: %+v %v", got, err)
			}
		}
		if round == 2 {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	if err := <-listErr; err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := typed.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
	if err != nil || len(p.Runs) != len(runs) {
		t.Fatalf("%d runs, %v", len(p.Runs), err)
	}
	for _, r := range p.Runs {
		if r.Checkpoint.State.Under/100 != 4 {
			t.Errorf("run %v: state of round %d", r.RunID, r.Checkpoint.State.Under/100)
		}
	}
	// Unchanged: a typed Save of what is durable is skipped, as is a map Save of it.
	c, err := typed.Load(ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if err := typed.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	cp, err := typed.Checkpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if after.SkippedSaves-before.SkippedSaves != 2 || after.PUTs != before.PUTs {
		t.Errorf("unchanged Saves: skipped %d, PUTs %d", after.SkippedSaves-before.SkippedSaves, after.PUTs-before.PUTs)
	}
}

// A plain typed Save keeps only the epoch of a lease stamp, as Store.Save
// does (Unleased), leaves the caller's metadata alone, and indexes the
// epoch; an invalid stamp or invalid labels are ErrInvalid with nothing
// written; a record over the codec's MaxSize is ErrTooLarge with nothing
// written. Through every store.
func TestReviewSaveValidation(t *testing.T) {
	ctx := context.Background()
	small, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: 1500})
	if err != nil {
		t.Fatal(err)
	}
	dsmall, err := durable.New(bucket.NewMem(), &durable.Options{Codec: small})
	if err != nil {
		t.Fatal(err)
	}
	tsmall, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, Durable: durable.Options{Codec: small}})
	if err != nil {
		t.Fatal(err)
	}
	defer tsmall.Close(ctx)
	stores := rvStores(t)
	stores["memstore small"] = memstore.New(&memstore.Options{Codec: small})
	stores["durable small"] = dsmall
	stores["tiered small"] = tsmall
	for name, s := range stores {
		typed := cairn.NewTyped[rvState](s, nil)
		run := uuid.New()
		stamp := map[string]any{"epoch": uint64(3), "owner": "me"}
		meta := map[string]any{cairn.LeaseKey: stamp, "x": "y"}
		c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: run, Timestamp: time.Now(), Metadata: meta}
		if err := typed.Save(ctx, c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(stamp) != 2 || meta[cairn.LeaseKey].(map[string]any)["owner"] != "me" {
			t.Errorf("%s: the caller's metadata was changed: %v", name, meta)
		}
		got, err := typed.Load(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if e, leased := cairn.LeaseStamp(got.Metadata); e != 3 || leased || got.Metadata["x"] != "y" {
			t.Errorf("%s: stored metadata %v", name, got.Metadata)
		}
		if rs, ok := s.(cairn.RecordStore); ok {
			mapStore := memstore.New(nil)
			cp, _ := typed.Checkpoint(c)
			if err := mapStore.Save(ctx, cp); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rvRecord(t, rs, run), rvRecord(t, mapStore, run)) {
				t.Errorf("%s: leased metadata: typed bytes differ from Store.Save's", name)
			}
		}

		for what, md := range map[string]map[string]any{
			"labels not a map":    {cairn.LabelsKey: "x"},
			"label not a string":  {cairn.LabelsKey: map[string]any{"a": 1}},
			"stamp epoch 0":       {cairn.LeaseKey: map[string]any{"epoch": 0}},
			"stamp extra key":     {cairn.LeaseKey: map[string]any{"epoch": 1, "x": 1}},
			"metadata NaN":        {"f": math.NaN()},
			"metadata bytes":      {"b": []byte{1}},
			"metadata bad utf8":   {"s": "\xff"},
			"metadata bad key":    {"\xff": 1},
			"workflow bad utf8":   nil,
			"timestamp year 1e4":  nil,
			"state bad utf8":      nil,
			"zero timestamp":      nil,
			"nil run":             nil,
			"event data bad utf8": nil,
		} {
			run := uuid.New()
			c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: run, Timestamp: time.Now(), Metadata: md}
			switch what {
			case "workflow bad utf8":
				c.WorkflowName = "\xff"
			case "timestamp year 1e4":
				c.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			case "state bad utf8":
				c.State.Keys = map[string]int{"\xff": 1}
			case "zero timestamp":
				c.Timestamp = time.Time{}
			case "nil run":
				c.RunID = uuid.Nil
			case "event data bad utf8":
				c.PendingEvents = []cairn.TypedEvent{&cairn.Event{EventType: "e", Data: []any{"\xff"}}}
			}
			if err := typed.Save(ctx, c); !errors.Is(err, cairn.ErrInvalid) {
				t.Errorf("%s: %s: %v, want ErrInvalid", name, what, err)
			}
			if _, err := s.Load(ctx, run); !errors.Is(err, cairn.ErrNotFound) && run != uuid.Nil {
				t.Errorf("%s: %s: something was written: %v", name, what, err)
			}
		}

		if strings.HasSuffix(name, "small") {
			run := uuid.New()
			c := &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: run, Timestamp: time.Now(), State: rvState{B: strings.Repeat("b", 1500)}}
			if err := typed.Save(ctx, c); !errors.Is(err, cairn.ErrTooLarge) {
				t.Errorf("%s: too large: %v", name, err)
			}
			if _, err := s.Load(ctx, run); !errors.Is(err, cairn.ErrNotFound) {
				t.Errorf("%s: too large, something written: %v", name, err)
			}
			// Under the limit after a large attempt (the size hint is not poisoned).
			c.State.B = "small"
			if err := typed.Save(ctx, c); err != nil {
				t.Errorf("%s: small after large: %v", name, err)
			}
		}
	}
}

// List WithCheckpoints fails with ErrCorrupt naming the run whose record
// does not decode into the state type; without WithCheckpoints it lists.
func TestReviewListCorrupt(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	good, bad := uuid.New(), uuid.New()
	if err := cairn.NewTyped[typedtest.ReviewLate](s, nil).Save(ctx, &cairn.TypedCheckpoint[typedtest.ReviewLate]{WorkflowName: "w", RunID: good, Timestamp: time.Now(), State: typedtest.ReviewLate{Must: "m"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "w", RunID: bad, Timestamp: time.Now(), State: map[string]any{"a": "x"}}); err != nil {
		t.Fatal(err)
	}
	typed := cairn.NewTyped[typedtest.ReviewLate](s, nil)
	if p, err := typed.List(ctx, nil); err != nil || len(p.Runs) != 2 {
		t.Fatalf("List: %v", err)
	}
	_, err := typed.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), "must") {
		t.Fatalf("List WithCheckpoints: %v", err)
	}
}

// DEFECT (the codec, met while testing ErrTooLarge with a small MaxSize).
// A Codec whose MaxSize is below 1024 cannot read the zstd frames it
// writes: every frame declares a window of at least zstd's minimum, 1 KiB,
// which the decoder refuses as over the limit, so durable and tiered
// stores with such a codec accept every Save and then fail every Load with
// ErrCorrupt. NewCodec accepts the MaxSize. Expected: a Codec reads back
// what it writes (allow the minimum window whatever MaxSize is), or
// NewCodec refuses MaxSize < 1024 with ErrInvalid.
func TestReviewFixedSmallMaxSizeCannotReadOwnRecords(t *testing.T) {
	ctx := context.Background()
	small, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: 1000})
	if err != nil {
		if errors.Is(err, cairn.ErrInvalid) {
			return
		}
		t.Fatal(err)
	}
	d, err := durable.New(bucket.NewMem(), &durable.Options{Codec: small})
	if err != nil {
		t.Fatal(err)
	}
	typed := cairn.NewTyped[rvState](d, nil)
	run := uuid.New()
	if err := typed.Save(ctx, &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: run, Timestamp: time.Now()}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, err := typed.Load(ctx, run); err != nil {
		t.Errorf("typed Load of what was just saved: %v", err)
	}
	if _, err := d.Load(ctx, run); err != nil {
		t.Errorf("Load of what was just saved: %v", err)
	}
}

// Errors name the path to the value: on Save (ErrInvalid), in ToValue
// (ErrInvalid, rooted at the state type) and FromValue (ErrInvalid), and
// UUIDs and times convert as strings both ways.
func TestReviewErrorPaths(t *testing.T) {
	ctx := context.Background()
	bad := rvState{Nested: [][]*typedtest.ReviewLine{{}, {nil, {SKU: "ok"}, {SKU: "\xff"}}}}
	err := cairn.NewTyped[rvState](memstore.New(nil), nil).Save(ctx, &cairn.TypedCheckpoint[rvState]{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Now(), State: bad})
	if !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "Checkpoint.state.nested[1][2].sku") {
		t.Errorf("Save: %v", err)
	}
	if _, err := cairn.ToValue(&bad); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "ReviewState.nested[1][2].sku") {
		t.Errorf("ToValue: %v", err)
	}
	bad = rvState{PtrMap: map[string]*typedtest.ReviewLine{"k\"": {SKU: "s"}}, Values: map[string]any{"v": []any{math.Inf(-1)}}}
	if _, err := cairn.ToValue(&bad); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), `ReviewState.values["v"][0]`) {
		t.Errorf("ToValue Inf: %v", err)
	}
	var dst rvState
	err = cairn.FromValue(map[string]any{"ptr_map": map[string]any{"k": map[string]any{"sku": "s", "qty": "x"}}}, &dst)
	if !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), `ReviewState.ptr_map["k"].qty`) {
		t.Errorf("FromValue: %v", err)
	}
	id := uuid.New()
	when := time.Date(2030, 5, 6, 7, 8, 9, 10, time.FixedZone("", -3600))
	v, err := cairn.ToValue(&typedtest.ReviewEvent{ID: id, At: when, N: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["id"] != id.String() || m["at"] != "2030-05-06T08:08:09.000000010Z" || m["n"] != int64(1) {
		t.Errorf("ToValue: %#v", m)
	}
	var ev typedtest.ReviewEvent
	if err := cairn.FromValue(map[string]any{"id": strings.ToUpper(id.String()), "at": "2030-05-06T07:08:09.00000001-01:00", "n": 1.0}, &ev); err == nil {
		// A float for an int field: accepted or refused, but not silently truncated.
		if ev.N != 1 || ev.ID != id || !ev.At.Equal(when) {
			t.Errorf("FromValue: %+v", ev)
		}
	}
}

// A state that keeps unknown keys (`,unknown`) saves them back among its
// fields, sorted, with the same bytes as the map path; a key a field
// reads (its name or alias) is not kept, even when the caller puts it in
// the unknown map.
func TestReviewUnknownKeysKept(t *testing.T) {
	ctx := context.Background()
	run := uuid.New()
	state := rvMap("zz", rvV(t, []any{1.5}), "old", rvV(t, int64(7)), "a", rvV(t, "A"), "b", rvV(t, "B"), "é", rvV(t, nil), "", rvV(t, true), "c", rvMap("n", rvV(t, int64(-1))))
	c, err := rvLoad[typedtest.ReviewKeep](t, run, rvCheckpoint(t, run, state, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"zz": []any{1.5}, "a": "A", "é": nil, "": true, "c": map[string]any{"n": int64(-1)}}
	if c.State.B != "B" || c.State.Z != 7 || !reflect.DeepEqual(c.State.Rest, want) {
		t.Fatalf("%+v", c.State)
	}
	c.State.Rest["b"] = "shadow" // a field's name: the field wins
	c.State.Rest["old"] = int64(99)
	s := memstore.New(nil)
	if err := cairn.NewTyped[typedtest.ReviewKeep](s, nil).Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	sv, err := cairn.ToValue(&c.State)
	if err != nil {
		t.Fatal(err)
	}
	m := memstore.New(nil)
	if err := m.Save(ctx, &cairn.Checkpoint{WorkflowName: c.WorkflowName, RunID: run, Timestamp: c.Timestamp, State: sv.(map[string]any), Metadata: c.Metadata}); err != nil {
		t.Fatal(err)
	}
	if got, w := rvRecord(t, s, run), rvRecord(t, m, run); !bytes.Equal(got, w) {
		t.Fatalf("typed %x\nmap   %x", got, w)
	}
	back, err := cairn.NewTyped[typedtest.ReviewKeep](s, nil).Load(ctx, run)
	if err != nil || back.State.B != "B" || back.State.Z != 7 || !reflect.DeepEqual(back.State.Rest, want) {
		t.Fatalf("%+v %v", back, err)
	}
}
