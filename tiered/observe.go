package tiered

import (
	"context"
	"log/slog"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/cairnstore/cairn/lru"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// telemetry is a Store's logger, spans and instruments (see the README's
// Observability section). Without a TracerProvider and a MeterProvider it
// records nothing and costs a nil check per operation.
type telemetry struct {
	*obs.T
	flushRuns, flushBytes metric.Int64Counter // nil without a MeterProvider
	// failing counts the background flushes that failed in a row (the
	// flusher's own): the first is a warning, the next ones are debug
	// records until a flush succeeds again.
	failing int
}

// inheritTelemetry gives the durable store below the cache this store's
// logger and providers, where its options set none.
func inheritTelemetry(o *Options) {
	d := obs.Options{Logger: o.Durable.Logger, TracerProvider: o.Durable.TracerProvider, MeterProvider: o.Durable.MeterProvider}
	d.Inherit(obs.Options{Logger: o.Logger, TracerProvider: o.TracerProvider, MeterProvider: o.MeterProvider})
	o.Durable.Logger, o.Durable.TracerProvider, o.Durable.MeterProvider = d.Logger, d.TracerProvider, d.MeterProvider
}

// instrument sets up s's telemetry: the spans, and the instruments that
// read the cache's counters when a collection asks (the hot paths count
// nothing more for them).
func (s *Store) instrument(o *Options) error {
	t, err := obs.New("tiered", obs.Options{Logger: o.Logger, TracerProvider: o.TracerProvider, MeterProvider: o.MeterProvider})
	if err != nil {
		return err
	}
	s.tel.T = t
	m := t.Meter
	if m == nil {
		return nil
	}
	if s.tel.flushRuns, err = m.Int64Counter("cairn.flush.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Runs made durable by write-back flushes.")); err != nil {
		return err
	}
	if s.tel.flushBytes, err = m.Int64Counter("cairn.flush.bytes", metric.WithUnit("By"),
		metric.WithDescription("Encoded (uncompressed) bytes of the runs made durable by write-back flushes.")); err != nil {
		return err
	}
	// Up-down counters rather than gauges for the levels: they add up
	// across the stores of one process (Prometheus shows them as gauges).
	return t.ObserveInt64(
		obs.Observed{Name: "cairn.cache.hits", Unit: "{lookup}", Description: "Loads served by the cache.",
			Read: func() int64 { return int64(s.cache.Stats().Hits) }},
		obs.Observed{Name: "cairn.cache.misses", Unit: "{lookup}", Description: "Loads the cache did not hold.",
			Read: func() int64 { return int64(s.cache.Stats().Misses) }},
		obs.Observed{Name: "cairn.cache.evictions", Unit: "{entry}", Description: "Clean entries evicted from the cache to make room.",
			Read: func() int64 { return int64(s.cache.Stats().Evictions) }},
		obs.Observed{Name: "cairn.cache.bytes", Unit: "By", UpDown: true, Description: "Encoded bytes the cache holds, dirty or clean.",
			Read: func() int64 { return s.cache.Stats().Bytes }},
		obs.Observed{Name: "cairn.cache.dirty_bytes", Unit: "By", UpDown: true,
			Description: "Encoded bytes saved in write-back mode and not flushed yet.", Read: s.cache.DirtyBytes},
	)
}

// runOfCheckpoint is c's run, uuid.Nil for a nil c.
func runOfCheckpoint(c *cairn.Checkpoint) uuid.UUID {
	if c == nil {
		return uuid.Nil
	}
	return c.RunID
}

// cacheHit notes on a Load's span whether the cache served it (a
// revalidated hit counts as a hit).
func cacheHit(sp obs.Span, hit bool) {
	if sp.Recording() {
		sp.SetAttributes(attribute.Bool("cairn.cache.hit", hit))
	}
}

// backgroundFlush is the flusher's flush, in a span of its own, logged
// when it fails: a warning for the first failure, debug records for the
// next ones in a row, and an info record once a flush succeeds again.
func (s *Store) backgroundFlush(ctx context.Context) error {
	ctx, sp := s.tel.Start(ctx, obs.Flush, uuid.Nil)
	if sp.Recording() {
		sp.SetAttributes(attribute.Bool("cairn.flush.background", true))
	}
	err := s.flushOnce(ctx)
	sp.End(err)
	log := s.tel.Log
	switch {
	case err != nil && s.tel.failing == 0:
		log.LogAttrs(ctx, slog.LevelWarn, "cairn: background flush failed; the runs stay dirty and are tried again after the next flush window",
			slog.Int64("dirty_bytes", s.cache.DirtyBytes()), slog.Any("error", err))
	case err != nil:
		log.LogAttrs(ctx, slog.LevelDebug, "cairn: background flush failed again",
			slog.Int("failures", s.tel.failing+1), slog.Int64("dirty_bytes", s.cache.DirtyBytes()), slog.Any("error", err))
	case s.tel.failing > 0:
		log.LogAttrs(ctx, slog.LevelInfo, "cairn: background flush succeeded after failures", slog.Int("failures", s.tel.failing))
	}
	if err != nil {
		s.tel.failing++
	} else {
		s.tel.failing = 0
	}
	return err
}

// flushed records what one flush wrote: the runs of items whose result in
// res is a success.
func (s *Store) flushed(ctx context.Context, items []lru.Item[uuid.UUID], res []durable.WriteResult) {
	if s.tel.flushRuns == nil && !s.tel.Tracing() {
		return
	}
	var runs, bytes int64
	for i, r := range res {
		if r.Err == nil {
			runs++
			bytes += int64(len(items[i].Entry.Value))
		}
	}
	if s.tel.flushRuns != nil {
		s.tel.flushRuns.Add(ctx, runs)
		s.tel.flushBytes.Add(ctx, bytes)
	}
	obs.Annotate(ctx, attribute.Int64("cairn.flush.runs", runs), attribute.Int64("cairn.flush.bytes", bytes))
}

// takenOver logs a run a flush found written by another worker (fencing,
// or a lease taken over): its unflushed Saves here are dropped.
func (s *Store) takenOver(ctx context.Context, run uuid.UUID) {
	s.tel.Log.LogAttrs(ctx, slog.LevelInfo, "cairn: run taken over by another writer; its unflushed saves here are dropped",
		slog.String("run_id", run.String()))
}

// closeFailed logs a Close whose final flush (or durable Close) failed.
func (s *Store) closeFailed(ctx context.Context, err error) {
	dirty := s.cache.DirtyBytes()
	if dirty == 0 {
		s.tel.Log.LogAttrs(ctx, slog.LevelWarn, "cairn: close failed; nothing was left unflushed",
			slog.Any("error", err))
		return
	}
	s.tel.Log.LogAttrs(ctx, slog.LevelError, "cairn: close failed; runs not flushed by then are lost",
		slog.Int64("dirty_bytes", dirty), slog.Any("error", err))
}
