package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
)

// labeled is put with labels, kept in their stored form.
func labeled(n int, ts time.Time, wf string, labels map[string]string) index.Op {
	op := put(n, ts, wf)
	op.Entry.Labels = cairn.EncodeLabels(labels)
	return op
}

// randomLabels returns a few labels, a value needing percent-encoding
// among them, or none.
func randomLabels(rng *rand.Rand) map[string]string {
	l := map[string]string{}
	if rng.IntN(5) > 0 {
		l["status"] = []string{"running", "done", "done", "failed"}[rng.IntN(4)]
	}
	if rng.IntN(2) == 0 {
		l["tenant"] = []string{"acme", "globex", "a&b=c/é"}[rng.IntN(3)]
	}
	if rng.IntN(3) == 0 {
		l["engine"] = []string{"v1", "v2"}[rng.IntN(2)]
	}
	return l
}

// labelQueries are List options with selectors of one and two pairs,
// selectors no run matches (before, among and after every pair stored),
// and selectors mixed with the other filters and small limits.
var labelQueries = []cairn.ListOptions{
	{Labels: map[string]string{"status": "running"}},
	{Labels: map[string]string{"status": "done"}, Limit: 3},
	{Labels: map[string]string{"tenant": "a&b=c/é"}, Limit: 2},
	{Labels: map[string]string{"status": "running", "tenant": "acme"}, Limit: 2},
	{Labels: map[string]string{"status": "done", "engine": "v2"}},
	{Labels: map[string]string{"status": "running"}, WorkflowName: "b", Limit: 2},
	{Labels: map[string]string{"status": "done"}, Since: t0.Add(20 * time.Second), Until: t0.Add(70 * time.Second), Limit: 3},
	{Labels: map[string]string{"tenant": "globex"}, Since: t0.Add(50 * time.Second), Limit: 1},
	{Labels: map[string]string{"status": "failed", "tenant": "globex"}, Until: t0.Add(40 * time.Second)},
	{Labels: map[string]string{"status": "paused"}},
	{Labels: map[string]string{"aaa": "x"}},
	{Labels: map[string]string{"zzz": "x"}, Limit: 1},
}

// checkLabels lists every query of labelQueries page by page, following
// the cursors, compares the runs with the model's and returns how many
// each query found.
func checkLabels(t *testing.T, ix *index.Index, m model, now time.Time) []int {
	t.Helper()
	found := make([]int, len(labelQueries))
	for i, o := range labelQueries {
		got := listAll(t, ix, o)
		o.Limit = 0
		want := m.list(query(t, o), now)
		if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("List(%+v): got %d entries, want %d\ngot  %v\nwant %v", o, len(got), len(want), keys(got), keys(want))
		}
		found[i] = len(got)
	}
	return found
}

// matchable is the number of leading labelQueries that some runs match
// (the others select labels no run has).
const matchable = 9

// requireFound fails unless each of the first n queries of labelQueries
// found a run in one of the checks whose counts are found: a comparison of
// empty lists proves nothing.
func requireFound(t *testing.T, n int, found ...[]int) {
	t.Helper()
	for i := range n {
		runs := 0
		for _, f := range found {
			runs += f[i]
		}
		if runs == 0 {
			t.Errorf("List(%+v) never found a run: the test does not exercise it", labelQueries[i])
		}
	}
}

// randomLabelOps returns a round of ops over runs 0..59: new runs and
// re-saves with random labels, re-saves that finish a running run
// (status=running → done, the resume pattern), and deletes. Some runs
// have expired at now.
func randomLabelOps(rng *rand.Rand, m model, now time.Time) []index.Op {
	var ops []index.Op
	for range 1 + rng.IntN(6) {
		n := rng.IntN(60)
		ts := t0.Add(time.Duration(rng.IntN(100)) * time.Second)
		wf := []string{"a", "b", "c"}[rng.IntN(3)]
		switch old, ok := m[run(n)]; {
		case rng.IntN(5) == 0:
			ops = append(ops, del(n))
		case ok && strings.Contains(old.Labels, "status=running") && rng.IntN(2) == 0:
			ops = append(ops, labeled(n, ts, old.Workflow, map[string]string{"status": "done"}))
		default:
			op := labeled(n, ts, wf, randomLabels(rng))
			if rng.IntN(15) == 0 {
				op.Entry.Expires = now.Add(-time.Second)
			}
			ops = append(ops, op)
		}
	}
	return ops
}

// Random labeled ops against one index with small pages, compactions at
// random points and cold readers: every label List, paged with cursors,
// returns exactly the model's runs, and after a compaction it is served
// by the by-label set.
func TestLabelsAgainstModel(t *testing.T) {
	now := t0.Add(time.Hour)
	b := bucket.NewMem()
	opts := &index.Options{PageSize: 4, CompactAfter: 3, Now: func() time.Time { return now }}
	ix := newIndex(t, b, opts)
	m := model{}
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	var found [][]int
	for round := range 60 {
		ops := randomLabelOps(rng, m, now)
		if err := ix.Commit(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		m.apply(ops...)
		if rng.IntN(5) == 0 {
			ix.Wait()
			if err := ix.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
		reader := ix
		if rng.IntN(3) == 0 {
			reader = newIndex(t, b, opts) // another process, nothing cached
		}
		found = append(found, checkLabels(t, reader, m, now))
		if round%10 == 9 {
			check(t, reader, unexpired(m, now), now) // List without selectors and Lookup
		}
	}
	ix.Wait()
	if err := ix.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	cold := newIndex(t, b, opts)
	found = append(found, checkLabels(t, cold, m, now))
	requireFound(t, matchable, found...)
	if !index.KeepsLabelSet(cold) {
		t.Fatal("after compactions the snapshot does not keep the by-label set: the label Lists above were by-time scans")
	}
}

// unexpired returns the runs of m that have not expired at now.
func unexpired(m model, now time.Time) model {
	out := model{}
	for id, e := range m {
		if !e.Expired(now) {
			out[id] = e
		}
	}
	return out
}

// countGets counts the GETs of index pages that mem serves.
func countGets(mem *bucket.Mem) *atomic.Int64 {
	var n atomic.Int64
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "get" && (strings.Contains(key, "/pages/") || strings.Contains(key, "/label-pages/")) {
			n.Add(1)
		}
		return nil
	})
	return &n
}

// resumeEntries returns n runs, run(i) for i < n, every one labeled with
// a status and a tenant: 1% running, spread at random over the List order
// (random) or the oldest ones (oldest); tenant=rare on 0.5% of them. The
// model holds them.
func resumeEntries(n int, spread string, m model) []index.Entry {
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	entries := make([]index.Entry, n)
	for i := range entries {
		ts := t0.Add(time.Duration(i) * time.Second)
		running := rng.IntN(100) == 0
		if spread == "oldest" {
			running = i < n/100
			if !running {
				ts = ts.Add(time.Duration(n) * time.Second)
			}
		}
		labels := map[string]string{"status": "done", "tenant": "common"}
		if running {
			labels["status"] = "running"
		}
		if rng.IntN(200) == 0 {
			labels["tenant"] = "rare"
		}
		entries[i] = labeled(i, ts, "w", labels).Entry
		m.apply(index.Op{Entry: entries[i]})
	}
	return entries
}

// A label List on a large index reads a few pages, wherever the matching
// runs are in List order: the first page of status=running (1% of 20,000
// runs, 157 by-time pages) and every later page reached by cursor. With
// two selectors it reads the pages of the narrower one.
func TestLabelListReadsFewPages(t *testing.T) {
	for _, spread := range []string{"random", "oldest"} {
		t.Run(spread, func(t *testing.T) {
			ctx := context.Background()
			mem := bucket.NewMem()
			opts := &index.Options{PageSize: 128, CompactAfter: 1000}
			m := model{}
			entries := resumeEntries(20_000, spread, m)
			w := newIndex(t, mem, opts)
			seq, err := w.Barrier(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Rebuild(ctx, seq, entries, nil); err != nil {
				t.Fatal(err)
			}
			gets := countGets(mem)
			for _, sel := range []map[string]string{{"status": "running"}, {"status": "done", "tenant": "rare"}} {
				o := cairn.ListOptions{Labels: sel, Limit: 100}
				first, _, err := newIndex(t, mem, opts).List(ctx, query(t, o))
				if err != nil {
					t.Fatal(err)
				}
				want := m.list(query(t, o), t0)
				if len(want) == 0 || !reflect.DeepEqual(first, want) {
					t.Fatalf("%v: first page of %d runs, want %d (and more than none)", sel, len(first), len(want))
				}
				if n := gets.Swap(0); n > 2 {
					t.Errorf("%v: the first page read %d pages, want at most 2", sel, n)
				}
			}
			o := cairn.ListOptions{Labels: map[string]string{"status": "running"}, Limit: 50}
			all := listAll(t, newIndex(t, mem, opts), o)
			o.Limit = 0
			if want := m.list(query(t, o), t0); len(want) < 150 || !reflect.DeepEqual(all, want) {
				t.Fatalf("paging status=running: %d runs, want %d (about 200)", len(all), len(want))
			}
			// 200 postings of 128 are in 2 or 3 pages, each read once.
			if n := gets.Load(); n > 3 {
				t.Errorf("paging through %d running runs read %d pages, want at most 3", len(all), n)
			}
		})
	}
}

// The log tail after a snapshot joins a label List: runs the tail
// finished (status=running → done) leave it, runs it started join it, and
// the pages read stay few.
func TestLabelListMergesTail(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	opts := &index.Options{PageSize: 128, CompactAfter: 1000}
	m := model{}
	entries := resumeEntries(5_000, "random", m)
	w := newIndex(t, mem, opts)
	seq, err := w.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rebuild(ctx, seq, entries, nil); err != nil {
		t.Fatal(err)
	}
	var ops []index.Op
	finished := 0
	for i, e := range entries {
		if strings.Contains(e.Labels, "status=running") && finished < 20 {
			ops = append(ops, labeled(i, e.Timestamp, "w", map[string]string{"status": "done"}))
			finished++
		}
	}
	for i := range 10 {
		ops = append(ops, labeled(5_000+i, t0.Add(time.Duration(i*700)*time.Second+time.Millisecond), "w", map[string]string{"status": "running"}))
	}
	if err := w.Commit(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	m.apply(ops...)
	gets := countGets(mem)
	o := cairn.ListOptions{Labels: map[string]string{"status": "running"}, Limit: 7}
	all := listAll(t, newIndex(t, mem, opts), o)
	o.Limit = 0
	want := m.list(query(t, o), t0)
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("status=running with a tail: %d runs, want %d\ngot  %v\nwant %v", len(all), len(want), keys(all), keys(want))
	}
	for _, op := range ops {
		if i := slices.IndexFunc(all, func(e index.Entry) bool { return e.RunID == op.Entry.RunID }); (i >= 0) != strings.Contains(op.Entry.Labels, "running") {
			t.Fatalf("run %v, %q in the tail: listed %v", op.Entry.RunID, op.Entry.Labels, i >= 0)
		}
	}
	if n := gets.Load(); n > 3 {
		t.Errorf("read %d pages, want at most 3", n)
	}
}

// Rebuild builds the by-label set: a cold reader serves a label List
// from it, and the same List on the by-time set gives the same runs.
func TestRebuildBuildsLabelSet(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	opts := &index.Options{PageSize: 16}
	rng := rand.New(rand.NewPCG(7, 8))
	m := model{}
	var entries []index.Entry
	for i := range 500 {
		wf := []string{"a", "b", "c"}[rng.IntN(3)]
		e := labeled(i, t0.Add(time.Duration(rng.IntN(100))*time.Second), wf, randomLabels(rng)).Entry
		e.ETag = fmt.Sprintf(`"etag-%d"`, i)
		entries = append(entries, e)
		m.apply(index.Op{Entry: e})
	}
	w := newIndex(t, mem, opts)
	seq, err := w.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rebuild(ctx, seq, entries, nil); err != nil {
		t.Fatal(err)
	}
	for id, e := range m {
		e.ETag = "" // pages do not keep it
		m[id] = e
	}
	cold := newIndex(t, mem, opts)
	requireFound(t, matchable, checkLabels(t, cold, m, t0))
	if !index.KeepsLabelSet(cold) {
		t.Fatal("a rebuilt snapshot does not keep the by-label set")
	}
	if err := cold.Check(ctx); err != nil {
		t.Fatalf("Check after Rebuild: %v", err)
	}
}

// A snapshot that does not keep the by-label set (written by a binary that
// does not know it) is listed by labels correctly from its by-time pages,
// and the next compaction builds the set again from them.
func TestLabelListWithoutLabelSet(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	opts := &index.Options{PageSize: 8, CompactAfter: 1000}
	rng := rand.New(rand.NewPCG(9, 10))
	w := newIndex(t, mem, opts)
	m := model{}
	for range 30 {
		ops := randomLabelOps(rng, m, t0)
		if err := w.Commit(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		m.apply(ops...)
	}
	if err := w.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := index.DropLabelSet(ctx, w); err != nil {
		t.Fatal(err)
	}
	old := newIndex(t, mem, opts)
	requireFound(t, 2, checkLabels(t, old, m, t0))
	if index.KeepsLabelSet(old) {
		t.Fatal("the rewritten snapshot still keeps the by-label set")
	}
	ops := randomLabelOps(rng, m, t0)
	if err := old.Commit(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	m.apply(ops...)
	if err := old.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	cold := newIndex(t, mem, opts)
	requireFound(t, 2, checkLabels(t, cold, m, t0))
	if !index.KeepsLabelSet(cold) {
		t.Fatal("compacting a snapshot without the by-label set did not build it")
	}
}

// GC keeps the by-label pages the head's snapshot refers to (and deletes
// those of older snapshots): after a GC, label Lists from a cold reader
// still read, and Check finds the index intact.
func TestGCKeepsLabelPages(t *testing.T) {
	ctx := context.Background()
	clock := t0
	now := func() time.Time { return clock }
	mem := bucket.NewMem()
	mem.SetClock(now)
	opts := &index.Options{PageSize: 4, CompactAfter: 1000, Now: now}
	w := newIndex(t, mem, opts)
	rng := rand.New(rand.NewPCG(11, 12))
	m := model{}
	for range 5 {
		for range 4 {
			ops := randomLabelOps(rng, m, t0)
			if err := w.Commit(ctx, ops...); err != nil {
				t.Fatal(err)
			}
			m.apply(ops...)
		}
		if err := w.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Minute)
	}
	clock = clock.Add(time.Hour)
	rep, err := w.GC(ctx, index.MinGCGrace, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pages == 0 || rep.Snapshots == 0 {
		t.Fatalf("GC removed %d pages and %d snapshots; the test needs garbage", rep.Pages, rep.Snapshots)
	}
	cold := newIndex(t, mem, opts)
	if err := cold.Check(ctx); err != nil {
		t.Fatalf("Check after GC: %v", err)
	}
	requireFound(t, 2, checkLabels(t, cold, m, t0))
	if !index.KeepsLabelSet(cold) {
		t.Fatal("the head's snapshot does not keep the by-label set")
	}
}

// LabelsUnsure marks an index that a binary not knowing labels compacted
// (which drops the entries' labels with the by-label set): the mark
// survives the compaction that builds the set again, and later ones, and
// only a Rebuild clears it. An index that never held runs without the
// set is not marked.
func TestLabelsUnsure(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	opts := &index.Options{PageSize: 4, CompactAfter: 1000}
	w := newIndex(t, mem, opts)
	unsure := func(step string, want bool) {
		t.Helper()
		got, err := newIndex(t, mem, opts).LabelsUnsure(ctx)
		if err != nil || got != want {
			t.Errorf("%s: LabelsUnsure = %v, %v; want %v", step, got, err, want)
		}
	}
	commitCompact := func(ops ...index.Op) {
		t.Helper()
		if err := w.Commit(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		if err := w.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	running := map[string]string{"status": "running"}

	unsure("created", false)
	commitCompact(labeled(1, t0, "w", running), labeled(2, t0.Add(time.Second), "w", running))
	unsure("compacted by this binary", false)

	if err := index.DropLabelSet(ctx, w); err != nil {
		t.Fatal(err)
	}
	unsure("compacted by an older binary", true)
	w = newIndex(t, mem, opts) // reads the rewritten manifest
	commitCompact(labeled(3, t0.Add(2*time.Second), "w", running))
	if !index.KeepsLabelSet(w) {
		t.Fatal("the compaction after the older binary's did not build the by-label set")
	}
	unsure("the by-label set built again", true)
	commitCompact(labeled(4, t0.Add(3*time.Second), "w", running))
	unsure("compacted again", true)

	seq, err := w.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rebuild(ctx, seq, []index.Entry{labeled(1, t0, "w", running).Entry}, nil); err != nil {
		t.Fatal(err)
	}
	unsure("rebuilt", false)
	commitCompact(labeled(5, t0.Add(4*time.Second), "w", running))
	unsure("compacted after the rebuild", false)

	// No runs when an older binary compacted: no label to lose.
	empty := bucket.NewMem()
	e := newIndex(t, empty, opts)
	if err := e.Commit(ctx, put(1, t0, "w"), del(1)); err != nil {
		t.Fatal(err)
	}
	if err := e.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := index.DropLabelSet(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, err := newIndex(t, empty, opts).LabelsUnsure(ctx); err != nil || got {
		t.Errorf("an empty index compacted by an older binary: LabelsUnsure = %v, %v; want false", got, err)
	}
}
