// Package tiered is the Store users open: an in-process LRU of encoded
// checkpoints in front of the durable store of package s3store.
//
// # Modes
//
// In WriteThrough mode Save returns once the run's object and its index
// entry are durable, as with s3store alone; the cache makes later Loads of
// the run cost no request. In WriteBack mode Save returns once the cache
// holds the encoded checkpoint; a flusher makes it durable within the flush
// window (100 ms by default), writing every run saved in the window in
// parallel and committing all of them in one index commit. Repeated Saves
// of one run within a window cost one PUT. Flush makes everything saved
// before it durable; Close flushes.
//
// # Errors
//
// Errors wrap the sentinels of package cairn in a *cairn.Error. In
// write-back mode a failed flush keeps the runs dirty and retries them at
// the next window; Flush and Close write them again and return what
// failed, and a fencing conflict met by a background flush (whose Saves
// are dropped) is returned by the next Flush or Close: failures are never
// swallowed. Save fails with the context's error when it has to
// wait for the dirty bytes to drain (backpressure) and the context ends.
//
// # Concurrency
//
// A Store is safe for concurrent use. Load returns a fresh copy decoded
// from the cached bytes, which the caller owns; concurrent Loads of one run
// that miss the cache share one GET (each reads its own with
// Revalidate). A dirty entry is never evicted.
//
// # Consistency
//
// Write-through: what Save acknowledged is durable. Write-back: what Save
// acknowledged is durable once a later Flush or Close returns nil; a crash
// before that loses the Saves of the last flush window (at most
// FlushWindow plus one flush of data). List includes this process's
// unflushed runs (read-your-writes). Without revalidation a run cached
// here and then written by another process is served stale from the cache
// until it is evicted or saved here again; Delete here drops it. List with
// WithCheckpoints reloads a cached run whose time differs from the
// index's. Other processes see a write-back Save only once it is flushed.
//
// The index decides which runs exist. A crash in the middle of a flush
// (or of a write-through Save) can leave objects written whose index
// commit was lost; those Saves were never acknowledged. A new run left so
// is not listed, though Load finds it; a listed run left so is listed with
// the time of its previous Save while Load returns the newer state. To
// resume after a crash, take the runs from List and Load each; s3store's
// Verify reports such objects (unindexed, mismatched) and Reindex lists
// them with their newest state. GC never deletes them.
package tiered

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/lru"
	"github.com/cairnstore/cairn/s3store"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// Mode says when Save returns.
type Mode int

const (
	// WriteThrough: Save returns once the run is durable.
	WriteThrough Mode = iota
	// WriteBack: Save returns once the cache holds the run; the flusher
	// makes it durable.
	WriteBack
)

// Options configure a Store. Nil and zero fields mean defaults.
type Options struct {
	Mode Mode
	// FlushWindow is how long the flusher gathers Saves before writing
	// them (write-back). Default 100 ms.
	FlushWindow time.Duration
	// MaxDirtyBytes bounds the unflushed encoded bytes; a Save that would
	// pass it waits for a flush, and fails with the flush's error if one
	// fails meanwhile. Default 64 MiB.
	MaxDirtyBytes int64
	// CacheBytes bounds the cache (clean entries are evicted past it;
	// dirty ones never are). Default 64 MiB.
	CacheBytes int64
	// FlushConcurrency bounds the parallel PUTs of a flush, and the
	// parallel Loads of List with WithCheckpoints. Default 16.
	FlushConcurrency int
	// FlushTimeout bounds each background flush (write-back), its PUTs
	// and its index commit; a flush cut short is tried again after the
	// next window. Default: the S3 call timeout of a store opened with
	// Open (its timeout parameter), else 2 min (s3store.DefaultTimeout).
	// Flush and Close are bounded by their context and by the S3 bounds
	// of each request, not by this.
	FlushTimeout time.Duration
	// Fencing makes every write of a run conditional on the ETag this
	// store last saw for it (from its own write or a Load), and a run it
	// never saw conditional on not existing. When another worker has
	// written the run since, the write fails with ErrConflict instead of
	// overwriting: Save does in write-through mode; in write-back mode
	// Flush and Close report it, the unflushed Saves of that run are
	// dropped, and later Saves of it fail with ErrConflict until it is
	// Loaded (or Deleted) again. Default off: the last writer wins, as in
	// blazen-persist.
	Fencing bool
	// Revalidate confirms every cache hit with a conditional GET
	// (If-None-Match: the cached ETag; an unchanged run costs no body), so
	// a run written by another process is never served stale. Default
	// off: see the package doc for what may then be stale.
	Revalidate bool
	// SkipUnchanged makes a Save whose bytes equal what this store last
	// wrote and committed for the run cost no request (not with fencing,
	// revalidation or a TTL, which need the write). Set it only when no
	// other process writes or deletes the runs this store saves: the
	// skipped Save trusts the cache, and a Delete or overwrite by another
	// process since would make an acknowledged Save vanish. Default off:
	// every Save writes.
	SkipUnchanged bool
}

func (o *Options) withDefaults() (Options, error) {
	var d Options
	if o != nil {
		d = *o
	}
	var problems []error
	if d.Mode != WriteThrough && d.Mode != WriteBack {
		problems = append(problems, fmt.Errorf("unknown Mode %d", d.Mode))
	}
	if d.FlushWindow < 0 || d.MaxDirtyBytes < 0 || d.CacheBytes < 0 || d.FlushConcurrency < 0 || d.FlushTimeout < 0 {
		problems = append(problems, errors.New("negative FlushWindow, MaxDirtyBytes, CacheBytes, FlushConcurrency or FlushTimeout"))
	}
	if len(problems) > 0 {
		return d, fmt.Errorf("%w: tiered options: %w", cairn.ErrInvalid, errors.Join(problems...))
	}
	if d.FlushWindow == 0 {
		d.FlushWindow = 100 * time.Millisecond
	}
	if d.MaxDirtyBytes == 0 {
		d.MaxDirtyBytes = 64 << 20
	}
	if d.CacheBytes == 0 {
		d.CacheBytes = 64 << 20
	}
	if d.FlushConcurrency == 0 {
		d.FlushConcurrency = 16
	}
	if d.FlushTimeout == 0 {
		d.FlushTimeout = s3store.DefaultTimeout
	}
	return d, nil
}

// Store is a cairn.Store with a cache in front of an durable.Store.
type Store struct {
	d     *durable.Store
	codec *cairn.Codec
	o     Options
	cache *lru.Cache[uuid.UUID]
	loads singleflight.Group

	// flushSem (a one-slot semaphore, so waiting honours contexts)
	// serializes flushes with each other and with Deletes, so a flush
	// never writes a run back after its Delete.
	flushSem chan struct{}

	// gate is held shared by Saves from their closed check to their cache
	// Put, and exclusively by Close to mark the store closed: no Save
	// slips into the cache after Close's final flush.
	gate sync.RWMutex

	mu        sync.Mutex
	drained   *sync.Cond // signalled after every flush
	failed    int64      // flushes that failed, the last with lastErr
	lastErr   error
	closed    bool
	closing   atomic.Bool // set first by Close: Saves waiting for room give up
	closeOnce sync.Once

	// epoch counts Deletes; a Load fills the cache only if no Delete
	// happened during its GET, so a deleted run is never put back.
	epoch atomic.Uint64
	// runLocks serialize a write-through Save's write and cache update
	// with Deletes of the same run (striped by run ID).
	runLocks [64]sync.Mutex

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	fenceMu sync.Mutex
	etags   map[uuid.UUID]string // fencing: the ETag last seen of each run
	fenced  map[uuid.UUID]error  // fencing: runs another worker took over
	lost    []error              // fencing conflicts not yet reported by Flush

	puts, gets, skipped, flushes, revalidated atomic.Int64
	rawBytes                                  atomic.Int64
}

var _ cairn.Store = (*Store)(nil)

// New returns a Store in front of d. Close closes d.
func New(d *durable.Store, codec *cairn.Codec, opts *Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if codec == nil {
		codec = cairn.DefaultCodec()
	}
	cache, err := lru.New(&lru.Options[uuid.UUID]{MaxBytes: o.CacheBytes})
	if err != nil {
		return nil, err
	}
	s := &Store{d: d, codec: codec, o: o, cache: cache, flushSem: make(chan struct{}, 1),
		etags: map[uuid.UUID]string{}, fenced: map[uuid.UUID]error{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.drained = sync.NewCond(&s.mu)
	if o.Mode == WriteBack {
		go s.flusher()
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) lockRun(id uuid.UUID) func() {
	m := &s.runLocks[id[15]%64]
	m.Lock()
	return m.Unlock
}

// acquireFlush takes the flush semaphore, or gives up with ctx.
func (s *Store) acquireFlush(ctx context.Context) error {
	select {
	case s.flushSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) releaseFlush() { <-s.flushSem }

func (s *Store) check(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return cairn.ErrClosed
	}
	return ctx.Err()
}

// Save implements cairn.Store; see the package doc for when it returns.
// With Options.SkipUnchanged, a checkpoint whose encoding equals what the
// cache holds as durable costs no request.
func (s *Store) Save(ctx context.Context, c *cairn.Checkpoint) error {
	var run uuid.UUID
	if c != nil {
		run = c.RunID
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	old, cached := s.cache.Peek(run)
	// The previous version's size is a good guess of this one's: one
	// allocation instead of a doubling series.
	rec, err := s.codec.EncodeRecord(make([]byte, 0, len(old.Value)+len(old.Value)/8+256), c)
	if err != nil {
		return cairn.WrapOp("save", run, err)
	}
	if err := s.fencedOut(run); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	// Skip a Save whose bytes this cache holds as durable, when asked to
	// (no other process writes these runs); not when the bucket may have
	// changed behind the cache (fencing must see the conflict,
	// revalidation promises no stale state), nor with a TTL to refresh.
	// Only bytes this store wrote and committed itself: a copy it read may
	// be an object the index does not list (a Save whose commit was lost)
	// or names as deleted (a Delete cut short).
	if s.o.SkipUnchanged && cached && !old.Dirty && old.Written && string(old.Value) == string(rec) && !s.d.HasTTL() && !s.o.Fencing && !s.o.Revalidate {
		s.skipped.Add(1)
		return nil
	}
	s.rawBytes.Add(int64(len(rec)))
	e := lru.Entry{Value: rec, WorkflowName: c.WorkflowName, Timestamp: c.Timestamp.UTC()}
	if s.o.Mode == WriteThrough {
		return cairn.WrapOp("save", run, s.saveThrough(ctx, run, e))
	}
	if err := s.waitForRoom(ctx, int64(len(rec))); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	e.Dirty = true
	s.cache.Put(run, e)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func (s *Store) saveThrough(ctx context.Context, run uuid.UUID, e lru.Entry) error {
	defer s.lockRun(run)()
	ie := s.d.Entry(run, e.WorkflowName, e.Timestamp, len(e.Value))
	etag, err := s.d.PutRecord(ctx, ie, e.Value, s.condition(run))
	if err == nil {
		s.puts.Add(1)
	}
	if err != nil {
		s.cache.Remove(run) // what was cached may no longer be what is stored
		return err
	}
	s.sawETag(run, etag)
	ie.ETag = etag
	if err := s.d.Index().Commit(ctx, index.Op{Entry: ie}); err != nil {
		s.cache.Remove(run)
		return err
	}
	e.ETag, e.Written = etag, true
	s.cache.Put(run, e)
	return nil
}

// waitForRoom blocks while the dirty bytes are over the bound, asking the
// flusher to hurry, until a flush makes room, ctx ends, or a flush fails
// (then the Save fails with the flush's error rather than wait for as long
// as the store fails).
func (s *Store) waitForRoom(ctx context.Context, n int64) error {
	if s.cache.DirtyBytes()+n <= s.o.MaxDirtyBytes || s.cache.DirtyBytes() == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.drained.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := s.failed
	for s.cache.DirtyBytes()+n > s.o.MaxDirtyBytes && s.cache.DirtyBytes() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.closed || s.closing.Load() {
			return cairn.ErrClosed
		}
		if s.failed > failed {
			// A flush failed while this Save waited: waiting on would
			// hang as long as the store fails (a server that does not
			// answer, refused writes). The Save is not taken.
			return fmt.Errorf("waiting for unflushed bytes to drain: %w", s.lastErr)
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
		s.drained.Wait()
	}
	return nil
}

// flusher writes the dirty runs one window after it is kicked, until the
// store closes.
func (s *Store) flusher() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		t := time.NewTimer(s.o.FlushWindow)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.o.FlushTimeout)
		err := s.flushOnce(ctx)
		cancel()
		if err != nil {
			// Retry after the next window even if no Save kicks.
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// flushOnce writes every dirty run (objects in parallel, then one index
// commit for all of them) and marks clean those not saved again meanwhile.
func (s *Store) flushOnce(ctx context.Context) error {
	if err := s.acquireFlush(ctx); err != nil {
		return err
	}
	defer s.releaseFlush()
	items := s.cache.Dirty()
	var err error
	if len(items) > 0 {
		s.flushes.Add(1)
		err = s.write(ctx, items)
	}
	s.mu.Lock()
	if err != nil {
		s.failed++
		s.lastErr = err
	}
	s.drained.Broadcast()
	s.mu.Unlock()
	return err
}

func (s *Store) write(ctx context.Context, items []lru.Item[uuid.UUID]) error {
	etags := make([]string, len(items))
	entries := make([]index.Entry, len(items))
	errs := make([]error, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.FlushConcurrency)
	for i, it := range items {
		entries[i] = s.d.Entry(it.Key, it.Entry.WorkflowName, it.Entry.Timestamp, len(it.Entry.Value))
		g.Go(func() error {
			etags[i], errs[i] = s.d.PutRecord(gctx, entries[i], it.Entry.Value, s.condition(it.Key))
			if errs[i] == nil {
				s.puts.Add(1)
				s.sawETag(it.Key, etags[i])
			} else if s.o.Fencing && errors.Is(errs[i], cairn.ErrConflict) {
				// Another worker took the run over: its unflushed
				// Saves here can never be written.
				errs[i] = cairn.WrapOp("flush", it.Key, errs[i])
				s.fenceMu.Lock()
				s.fenced[it.Key] = errs[i]
				s.lost = append(s.lost, errs[i])
				s.fenceMu.Unlock()
				s.cache.Remove(it.Key)
			}
			return nil
		})
	}
	_ = g.Wait()
	var ops []index.Op
	for i := range items {
		if errs[i] == nil {
			entries[i].ETag = etags[i]
			ops = append(ops, index.Op{Entry: entries[i]})
		}
	}
	if err := s.d.Index().Commit(ctx, ops...); err != nil {
		return fmt.Errorf("index commit of %d runs: %w", len(ops), err)
	}
	for i, it := range items {
		if errs[i] == nil {
			s.cache.MarkClean(it.Key, it.Entry.Version, etags[i])
		}
	}
	return errors.Join(errs...)
}

// condition is the precondition of a write of run: none without fencing;
// If-Match on the ETag last seen; if none was seen, the run must not exist.
func (s *Store) condition(run uuid.UUID) *durable.Condition {
	if !s.o.Fencing {
		return nil
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if etag, ok := s.etags[run]; ok {
		return &durable.Condition{IfMatch: etag}
	}
	return &durable.Condition{IfAbsent: true}
}

func (s *Store) sawETag(run uuid.UUID, etag string) {
	if !s.o.Fencing || etag == "" {
		return
	}
	s.fenceMu.Lock()
	s.etags[run] = etag
	delete(s.fenced, run)
	s.fenceMu.Unlock()
}

func (s *Store) forget(run uuid.UUID) {
	s.fenceMu.Lock()
	delete(s.etags, run)
	delete(s.fenced, run)
	s.fenceMu.Unlock()
}

func (s *Store) fencedOut(run uuid.UUID) error {
	if !s.o.Fencing {
		return nil
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	return s.fenced[run]
}

// Flush makes every Save that returned before Flush was called durable,
// and returns the error that prevented it, if any. In write-through mode
// there is nothing to do.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("flush", uuid.Nil, err)
	}
	return cairn.WrapOp("flush", uuid.Nil, s.flush(ctx))
}

func (s *Store) flush(ctx context.Context) error {
	err := s.flushDirty(ctx)
	// Conflicts found by background flushes are reported once, here;
	// those of this flush are in err already.
	s.fenceMu.Lock()
	lost := s.lost
	s.lost = nil
	s.fenceMu.Unlock()
	var unreported []error
	for _, l := range lost {
		if err == nil || !strings.Contains(err.Error(), l.Error()) {
			unreported = append(unreported, l)
		}
	}
	return errors.Join(append([]error{err}, unreported...)...)
}

// flushDirty writes everything dirty now. One successful flush suffices:
// it takes its snapshot of the dirty runs after this call began, so it
// writes, for every run saved before it, that Save or a later one. (Waiting
// until no run is dirty would never end while Saves keep coming.)
func (s *Store) flushDirty(ctx context.Context) error {
	if len(s.cache.Dirty()) == 0 {
		return nil
	}
	return s.flushOnce(ctx)
}

// Load implements cairn.Store: from the cache when it holds the run, else
// with one GET shared by concurrent Loads of the run.
func (s *Store) Load(ctx context.Context, runID uuid.UUID) (*cairn.Checkpoint, error) {
	if err := cairn.CheckRunID("load", runID); err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		return nil, cairn.WrapOp("load", runID, err)
	}
	e, ok := s.cache.Get(runID)
	if ok && s.o.Revalidate && !e.Dirty && e.ETag != "" {
		rec, etag, err := s.d.LoadRecord(ctx, runID, e.ETag)
		s.gets.Add(1)
		switch {
		case errors.Is(err, durable.ErrNotModified):
			s.revalidated.Add(1)
		case err != nil:
			if errors.Is(err, cairn.ErrNotFound) && s.cache.CompareAndRemove(runID, e.Version) {
				s.forget(runID) // deleted elsewhere, and not saved here since
			}
			return nil, err
		default:
			fresh := lru.Entry{Value: rec, ETag: etag, WorkflowName: e.WorkflowName, Timestamp: e.Timestamp}
			s.cache.CompareAndPut(runID, e.Version, fresh)
			s.sawETag(runID, etag)
			e = fresh
		}
	}
	if !ok {
		fetch := func() (any, error) {
			epoch := s.epoch.Load()
			rec, etag, err := s.d.LoadRecord(ctx, runID, "")
			s.gets.Add(1)
			if errors.Is(err, cairn.ErrNotFound) {
				s.forget(runID) // gone: with fencing, it may be created again
			}
			if err != nil {
				return nil, err
			}
			e := lru.Entry{Value: rec, ETag: etag}
			if cp, err := s.codec.DecodeRecord(rec); err == nil {
				e.WorkflowName, e.Timestamp = cp.WorkflowName, cp.Timestamp
			}
			// Never over an entry saved meanwhile, nor its ETag, and
			// never a run a Delete removed while the GET was out.
			if s.epoch.Load() == epoch {
				if _, stored := s.cache.CompareAndPut(runID, 0, e); stored {
					s.sawETag(runID, etag)
				}
			}
			return e, nil
		}
		var v any
		var err error
		if s.o.Revalidate {
			// A Load that joined a GET already in flight could return
			// what the run was before a write that finished before the
			// Load began: with revalidation promised, each Load reads.
			v, err = fetch()
		} else {
			v, err, _ = s.loads.Do(runID.String(), fetch)
		}
		if err != nil {
			return nil, cairn.WrapOp("load", runID, err)
		}
		e = v.(lru.Entry)
	}
	cp, err := s.codec.DecodeRecord(e.Value)
	if err == nil && cp.RunID != runID {
		err = fmt.Errorf("%w: the object of run %v holds run %v", cairn.ErrCorrupt, runID, cp.RunID)
	}
	if err != nil {
		return nil, cairn.WrapOp("load", runID, err)
	}
	return cp, nil
}

// List implements cairn.Store: the durable index, with this process's
// unflushed runs in it.
func (s *Store) List(ctx context.Context, opts *cairn.ListOptions) (*cairn.Page, error) {
	if err := s.check(ctx); err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	q, err := opts.Query()
	if err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	dirty := map[uuid.UUID]cairn.Summary{}
	for _, it := range s.cache.Dirty() {
		sum := cairn.Summary{RunID: it.Key, WorkflowName: it.Entry.WorkflowName, Timestamp: it.Entry.Timestamp,
			Size: int64(len(it.Entry.Value))}
		if q.WithCheckpoints {
			if sum.Checkpoint, err = s.codec.DecodeRecord(it.Entry.Value); err != nil {
				return nil, cairn.WrapOp("list", it.Key, err)
			}
		}
		dirty[it.Key] = sum
	}
	// Ask for enough durable runs to fill the page even if every dirty
	// run shadows one of them. Their checkpoints are loaded here, through
	// the cache (and revalidation, and the GET counter).
	o := q.ListOptions
	o.WithCheckpoints = false
	if o.Limit > 0 {
		o.Limit += len(dirty)
	}
	page, err := s.d.List(ctx, &o)
	if err != nil {
		return nil, err
	}
	if len(dirty) == 0 && q.WithCheckpoints {
		if err := cairn.FillCheckpoints(ctx, page, s.o.FlushConcurrency, s.listLoader(page)); err != nil {
			return nil, cairn.WrapOp("list", uuid.Nil, err)
		}
	}
	if len(dirty) == 0 {
		return page, nil
	}
	runs := make([]cairn.Summary, 0, len(page.Runs)+len(dirty))
	for _, r := range page.Runs {
		if _, shadowed := dirty[r.RunID]; !shadowed {
			runs = append(runs, r)
		}
	}
	for _, d := range dirty {
		if q.Match(d.WorkflowName, d.Timestamp) && (!q.HasAfter || q.After.Compare(d.Key()) < 0) {
			runs = append(runs, d)
		}
	}
	slices.SortFunc(runs, func(a, b cairn.Summary) int { return a.Key().Compare(b.Key()) })
	out := &cairn.Page{Runs: runs}
	more := page.Next != ""
	if q.Limit > 0 && len(runs) > q.Limit {
		out.Runs, more = runs[:q.Limit], true
	}
	if more && len(out.Runs) > 0 {
		out.Next = out.Runs[len(out.Runs)-1].Key().Cursor()
	}
	if q.WithCheckpoints {
		if err := cairn.FillCheckpoints(ctx, out, s.o.FlushConcurrency, s.listLoader(out)); err != nil {
			return nil, cairn.WrapOp("list", uuid.Nil, err)
		}
	}
	return out, nil
}

// listLoader returns the Load that fills page's checkpoints: through the
// cache, except that a clean cached copy whose time differs from the
// index's is dropped first (another process wrote the run since), so a
// summary never comes with an older checkpoint.
func (s *Store) listLoader(page *cairn.Page) func(context.Context, uuid.UUID) (*cairn.Checkpoint, error) {
	listed := make(map[uuid.UUID]time.Time, len(page.Runs))
	for _, r := range page.Runs {
		listed[r.RunID] = r.Timestamp
	}
	return func(ctx context.Context, id uuid.UUID) (*cairn.Checkpoint, error) {
		if e, ok := s.cache.Peek(id); ok && !e.Dirty && !e.Timestamp.Equal(listed[id]) {
			s.cache.CompareAndRemove(id, e.Version)
		}
		return s.Load(ctx, id)
	}
}

// Delete implements cairn.Store: it waits for a flush in progress, drops
// the run from the cache (unflushed Saves of it included), then deletes it
// from the durable store.
func (s *Store) Delete(ctx context.Context, runID uuid.UUID) error {
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	if err := s.acquireFlush(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	defer s.releaseFlush()
	defer s.lockRun(runID)()
	s.epoch.Add(1)
	s.cache.Remove(runID)
	s.forget(runID)
	return s.d.Delete(ctx, runID)
}

// Close flushes (write-back), stops the flusher and closes the durable
// store. It returns the flush's error, if any; the store is closed either
// way, and unflushed runs are then lost.
func (s *Store) Close(ctx context.Context) error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return cairn.WrapOp("close", uuid.Nil, cairn.ErrClosed)
	}
	// Shut the gate: Saves in progress finish, later ones get ErrClosed,
	// so the flush below sees every Save that returned nil.
	s.closing.Store(true)
	s.mu.Lock()
	s.drained.Broadcast()
	s.mu.Unlock()
	s.gate.Lock()
	s.mu.Lock()
	s.closed = true
	s.drained.Broadcast()
	s.mu.Unlock()
	s.gate.Unlock()
	err := s.flush(ctx)
	if s.o.Mode == WriteBack {
		close(s.stop)
		select {
		case <-s.done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
	}
	return cairn.WrapOp("close", uuid.Nil, errors.Join(err, s.d.Close(ctx)))
}

// Stats are counters of a Store.
type Stats struct {
	Cache          lru.Stats
	PUTs           int64 // run objects written
	GETs           int64 // run objects read: Load misses, revalidations, List WithCheckpoints
	SkippedSaves   int64 // Saves whose bytes were already durable
	Revalidated    int64 // cache hits confirmed unchanged by a conditional GET
	Flushes        int64 // flushes that wrote something
	IndexCommits   int64 // log objects written by the index
	BytesEncoded   int64 // MessagePack bytes of every Save accepted
	BytesStored    int64 // compressed bytes of the run objects written
	BytesUnflushed int64
}

// Durable returns the durable store below the cache, for the operations
// of package s3store that have no tiered counterpart (Reindex, Verify, GC).
// Writes made through it bypass this store's cache.
func (s *Store) Durable() *durable.Store { return s.d }

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{
		Cache: s.cache.Stats(), PUTs: s.puts.Load(), GETs: s.gets.Load(), SkippedSaves: s.skipped.Load(),
		Flushes: s.flushes.Load(), Revalidated: s.revalidated.Load(), IndexCommits: s.d.Index().Stats().Commits, BytesEncoded: s.rawBytes.Load(), BytesStored: s.d.BytesStored(),
		BytesUnflushed: s.cache.DirtyBytes(),
	}
}
