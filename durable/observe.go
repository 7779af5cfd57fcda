package durable

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
)

// instrument sets up s's telemetry (see the README's Observability
// section): the spans, and the instruments that read the store's and the
// index's counters when a collection asks.
func (s *Store) instrument(o *Options) error {
	t, err := obs.New("durable", obs.Options{Logger: o.Logger, TracerProvider: o.TracerProvider, MeterProvider: o.MeterProvider})
	if err != nil {
		return err
	}
	s.tel = t
	ix := func(read func(index.Stats) int64) func() int64 { return func() int64 { return read(s.ix.Stats()) } }
	return t.ObserveInt64(
		obs.Observed{Name: "cairn.objects.bytes", Unit: "By", Description: "Compressed bytes of the run objects written.",
			Read: s.bytesStored.Load},
		obs.Observed{Name: "cairn.index.commits", Unit: "{commit}",
			Description: "Index log objects written (one per group of concurrent commits).",
			Read:        ix(func(st index.Stats) int64 { return st.Commits })},
		obs.Observed{Name: "cairn.index.conflicts", Unit: "{conflict}",
			Description: "Index log numbers lost to another writer (each commit retried at the next).",
			Read:        ix(func(st index.Stats) int64 { return st.Conflicts })},
		obs.Observed{Name: "cairn.index.compactions", Unit: "{compaction}", Description: "Index snapshots written by compactions.",
			Read: ix(func(st index.Stats) int64 { return st.Compactions })},
		obs.Observed{Name: "cairn.index.compaction_failures", Unit: "{compaction}",
			Description: "Background compactions that failed (tried again after a later commit).",
			Read:        ix(func(st index.Stats) int64 { return st.CompactionErrors })},
	)
}

// commit is the index commit of ops, in a span of its own (cairn.Commit).
// Concurrent commits share one log object (group commit): the span is
// this caller's wait for it.
func (s *Store) commit(ctx context.Context, ops ...index.Op) error {
	ctx, sp := s.tel.Start(ctx, obs.Commit, uuid.Nil)
	if sp.Recording() {
		sp.SetAttributes(attribute.Int("cairn.index.ops", len(ops)))
	}
	err := s.ix.Commit(ctx, ops...)
	sp.End(err)
	return err
}

// probed logs the outcome of CheckServer's probe: a verdict read (Debug),
// a probe passed (Info), a server refused (Error), a probe that could not
// finish (Warn).
func (s *Store) probed(ctx context.Context, server string, recorded bool, err error) {
	log := s.tel.Log
	var pe *ProbeError
	switch {
	case err == nil && recorded:
		log.LogAttrs(ctx, slog.LevelDebug, "cairn: server probe: recorded verdict accepted", slog.String("server", server))
	case err == nil:
		log.LogAttrs(ctx, slog.LevelInfo, "cairn: server probe passed; verdict recorded", slog.String("server", server))
	case errors.As(err, &pe):
		checks := make([]string, len(pe.Failures))
		for i, f := range pe.Failures {
			checks[i] = string(f.Check)
		}
		log.LogAttrs(ctx, slog.LevelError, "cairn: server failed the conditional-write probe; writes are refused",
			slog.String("server", server), slog.Any("failed_checks", checks), slog.Any("error", err))
	default:
		log.LogAttrs(ctx, slog.LevelWarn, "cairn: server probe could not finish; the next write tries again",
			slog.String("server", server), slog.Any("error", err))
	}
}
