package tiered

import (
	"context"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/google/uuid"
)

var _ cairn.Claimer = (*Store)(nil)

// Claim implements cairn.Claimer with the durable store's claim (see
// durable.Store.Claim): it reads the run from the bucket, not the cache,
// and rewrites it. This store's unflushed Saves of the run are flushed
// first, so that the claim resumes from them; the cached copy, older than
// the claim's rewrite, is dropped.
func (s *Store) Claim(ctx context.Context, runID uuid.UUID, opts *cairn.ClaimOptions) (*cairn.Lease, error) {
	if err := s.checkWritable(ctx); err != nil {
		return nil, cairn.WrapOp("claim", runID, err)
	}
	if e, ok := s.cache.Peek(runID); ok && e.Dirty {
		if err := s.flushDirty(ctx); err != nil {
			return nil, cairn.WrapOp("claim", runID, err)
		}
	}
	// No GET begun before the claim's rewrite ends keeps what it read.
	s.gens.begin(runID)
	defer s.gens.end(runID)
	l, err := s.d.Claim(ctx, runID, opts)
	if err != nil {
		return nil, err
	}
	if e, ok := s.cache.Peek(runID); ok && !e.Dirty {
		s.cache.CompareAndRemove(runID, e.Version)
	}
	s.fence.saw(runID, s.d.LeaseVersion(l)) // the claim's rewrite is this store's own write
	return l, nil
}

// SaveLeased implements cairn.Claimer. In write-back mode it returns once
// cached, like Save; the flush that writes it is conditional on the
// lease's last write, and reports ErrConflict (Flush, Close) when the run
// was taken over meanwhile, dropping the unflushed Saves of the lease.
// A SaveLeased of a lease this store already knows ended fails at once.
func (s *Store) SaveLeased(ctx context.Context, l *cairn.Lease, c *cairn.Checkpoint) error {
	ctx, sp := s.tel.Start(ctx, obs.Save, runOfCheckpoint(c))
	err := cairn.CheckLeased(l, c)
	if err != nil {
		err = cairn.WrapOp("save", runOfCheckpoint(c), err)
	} else {
		err = s.save(ctx, l.Stamped(c), l)
	}
	sp.End(err)
	return err
}

// Renew implements cairn.Claimer with the durable store's renewal.
func (s *Store) Renew(ctx context.Context, l *cairn.Lease) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("renew", runOf(l), err)
	}
	return s.d.Renew(ctx, l)
}

// Release implements cairn.Claimer. It flushes first when the run has
// unflushed Saves of the lease, so that they are written while the lease
// still fences them; a flush that fails fails the Release, which can be
// tried again, and a lease the flush found taken over is ErrConflict.
func (s *Store) Release(ctx context.Context, l *cairn.Lease) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("release", runOf(l), err)
	}
	if l != nil {
		if e, ok := s.cache.Peek(l.RunID); ok && e.Dirty && e.Lease == l.Epoch {
			// Not flush: the conflicts of other runs are for Flush to
			// report. One of this run's ends the lease, which the
			// durable Release then reports.
			if err := s.flushDirty(ctx); err != nil {
				return cairn.WrapOp("release", l.RunID, err)
			}
		}
	}
	return s.d.Release(ctx, l)
}

func runOf(l *cairn.Lease) uuid.UUID {
	if l == nil {
		return uuid.Nil
	}
	return l.RunID
}

// keepClaimable drops from dirty the runs a live lease holds (List's
// Claimable, for the runs the durable listing does not see yet).
func (s *Store) keepClaimable(ctx context.Context, dirty map[uuid.UUID]cairn.Summary) error {
	runs := make([]uuid.UUID, 0, len(dirty))
	for run := range dirty {
		runs = append(runs, run)
	}
	free, err := s.d.Claimable(ctx, runs)
	if err != nil {
		return err
	}
	for _, run := range runs {
		if !free[run] {
			delete(dirty, run)
		}
	}
	return nil
}
