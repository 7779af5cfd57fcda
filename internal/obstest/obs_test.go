package obstest

import (
	"context"
	"errors"
	"strings"
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
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// secret is in every field of the tests' checkpoints that the user fills:
// no span may carry it.
const secret = "sekret-state-5d1e"

func checkpoint(run uuid.UUID, step int) *cairn.Checkpoint {
	return &cairn.Checkpoint{WorkflowName: "wf-" + secret, RunID: run,
		Timestamp: time.Date(2024, 1, 1, 0, 0, step, 0, time.UTC),
		State:     map[string]any{"note": secret, "step": int64(step)}, Metadata: map[string]any{"m": secret}}
}

// telemetry is a test's SDK: spans kept in memory, metrics read on
// demand.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	sr := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tel := &telemetry{spans: sr, tp: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)), reader: reader,
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
	t.Cleanup(func() {
		_ = tel.tp.Shutdown(context.Background())
		_ = tel.mp.Shutdown(context.Background())
	})
	return tel
}

// metrics collects the metrics now, by name.
func (tel *telemetry) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/cairnstore/cairn" {
			t.Errorf("metric scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// opAttrs are the attributes of the operation metrics.
func opAttrs(op, tier, outcome string) attribute.Set {
	return attribute.NewSet(attribute.String("cairn.operation", op), attribute.String("cairn.tier", tier),
		attribute.String("cairn.outcome", outcome))
}

// data returns the data of metric name, of type D, failing t when the
// metric is missing, of another unit or of another type.
func data[D any](t *testing.T, ms map[string]metricdata.Metrics, name, unit string) D {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	if m.Unit != unit {
		t.Errorf("%s: unit %q; want %q", name, m.Unit, unit)
	}
	d, ok := m.Data.(D)
	if !ok {
		t.Fatalf("%s: %T; want %T", name, m.Data, d)
	}
	return d
}

// sum returns the value of the data point of the int64 sum name with
// attrs (0 when there is none).
func sum(t *testing.T, ms map[string]metricdata.Metrics, name, unit string, attrs attribute.Set) int64 {
	t.Helper()
	for _, dp := range data[metricdata.Sum[int64]](t, ms, name, unit).DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp.Value
		}
	}
	return 0
}

// count returns the count of the data point of the histogram name, in
// seconds, with attrs (0 when there is none).
func count(t *testing.T, ms map[string]metricdata.Metrics, name string, attrs attribute.Set) uint64 {
	t.Helper()
	for _, dp := range data[metricdata.Histogram[float64]](t, ms, name, "s").DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp.Count
		}
	}
	return 0
}

// span returns the ended span named name whose attributes hold want,
// failing t when there is none or more than one.
func span(t *testing.T, spans []sdktrace.ReadOnlySpan, name string, want ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name && hasAll(s.Attributes(), want) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %s with %v; want 1 (spans: %v)", len(found), name, want, names(spans))
	}
	return found[0]
}

func hasAll(have, want []attribute.KeyValue) bool {
	for _, w := range want {
		ok := false
		for _, h := range have {
			ok = ok || h == w
		}
		if !ok {
			return false
		}
	}
	return true
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// children counts the spans named name, with want, whose parent is
// parent.
func children(spans []sdktrace.ReadOnlySpan, parent sdktrace.ReadOnlySpan, name string, want ...attribute.KeyValue) int {
	n := 0
	for _, s := range spans {
		if s.Name() == name && s.Parent().SpanID() == parent.SpanContext().SpanID() && hasAll(s.Attributes(), want) {
			n++
		}
	}
	return n
}

// childOf fails t unless child's parent is parent.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %s is not a child of %s", child.Name(), parent.Name())
	}
}

// noSecret fails t if a span's attributes, status or events carry the
// checkpoints' content.
func noSecret(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range spans {
		text := s.Status().Description
		for _, kv := range s.Attributes() {
			text += " " + string(kv.Key) + "=" + kv.Value.Emit()
		}
		for _, e := range s.Events() {
			text += " " + e.Name
			for _, kv := range e.Attributes {
				text += " " + kv.Value.Emit()
			}
		}
		if strings.Contains(text, secret) {
			t.Errorf("span %s carries checkpoint content: %s", s.Name(), text)
		}
	}
}

// A tiered store in write-back mode over a memory bucket: every operation
// has its span, with the tier, the run, the outcome and, on failure, an
// error status naming the error's class; the durable tier's spans (the
// index commit of a flush, the durable Delete) are children of the tiered
// ones; the operation, cache, flush and index metrics count what was done.
func TestTieredSpansAndMetrics(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour,
		TracerProvider: tel.tp, MeterProvider: tel.mp})
	if err != nil {
		t.Fatal(err)
	}
	run, missing := uuid.New(), uuid.New()
	if err := s.Save(ctx, checkpoint(run, 1)); err != nil {
		t.Fatal(err)
	}
	ms := tel.metrics(t)
	if dirty := sum(t, ms, "cairn.cache.dirty_bytes", "By", attribute.NewSet()); dirty <= 0 {
		t.Errorf("dirty bytes before the flush: %d; want > 0", dirty)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, run); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, missing); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load of a missing run: %v", err)
	}
	if _, err := s.List(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, nil); !errors.Is(err, cairn.ErrInvalid) {
		t.Fatalf("Save(nil): %v", err)
	}
	if err := s.Delete(ctx, run); err != nil {
		t.Fatal(err)
	}

	spans := tel.spans.Ended()
	tier := attribute.String("cairn.tier", "tiered")
	save := span(t, spans, "cairn.Save", tier, attribute.String("cairn.run_id", run.String()))
	if !hasAll(save.Attributes(), []attribute.KeyValue{attribute.String("cairn.outcome", "ok")}) || save.Status().Code != codes.Unset {
		t.Errorf("Save: %v %v; want outcome ok, no error", save.Attributes(), save.Status())
	}
	flush := span(t, spans, "cairn.Flush", tier)
	if !hasAll(flush.Attributes(), []attribute.KeyValue{attribute.Int64("cairn.flush.runs", 1)}) {
		t.Errorf("Flush attributes %v; want cairn.flush.runs 1", flush.Attributes())
	}
	commit := []attribute.KeyValue{attribute.String("cairn.tier", "durable"), attribute.Int("cairn.index.ops", 1),
		attribute.String("cairn.outcome", "ok")}
	if n := children(spans, flush, "cairn.Commit", commit...); n != 1 {
		t.Errorf("%d index commits under the flush; want 1", n)
	}
	hit := span(t, spans, "cairn.Load", tier, attribute.String("cairn.run_id", run.String()))
	if !hasAll(hit.Attributes(), []attribute.KeyValue{attribute.Bool("cairn.cache.hit", true)}) {
		t.Errorf("Load of a cached run: %v; want cairn.cache.hit true", hit.Attributes())
	}
	miss := span(t, spans, "cairn.Load", tier, attribute.String("cairn.run_id", missing.String()))
	if st := miss.Status(); st.Code != codes.Error || st.Description != "not_found" ||
		!hasAll(miss.Attributes(), []attribute.KeyValue{attribute.String("error.type", "not_found"), attribute.Bool("cairn.cache.hit", false)}) {
		t.Errorf("Load of a missing run: %v %v; want an error status not_found, a cache miss", miss.Attributes(), st)
	}
	invalid := span(t, spans, "cairn.Save", tier, attribute.String("cairn.outcome", "invalid"))
	if invalid.Status().Code != codes.Error {
		t.Errorf("Save(nil): status %v; want an error", invalid.Status())
	}
	list := span(t, spans, "cairn.List", tier)
	childOf(t, span(t, spans, "cairn.List", attribute.String("cairn.tier", "durable")), list)
	del := span(t, spans, "cairn.Delete", tier, attribute.String("cairn.run_id", run.String()))
	durableDel := span(t, spans, "cairn.Delete", attribute.String("cairn.tier", "durable"))
	childOf(t, durableDel, del)
	if n := children(spans, durableDel, "cairn.Commit", commit...); n != 1 {
		t.Errorf("%d index commits under the durable Delete; want 1", n)
	}
	noSecret(t, spans)

	ms = tel.metrics(t)
	for _, c := range []struct {
		op, tier, outcome string
		want              int64
	}{
		{"save", "tiered", "ok", 1}, {"save", "tiered", "invalid", 1}, {"flush", "tiered", "ok", 1},
		{"load", "tiered", "ok", 1}, {"load", "tiered", "not_found", 1}, {"list", "tiered", "ok", 1},
		{"list", "durable", "ok", 1}, {"delete", "tiered", "ok", 1}, {"delete", "durable", "ok", 1},
		{"commit", "durable", "ok", 2},
	} {
		if got := sum(t, ms, "cairn.operations", "{operation}", opAttrs(c.op, c.tier, c.outcome)); got != c.want {
			t.Errorf("cairn.operations{%s %s %s} = %d; want %d", c.op, c.tier, c.outcome, got, c.want)
		}
	}
	if n := count(t, ms, "cairn.operation.duration", opAttrs("load", "tiered", "ok")); n != 1 {
		t.Errorf("duration count of loads: %d; want 1", n)
	}
	none := attribute.NewSet()
	for _, c := range []struct {
		name, unit string
		min, max   int64
	}{
		{"cairn.cache.hits", "{lookup}", 1, 1},
		{"cairn.cache.misses", "{lookup}", 1, 1},
		{"cairn.cache.dirty_bytes", "By", 0, 0},
		{"cairn.flush.runs", "{run}", 1, 1},
		{"cairn.flush.bytes", "By", 1, 1 << 20},
		{"cairn.index.commits", "{commit}", 2, 2},
		{"cairn.index.conflicts", "{conflict}", 0, 0},
		{"cairn.objects.bytes", "By", 1, 1 << 20},
	} {
		if got := sum(t, ms, c.name, c.unit, none); got < c.min || got > c.max {
			t.Errorf("%s = %d; want %d to %d", c.name, got, c.min, c.max)
		}
	}

	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A closed store's counters keep their final values (a total never
	// goes down: a monitor would read a reset), its levels count no more.
	ms = tel.metrics(t)
	if got := sum(t, ms, "cairn.cache.hits", "{lookup}", none); got != 1 {
		t.Errorf("cairn.cache.hits after Close = %d; want its final value, 1", got)
	}
	if got := sum(t, ms, "cairn.cache.bytes", "By", none); got != 0 {
		t.Errorf("cairn.cache.bytes after Close = %d; want 0: a closed store holds nothing", got)
	}
}

// The flusher's flushes have spans of their own, roots of their traces,
// marked as background flushes.
func TestBackgroundFlushSpan(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond,
		TracerProvider: tel.tp})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.Save(ctx, checkpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	bg := attribute.Bool("cairn.flush.background", true)
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, sp := range tel.spans.Ended() {
			if sp.Name() == "cairn.Flush" && hasAll(sp.Attributes(), []attribute.KeyValue{bg, attribute.Int64("cairn.flush.runs", 1)}) {
				if sp.Parent().IsValid() {
					t.Errorf("a background flush has a parent span")
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background flush span; spans: %v", names(tel.spans.Ended()))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A durable store used on its own: a Save's index commit is a child of
// its span, and the index metrics count a conflict with another process
// and a compaction.
func TestDurableSpansAndIndexMetrics(t *testing.T) {
	tel := newTelemetry(t)
	ctx := context.Background()
	mem := bucket.NewMem()
	a, err := durable.New(mem, &durable.Options{TracerProvider: tel.tp, MeterProvider: tel.mp,
		Index: &index.Options{CompactAfter: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := durable.New(mem, nil) // another process, not observed
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	first := uuid.New()
	if err := a.Save(ctx, checkpoint(first, 1)); err != nil {
		t.Fatal(err)
	}
	spans := tel.spans.Ended()
	save := span(t, spans, "cairn.Save", attribute.String("cairn.tier", "durable"), attribute.String("cairn.run_id", first.String()))
	childOf(t, span(t, spans, "cairn.Commit"), save)

	// b commits; a's view of the log tail is behind, so its next commit
	// loses that number to b and takes the next.
	if err := b.Save(ctx, checkpoint(uuid.New(), 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, checkpoint(uuid.New(), 3)); err != nil {
		t.Fatal(err)
	}
	if err := a.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	ms := tel.metrics(t)
	none := attribute.NewSet()
	if n := sum(t, ms, "cairn.index.conflicts", "{conflict}", none); n != 1 {
		t.Errorf("cairn.index.conflicts = %d; want 1", n)
	}
	if n := sum(t, ms, "cairn.index.compactions", "{compaction}", none); n != 1 {
		t.Errorf("cairn.index.compactions = %d; want 1", n)
	}
	if n := sum(t, ms, "cairn.index.commits", "{commit}", none); n != 2 {
		t.Errorf("cairn.index.commits = %d; want 2 (a's own)", n)
	}
	if n := sum(t, ms, "cairn.operations", "{operation}", opAttrs("save", "durable", "ok")); n != 2 {
		t.Errorf("durable saves counted: %d; want 2", n)
	}
	noSecret(t, tel.spans.Ended())
}
