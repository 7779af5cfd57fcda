package obstest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The review's tests of the observability contract (README
// "Observability"): failures' spans, the standalone durable store's
// spans, the monotonic counters across stores of one MeterProvider,
// concurrency with providers set, and the cost of a cache-hit Load
// without them.

// failBucket fails, while fail is set, the Puts whose key holds part.
type failBucket struct {
	bucket.Bucket
	part string
	fail atomic.Bool
}

var errServer = errors.New("review2: the server refused the write")

func (b *failBucket) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if b.fail.Load() && strings.Contains(key, b.part) {
		return "", errServer
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// errorSpan fails t unless s has status Error described by class, with
// error.type and cairn.outcome set to it.
func errorSpan(t *testing.T, s sdktrace.ReadOnlySpan, class string) {
	t.Helper()
	st := s.Status()
	want := []attribute.KeyValue{attribute.String("error.type", class), attribute.String("cairn.outcome", class)}
	if st.Code != codes.Error || st.Description != class || !hasAll(s.Attributes(), want) {
		t.Errorf("span %s: status %v, attributes %v; want an Error status %q with error.type and cairn.outcome %q",
			s.Name(), st, s.Attributes(), class, class)
	}
}

// A write-through Save the server refuses, a Flush whose run objects the
// server refuses, and a Save or Flush whose index commit the server keeps
// refusing: each span that failed has an Error status with the class
// "error" (the README: "the server, the network"), the index commit's
// too, and the operation metrics count them under outcome "error". A
// commit that gave up retrying a server that refuses it is the server's
// failure, not a "timeout" (context.DeadlineExceeded of the caller): an
// SRE reading error.type=timeout looks for latency, not for a refusal.
func TestReview2FailedWritesSpans(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, part string
		mode       tiered.Mode
		failing    []string // spans, by name and tier, that must fail
	}{
		{"write-through object", "/runs/", tiered.WriteThrough, []string{"cairn.Save tiered"}},
		{"write-through commit", "/index/", tiered.WriteThrough, []string{"cairn.Save tiered", "cairn.Commit durable"}},
		{"write-back flush", "/runs/", tiered.WriteBack, []string{"cairn.Flush tiered"}},
		{"write-back commit", "/index/", tiered.WriteBack, []string{"cairn.Flush tiered", "cairn.Commit durable"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tel := newTelemetry(t)
			b := &failBucket{Bucket: bucket.NewMem(), part: c.part}
			// A short retry budget for the index commit: the server keeps
			// refusing, so the commit gives up once it is spent.
			s, err := tiered.New(b, &tiered.Options{Mode: c.mode, FlushWindow: time.Hour,
				Durable:        durable.Options{Prefix: "p", Index: &index.Options{RetryFor: 300 * time.Millisecond}},
				TracerProvider: tel.tp, MeterProvider: tel.mp})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			// The first write passes the server probe and creates the
			// index; the failure is the next one's.
			if err := s.Save(ctx, checkpoint(uuid.New(), 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			tel.spans.Reset()
			b.fail.Store(true)
			err = s.Save(ctx, checkpoint(uuid.New(), 2))
			if c.mode == tiered.WriteBack {
				if err != nil {
					t.Fatalf("write-back Save: %v", err)
				}
				err = s.Flush(ctx)
			}
			if !errors.Is(err, errServer) {
				t.Fatalf("the write: %v; want the server's refusal", err)
			}
			spans := tel.spans.Ended()
			for _, want := range c.failing {
				name, tier, _ := strings.Cut(want, " ")
				found := false
				for _, sp := range spans {
					if sp.Name() == name && hasAll(sp.Attributes(), []attribute.KeyValue{attribute.String("cairn.tier", tier)}) {
						found = true
						errorSpan(t, sp, "error")
					}
				}
				if !found {
					t.Errorf("no span %s of tier %s (spans: %v)", name, tier, names(spans))
				}
			}
			noSecret(t, spans)
			op := map[string]string{"cairn.Save": "save", "cairn.Flush": "flush", "cairn.Commit": "commit"}
			ms := tel.metrics(t)
			for _, want := range c.failing {
				name, tier, _ := strings.Cut(want, " ")
				if n := sum(t, ms, "cairn.operations", "{operation}", opAttrs(op[name], tier, "error")); n < 1 {
					t.Errorf("cairn.operations{%s %s error} = %d; want at least 1", op[name], tier, n)
				}
			}
		})
	}
}

// The classes of the README's table reach the span and the metrics: a
// Load on a cancelled context, one past its deadline, and one on a closed
// store.
func TestReview2OutcomeClasses(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{TracerProvider: tel.tp, MeterProvider: tel.mp})
	if err != nil {
		t.Fatal(err)
	}
	run := uuid.New()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(canceled, run); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load on a cancelled context: %v", err)
	}
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := s.Load(expired, run); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load past its deadline: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, run); !errors.Is(err, cairn.ErrClosed) {
		t.Fatalf("Load on a closed store: %v", err)
	}
	spans := tel.spans.Ended()
	for _, class := range []string{"canceled", "timeout", "closed"} {
		errorSpan(t, span(t, spans, "cairn.Load", attribute.String("cairn.outcome", class)), class)
	}
}

// A durable store used on its own traces Load, List and Delete with tier
// "durable"; a Load of a missing run fails with not_found, a Delete of a
// missing run succeeds (nil when absent).
func TestReview2DurableReadSpans(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	d, err := durable.New(bucket.NewMem(), &durable.Options{TracerProvider: tel.tp, MeterProvider: tel.mp})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	run, missing := uuid.New(), uuid.New()
	if err := d.Save(ctx, checkpoint(run, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(ctx, run); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(ctx, missing); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load of a missing run: %v", err)
	}
	if _, err := d.List(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, missing); err != nil {
		t.Fatal(err)
	}
	spans := tel.spans.Ended()
	tier := attribute.String("cairn.tier", "durable")
	ok := attribute.String("cairn.outcome", "ok")
	span(t, spans, "cairn.Load", tier, attribute.String("cairn.run_id", run.String()), ok)
	errorSpan(t, span(t, spans, "cairn.Load", tier, attribute.String("cairn.run_id", missing.String())), "not_found")
	span(t, spans, "cairn.List", tier, ok)
	del := span(t, spans, "cairn.Delete", tier, attribute.String("cairn.run_id", missing.String()))
	if del.Status().Code == codes.Error {
		t.Errorf("Delete of a missing run: status %v; want no error (nil when absent)", del.Status())
	}
	for _, sp := range spans {
		if sp.SpanKind().String() != "internal" {
			t.Errorf("span %s of kind %s; want internal", sp.Name(), sp.SpanKind())
		}
		if sp.InstrumentationScope().Name != "github.com/cairnstore/cairn" {
			t.Errorf("span %s of scope %q", sp.Name(), sp.InstrumentationScope().Name)
		}
	}
	noSecret(t, spans)
}

// The observable counters are sums (monotonic) that "add up across the
// stores of one MeterProvider", and "a closed store is no longer
// reported". Together these make a counter go down when one of two
// stores closes, which a monotonic cumulative sum must never do: a
// Prometheus rate() reads the drop as a counter reset and reports a burst
// of the whole remaining value.
func TestReview2CountersDoNotGoDownWhenAStoreCloses(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	open := func() (*tiered.Store, uuid.UUID) {
		s, err := tiered.New(bucket.NewMem(), &tiered.Options{MeterProvider: tel.mp})
		if err != nil {
			t.Fatal(err)
		}
		run := uuid.New()
		if err := s.Save(ctx, checkpoint(run, 1)); err != nil {
			t.Fatal(err)
		}
		return s, run
	}
	a, runA := open()
	defer a.Close(ctx)
	b, runB := open()
	for range 3 {
		if _, err := a.Load(ctx, runA); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := b.Load(ctx, runB); err != nil {
			t.Fatal(err)
		}
	}
	none := attribute.NewSet()
	counters := []struct{ name, unit string }{
		{"cairn.cache.hits", "{lookup}"}, {"cairn.index.commits", "{commit}"}, {"cairn.objects.bytes", "By"},
	}
	before := map[string]int64{}
	ms := tel.metrics(t)
	for _, c := range counters {
		before[c.name] = sum(t, ms, c.name, c.unit, none)
		if d := data[metricdata.Sum[int64]](t, ms, c.name, c.unit); !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
			t.Fatalf("%s: monotonic %v, %v; the test expects a monotonic cumulative sum", c.name, d.IsMonotonic, d.Temporality)
		}
	}
	if before["cairn.cache.hits"] != 5 {
		t.Fatalf("cairn.cache.hits = %d; want 5 (3 + 2)", before["cairn.cache.hits"])
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ms = tel.metrics(t)
	for _, c := range counters {
		if after := sum(t, ms, c.name, c.unit, none); after < before[c.name] {
			t.Errorf("%s went down from %d to %d when one of the two stores closed: a monotonic counter must not decrease",
				c.name, before[c.name], after)
		}
	}
}

// Many goroutines use one observed store while metrics are collected and
// background flushes run; then Close races a collection. Under -race:
// no data race, and the operation counters add up to the calls made.
func TestReview2ConcurrentTelemetry(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond,
		TracerProvider: tel.tp, MeterProvider: tel.mp})
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 40
	stop := make(chan struct{})
	var collecting sync.WaitGroup
	collecting.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if err := tel.reader.Collect(ctx, &rm); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			run := uuid.New()
			for i := range rounds {
				if err := s.Save(ctx, checkpoint(run, i)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Load(ctx, run); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if _, err := s.List(ctx, nil); err != nil {
						t.Error(err)
					}
					if err := s.Flush(ctx); err != nil {
						t.Error(err)
					}
				}
			}
			if w%2 == 0 {
				if err := s.Delete(ctx, run); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	ms := tel.metrics(t)
	if n := sum(t, ms, "cairn.operations", "{operation}", opAttrs("save", "tiered", "ok")); n != workers*rounds {
		t.Errorf("saves counted: %d; want %d", n, workers*rounds)
	}
	if n := sum(t, ms, "cairn.operations", "{operation}", opAttrs("load", "tiered", "ok")); n != workers*rounds {
		t.Errorf("loads counted: %d; want %d", n, workers*rounds)
	}
	hits := sum(t, ms, "cairn.cache.hits", "{lookup}", attribute.NewSet())
	misses := sum(t, ms, "cairn.cache.misses", "{lookup}", attribute.NewSet())
	if hits+misses != workers*rounds {
		t.Errorf("hits %d + misses %d; want %d Loads", hits, misses, workers*rounds)
	}
	if err := s.Close(ctx); err != nil {
		t.Error(err)
	}
	close(stop)
	collecting.Wait()
	noSecret(t, tel.spans.Ended())
	// No metric data point names a workflow or holds content.
	for name, m := range tel.metrics(t) {
		if text := fmt.Sprint(m.Data); strings.Contains(text, secret) {
			t.Errorf("metric %s carries checkpoint content: %s", name, text)
		}
	}
}

// A store given only a MeterProvider for its tiered tier, and another
// TracerProvider for its durable tier (Options.Durable), uses each where
// it was given: the durable tier's spans (a write-through Save's index
// commit) go to the durable tier's provider, the tiered tier traces
// nothing.
func TestReview2DurableProvidersOverride(t *testing.T) {
	outer, inner := newTelemetry(t), newTelemetry(t)
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{MeterProvider: outer.mp,
		Durable: durable.Options{TracerProvider: inner.tp}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	run := uuid.New()
	if err := s.Save(ctx, checkpoint(run, 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(outer.spans.Ended()); n != 0 {
		t.Errorf("%d spans on the provider of neither tier", n)
	}
	span(t, inner.spans.Ended(), "cairn.Commit", attribute.String("cairn.tier", "durable"), attribute.String("cairn.outcome", "ok"))
	// The durable tier inherits the MeterProvider it was not given.
	if n := sum(t, outer.metrics(t), "cairn.operations", "{operation}", opAttrs("commit", "durable", "ok")); n != 1 {
		t.Errorf("durable commits on the inherited MeterProvider: %d; want 1", n)
	}
}

// Without providers, a cache-hit Load allocates what decoding the record
// allocates, and nothing for telemetry: the same as with a no-op
// (non-recording) pair of providers would be too much to ask, so the
// bound is the decode itself plus nothing.
func TestReview2CacheHitAllocatesNothingForTelemetry(t *testing.T) {
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	run := uuid.New()
	c := checkpoint(run, 1)
	c.State["blob"] = strings.Repeat("x", 10<<10)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	rec, err := s.LoadRecord(ctx, run, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec := s.Codec()
	decode := testing.AllocsPerRun(200, func() {
		if _, err := codec.DecodeSharedRecord(rec); err != nil {
			t.Fatal(err)
		}
	})
	load := testing.AllocsPerRun(200, func() {
		if _, err := s.Load(ctx, run); err != nil {
			t.Fatal(err)
		}
	})
	if load > decode {
		t.Errorf("a cache-hit Load without providers allocates %.0f times; decoding the record alone, %.0f", load, decode)
	}
	// The provider-less record path allocates nothing at all.
	if n := testing.AllocsPerRun(200, func() {
		if _, err := s.LoadRecord(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a cache-hit LoadRecord without providers allocates %.0f times; want 0", n)
	}
}
