package durable_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// BenchmarkMinIOReindex rebuilds the index of n runs on MinIO: "lost" from
// nothing (every index object deleted: a LIST per 1,000 runs and a HEAD
// per run for its summary), and "intact" over a healthy index (the
// listing's ETags match the index's, so no HEAD at all). It reports the
// requests of one Reindex by kind and runs indexed per second.
//
//	go test -run '^$' -bench MinIOReindex -benchtime 1x -timeout 30m ./s3store
func BenchmarkMinIOReindex(b *testing.B) {
	ctx := context.Background()
	// /data on a tmpfs: 100,000 objects through the container's storage
	// driver (fuse-overlayfs here) would measure the driver, not Cairn.
	srv, stop, err := miniofixture.Launch(ctx, b.Logf, &miniofixture.LaunchOptions{Tmpfs: true})
	if err != nil {
		b.Fatal(err)
	}
	defer stop(ctx)
	for _, n := range []int{1_000, 10_000, 100_000} {
		mb := minioBucket(b, srv, srv.NewBucket(b))
		s := newStore(b, mb, &durable.Options{Prefix: "cairn"})
		rec, err := cairn.DefaultCodec().EncodeRecord(nil, &cairn.Checkpoint{WorkflowName: "bench", RunID: uuid.New(),
			Timestamp: time.Now(), State: map[string]any{"step": int64(3), "note": "a checkpoint of modest size"}})
		if err != nil {
			b.Fatal(err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(64)
		for i := range n {
			g.Go(func() error {
				r := durable.Record{RunID: uuid.New(), Workflow: "bench", Timestamp: time.Now().Add(time.Duration(i) * time.Millisecond), Data: rec}
				_, err := durable.PutObjectOnly(gctx, s, r)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"lost", "intact"} {
			b.Run(fmt.Sprintf("runs=%d/index=%s", n, mode), func(b *testing.B) {
				var counts map[string]int
				for range b.N {
					b.StopTimer()
					if mode == "lost" {
						for _, k := range keys(b, mb, "cairn/index/") {
							if err := mb.Delete(ctx, k); err != nil {
								b.Fatal(err)
							}
						}
					}
					c := newCounting(mb)
					fresh := newStore(b, c, &durable.Options{Prefix: "cairn"})
					b.StartTimer()
					rep, err := fresh.Reindex(ctx, nil)
					b.StopTimer()
					if err != nil || rep.Indexed != n {
						b.Fatalf("Reindex = %+v, %v; want %d runs indexed", rep, err, n)
					}
					counts = c.take()
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "runs/s")
				for _, op := range []string{"LIST", "HEAD", "GET", "PUT"} {
					b.ReportMetric(float64(counts[op]), op+"s/op")
				}
			})
		}
	}
}

// BenchmarkMinIOOpen measures what a Store's checks before its first write
// cost on MinIO: the conditional-write probe and the index check
// (CheckServer, then the first Save, against a Save on a store that has
// passed both). "first" opens each store on a new prefix (the probe runs
// and records its verdict, the index is created); "later" opens each on
// the same prefix (the verdict is read, the index found); "warm" is a
// second Save on the same store.
//
//	go test -run '^$' -bench MinIOOpen ./s3store
func BenchmarkMinIOOpen(b *testing.B) {
	ctx := context.Background()
	srv, stop, err := miniofixture.Launch(ctx, b.Logf, &miniofixture.LaunchOptions{Tmpfs: true})
	if err != nil {
		b.Fatal(err)
	}
	defer stop(ctx)
	mb := minioBucket(b, srv, srv.NewBucket(b))
	c := newCounting(mb)
	save := func(s *durable.Store) {
		if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "bench", RunID: uuid.New(), Timestamp: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	warm := newStore(b, c, &durable.Options{Prefix: "warm"})
	save(warm)
	for _, mode := range []string{"first", "later", "warm"} {
		b.Run(mode, func(b *testing.B) {
			c.take()
			for i := range b.N {
				switch mode {
				case "first":
					save(newStore(b, c, &durable.Options{Prefix: fmt.Sprintf("first-%d-%d", b.N, i)}))
				case "later":
					save(newStore(b, c, &durable.Options{Prefix: "warm"}))
				default:
					save(warm)
				}
			}
			b.StopTimer()
			counts := c.take()
			for _, op := range []string{"GET", "HEAD", "LIST", "PUT", "DELETE"} {
				b.ReportMetric(float64(counts[op])/float64(b.N), op+"s/op")
			}
		})
	}
}
