// Package memstore is the in-memory reference implementation of
// cairn.Store: one map of encoded records behind a lock.
//
// It keeps each checkpoint as its MessagePack record, so it validates,
// bounds and copies exactly as a durable store does, and Load always
// decodes a fresh copy. Nothing survives the process; use it in tests and
// as the model other stores are checked against.
package memstore

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// Options configures a Store. Nil means defaults.
type Options struct {
	// Codec encodes and bounds checkpoints. Nil means cairn.DefaultCodec().
	Codec *cairn.Codec
}

// Store is an in-memory cairn.Store. It is safe for concurrent use; every
// operation takes effect atomically, so concurrent Saves of one run leave
// exactly one of them (the last to take the lock).
type Store struct {
	codec *cairn.Codec

	mu     sync.RWMutex
	runs   map[uuid.UUID]entry
	claims map[uuid.UUID]*claim // see Claim
	closed bool
}

type entry struct {
	record  []byte // immutable once stored
	summary cairn.Summary
}

var _ cairn.RecordStore = (*Store)(nil)

// New returns an empty Store.
func New(opts *Options) *Store {
	s := &Store{codec: cairn.DefaultCodec(), runs: map[uuid.UUID]entry{}, claims: map[uuid.UUID]*claim{}}
	if opts != nil && opts.Codec != nil {
		s.codec = opts.Codec
	}
	return s
}

// check returns the error an operation gets before it starts: ErrClosed
// or the context's error. The caller holds s.mu.
func (s *Store) check(ctx context.Context) error {
	if s.closed {
		return cairn.ErrClosed
	}
	return ctx.Err()
}

// Save implements cairn.Store. The checkpoint is encoded before the lock
// is taken; an invalid one changes nothing.
func (s *Store) Save(ctx context.Context, c *cairn.Checkpoint) error {
	return s.save(ctx, cairn.Unleased(c), nil) // a lease stamp keeps its epoch only
}

// save stores c; when leased is not nil it is called under the lock with
// the run's current entry, and its error refuses the write.
func (s *Store) save(ctx context.Context, c *cairn.Checkpoint, leased func(old entry, ok bool, rec []byte) error) error {
	var run uuid.UUID
	if c != nil {
		run = c.RunID
	}
	r, err := s.codec.NewRecord(nil, c)
	if err != nil {
		return cairn.WrapOp("save", run, err)
	}
	return s.saveRecord(ctx, r, leased)
}

// SaveRecord implements cairn.RecordStore: Save of an encoded record.
func (s *Store) SaveRecord(ctx context.Context, r cairn.Record) error {
	if err := s.codec.CheckRecord(r); err != nil {
		return err
	}
	return s.saveRecord(ctx, r, nil)
}

// Codec implements cairn.RecordStore.
func (s *Store) Codec() *cairn.Codec { return s.codec }

func (s *Store) saveRecord(ctx context.Context, r cairn.Record, leased func(old entry, ok bool, rec []byte) error) error {
	run, rec := r.RunID(), r.Bytes()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	if leased != nil {
		old, ok := s.runs[run]
		if err := leased(old, ok, rec); err != nil {
			return cairn.WrapOp("save", run, err)
		}
	}
	s.runs[run] = entry{record: rec, summary: cairn.Summary{
		RunID: run, WorkflowName: r.WorkflowName(), Timestamp: r.Timestamp(), Size: int64(len(rec)), Labels: r.Labels(),
	}}
	return nil
}

// Load implements cairn.Store.
func (s *Store) Load(ctx context.Context, runID uuid.UUID) (*cairn.Checkpoint, error) {
	rec, err := s.LoadRecord(ctx, runID, nil)
	if err != nil {
		return nil, err
	}
	cp, err := s.codec.DecodeSharedRecord(rec) // records are never changed
	return cp, cairn.WrapOp("load", runID, err)
}

// LoadRecord implements cairn.RecordStore. The record is shared with the
// store.
func (s *Store) LoadRecord(ctx context.Context, runID uuid.UUID, _ *cairn.LoadRecordOptions) ([]byte, error) {
	if err := cairn.CheckRunID("load", runID); err != nil {
		return nil, err
	}
	s.mu.RLock()
	e, ok := s.runs[runID]
	err := s.check(ctx)
	s.mu.RUnlock()
	if err == nil && !ok {
		err = cairn.ErrNotFound
	}
	if err != nil {
		return nil, cairn.WrapOp("load", runID, err)
	}
	return e.record, nil
}

// List implements cairn.Store, label selectors included. It sorts every
// matching run on each call, which is fine for a reference store and for
// tests.
func (s *Store) List(ctx context.Context, opts *cairn.ListOptions) (*cairn.Page, error) {
	q, err := opts.Query()
	if err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	s.mu.RLock()
	if err := s.check(ctx); err != nil {
		s.mu.RUnlock()
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	var matched []entry
	now := time.Now()
	for _, e := range s.runs {
		if q.Match(e.summary.WorkflowName, e.summary.Timestamp, e.summary.Labels) &&
			(!q.HasAfter || q.After.Compare(e.summary.Key()) < 0) && (!q.Claimable || s.claimable(e.summary.RunID, now)) {
			matched = append(matched, e)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(matched, func(a, b entry) int { return a.summary.Key().Compare(b.summary.Key()) })

	page := &cairn.Page{Runs: make([]cairn.Summary, 0, len(matched))}
	if q.Limit > 0 && len(matched) > q.Limit {
		matched = matched[:q.Limit]
		last := matched[len(matched)-1].summary
		page.Next = last.Key().Cursor()
	}
	for _, e := range matched {
		sum := e.summary
		sum.Labels = maps.Clone(sum.Labels) // the caller's
		if q.WithCheckpoints {
			if sum.Checkpoint, err = s.codec.DecodeRecord(e.record); err != nil {
				return nil, cairn.WrapOp("list", sum.RunID, err)
			}
		}
		page.Runs = append(page.Runs, sum)
	}
	return page, nil
}

// Delete implements cairn.Store.
func (s *Store) Delete(ctx context.Context, runID uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	delete(s.runs, runID)
	return nil
}

// Close implements cairn.Store. There is nothing to flush; it drops the
// runs and makes every later call fail with ErrClosed.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return cairn.WrapOp("close", uuid.Nil, cairn.ErrClosed)
	}
	s.closed, s.runs = true, nil
	return nil
}
