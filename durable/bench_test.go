package durable_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// BenchmarkSaveGroupCommit saves from many goroutines at once into the
// in-memory bucket (with 2 ms of latency per request, as a nearby object
// store has) and reports bucket requests per Save: one object PUT each,
// plus index log PUTs that concurrent Saves share.
func BenchmarkSaveGroupCommit(b *testing.B) {
	mem := bucket.NewMem()
	mem.SetHook(func(ctx context.Context, op, key string) error {
		select {
		case <-time.After(2 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	s, err := durable.New(mem, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	state := map[string]any{"step": int64(3), "note": "a checkpoint of modest size"}
	before := mem.Stats()
	b.SetParallelism(16) // 32 goroutines on 2 cores: Saves wait on the bucket, not the CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			c := &cairn.Checkpoint{WorkflowName: "bench", RunID: uuid.New(), Timestamp: time.Now(), State: state}
			if err := s.Save(ctx, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	durable.IndexOf(s).Wait()
	after := mem.Stats()
	st := durable.IndexOf(s).Stats()
	b.ReportMetric(float64(after.Puts-before.Puts)/float64(b.N), "PUTs/save")
	b.ReportMetric(float64(after.Gets+after.Lists-before.Gets-before.Lists)/float64(b.N), "GETs+LISTs/save")
	b.ReportMetric(float64(st.CommitOps)/float64(max(st.Commits, 1)), "ops/log")
}
