package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// seeded returns an index over a fresh in-memory bucket holding n runs,
// written as one snapshot (as Reindex would), and the bucket.
func seeded(b *testing.B, n int) (*bucket.Mem, *index.Options) {
	mem := bucket.NewMem()
	o := &index.Options{}
	ix, err := index.New(mem, o)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	entries := make([]index.Entry, n)
	for i := range entries {
		var id uuid.UUID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		entries[i] = index.Entry{RunID: id, Timestamp: t0.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))),
			Workflow: fmt.Sprintf("wf-%d", rng.IntN(20)), Size: int64(1000 + rng.IntN(100000))}
	}
	ctx := context.Background()
	seq, err := ix.Barrier(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := ix.Rebuild(ctx, seq, entries, nil); err != nil {
		b.Fatal(err)
	}
	return mem, o
}

// BenchmarkScale shows the index's costs staying flat as the number of
// runs grows 1000-fold: bytes of index objects written per Save
// (compactions included), and requests for the first page of 100 of List
// from a process that has read nothing yet (cold) and from one that has
// (warm: only the head and a LIST of the tail).
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			mem, o := seeded(b, n)
			ctx := context.Background()
			ix, err := index.New(mem, o)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			before := ix.Stats()
			saves := 0
			for b.Loop() {
				var id uuid.UUID
				for j := range id {
					id[j] = byte(rng.Uint32())
				}
				op := index.Op{Entry: index.Entry{RunID: id, Timestamp: time.Now(), Workflow: "wf-1", Size: 5000}}
				if err := ix.Commit(ctx, op); err != nil {
					b.Fatal(err)
				}
				ix.Wait() // count the compaction each 32nd commit starts
				saves++
			}
			ix.Wait()
			after := ix.Stats()
			b.ReportMetric(float64(after.IndexBytes-before.IndexBytes)/float64(saves), "index-B/save")
			b.ReportMetric(float64(after.Compactions-before.Compactions)/float64(saves)*1000, "compactions/1k-saves")

			q, _ := (&cairn.ListOptions{Limit: 100}).Query()
			cold, err := index.New(mem, o)
			if err != nil {
				b.Fatal(err)
			}
			s0 := mem.Stats()
			if got, _, err := cold.List(ctx, &q); err != nil || len(got) != 100 {
				b.Fatalf("List: %d entries, %v", len(got), err)
			}
			s1 := mem.Stats()
			if _, _, err := cold.List(ctx, &q); err != nil {
				b.Fatal(err)
			}
			s2 := mem.Stats()
			b.ReportMetric(float64(s1.Gets-s0.Gets), "cold-list-GETs")
			b.ReportMetric(float64(s1.Lists-s0.Lists), "cold-list-LISTs")
			b.ReportMetric(float64(s2.Gets-s1.Gets), "warm-list-GETs")
		})
	}
}
