package index

import (
	"context"
	"log/slog"
	"time"
)

// The index's log records (Options.Logger). They name log numbers,
// attempts and errors, never entries.

// logRaced records a log number lost to another writer: the commit goes
// on at next at once.
func (ix *Index) logRaced(ctx context.Context, taken, next uint64) {
	ix.o.Logger.LogAttrs(ctx, slog.LevelInfo, "cairn: index commit conflict: another writer took the log number; retrying at the next",
		slog.Uint64("seq", taken), slog.Uint64("next", next))
}

// logRetry records a failed attempt of a commit, tried again after a
// backoff.
func (ix *Index) logRetry(ctx context.Context, seq uint64, attempt int, err error) {
	ix.o.Logger.LogAttrs(ctx, slog.LevelDebug, "cairn: index commit attempt failed; retrying after a backoff",
		slog.Uint64("seq", seq), slog.Int("attempt", attempt+1), slog.Any("error", err))
}

// logCompaction records the outcome of a background compaction that
// began at start, snapshots being the count of snapshots written before
// it.
func (ix *Index) logCompaction(start time.Time, snapshots int64, err error) {
	st := ix.Stats()
	took := slog.Duration("duration", time.Since(start))
	switch {
	case err != nil:
		ix.o.Logger.LogAttrs(context.Background(), slog.LevelWarn, "cairn: index compaction failed; tried again after a later commit",
			took, slog.Any("error", err))
	case st.Compactions > snapshots:
		ix.o.Logger.LogAttrs(context.Background(), slog.LevelInfo, "cairn: index compacted",
			slog.Uint64("snapshot", st.Snapshot), took)
	default:
		ix.o.Logger.LogAttrs(context.Background(), slog.LevelDebug, "cairn: index compaction found nothing to compact", took)
	}
}
