// Package storetest is the conformance suite of cairn.Store. Every Store in
// this module runs it, and so can a third party's:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) cairn.Store { return mystore.New(...) })
//	}
//
// newStore must return a fresh, empty store each time it is called; the
// suite closes it. The suite assumes the store bounds records with
// cairn.DefaultMaxSize.
//
// A store that several processes share (over one bucket or directory)
// also runs RunShared, whose subtests open two stores on one backing and
// check that neither loses the other's Saves and Deletes, and that
// fencing holds. Single-store tests cannot see a server that accepts
// conditional writes without honouring them; these fail on it:
//
//	func TestShared(t *testing.T) {
//		storetest.RunShared(t, func(t *testing.T) storetest.Shared {
//			backing := newBacking(t) // fresh and empty for each subtest
//			return storetest.Shared{
//				Open: func(t *testing.T) cairn.Store { return mystore.Open(backing) },
//			}
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// Run runs every conformance test against stores made by newStore, each
// subtest on a fresh store.
func Run(t *testing.T, newStore func(t *testing.T) cairn.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s cairn.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"RoundTrip", testRoundTrip},
		{"IntegersStayIntegers", testIntegersStayIntegers},
		{"NilCollectionsLoadEmpty", testNilCollections},
		{"TimestampUTCNanos", testTimestamp},
		{"CallerOwnsCopies", testOwnership},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"ListEmpty", testListEmpty},
		{"ListOrder", testListOrder},
		{"ListPaging", testListPaging},
		{"ListPagingStable", testListPagingStable},
		{"ListFilters", testListFilters},
		{"ListSummaries", testListSummaries},
		{"ListInvalidOptions", testListInvalid},
		{"SaveInvalid", testSaveInvalid},
		{"SaveTooLarge", testSaveTooLarge},
		{"Canceled", testCanceled},
		{"UseAfterClose", testUseAfterClose},
		{"Concurrent", testConcurrent},
		{"BadInput", testBadInput},
		{"LabelsRoundTrip", testLabelsRoundTrip},
		{"ListByLabel", testListByLabel},
		{"LabelChange", testLabelChange},
		{"LabelPaging", testLabelPaging},
		{"LabelsInvalid", testLabelsInvalid},
		{"LabelSelectorInvalid", testLabelSelectorInvalid},
		{"ClaimBasics", testClaimBasics},
		{"ClaimSaveLeased", testClaimSaveLeased},
		{"ClaimTakeover", testClaimTakeover},
		{"ClaimRenew", testClaimRenew},
		{"ClaimRelease", testClaimRelease},
		{"ClaimRace", testClaimRace},
		{"ClaimOutsideWrites", testClaimOutsideWrites},
		{"ClaimableList", testClaimableList},
		{"ClaimEpochBound", testClaimEpochBound},
		{"ClaimUnchangedResave", testClaimUnchangedResave},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			tt.fn(t, s)
		})
	}
}

var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// runID returns a deterministic run ID whose bytes sort by n.
func runID(n int) uuid.UUID {
	var id uuid.UUID
	id[0], id[1] = byte(n>>8), byte(n)
	id[6], id[8] = 0x40, 0x80 // version 4, RFC 4122 variant
	id[15] = 1
	return id
}

// checkpoint returns a checkpoint with a rich state of JSON-like values,
// already in the form Load returns them.
func checkpoint(n int, ts time.Time) *cairn.Checkpoint {
	return &cairn.Checkpoint{
		WorkflowName: "wf-" + fmt.Sprint(n%3),
		RunID:        runID(n),
		Timestamp:    ts,
		State: map[string]any{
			"step":    int64(n),
			"ratio":   0.5,
			"whole":   42.0,
			"name":    "run ✓ " + fmt.Sprint(n),
			"done":    false,
			"nothing": nil,
			"list":    []any{int64(1), "two", 3.25, []any{}, map[string]any{}},
			"nested":  map[string]any{"a": map[string]any{"b": []any{true, nil, int64(-7)}}},
		},
		PendingEvents: []cairn.Event{
			{EventType: "blazen::StartEvent", Data: map[string]any{"input": "hello"}},
			{EventType: "app::Tick", Data: int64(n)},
		},
		Metadata: map[string]any{"attempt": int64(1)},
	}
}

func mustSave(t *testing.T, s cairn.Store, c *cairn.Checkpoint) {
	t.Helper()
	if err := s.Save(context.Background(), c); err != nil {
		t.Fatalf("Save(%v): %v", c.RunID, err)
	}
}

func mustLoad(t *testing.T, s cairn.Store, id uuid.UUID) *cairn.Checkpoint {
	t.Helper()
	c, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load(%v): %v", id, err)
	}
	return c
}

func mustList(t *testing.T, s cairn.Store, o *cairn.ListOptions) *cairn.Page {
	t.Helper()
	p, err := s.List(context.Background(), o)
	if err != nil {
		t.Fatalf("List(%+v): %v", o, err)
	}
	return p
}

// Diff returns "" when got equals want, field by field, with timestamps
// compared as instants; else a description of the first difference.
func Diff(got, want *cairn.Checkpoint) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Sprintf("Timestamp = %v, want %v", got.Timestamp, want.Timestamp)
	}
	g, w := *got, *want
	g.Timestamp, w.Timestamp = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("got  %#v\nwant %#v", g, w)
	}
	return ""
}

func runIDs(p *cairn.Page) []uuid.UUID {
	ids := make([]uuid.UUID, len(p.Runs))
	for i, r := range p.Runs {
		ids[i] = r.RunID
	}
	return ids
}

func testLoadMissing(t *testing.T, s cairn.Store) {
	id := runID(1)
	_, err := s.Load(context.Background(), id)
	if !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load of a missing run: %v, want ErrNotFound", err)
	}
	var e *cairn.Error
	if !errors.As(err, &e) || e.Op != "load" || e.RunID != id {
		t.Fatalf("Load error %v does not name op load and run %v", err, id)
	}
}

func testRoundTrip(t *testing.T, s cairn.Store) {
	want := checkpoint(7, base)
	mustSave(t, s, want)
	if d := Diff(mustLoad(t, s, want.RunID), want); d != "" {
		t.Fatal(d)
	}
}

func testIntegersStayIntegers(t *testing.T, s cairn.Store) {
	c := checkpoint(1, base)
	c.State = map[string]any{
		"counter": 42, "i8": int8(-5), "u16": uint16(65535), "big": uint64(math.MaxUint64),
		"min": int64(math.MinInt64), "f32": float32(1.5), "float": 42.0,
	}
	mustSave(t, s, c)
	got := mustLoad(t, s, c.RunID).State
	want := map[string]any{
		"counter": int64(42), "i8": int64(-5), "u16": int64(65535), "big": uint64(math.MaxUint64),
		"min": int64(math.MinInt64), "f32": 1.5, "float": 42.0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("State = %#v\nwant %#v", got, want)
	}
}

func testNilCollections(t *testing.T, s cairn.Store) {
	c := &cairn.Checkpoint{WorkflowName: "w", RunID: runID(1), Timestamp: base}
	mustSave(t, s, c)
	got := mustLoad(t, s, c.RunID)
	if got.State == nil || got.Metadata == nil || got.PendingEvents == nil {
		t.Fatalf("nil collections came back nil: %#v", got)
	}
	if len(got.State)+len(got.Metadata)+len(got.PendingEvents) != 0 {
		t.Fatalf("nil collections came back non-empty: %#v", got)
	}
}

func testTimestamp(t *testing.T, s cairn.Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	for i, ts := range []time.Time{
		base.In(zone),
		time.Date(2024, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 120_000_000, time.UTC),
		time.Now(), // carries a monotonic reading
	} {
		c := checkpoint(i, ts)
		mustSave(t, s, c)
		got := mustLoad(t, s, c.RunID)
		if !got.Timestamp.Equal(ts) || got.Timestamp.Location() != time.UTC {
			t.Errorf("Timestamp %v came back as %v (%v)", ts, got.Timestamp, got.Timestamp.Location())
		}
	}
}

func testOwnership(t *testing.T, s cairn.Store) {
	c := checkpoint(1, base)
	want := checkpoint(1, base)
	mustSave(t, s, c)
	c.State["step"] = int64(999) // the store must not have kept c
	c.PendingEvents[0].EventType = "changed"
	got := mustLoad(t, s, c.RunID)
	if d := Diff(got, want); d != "" {
		t.Fatalf("changing a saved checkpoint changed the store: %s", d)
	}
	got.State["step"] = int64(-1) // nor must it share what Load returned
	got.State["nested"].(map[string]any)["a"] = "x"
	if d := Diff(mustLoad(t, s, c.RunID), want); d != "" {
		t.Fatalf("changing a loaded checkpoint changed the store: %s", d)
	}
}

func testOverwrite(t *testing.T, s cairn.Store) {
	first := checkpoint(1, base)
	mustSave(t, s, first)
	second := checkpoint(1, base.Add(time.Second))
	second.State = map[string]any{"step": int64(2)}
	second.WorkflowName = "renamed"
	mustSave(t, s, second)
	if d := Diff(mustLoad(t, s, first.RunID), second); d != "" {
		t.Fatalf("after overwrite: %s", d)
	}
	p := mustList(t, s, nil)
	if len(p.Runs) != 1 || p.Runs[0].WorkflowName != "renamed" || !p.Runs[0].Timestamp.Equal(second.Timestamp) {
		t.Fatalf("List after overwrite = %+v, want the one run as overwritten", p.Runs)
	}
}

func testDelete(t *testing.T, s cairn.Store) {
	a, b := checkpoint(1, base), checkpoint(2, base)
	mustSave(t, s, a)
	mustSave(t, s, b)
	if err := s.Delete(context.Background(), a.RunID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Load(context.Background(), a.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load after Delete: %v, want ErrNotFound", err)
	}
	if ids := runIDs(mustList(t, s, nil)); !reflect.DeepEqual(ids, []uuid.UUID{b.RunID}) {
		t.Fatalf("List after Delete = %v, want only %v", ids, b.RunID)
	}
	mustSave(t, s, a) // a deleted run can be saved again
	if d := Diff(mustLoad(t, s, a.RunID), a); d != "" {
		t.Fatal(d)
	}
}

func testDeleteMissing(t *testing.T, s cairn.Store) {
	if err := s.Delete(context.Background(), runID(1)); err != nil {
		t.Fatalf("Delete of a missing run: %v, want nil", err)
	}
	mustSave(t, s, checkpoint(2, base))
	for range 2 {
		if err := s.Delete(context.Background(), runID(2)); err != nil {
			t.Fatalf("Delete (twice): %v, want nil", err)
		}
	}
}

func testListEmpty(t *testing.T, s cairn.Store) {
	for _, o := range []*cairn.ListOptions{nil, {}, {Limit: 5}} {
		p := mustList(t, s, o)
		if len(p.Runs) != 0 || p.Next != "" {
			t.Fatalf("List(%+v) of an empty store = %+v", o, p)
		}
	}
}

// saveOrdered saves runs 0..n-1 with timestamps in pairs (so ties occur)
// in a scrambled order, and returns their IDs in List order.
func saveOrdered(t *testing.T, s cairn.Store, n int) []uuid.UUID {
	t.Helper()
	for i := range n {
		j := (i * 7) % n // a permutation when gcd(7, n) == 1
		mustSave(t, s, checkpoint(j, base.Add(time.Duration(j/2)*time.Millisecond)))
	}
	var want []uuid.UUID
	for pair := (n - 1) / 2; pair >= 0; pair-- { // newest pair first
		for j := 2 * pair; j < 2*pair+2 && j < n; j++ { // ties: run bytes ascending
			want = append(want, runID(j))
		}
	}
	return want
}

func testListOrder(t *testing.T, s cairn.Store) {
	want := saveOrdered(t, s, 10)
	for _, o := range []*cairn.ListOptions{nil, {}} {
		p := mustList(t, s, o)
		if got := runIDs(p); !reflect.DeepEqual(got, want) {
			t.Fatalf("List(%+v) order = %v\nwant %v", o, got, want)
		}
		if p.Next != "" {
			t.Fatalf("List without a limit gave a Next cursor %q", p.Next)
		}
	}
}

func testListPaging(t *testing.T, s cairn.Store) {
	want := saveOrdered(t, s, 11)
	for _, limit := range []int{1, 3, 11, 12} {
		var got []uuid.UUID
		o := &cairn.ListOptions{Limit: limit}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			p := mustList(t, s, o)
			if len(p.Runs) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.Runs))
			}
			got = append(got, runIDs(p)...)
			if p.Next == "" {
				break
			}
			if len(p.Runs) != limit {
				t.Fatalf("limit %d: short page of %d with a Next cursor", limit, len(p.Runs))
			}
			o.Cursor = p.Next
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("limit %d: pages = %v\nwant %v", limit, got, want)
		}
	}
	var all []uuid.UUID
	for sum, err := range cairn.All(context.Background(), s, &cairn.ListOptions{Limit: 4}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sum.RunID)
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("cairn.All = %v\nwant %v", all, want)
	}
}

func testListPagingStable(t *testing.T, s cairn.Store) {
	want := saveOrdered(t, s, 9)
	p := mustList(t, s, &cairn.ListOptions{Limit: 4})
	got := runIDs(p)
	// Between pages: a newer run appears, one already listed is deleted,
	// and an older one appears; only the older one belongs to later pages.
	mustSave(t, s, checkpoint(100, base.Add(time.Hour)))
	if err := s.Delete(context.Background(), got[0]); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, checkpoint(101, base.Add(-time.Hour)))
	want = append(want, runID(101))
	for o := (&cairn.ListOptions{Limit: 4, Cursor: p.Next}); o.Cursor != ""; {
		p = mustList(t, s, o)
		got = append(got, runIDs(p)...)
		o.Cursor = p.Next
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages across changes = %v\nwant %v", got, want)
	}
}

func testListFilters(t *testing.T, s cairn.Store) {
	for i := range 9 { // workflows wf-0, wf-1, wf-2 in turn; one second apart
		mustSave(t, s, checkpoint(i, base.Add(time.Duration(i)*time.Second)))
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	ids := func(ns ...int) []uuid.UUID {
		var out []uuid.UUID
		for _, n := range ns {
			out = append(out, runID(n))
		}
		return out
	}
	tests := []struct {
		name string
		o    cairn.ListOptions
		want []uuid.UUID
	}{
		{"workflow", cairn.ListOptions{WorkflowName: "wf-1"}, ids(7, 4, 1)},
		{"unknown workflow", cairn.ListOptions{WorkflowName: "nope"}, nil},
		{"since inclusive", cairn.ListOptions{Since: at(6)}, ids(8, 7, 6)},
		{"until exclusive", cairn.ListOptions{Until: at(2)}, ids(1, 0)},
		{"window", cairn.ListOptions{Since: at(3), Until: at(6)}, ids(5, 4, 3)},
		{"window and workflow", cairn.ListOptions{Since: at(1), Until: at(8), WorkflowName: "wf-2"}, ids(5, 2)},
		{"window and limit", cairn.ListOptions{Since: at(2), Limit: 2}, ids(8, 7)},
		{"empty window", cairn.ListOptions{Since: at(3), Until: at(3)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runIDs(mustList(t, s, &tt.o))
			if len(got) != 0 || len(tt.want) != 0 {
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("List(%+v) = %v, want %v", tt.o, got, tt.want)
				}
			}
		})
	}
}

func testListSummaries(t *testing.T, s cairn.Store) {
	c := checkpoint(5, base)
	mustSave(t, s, c)
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	p := mustList(t, s, nil)
	if len(p.Runs) != 1 {
		t.Fatalf("List = %+v, want one run", p.Runs)
	}
	sum := p.Runs[0]
	if sum.RunID != c.RunID || sum.WorkflowName != c.WorkflowName || !sum.Timestamp.Equal(c.Timestamp) ||
		sum.Size != int64(len(rec)) || sum.Checkpoint != nil {
		t.Fatalf("summary = %+v, want run %v, workflow %q, timestamp %v, size %d, no checkpoint",
			sum, c.RunID, c.WorkflowName, c.Timestamp, len(rec))
	}
	p = mustList(t, s, &cairn.ListOptions{WithCheckpoints: true})
	if len(p.Runs) != 1 || p.Runs[0].Checkpoint == nil {
		t.Fatalf("List with checkpoints = %+v", p.Runs)
	}
	if d := Diff(p.Runs[0].Checkpoint, c); d != "" {
		t.Fatalf("listed checkpoint: %s", d)
	}
}

func testListInvalid(t *testing.T, s cairn.Store) {
	mustSave(t, s, checkpoint(1, base))
	for _, o := range []cairn.ListOptions{
		{Limit: -1},
		{Cursor: "not a cursor"},
		{Cursor: "AAAA"},
		{Since: base, Until: base.Add(-time.Second)},
	} {
		if _, err := s.List(context.Background(), &o); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("List(%+v): %v, want ErrInvalid", o, err)
		}
	}
}

func testSaveInvalid(t *testing.T, s cairn.Store) {
	with := func(f func(c *cairn.Checkpoint)) *cairn.Checkpoint {
		c := checkpoint(1, base)
		f(c)
		return c
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := map[string]*cairn.Checkpoint{
		"nil checkpoint":   nil,
		"nil run ID":       with(func(c *cairn.Checkpoint) { c.RunID = uuid.Nil }),
		"zero timestamp":   with(func(c *cairn.Checkpoint) { c.Timestamp = time.Time{} }),
		"year 10000":       with(func(c *cairn.Checkpoint) { c.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"channel":          with(func(c *cairn.Checkpoint) { c.State["ch"] = make(chan int) }),
		"func":             with(func(c *cairn.Checkpoint) { c.Metadata["f"] = func() {} }),
		"raw bytes":        with(func(c *cairn.Checkpoint) { c.State["b"] = []byte("x") }),
		"int map keys":     with(func(c *cairn.Checkpoint) { c.State["m"] = map[int]any{1: 2} }),
		"NaN":              with(func(c *cairn.Checkpoint) { c.State["n"] = math.NaN() }),
		"infinity":         with(func(c *cairn.Checkpoint) { c.State["n"] = math.Inf(1) }),
		"struct":           with(func(c *cairn.Checkpoint) { c.State["s"] = struct{ A int }{1} }),
		"cycle":            with(func(c *cairn.Checkpoint) { c.State["c"] = cyclic }),
		"event with bytes": with(func(c *cairn.Checkpoint) { c.PendingEvents[0].Data = []byte{1} }),
	}
	for name, c := range tests {
		err := s.Save(context.Background(), c)
		if !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("%s: Save: %v, want ErrInvalid", name, err)
		}
	}
	if p := mustList(t, s, nil); len(p.Runs) != 0 {
		t.Fatalf("invalid saves left runs behind: %+v", p.Runs)
	}
	if _, err := s.Load(context.Background(), runID(1)); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load after invalid saves: %v, want ErrNotFound", err)
	}
}

func testSaveTooLarge(t *testing.T, s cairn.Store) {
	c := checkpoint(1, base)
	c.State["blob"] = strings.Repeat("x", cairn.DefaultMaxSize)
	if err := s.Save(context.Background(), c); !errors.Is(err, cairn.ErrTooLarge) {
		t.Fatalf("Save of an over-size checkpoint: %v, want ErrTooLarge", err)
	}
	if _, err := s.Load(context.Background(), c.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load after a refused save: %v, want ErrNotFound", err)
	}
	// A too-large overwrite keeps the previous checkpoint.
	prev := checkpoint(1, base)
	mustSave(t, s, prev)
	if err := s.Save(context.Background(), c); !errors.Is(err, cairn.ErrTooLarge) {
		t.Fatalf("over-size overwrite: %v, want ErrTooLarge", err)
	}
	if d := Diff(mustLoad(t, s, prev.RunID), prev); d != "" {
		t.Fatalf("a refused overwrite changed the run: %s", d)
	}
}

func testCanceled(t *testing.T, s cairn.Store) {
	kept := checkpoint(1, base)
	mustSave(t, s, kept)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := checkpoint(2, base)
	if err := s.Save(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a canceled context: %v", err)
	}
	if _, err := s.Load(ctx, kept.RunID); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context: %v", err)
	}
	if _, err := s.List(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context: %v", err)
	}
	if err := s.Delete(ctx, kept.RunID); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a canceled context: %v", err)
	}
	if _, err := s.Load(context.Background(), c.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("a canceled Save was stored: Load = %v", err)
	}
	mustLoad(t, s, kept.RunID) // a canceled Delete deleted nothing
}

func testUseAfterClose(t *testing.T, s cairn.Store) {
	c := checkpoint(1, base)
	mustSave(t, s, c)
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{
		"Save":   s.Save(ctx, checkpoint(2, base)),
		"Delete": s.Delete(ctx, c.RunID),
		"Close":  s.Close(ctx),
	}
	_, checks["Load"] = s.Load(ctx, c.RunID)
	_, checks["List"] = s.List(ctx, nil)
	for op, err := range checks {
		if !errors.Is(err, cairn.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
}

// testConcurrent runs writers, readers and listers at once (meant for
// -race). Each writer owns some runs, so their final state is known; all
// writers also fight over shared runs, which must end up either absent or
// holding one of the checkpoints written.
func testConcurrent(t *testing.T, s cairn.Store) {
	const workers, rounds, shared = 8, 25, 3
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				own := checkpoint(1000+w, base.Add(time.Duration(r)*time.Second))
				own.State["round"] = int64(r)
				sh := checkpoint(2000+(w+r)%shared, base.Add(time.Duration(w)*time.Second))
				sh.State["writer"] = int64(w)
				for _, err := range []error{s.Save(ctx, own), s.Save(ctx, sh)} {
					if err != nil {
						errs <- err
					}
				}
				if _, err := s.Load(ctx, own.RunID); err != nil {
					errs <- fmt.Errorf("load own: %w", err)
				}
				if _, err := s.Load(ctx, sh.RunID); err != nil && !errors.Is(err, cairn.ErrNotFound) {
					errs <- fmt.Errorf("load shared: %w", err)
				}
				if _, err := s.List(ctx, &cairn.ListOptions{Limit: 5}); err != nil {
					errs <- fmt.Errorf("list: %w", err)
				}
				if r%5 == 4 {
					if err := s.Delete(ctx, sh.RunID); err != nil {
						errs <- fmt.Errorf("delete: %w", err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		got := mustLoad(t, s, runID(1000+w))
		if got.State["round"] != int64(rounds-1) {
			t.Errorf("writer %d: last saved round = %v, want %d", w, got.State["round"], rounds-1)
		}
	}
	for i := range shared {
		got, err := s.Load(ctx, runID(2000+i))
		if errors.Is(err, cairn.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if wr, ok := got.State["writer"].(int64); !ok || wr < 0 || wr >= workers {
			t.Errorf("shared run %d holds writer %v", i, got.State["writer"])
		}
	}
	if n := len(mustList(t, s, nil).Runs); n < workers || n > workers+shared {
		t.Errorf("List has %d runs, want %d owned plus at most %d shared", n, workers, shared)
	}
}

// testBadInput: a string that is not UTF-8, anywhere in a checkpoint, is
// ErrInvalid and writes nothing; loading the nil run ID is ErrInvalid, not
// ErrNotFound.
func testBadInput(t *testing.T, s cairn.Store) {
	ctx := context.Background()
	const bad = "x\xffy"
	for name, f := range map[string]func(c *cairn.Checkpoint){
		"workflow name": func(c *cairn.Checkpoint) { c.WorkflowName = bad },
		"state key":     func(c *cairn.Checkpoint) { c.State[bad] = 1 },
		"nested value":  func(c *cairn.Checkpoint) { c.State["a"] = []any{map[string]any{"k": bad}} },
		"metadata key":  func(c *cairn.Checkpoint) { c.Metadata["m"] = map[string]any{bad: true} },
		"event type":    func(c *cairn.Checkpoint) { c.PendingEvents[0].EventType = bad },
		"event data":    func(c *cairn.Checkpoint) { c.PendingEvents[0].Data = []any{bad} },
	} {
		c := checkpoint(1, base)
		f(c)
		if err := s.Save(ctx, c); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s: Save = %v, want ErrInvalid about UTF-8", name, err)
		}
	}
	if p := mustList(t, s, nil); len(p.Runs) != 0 {
		t.Errorf("refused saves left runs behind: %+v", p.Runs)
	}
	if _, err := s.Load(ctx, runID(1)); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Load after refused saves: %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, uuid.Nil); !errors.Is(err, cairn.ErrInvalid) || errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Load(uuid.Nil) = %v, want ErrInvalid", err)
	}
}
