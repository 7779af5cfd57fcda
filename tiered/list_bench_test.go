package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// BenchmarkList: the first page of 100 runs from a write-back store over
// an in-memory bucket holding 10,000 flushed runs (default options), with no unflushed run
// (the index alone) and with 100 unflushed runs merged into the page.
func BenchmarkList(b *testing.B) {
	for _, dirty := range []int{0, 100} {
		b.Run(fmt.Sprintf("dirty=%d", dirty), func(b *testing.B) {
			ctx := context.Background()
			s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, MaxDirtyBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			save := func(i int) {
				c := &cairn.Checkpoint{WorkflowName: "wf", RunID: uuid.New(), Timestamp: t0.Add(time.Duration(i) * time.Second),
					State: map[string]any{"step": int64(i)}}
				if err := s.Save(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 10_000 {
				save(i)
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			for i := range dirty {
				save(20_000 + i)
			}
			o := &cairn.ListOptions{Limit: 100}
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.List(ctx, o)
				if err != nil || len(p.Runs) != 100 {
					b.Fatalf("List: %d runs, %v", len(p.Runs), err)
				}
			}
		})
	}
}
