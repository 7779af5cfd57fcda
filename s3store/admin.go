package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/s3store/bucket"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// runObject is a run's object as a bucket listing shows it.
type runObject struct {
	id   uuid.UUID
	info bucket.Info
}

// listRuns lists every run object. Keys under runs/ that are not run IDs
// are reported through bad.
func (s *Store) listRuns(ctx context.Context, bad func(key string)) ([]runObject, error) {
	var out []runObject
	for start := ""; ; {
		infos, more, err := s.b.List(ctx, s.runs, start, 1000)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			id, err := uuid.Parse(strings.TrimPrefix(in.Key, s.runs))
			if err != nil || s.runKey(id) != in.Key {
				bad(in.Key)
				continue
			}
			out = append(out, runObject{id: id, info: in})
		}
		if !more || len(infos) == 0 {
			return out, nil
		}
		start = infos[len(infos)-1].Key
	}
}

// summary reads a run's index entry from its object: from the metadata
// when it is complete, else from the decoded body.
func (s *Store) summary(ctx context.Context, id uuid.UUID) (index.Entry, error) {
	info, err := s.b.Head(ctx, s.runKey(id))
	if err != nil {
		return index.Entry{}, classify(err)
	}
	e, ok := entryFromMetadata(id, info.Metadata)
	if ok {
		return e, nil
	}
	cp, err := s.Load(ctx, id)
	if err != nil {
		return index.Entry{}, err
	}
	rec, err := s.codec.Encode(nil, cp)
	if err != nil {
		return index.Entry{}, err
	}
	return index.Entry{RunID: id, Timestamp: cp.Timestamp, Workflow: cp.WorkflowName, Size: int64(len(rec)), Expires: e.Expires}, nil
}

func entryFromMetadata(id uuid.UUID, meta map[string]string) (index.Entry, bool) {
	e := index.Entry{RunID: id}
	if exp, ok := meta[metaExpires]; ok {
		if t, err := cairn.ParseTimestamp(exp); err == nil {
			e.Expires = t
		}
	}
	ts, err1 := cairn.ParseTimestamp(meta[metaTimestamp])
	size, err2 := strconv.ParseInt(meta[metaSize], 10, 64)
	wf, ok := meta[metaWorkflow]
	if !ok || err1 != nil || err2 != nil {
		return e, false
	}
	wf, err := url.PathUnescape(wf)
	if err != nil {
		return e, false
	}
	e.Timestamp, e.Size, e.Workflow = ts, size, wf
	return e, true
}

// Reindex rebuilds the index from a listing of the run objects and their
// metadata (reading the body of a run whose metadata is incomplete). It
// repairs a lost or damaged index, index entries whose object is gone, and
// entries that disagree with their objects. When the old index can still
// be read, objects it does not list are orphans of interrupted Saves and
// Deletes and stay out (GC removes them); when it cannot, every object is
// indexed except runs whose delete is in the recent log. Saves and Deletes
// that commit during Reindex apply on top of the rebuilt snapshot; if a
// compaction moves the head meanwhile, Reindex starts again. It returns
// the number of runs indexed.
func (s *Store) Reindex(ctx context.Context) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, cairn.OpError("reindex", uuid.Nil, err)
	}
	n, err := s.reindex(ctx)
	return n, cairn.OpError("reindex", uuid.Nil, err)
}

func (s *Store) reindex(ctx context.Context) (int, error) {
	for attempt := 0; ; attempt++ {
		seq, err := s.ix.Barrier(ctx)
		if err != nil {
			return 0, err
		}
		// What the index says now (the barrier included): when it can be
		// read, an object it does not list is an orphan (an interrupted
		// Save or Delete) and stays out; when it cannot, every object
		// counts except the runs whose delete is in the recent log.
		indexed := map[uuid.UUID]bool{}
		readable := s.ix.Scan(ctx, func(e index.Entry) error { indexed[e.RunID] = true; return nil }) == nil
		deleting, err := s.ix.RecentDeletes(ctx)
		if err != nil {
			deleting = nil
		}
		objs, err := s.listRuns(ctx, func(string) {})
		if err != nil {
			return 0, err
		}
		entries := make([]index.Entry, len(objs))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.o.Concurrency)
		for i, o := range objs {
			if readable && !indexed[o.id] || deleting[o.id] {
				continue
			}
			g.Go(func() error {
				e, err := s.summary(gctx, o.id)
				if errors.Is(err, cairn.ErrNotFound) {
					return nil // deleted meanwhile
				}
				if err != nil {
					return fmt.Errorf("run %v: %w", o.id, err)
				}
				entries[i] = e
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
		kept := entries[:0]
		for _, e := range entries {
			if e.RunID != uuid.Nil {
				kept = append(kept, e)
			}
		}
		err = s.ix.Rebuild(ctx, seq, kept)
		if errors.Is(err, bucket.ErrPrecondition) && attempt < 3 {
			continue // a compaction took that number or moved the head: again
		}
		return len(kept), err
	}
}

// Report is what Verify found. Each list is sorted by run ID.
type Report struct {
	Runs int // run objects found
	// Missing are index entries whose object does not exist.
	Missing []uuid.UUID
	// Orphans are objects the index does not list (an interrupted Save
	// or Delete; GC removes them after the grace period).
	Orphans []uuid.UUID
	// Mismatched are runs whose index entry disagrees with the object's
	// metadata (two writers raced without fencing; Reindex repairs it).
	Mismatched []uuid.UUID
	// Corrupt maps runs whose object cannot be decoded to the reason.
	Corrupt map[uuid.UUID]error
	// Strays are keys under runs/ that name no run.
	Strays []string
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool {
	return len(r.Missing)+len(r.Orphans)+len(r.Mismatched)+len(r.Corrupt)+len(r.Strays) == 0
}

// Verify compares the index with the run objects and decodes every
// object. One bad object never stops it: problems are collected in the
// report; the error is for failures to read the bucket or the index.
// Expired runs count as indexed until GC removes them.
func (s *Store) Verify(ctx context.Context) (*Report, error) {
	if err := s.check(ctx); err != nil {
		return nil, cairn.OpError("verify", uuid.Nil, err)
	}
	rep := &Report{Corrupt: map[uuid.UUID]error{}}
	indexed := map[uuid.UUID]index.Entry{}
	err := s.ix.Scan(ctx, func(e index.Entry) error { indexed[e.RunID] = e; return nil })
	if err != nil {
		return nil, cairn.OpError("verify", uuid.Nil, err)
	}
	objs, err := s.listRuns(ctx, func(k string) { rep.Strays = append(rep.Strays, k) })
	if err != nil {
		return nil, cairn.OpError("verify", uuid.Nil, err)
	}
	rep.Runs = len(objs)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	for _, o := range objs {
		e, ok := indexed[o.id]
		delete(indexed, o.id)
		if !ok {
			rep.Orphans = append(rep.Orphans, o.id)
		}
		g.Go(func() error {
			obj, err := s.b.Get(gctx, s.runKey(o.id), &bucket.GetOptions{MaxSize: s.maxObject()})
			if errors.Is(err, bucket.ErrNotFound) {
				return nil // deleted meanwhile
			}
			var cp *cairn.Checkpoint
			if err == nil || errors.Is(err, bucket.ErrTooLarge) || errors.Is(err, bucket.ErrUnreadable) {
				if err == nil {
					cp, err = s.codec.Unmarshal(obj.Body)
				}
				if err == nil && cp.RunID != o.id {
					err = fmt.Errorf("%w: holds run %v", cairn.ErrCorrupt, cp.RunID)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					rep.Corrupt[o.id] = err
				} else if ok && (!cp.Timestamp.Equal(e.Timestamp) || cp.WorkflowName != e.Workflow) {
					rep.Mismatched = append(rep.Mismatched, o.id)
				}
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, cairn.OpError("verify", uuid.Nil, err)
	}
	for id := range indexed {
		rep.Missing = append(rep.Missing, id)
	}
	for _, l := range [][]uuid.UUID{rep.Missing, rep.Orphans, rep.Mismatched} {
		sortIDs(l)
	}
	return rep, nil
}

// sortIDs sorts run IDs by their bytes (the order of their strings too).
func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

// GCOptions configure GC. Nil means defaults.
type GCOptions struct {
	// Grace is how old an orphan object, an unreferenced index page or an
	// index log must be before GC deletes it, so that a Save, a
	// compaction or a List in progress never loses an object under it.
	// Default 15 minutes.
	Grace time.Duration
	// DryRun reports what would be deleted without deleting anything.
	DryRun bool
}

// GCReport says what GC deleted (or would have).
type GCReport struct {
	Expired []uuid.UUID // runs past their TTL, now deleted
	Orphans []uuid.UUID // run objects without an index entry
	Index   index.GCReport
}

// GC deletes expired runs, orphan run objects older than the grace period,
// and index objects no snapshot needs (see index.GC).
func (s *Store) GC(ctx context.Context, opts *GCOptions) (*GCReport, error) {
	if err := s.check(ctx); err != nil {
		return nil, cairn.OpError("gc", uuid.Nil, err)
	}
	var o GCOptions
	if opts != nil {
		o = *opts
	}
	if o.Grace == 0 {
		o.Grace = 15 * time.Minute
	}
	rep := &GCReport{}
	now := s.o.Now()
	indexed := map[uuid.UUID]bool{}
	err := s.ix.Scan(ctx, func(e index.Entry) error {
		indexed[e.RunID] = true
		if e.Expired(now) {
			rep.Expired = append(rep.Expired, e.RunID)
		}
		return nil
	})
	if err != nil {
		return nil, cairn.OpError("gc", uuid.Nil, err)
	}
	objs, err := s.listRuns(ctx, func(string) {})
	if err != nil {
		return nil, cairn.OpError("gc", uuid.Nil, err)
	}
	for _, obj := range objs {
		if !indexed[obj.id] && obj.info.LastModified.Before(now.Add(-o.Grace)) {
			rep.Orphans = append(rep.Orphans, obj.id)
		}
	}
	sortIDs(rep.Expired)
	sortIDs(rep.Orphans)
	if !o.DryRun {
		for _, id := range rep.Expired {
			if e, ok, err := s.ix.Lookup(ctx, id); err == nil && ok && !e.Expired(now) {
				continue // saved again since the scan: its TTL was refreshed
			}
			if err := s.Delete(ctx, id); err != nil {
				return rep, cairn.OpError("gc", id, err)
			}
		}
		for _, id := range rep.Orphans {
			// A Save may have claimed the run since the listing: look
			// again, as late as possible. (Buckets that honour a
			// conditional DeleteObject would close the window left.)
			if _, ok, err := s.ix.Lookup(ctx, id); err != nil || ok {
				continue
			}
			if info, err := s.b.Head(ctx, s.runKey(id)); err != nil || !info.LastModified.Before(now.Add(-o.Grace)) {
				continue
			}
			if err := s.b.Delete(ctx, s.runKey(id)); err != nil {
				return rep, cairn.OpError("gc", id, err)
			}
		}
	}
	ir, err := s.ix.GC(ctx, o.Grace, o.DryRun)
	if ir != nil {
		rep.Index = *ir
	}
	return rep, cairn.OpError("gc", uuid.Nil, err)
}
