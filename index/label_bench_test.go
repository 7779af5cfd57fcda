package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// resumeIndex returns a bucket holding an index of n runs, written as one
// snapshot (as Reindex writes it), 1% of them labeled status=running and
// the others status=done, the running ones spread at random over the List
// order; and the entries.
func resumeIndex(b *testing.B, n int) (*bucket.Mem, []index.Entry) {
	mem := bucket.NewMem()
	ix, err := index.New(mem, nil)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 12))
	entries := make([]index.Entry, n)
	for i := range entries {
		var id uuid.UUID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		status := "done"
		if rng.IntN(100) == 0 {
			status = "running"
		}
		entries[i] = index.Entry{RunID: id, Timestamp: t0.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))),
			Workflow: fmt.Sprintf("wf-%d", rng.IntN(20)), Size: int64(1000 + rng.IntN(100000)),
			Labels: cairn.EncodeLabels(map[string]string{"status": status})}
	}
	ctx := context.Background()
	seq, err := ix.Barrier(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := ix.Rebuild(ctx, seq, entries, nil); err != nil {
		b.Fatal(err)
	}
	return mem, entries
}

// requests returns the number of requests mem served between two Stats.
func requests(before, after bucket.MemStats) int64 {
	return after.Gets + after.Lists + after.Heads + after.Puts + after.Deletes -
		(before.Gets + before.Lists + before.Heads + before.Puts + before.Deletes)
}

// running is the resume query: the first page of runs to resume.
var running = cairn.ListOptions{Labels: map[string]string{"status": "running"}, Limit: 100}

// BenchmarkListByLabel measures the resume query, the first page (100
// runs) of status=running when 1% of the runs are running, from a process
// that has read nothing of the index (cold), against what a user does
// without indexed labels: List every run, then Load every run and keep the
// running ones (list-then-load). requests/op counts bucket requests.
//
// by-time-scan is the same List on a snapshot without the by-label set
// (one written by a binary that does not know it), which filters the
// by-time pages: what the by-label set saves.
//
// list-then-load is measured for real up to 10,000 runs (run objects
// written beforehand, each Load a GET and a decode). Beyond, it is
// list-then-load-extrapolated: the List of every run is measured for real
// and the Loads are extrapolated, one GET per run at the time per Load
// measured on 1,000 run objects in the same benchmark.
func BenchmarkListByLabel(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			mem, entries := resumeIndex(b, n)
			b.Run("index", func(b *testing.B) { benchLabelList(b, mem, countRunning(entries)) })
			if n <= 10_000 {
				putRuns(b, mem, entries)
				b.Run("list-then-load", func(b *testing.B) { benchListThenLoad(b, mem, entries) })
			} else {
				putRuns(b, mem, entries[:loadSample])
				b.Run("list-then-load-extrapolated", func(b *testing.B) { benchListThenLoadExtrapolated(b, mem, entries) })
			}
			ix, err := index.New(mem, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := index.DropLabelSet(context.Background(), ix); err != nil {
				b.Fatal(err)
			}
			b.Run("by-time-scan", func(b *testing.B) { benchLabelList(b, mem, countRunning(entries)) })
		})
	}
}

// countRunning returns the number of entries labeled status=running.
func countRunning(entries []index.Entry) int {
	n := 0
	for _, e := range entries {
		if cairn.NewLabelMatcher(running.Labels).Match(e.Labels) {
			n++
		}
	}
	return n
}

// benchLabelList lists the first page of running runs (of which there are
// total) from a new Index (nothing cached) each time.
func benchLabelList(b *testing.B, mem *bucket.Mem, total int) {
	ctx := context.Background()
	q, err := running.Query()
	if err != nil {
		b.Fatal(err)
	}
	list := func() {
		ix, err := index.New(mem, nil)
		if err != nil {
			b.Fatal(err)
		}
		got, more, err := ix.List(ctx, &q)
		if err != nil || len(got) != min(total, running.Limit) || more != (total > running.Limit) {
			b.Fatalf("List: %d runs of %d running, more %v, %v", len(got), total, more, err)
		}
	}
	list()       // once untimed: the process's codec and pools warm up
	runtime.GC() // and the garbage of building the index is not billed here
	b.ReportAllocs()
	s0 := mem.Stats()
	for b.Loop() {
		list()
	}
	b.ReportMetric(float64(requests(s0, mem.Stats()))/float64(b.N), "requests/op")
}

// putRuns writes a run object for each entry into mem, under runs/<id>:
// a checkpoint whose metadata holds the entry's labels, as durable writes.
func putRuns(b *testing.B, mem *bucket.Mem, entries []index.Entry) {
	codec := cairn.DefaultCodec()
	for _, e := range entries {
		labels, err := cairn.ParseLabels(e.Labels)
		if err != nil {
			b.Fatal(err)
		}
		cp := &cairn.Checkpoint{WorkflowName: e.Workflow, RunID: e.RunID, Timestamp: e.Timestamp,
			State: map[string]any{"step": int64(3), "order": "A-1042"}, Metadata: map[string]any{}}
		for k, v := range labels {
			cp.SetLabel(k, v)
		}
		body, err := codec.Marshal(cp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := mem.Put(context.Background(), "runs/"+e.RunID.String(), body, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// listEverything lists every run from a new Index, page after page.
func listEverything(b *testing.B, mem *bucket.Mem) []index.Entry {
	ctx := context.Background()
	q, err := (&cairn.ListOptions{}).Query()
	if err != nil {
		b.Fatal(err)
	}
	ix, err := index.New(mem, nil)
	if err != nil {
		b.Fatal(err)
	}
	all, _, err := ix.List(ctx, &q)
	if err != nil {
		b.Fatal(err)
	}
	return all
}

// loadRunning loads the run objects of entries, in order, and returns the
// IDs of those labeled status=running.
func loadRunning(b *testing.B, mem *bucket.Mem, entries []index.Entry) []uuid.UUID {
	ctx := context.Background()
	codec := cairn.DefaultCodec()
	var ids []uuid.UUID
	for _, e := range entries {
		obj, err := mem.Get(ctx, "runs/"+e.RunID.String(), nil)
		if err != nil {
			b.Fatal(err)
		}
		cp, err := codec.Unmarshal(obj.Body)
		if err != nil {
			b.Fatal(err)
		}
		labels, err := cp.Labels()
		if err != nil {
			b.Fatal(err)
		}
		if labels["status"] == "running" {
			ids = append(ids, cp.RunID)
		}
	}
	return ids
}

// benchListThenLoad lists every run, loads every one (their run objects
// are in mem) and keeps the running ones, in List order.
func benchListThenLoad(b *testing.B, mem *bucket.Mem, entries []index.Entry) {
	runtime.GC()
	b.ReportAllocs()
	s0 := mem.Stats()
	for b.Loop() {
		all := listEverything(b, mem)
		ids := loadRunning(b, mem, all)
		if len(all) != len(entries) || len(ids) != countRunning(entries) {
			b.Fatalf("listed %d runs of %d, %d running", len(all), len(entries), len(ids))
		}
	}
	b.ReportMetric(float64(requests(s0, mem.Stats()))/float64(b.N), "requests/op")
}

// loadSample is the number of run objects whose Loads are timed to
// extrapolate list-then-load.
const loadSample = 1_000

// benchListThenLoadExtrapolated lists every run for real, and times the
// Loads of loadSample of them to extrapolate the Loads of all: the
// reported ns/op and requests/op are those of listing plus loading every
// run.
func benchListThenLoadExtrapolated(b *testing.B, mem *bucket.Mem, entries []index.Entry) {
	sample := entries[:loadSample] // their run objects are in mem
	b.ReportAllocs()
	var listing, loading time.Duration
	var listRequests int64
	for b.Loop() {
		// Time the Loads on a collected heap, as they would run apart
		// from the List's garbage.
		runtime.GC()
		start := time.Now()
		loadRunning(b, mem, sample)
		loading += time.Since(start)
		s0 := mem.Stats()
		start = time.Now()
		all := listEverything(b, mem)
		listing += time.Since(start)
		listRequests += requests(s0, mem.Stats())
		if len(all) != len(entries) {
			b.Fatalf("listed %d runs of %d", len(all), len(entries))
		}
	}
	perRun := float64(loading) / float64(b.N) / loadSample
	b.ReportMetric(float64(listing)/float64(b.N)+perRun*float64(len(entries)), "ns/op")
	b.ReportMetric(float64(listRequests)/float64(b.N)+float64(len(entries)), "requests/op")
	b.ReportMetric(perRun, "ns/load")
}
