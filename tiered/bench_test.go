package tiered_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/s3store/faults"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// checkpoint10KB returns a checkpoint whose record is about 10 KB.
func checkpoint10KB(id uuid.UUID) *cairn.Checkpoint {
	var msgs []any
	for i := range 80 {
		msgs = append(msgs, map[string]any{"role": "assistant", "tokens": int64(100 + i), "score": 0.5 + float64(i)/1000,
			"content": fmt.Sprintf("step %d: the order was checked against the inventory and approved", i)})
	}
	c := cp(id, 1)
	c.State["messages"] = msgs
	return c
}

type benchServer struct {
	srv    *miniofixture.Server
	bucket string
	faults *faults.Transport // counts requests by method
	raw    *s3.Client
}

func minioForBench(b *testing.B) *benchServer {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	srv := miniofixture.Start(ctx, b)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64 // as many as the benchmarks run at once
	tr := faults.New(base)
	raw, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true, Transport: tr,
		Credentials: srv.Credentials(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{srv: srv, bucket: srv.NewBucket(b), faults: tr, raw: raw}
}

func (bs *benchServer) store(b *testing.B, o *tiered.Options) *tiered.Store {
	var to tiered.Options
	if o != nil {
		to = *o
	}
	to.Durable.Prefix = "bench"
	s, err := tiered.New(s3store.NewS3(bs.raw, bs.bucket), &to)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkLoad10KB: a Load served by the cache against the GET from MinIO
// on loopback that it saves, in the same run.
func BenchmarkLoad10KB(b *testing.B) {
	bs := minioForBench(b)
	s := bs.store(b, nil)
	ctx := context.Background()
	id := uuid.New()
	if err := s.Save(ctx, checkpoint10KB(id)); err != nil {
		b.Fatal(err)
	}
	b.Run("cache-hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same size of state as a few long texts (model outputs, say)
	// rather than 80 small maps: decoding cost follows the number of
	// values, not the bytes.
	text := uuid.New()
	tc := cp(text, 1)
	for i := range 5 {
		tc.State[fmt.Sprint("output-", i)] = strings.Repeat("the order was approved and shipped. ", 57)
	}
	if err := s.Save(ctx, tc); err != nil {
		b.Fatal(err)
	}
	b.Run("cache-hit-text", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx, text); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-GET", func(b *testing.B) {
		b.ReportAllocs()
		key := "bench/runs/" + id.String()
		for b.Loop() {
			out, err := bs.raw.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bs.bucket), Key: aws.String(key)})
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(out.Body)
			out.Body.Close()
		}
	})
}

// BenchmarkSaveWriteBack10KB: what a write-back Save costs its caller.
func BenchmarkSaveWriteBack10KB(b *testing.B) {
	s := open(b, bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, MaxDirtyBytes: 1 << 30})
	defer s.Close(context.Background())
	ids := make([]uuid.UUID, 64)
	for i := range ids {
		ids[i] = uuid.New()
	}
	c := checkpoint10KB(ids[0])
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.RunID = ids[i%len(ids)]
		c.State["step"] = int64(i)
		if err := s.Save(ctx, c); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFlushThroughput: runs of 10 KB flushed to MinIO by the
// write-back store, against raw parallel PutObject of the same compressed
// bytes at the same concurrency (16), in the same run. Both report runs/s.
func BenchmarkFlushThroughput(b *testing.B) {
	bs := minioForBench(b)
	const runs, concurrency = 200, 16
	body := cairn.DefaultCodec()
	rec, _ := body.EncodeRecord(nil, checkpoint10KB(uuid.New()))
	compressed := body.Compress(nil, rec)
	b.Run("raw-PutObject", func(b *testing.B) {
		for b.Loop() {
			g := new(errgroup.Group)
			g.SetLimit(concurrency)
			for range runs {
				g.Go(func() error {
					_, err := bs.raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bs.bucket),
						Key: aws.String("raw/" + uuid.NewString()), Body: bytes.NewReader(compressed)})
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(runs*b.N)/b.Elapsed().Seconds(), "runs/s")
	})
	b.Run("cairn-flush", func(b *testing.B) {
		s := bs.store(b, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, FlushConcurrency: concurrency, MaxDirtyBytes: 1 << 30})
		defer s.Close(context.Background())
		ctx := context.Background()
		var saving time.Duration
		for b.Loop() {
			b.StopTimer()
			t := time.Now()
			for range runs {
				if err := s.Save(ctx, checkpoint10KB(uuid.New())); err != nil {
					b.Fatal(err)
				}
			}
			saving += time.Since(t)
			b.StartTimer()
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(runs*b.N)/b.Elapsed().Seconds(), "runs/s")
	})
}

// BenchmarkRequestsPerSave: one process saving at a steady 1,000 Saves/s
// (write-back, 100 ms window) for two seconds, over 500 active runs;
// reports every HTTP request to MinIO per Save.
func BenchmarkRequestsPerSave(b *testing.B) {
	bs := minioForBench(b)
	for b.Loop() {
		s := bs.store(b, &tiered.Options{Mode: tiered.WriteBack})
		ctx := context.Background()
		active := make([]uuid.UUID, 500)
		for i := range active {
			active[i] = uuid.New()
		}
		before := counts(bs.faults)
		const rate, seconds = 1000, 2
		tick := time.NewTicker(time.Second / rate)
		saves := 0
		var mu sync.Mutex
		var firstErr error
		for range rate * seconds {
			<-tick.C
			c := cp(active[saves%len(active)], saves)
			if err := s.Save(ctx, c); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				break
			}
			saves++
		}
		tick.Stop()
		if err := s.Close(ctx); err != nil || firstErr != nil {
			b.Fatal(err, firstErr)
		}
		after := counts(bs.faults)
		var parts []string
		total := 0
		for m, n := range after {
			d := n - before[m]
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", m, d))
		}
		b.ReportMetric(float64(total)/float64(saves), "requests/save")
		b.ReportMetric(float64(after[http.MethodPut]-before[http.MethodPut])/float64(saves), "PUTs/save")
		b.Logf("%d Saves: %s", saves, strings.Join(parts, " "))
	}
}

func counts(t *faults.Transport) map[string]int {
	m := map[string]int{}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodHead, http.MethodDelete, http.MethodPost} {
		m[method] = t.Seen(method)
	}
	return m
}
