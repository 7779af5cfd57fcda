package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// claim is a run's lease state (cairn.Claimer). A Store keeps one per run
// ever claimed, Deletes included, so that epochs keep growing. wrote is
// the version the holder last wrote: the first byte of the record it
// stored (every Save stores a record of its own), so that any other
// Save of the run in between makes the holder's next SaveLeased fail.
type claim struct {
	owner    string
	epoch    uint64
	expires  time.Time
	released bool
	lost     bool
	wrote    *byte
}

func (c *claim) live(now time.Time) bool { return !c.released && now.Before(c.expires) }

// holds reports whether c is still the lease l, unreleased and not lost.
func (c *claim) holds(l *cairn.Lease) bool {
	return c != nil && c.epoch == l.Epoch && !c.released && !c.lost
}

// claimable reports whether no live lease holds run. The caller holds
// s.mu.
func (s *Store) claimable(run uuid.UUID, now time.Time) bool {
	c := s.claims[run]
	return c == nil || !c.live(now)
}

var _ cairn.Claimer = (*Store)(nil)

// Claim implements cairn.Claimer: the claim and the run's stamped rewrite
// happen at once, under the store's lock.
func (s *Store) Claim(ctx context.Context, runID uuid.UUID, opts *cairn.ClaimOptions) (*cairn.Lease, error) {
	l, err := s.claim(ctx, runID, opts)
	return l, cairn.WrapOp("claim", runID, err)
}

func (s *Store) claim(ctx context.Context, run uuid.UUID, opts *cairn.ClaimOptions) (*cairn.Lease, error) {
	o, err := cairn.CheckClaim(run, opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	e, ok := s.runs[run]
	if !ok {
		return nil, cairn.ErrNotFound
	}
	now := time.Now()
	c := s.claims[run]
	if c != nil && c.live(now) {
		return nil, fmt.Errorf("%w: held by %q (epoch %d) until %s", cairn.ErrClaimed, c.owner, c.epoch, c.expires.Format(time.RFC3339Nano))
	}
	cp, err := s.codec.DecodeRecord(e.record)
	if err != nil {
		return nil, err
	}
	epoch := cairn.LeaseEpoch(cp.Metadata)
	if c != nil {
		epoch = max(epoch, c.epoch)
	}
	l := &cairn.Lease{RunID: run, Owner: o.Owner, Epoch: epoch + 1, Duration: o.Lease, Expires: now.Add(o.Lease)}
	l.Checkpoint = l.Stamped(cp)
	rec, err := s.codec.EncodeRecord(nil, l.Checkpoint)
	if err != nil {
		return nil, err
	}
	e.record, e.summary.Size = rec, int64(len(rec))
	s.runs[run] = e
	s.claims[run] = &claim{owner: o.Owner, epoch: l.Epoch, expires: l.Expires, wrote: &rec[0]}
	return l, nil
}

// SaveLeased implements cairn.Claimer.
func (s *Store) SaveLeased(ctx context.Context, l *cairn.Lease, c *cairn.Checkpoint) error {
	if err := cairn.CheckLeased(l, c); err != nil {
		var run uuid.UUID
		if c != nil {
			run = c.RunID
		}
		return cairn.WrapOp("save", run, err)
	}
	return s.save(ctx, l.Stamped(c), func(old entry, ok bool, rec []byte) error {
		cl := s.claims[l.RunID]
		if !cl.holds(l) {
			return errTakenOver(l)
		}
		if !ok || &old.record[0] != cl.wrote {
			cl.lost = true
			return errTakenOver(l)
		}
		cl.wrote = &rec[0]
		return nil
	})
}

func errTakenOver(l *cairn.Lease) error {
	return fmt.Errorf("%w: the lease of epoch %d was taken over or released", cairn.ErrConflict, l.Epoch)
}

// Renew implements cairn.Claimer.
func (s *Store) Renew(ctx context.Context, l *cairn.Lease) error {
	return s.update(ctx, "renew", l, func(c *claim) {
		c.expires = time.Now().Add(l.Duration)
		l.Expires = c.expires
	})
}

// Release implements cairn.Claimer.
func (s *Store) Release(ctx context.Context, l *cairn.Lease) error {
	return s.update(ctx, "release", l, func(c *claim) { c.released = true })
}

// update applies f to the claim l holds, or fails with ErrConflict. A
// release of a released lease is nil.
func (s *Store) update(ctx context.Context, op string, l *cairn.Lease, f func(*claim)) error {
	if l == nil {
		return cairn.WrapOp(op, uuid.Nil, fmt.Errorf("%w: nil lease", cairn.ErrInvalid))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp(op, l.RunID, err)
	}
	c := s.claims[l.RunID]
	if op == "release" && c != nil && c.epoch == l.Epoch && c.released {
		return nil
	}
	// A lease whose writes were refused (lost) may still be released, if
	// its claim is still the run's: others need not wait for it to end.
	if !c.holds(l) && (op != "release" || c == nil || c.epoch != l.Epoch || c.released) {
		return cairn.WrapOp(op, l.RunID, errTakenOver(l))
	}
	f(c)
	return nil
}
