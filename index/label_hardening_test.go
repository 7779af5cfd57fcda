package index_test

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
)

// The resume pattern itself, committed and compacted as a live store
// does (not one Rebuild): each round starts a batch of 64 runs with
// status=running and finishes the previous batch (status=done), all but
// one run, which stays running (a crashed worker: the very runs a resume
// loop looks for, about 1.5% of the runs). compaction removes the
// finished runs' postings from the status=running pages but never merges
// the pages it leaves nearly empty, so the stuck runs end up about one
// per page: a label List reads a page per run it returns, a cost that
// grows with the label's history rather than with the matches
// (here the first page of 100: 4 pages for the current batch, then about
// a page per stuck run). The same
// runs as a Rebuild writes them (all that BenchmarkListByLabel and
// TestLabelListReadsFewPages measure) take 7 pages; BENCHMARKS.md claims
// a constant 4 requests, and "at most 2 pages" when the running runs are
// the oldest. Pages of 16 entries scale the default 2,048 down: at 2,048
// a status=running page ends up with about 2,048 × the share of runs that
// stick (20 at 1%, 2 at 0.1%), so a page of 100 such runs reads 5 or 50
// pages instead of 1, and the manifest every List reads keeps a ref for
// each of them.
func TestLabelPagesDoNotFragmentUnderChurn(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	const pageSize = 16
	opts := &index.Options{PageSize: pageSize, CompactAfter: 1000}
	w := newIndex(t, mem, opts)
	m := model{}
	running := map[string]string{"status": "running"}
	done := map[string]string{"status": "done"}
	clock := 0
	tick := func() time.Time { clock++; return t0.Add(time.Duration(clock) * time.Second) }
	var prev []int
	n := 0
	for round := 0; round < 60; round++ {
		var ops []index.Op
		var batch []int
		for range 4 * pageSize {
			ops = append(ops, labeled(n, tick(), "w", running))
			batch = append(batch, n)
			n++
		}
		for i, r := range prev {
			if i != 0 { // prev[0] stays running: a crashed worker
				ops = append(ops, labeled(r, tick(), "w", done))
			}
		}
		prev = batch
		if err := w.Commit(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		m.apply(ops...)
		if err := w.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	o := cairn.ListOptions{Labels: running, Limit: 100}
	want := m.list(query(t, o), t0)

	gets := countGets(mem)
	got, _, err := newIndex(t, mem, opts).List(ctx, query(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("first page: %d runs, want %d", len(got), len(want))
	}
	compacted := gets.Swap(0)

	// The same runs, as one Rebuild writes them.
	mem2 := bucket.NewMem()
	w2 := newIndex(t, mem2, opts)
	var entries []index.Entry
	for _, e := range m {
		entries = append(entries, e)
	}
	seq, err := w2.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Rebuild(ctx, seq, entries, nil); err != nil {
		t.Fatal(err)
	}
	gets2 := countGets(mem2)
	if got, _, err := newIndex(t, mem2, opts).List(ctx, query(t, o)); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt: %d runs, %v", len(got), err)
	}
	rebuilt := gets2.Load()
	t.Logf("a page of %d status=running runs: %d page GETs after compactions, %d on the rebuilt snapshot", len(want), compacted, rebuilt)
	if compacted > 2*rebuilt+2 {
		t.Errorf("a label List of %d runs read %d pages after the compactions of the resume pattern, %d on the same runs rebuilt", len(want), compacted, rebuilt)
	}
}

// A hostile index entry (a log written by another program, or damaged)
// whose stored labels hold thousands of distinct pairs: no Save can write
// it (at most 16 labels, 1 KB), and durable's List calls such an entry
// corrupt, but compaction does not bound it. postings makes one copy of
// the entry per pair, each carrying the whole labels string, so the
// by-label pages grow with pairs × length: 3,000 pairs of 24 KB make a
// page of 72 MB before compression (about 420 MB allocated to write it),
// past the codec's 16 MB bound, which compaction writes anyway (encode
// does not check) and no reader can read back. One entry so breaks every
// label List, for every run, until a Reindex; a log entry of a few MB
// would not fit in memory at all.
func TestHostileLabelsMakeNoPostings(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	opts := &index.Options{CompactAfter: 1000}
	w := newIndex(t, mem, opts)
	good := labeled(1, t0, "w", map[string]string{"status": "running"})
	hostile := put(2, t0.Add(time.Second), "w")
	var b strings.Builder
	for i := range 3000 {
		if i > 0 {
			b.WriteByte('&')
		}
		fmt.Fprintf(&b, "k%04d=v", i)
	}
	hostile.Entry.Labels = b.String()
	if err := w.Commit(ctx, good, hostile); err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	err := w.Compact(ctx)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("Compact: %v; %d MB allocated", err, (after.TotalAlloc-before.TotalAlloc)>>20)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	o := cairn.ListOptions{Labels: map[string]string{"status": "running"}}
	got, _, err := newIndex(t, mem, opts).List(ctx, query(t, o))
	if err != nil || len(got) != 1 || got[0].RunID != run(1) {
		t.Errorf("List(status=running) of a run with valid labels, beside one hostile entry: %d entries, %v", len(got), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("compacting one entry allocated %d MB", alloc>>20)
	}
}

// An index object whose record is over the codec's MaxSize is refused
// when it is written, not written for every reader to refuse: a commit of
// such a batch fails and leaves no log, and a compaction whose page would
// be too large fails and leaves the head where it was, so List still
// serves the runs from the logs.
func TestIndexObjectsOverMaxSizeRefused(t *testing.T) {
	ctx := context.Background()
	codec, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	mem := bucket.NewMem()
	opts := &index.Options{Codec: codec, CompactAfter: 1000}
	w := newIndex(t, mem, opts)

	huge := put(1, t0, strings.Repeat("w", 8<<10))
	if err := w.Commit(ctx, huge); err == nil || !strings.Contains(err.Error(), "MaxSize") {
		t.Fatalf("Commit of an entry over MaxSize: %v, want an error naming MaxSize", err)
	}
	if infos, _, err := mem.List(ctx, "index/log/", "", 10); err != nil || len(infos) != 0 {
		t.Fatalf("logs after the refused commit: %d, %v", len(infos), err)
	}

	m := model{}
	for i := range 8 { // each log fits; a page of all eight does not
		op := put(10+i, t0.Add(time.Duration(i)*time.Second), strings.Repeat("w", 1<<10))
		if err := w.Commit(ctx, op); err != nil {
			t.Fatal(err)
		}
		m.apply(op)
	}
	if err := w.Compact(ctx); err == nil || !strings.Contains(err.Error(), "MaxSize") {
		t.Fatalf("Compact to a page over MaxSize: %v, want an error naming MaxSize", err)
	}
	o := cairn.ListOptions{}
	got, _, err := newIndex(t, mem, opts).List(ctx, query(t, o))
	if want := m.list(query(t, o), t0); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("List after the refused compaction: %d runs, %v; want %d", len(got), err, len(want))
	}
}
