// Package tiered is the Store users open: an in-process LRU of encoded
// checkpoints in front of the durable store of package durable. It is the
// cache and the flush policy; every write goes through durable's one
// write protocol (durable.Store.Write: the objects, then one index commit).
//
// # Modes
//
// In WriteThrough mode Save returns once the run's object and its index
// entry are durable, as with package durable alone; the cache makes later Loads of
// the run cost no request. In WriteBack mode Save returns once the cache
// holds the encoded checkpoint; a flusher makes it durable within the flush
// window (100 ms by default), writing every run saved in the window in
// parallel and committing all of them in one index commit. Repeated Saves
// of one run within a window cost one PUT. Flush makes everything saved
// before it durable; Close flushes.
//
// A store opened with Options.ReadOnly writes nothing at all: it reads
// through its cache and refuses every write with cairn.ErrReadOnly.
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
// acknowledged is durable once a later Flush or Close returns nil, or the
// flush batch holding it commits (Stats.Committed counts those runs). A
// flush begins one FlushWindow after the first Save that finds the flusher
// idle, takes every run dirty then, and commits them in batches
// (FlushBatchRuns, FlushBatchBytes), oldest Save first; Saves made
// meanwhile wait for the next flush. So a crash loses the Saves not yet
// flushed: never more than MaxDirtyBytes of records (Saves wait past it;
// one larger record is let in alone); while flushes keep up, those of the
// last window and of up to two flushes (a Save made just after a flush
// began waits for that flush, a window, and its own batch in the next
// one); when a flush falls behind, its batches not committed yet and the
// Saves after it began (the batches it committed stay listed); while
// flushes fail, everything since the last commit that succeeded. The
// objects of a batch cut before its commit stay in the bucket, unlisted
// (see below). List includes this process's unflushed runs
// (read-your-writes). Without revalidation a run cached
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
// resume after a crash, take the runs from List and Load each; durable's
// Verify reports such objects (unindexed, mismatched) and Reindex lists
// them with their newest state. GC never deletes them.
package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/closing"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/cairnstore/cairn/lru"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
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

// DefaultFlushTimeout bounds each background flush of a store whose
// Options and URL set no bound.
const DefaultFlushTimeout = 2 * time.Minute

// The default bounds of a flush's batches (Options.FlushBatchRuns,
// FlushBatchBytes): five times what a flush window gathers at a thousand
// 10 KB Saves a second (one commit a window, as without batches), while a
// flush of a full 64 MiB MaxDirtyBytes of 10 KB records commits 13 times
// as it goes. Each batch costs one index commit, and the parallel PUTs
// drain at its end: a flush of 3,000 records over 5 ms PUTs took the same
// time, within the noise, in batches of 250 to 1,000 as in one.
const (
	DefaultFlushBatchRuns  = 500
	DefaultFlushBatchBytes = 8 << 20
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
	// dirty ones never are). Default 64 MiB. Unless Durable.BlobCacheBytes
	// is set, the durable store's cache of blobs (the offloaded values of
	// records read: see durable.Options.Offload) gets half as much again.
	CacheBytes int64
	// FlushConcurrency bounds the parallel PUTs of a flush, and the
	// parallel Loads of List with WithCheckpoints. Default 16.
	FlushConcurrency int
	// FlushBatchRuns and FlushBatchBytes bound what one index commit of a
	// write-back flush lists: a flush writes the runs dirty when it
	// begins in batches of at most FlushBatchRuns runs and FlushBatchBytes
	// encoded bytes (a larger record alone), oldest Save first, and
	// commits each batch before it writes the next, so a long flush (a
	// bulk import, a full MaxDirtyBytes) makes its runs durable as it
	// goes rather than all at its end. Defaults DefaultFlushBatchRuns
	// and DefaultFlushBatchBytes.
	FlushBatchRuns  int
	FlushBatchBytes int64
	// FlushTimeout bounds each background flush (write-back), its PUTs
	// and its index commit; a flush cut short is tried again after the
	// next window. Default: the call timeout the store URL sets (Open
	// with an s3:// URL's timeout parameter), else DefaultFlushTimeout.
	// Flush and Close are bounded by their context and by the bucket's
	// bounds of each request, not by this.
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
	// ReadOnly opens the store for reading only, and the durable store
	// below it (Durable.ReadOnly, which sets it as well): it writes
	// nothing at all and runs no flusher. Save, SaveRecord, SaveLeased,
	// Delete, Claim, Renew and Release fail with cairn.ErrReadOnly; Load
	// and List work, through the cache; Flush has nothing to write. Open
	// opens the URL's bucket read-only (bucket.OpenOptions), so a file://
	// directory must exist and is read without its lock or a file
	// created. Mode must be WriteThrough, the default.
	ReadOnly bool
	// Durable configures the durable store below the cache: key prefix,
	// codec (the cache holds records of the same codec), TTL, index
	// tuning, the server probe. Open sets its Prefix from the URL's path
	// when the URL has one. Its Logger, TracerProvider and MeterProvider
	// default to this store's.
	Durable durable.Options

	// Logger receives the store's log records: background flush
	// failures (Warn), runs another writer took over (Info), a Close that
	// lost unflushed runs (Error), and through the durable store the
	// probe's verdicts, index commit retries and conflicts, and
	// compactions. Records carry run IDs, counts and errors, never
	// checkpoint content or credentials. Nil: no records.
	Logger *slog.Logger
	// TracerProvider, if set, traces Save, Load, List, Delete and Flush
	// (spans cairn.Save, ...; background flushes too) and, through the
	// durable store, each index commit (cairn.Commit). Nil: no spans,
	// at no cost.
	TracerProvider trace.TracerProvider
	// MeterProvider, if set, receives the store's metrics (cairn.*:
	// operations and their durations, cache hits and misses, dirty
	// bytes, flushed runs and bytes, index commits, conflicts and
	// compactions; see the README). Nil: none, at no cost.
	MeterProvider metric.MeterProvider
	// Debug, with Open, makes the bucket a store URL names log every
	// request it sends and every response, at Debug level to Logger
	// (slog.Default() when nil): for s3:// URLs the AWS SDK's request
	// log, headers only, with credentials, signatures and session tokens
	// redacted (see bucket.OpenOptions). New ignores it: a bucket given to
	// New is configured by its maker.
	Debug bool
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
	if d.FlushWindow < 0 || d.MaxDirtyBytes < 0 || d.CacheBytes < 0 || d.FlushConcurrency < 0 || d.FlushTimeout < 0 ||
		d.FlushBatchRuns < 0 || d.FlushBatchBytes < 0 {
		problems = append(problems, errors.New("negative FlushWindow, MaxDirtyBytes, CacheBytes, FlushConcurrency, FlushTimeout, FlushBatchRuns or FlushBatchBytes"))
	}
	d.ReadOnly = d.ReadOnly || d.Durable.ReadOnly
	d.Durable.ReadOnly = d.ReadOnly
	if d.ReadOnly && d.Mode == WriteBack {
		problems = append(problems, errors.New("ReadOnly with Mode WriteBack (a read-only store writes nothing back)"))
	}
	if len(problems) > 0 {
		return d, fmt.Errorf("%w: tiered options: %w", cairn.ErrInvalid, errors.Join(problems...))
	}
	if d.FlushWindow == 0 {
		d.FlushWindow = 100 * time.Millisecond
	}
	if d.MaxDirtyBytes == 0 {
		d.MaxDirtyBytes = defaultMaxDirtyBytes
	}
	if d.CacheBytes == 0 {
		d.CacheBytes = defaultCacheBytes
	}
	if d.Durable.BlobCacheBytes == 0 {
		// The durable store's cache of blobs (offloaded values read) is
		// part of this store's cache budget: half of CacheBytes again.
		d.Durable.BlobCacheBytes = d.CacheBytes / 2
		if d.Durable.BlobCacheBytes == 0 {
			d.Durable.BlobCacheBytes = -1
		}
	}
	if d.FlushConcurrency == 0 {
		d.FlushConcurrency = defaultFlushConcurrency
	}
	if d.FlushTimeout == 0 {
		d.FlushTimeout = DefaultFlushTimeout
	}
	if d.FlushBatchRuns == 0 {
		d.FlushBatchRuns = DefaultFlushBatchRuns
	}
	if d.FlushBatchBytes == 0 {
		d.FlushBatchBytes = DefaultFlushBatchBytes
	}
	if d.Durable.Codec == nil {
		d.Durable.Codec = cairn.DefaultCodec()
	}
	return d, nil
}

// Store is a cairn.Store with a cache in front of a durable.Store.
type Store struct {
	d     *durable.Store
	codec *cairn.Codec // the durable store's
	o     Options
	cache *lru.Cache[uuid.UUID] // safe for concurrent use on its own

	// Synchronization, outermost first. Per-run serialization of writes
	// and Deletes is the durable store's (its run locks, which Write and
	// DeleteWith hold while this store updates its cache).

	// gate is held shared by Saves from their closed check to their cache
	// Put, and exclusively by Close to mark the store closed: no Save
	// slips into the cache after Close's final flush.
	gate sync.RWMutex
	// closed is set first by Close: later calls get ErrClosed, and Saves
	// waiting for room give up.
	closed atomic.Bool
	// flushSem (a one-slot semaphore, so waiting honours contexts)
	// serializes flushes with each other and with Deletes, so a flush
	// never writes a run back after its Delete.
	flushSem chan struct{}
	// loads makes concurrent Loads of one run that miss share one GET.
	loads singleflight.Group
	// gens guard what a GET brings back (see generations).
	gens generations

	// mu guards the outcome of flushes, which Saves waiting for room
	// (backpressure) watch through drained.
	mu struct {
		sync.Mutex
		drained *sync.Cond // signalled after every flush, and on Close
		failed  int64      // flushes that failed, the last with lastErr
		lastErr error
	}

	// flusher is the write-back goroutine's: Saves kick it, Close stops
	// it and waits for done.
	flusher struct {
		kick, stop, done chan struct{}
	}

	fence *fence // fences nothing without Options.Fencing (see fence)

	tel telemetry // see observe.go

	stats struct {
		puts, gets, skipped, flushes, revalidated, rawBytes, committed atomic.Int64
	}
}

var _ cairn.RecordStore = (*Store)(nil)

// New returns a Store over b: a durable.Store configured by
// opts.Durable with the cache in front. Close closes the durable store
// (not b).
func New(b bucket.Bucket, opts *Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	inheritTelemetry(&o)
	d, err := durable.New(b, &o.Durable)
	if err != nil {
		return nil, err
	}
	cache, err := lru.New(&lru.Options[uuid.UUID]{MaxBytes: o.CacheBytes})
	if err != nil {
		return nil, err
	}
	s := &Store{d: d, codec: o.Durable.Codec, o: o, cache: cache, flushSem: make(chan struct{}, 1)}
	if err := s.instrument(&o); err != nil {
		_ = d.Close(context.Background())
		return nil, err
	}
	s.mu.drained = sync.NewCond(&s.mu)
	s.fence = newFence(o.Fencing)
	s.flusher.kick = make(chan struct{}, 1)
	s.flusher.stop = make(chan struct{})
	s.flusher.done = make(chan struct{})
	if o.Mode == WriteBack {
		go s.flushLoop()
	} else {
		close(s.flusher.done)
	}
	return s, nil
}

// acquireFlush takes the flush semaphore, or gives up with ctx.
func (s *Store) acquireFlush(ctx context.Context) error {
	select {
	case s.flushSem <- struct{}{}: // a free slot wins over an ended ctx
		return nil
	default:
	}
	select {
	case s.flushSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) releaseFlush() { <-s.flushSem }

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return cairn.ErrClosed
	}
	return ctx.Err()
}

// checkWritable is check for an operation that writes: a read-only store
// refuses it.
func (s *Store) checkWritable(ctx context.Context) error {
	if err := s.check(ctx); err != nil || !s.o.ReadOnly {
		return err
	}
	return errReadOnly
}

// errReadOnly is what a read-only store answers a write.
var errReadOnly = fmt.Errorf("%w (tiered.Options.ReadOnly)", cairn.ErrReadOnly)

// kick asks the flusher to flush after its window, unless it was asked
// already.
func (s *Store) kick() {
	select {
	case s.flusher.kick <- struct{}{}:
	default:
	}
}

// Save implements cairn.Store; see the package doc for when it returns.
// With Options.SkipUnchanged, a checkpoint whose encoding equals what the
// cache holds as durable costs no request.
func (s *Store) Save(ctx context.Context, c *cairn.Checkpoint) error {
	ctx, sp := s.tel.Start(ctx, obs.Save, runOfCheckpoint(c))
	err := s.save(ctx, cairn.Unleased(c), nil) // a lease stamp keeps its epoch only
	sp.End(err)
	return err
}

// save is Save, and with l SaveLeased of c stamped with l.
func (s *Store) save(ctx context.Context, c *cairn.Checkpoint, l *cairn.Lease) error {
	var run uuid.UUID
	if c != nil {
		run = c.RunID
	}
	if err := s.checkWritable(ctx); err != nil { // before encoding, which costs
		return cairn.WrapOp("save", run, err)
	}
	old, _ := s.cache.Peek(run)
	// The previous version's size is a good guess of this one's: one
	// allocation instead of a doubling series.
	r, err := s.codec.NewRecord(make([]byte, 0, len(old.Value)+len(old.Value)/8+256), c)
	if err != nil {
		return cairn.WrapOp("save", run, err)
	}
	return s.saveRecord(ctx, r, l)
}

// SaveRecord implements cairn.RecordStore: Save of an encoded record.
func (s *Store) SaveRecord(ctx context.Context, r cairn.Record) error {
	if err := s.codec.CheckRecord(r); err != nil {
		return err
	}
	ctx, sp := s.tel.Start(ctx, obs.Save, r.RunID())
	err := s.saveRecord(ctx, r, nil)
	sp.End(err)
	return err
}

// Codec implements cairn.RecordStore.
func (s *Store) Codec() *cairn.Codec { return s.codec }

// saveRecord is save of an encoded record.
func (s *Store) saveRecord(ctx context.Context, r cairn.Record, l *cairn.Lease) error {
	run := r.RunID()
	if err := s.checkWritable(ctx); err != nil { // before the gate, which a Close may be taking
		return cairn.WrapOp("save", run, err)
	}
	s.gate.RLock()
	defer s.gate.RUnlock()
	if err := s.check(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	if err := s.fence.out(run); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	var lease uint64
	if l != nil {
		if err := s.d.CheckLease(l); err != nil {
			return cairn.WrapOp("save", run, err)
		}
		lease = l.Epoch
	}
	rec := r.Bytes()
	old, cached := s.cache.Peek(run)
	if lease == 0 && s.unchanged(old, cached, rec) {
		s.stats.skipped.Add(1)
		return nil
	}
	s.stats.rawBytes.Add(int64(len(rec)))
	e := lru.Entry{Value: rec, WorkflowName: r.WorkflowName(), Timestamp: r.Timestamp(), Labels: r.Labels(), Lease: lease,
		Epoch: r.Epoch()}
	if s.o.Mode == WriteThrough {
		return cairn.WrapOp("save", run, s.saveThrough(ctx, run, e))
	}
	if err := s.waitForRoom(ctx, int64(len(rec))); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	e.Dirty = true
	s.cache.Put(run, e)
	s.gens.touch(run)
	s.kick()
	return nil
}

// unchanged reports whether a Save of rec may be skipped, when asked to
// (no other process writes these runs): the cache holds rec as durable.
// Not when the bucket may have changed behind the cache (fencing must see
// the conflict, revalidation promises no stale state), nor with a TTL to
// refresh. Only bytes this store wrote and committed itself: a copy it
// read may be an object the index does not list (a Save whose commit was
// lost) or names as deleted (a Delete cut short).
func (s *Store) unchanged(old lru.Entry, cached bool, rec []byte) bool {
	return s.o.SkipUnchanged && cached && !old.Dirty && old.Written && string(old.Value) == string(rec) &&
		s.o.Durable.TTL <= 0 && !s.o.Fencing && !s.o.Revalidate
}

// saveThrough writes one run with the durable protocol, and caches it
// once committed (under the run's lock, so no Delete of it interleaves).
func (s *Store) saveThrough(ctx context.Context, run uuid.UUID, e lru.Entry) error {
	rec := record(run, e)
	s.gens.begin(run) // no GET begun before the write ends keeps what it read
	defer s.gens.end(run)
	res, err := s.d.Write(ctx, []durable.Record{rec}, &durable.WriteOptions{
		Fence: s.fence.durable(),
		Committed: func(_ int, etag string) {
			e.ETag, e.Written = etag, true
			s.cache.Put(run, e)
			s.stats.committed.Add(1)
		},
	})
	if len(res) == 1 {
		if res[0].Err == nil {
			s.stats.puts.Add(1)
		}
		err = errors.Join(res[0].Err, err)
	}
	if err != nil {
		s.cache.Remove(run) // what was cached may no longer be what is stored
	}
	return err
}

// waitForRoom blocks while the dirty bytes are over the bound, asking the
// flusher to hurry, until a flush makes room, ctx ends, or a flush fails
// (then the Save fails with the flush's error rather than wait for as long
// as the store fails).
func (s *Store) waitForRoom(ctx context.Context, n int64) error {
	if s.cache.DirtyBytes()+n <= s.o.MaxDirtyBytes || s.cache.DirtyBytes() == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, s.wakeWaiters)
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := s.mu.failed
	for s.cache.DirtyBytes()+n > s.o.MaxDirtyBytes && s.cache.DirtyBytes() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.closed.Load() {
			return cairn.ErrClosed
		}
		if s.mu.failed > failed {
			// A flush failed while this Save waited: waiting on would
			// hang as long as the store fails (a server that does not
			// answer, refused writes). The Save is not taken.
			return fmt.Errorf("waiting for unflushed bytes to drain: %w", s.mu.lastErr)
		}
		s.kick()
		s.mu.drained.Wait()
	}
	return nil
}

// wakeWaiters wakes the Saves waiting for room, to look again.
func (s *Store) wakeWaiters() {
	s.mu.Lock()
	s.mu.drained.Broadcast()
	s.mu.Unlock()
}

// flushLoop writes the dirty runs one window after it is kicked, until
// the store closes.
func (s *Store) flushLoop() {
	defer close(s.flusher.done)
	for {
		select {
		case <-s.flusher.stop:
			return
		case <-s.flusher.kick:
		}
		t := time.NewTimer(s.o.FlushWindow)
		select {
		case <-s.flusher.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.o.FlushTimeout)
		err := s.backgroundFlush(ctx)
		cancel()
		if err != nil {
			s.kick() // retry after the next window even if no Save kicks
		}
	}
}

// flushOnce writes every run dirty when it begins, in batches (see
// batch), each with one durable Write (objects in parallel, then one
// index commit), and marks clean those not saved again meanwhile. Saves
// waiting for room are woken after each batch. A batch that fails ends
// the flush: its runs and the later ones stay dirty, for the next. Its
// fencing conflicts are recorded for the Flushes to report.
func (s *Store) flushOnce(ctx context.Context) error {
	if err := s.acquireFlush(ctx); err != nil {
		return err
	}
	defer s.releaseFlush()
	items := s.cache.Dirty()
	if len(items) > 0 {
		s.stats.flushes.Add(1)
	}
	var err error
	for len(items) > 0 && err == nil {
		n := s.batch(items)
		var conflicts []error
		conflicts, err = s.write(ctx, items[:n])
		s.fence.record(conflicts)
		items = items[n:]
		if len(items) > 0 && err == nil {
			s.wakeWaiters() // room made: the Saves waiting need not wait for the whole flush
		}
	}
	s.mu.Lock()
	if err != nil {
		s.mu.failed++
		s.mu.lastErr = err
	}
	s.mu.drained.Broadcast()
	s.mu.Unlock()
	return err
}

// batch returns how many of items, oldest first, one index commit of a
// flush lists: at most FlushBatchRuns, and FlushBatchBytes of records
// (at least one, whatever its size).
func (s *Store) batch(items []lru.Item[uuid.UUID]) int {
	var bytes int64
	for i, it := range items {
		bytes += int64(len(it.Entry.Value))
		if i == s.o.FlushBatchRuns || i > 0 && bytes > s.o.FlushBatchBytes {
			return i
		}
	}
	return len(items)
}

// write makes items durable with one durable Write and marks clean, as
// the commit lists them, those not saved again meanwhile. A run another
// worker took over (fencing) is dropped from the cache, and its conflict
// returned in conflicts; other failed runs stay dirty, and their errors
// are in err.
func (s *Store) write(ctx context.Context, items []lru.Item[uuid.UUID]) (conflicts []error, err error) {
	recs := make([]durable.Record, len(items))
	for i, it := range items {
		recs[i] = record(it.Key, it.Entry)
	}
	res, err := s.d.Write(ctx, recs, &durable.WriteOptions{
		Concurrency: s.o.FlushConcurrency,
		Fence:       s.fence.durable(),
		Committed: func(i int, etag string) {
			s.cache.MarkClean(items[i].Key, items[i].Entry.Version, etag)
			s.gens.touch(items[i].Key) // clean now, so evictable
			s.stats.committed.Add(1)
		},
	})
	written := 0
	var errs []error
	for i, r := range res {
		switch {
		case r.Err == nil:
			written++
		case (s.o.Fencing || items[i].Entry.Lease != 0) && errors.Is(r.Err, cairn.ErrConflict):
			// Another worker took the run over (fencing, or the
			// lease the Saves were made under): its unflushed Saves
			// here can never be written.
			c := cairn.WrapOp("flush", items[i].Key, r.Err)
			s.takenOver(ctx, items[i].Key)
			s.fence.takenOver(items[i].Key, c)
			s.cache.Remove(items[i].Key)
			conflicts = append(conflicts, c)
		default:
			errs = append(errs, r.Err)
		}
	}
	s.stats.puts.Add(int64(written))
	s.flushed(ctx, items, res)
	if err != nil && res != nil {
		return conflicts, fmt.Errorf("index commit of %d runs: %w", written, err)
	}
	if err != nil {
		return conflicts, err
	}
	return conflicts, errors.Join(errs...)
}

// record returns the durable record of run's cached entry e.
func record(run uuid.UUID, e lru.Entry) durable.Record {
	return durable.Record{RunID: run, Workflow: e.WorkflowName, Timestamp: e.Timestamp, Labels: e.Labels, Data: e.Value, Lease: e.Lease, Epoch: e.Epoch}
}

// Flush makes every Save that returned before Flush was called durable,
// and returns the error that prevented it, if any: with fencing, every
// run another worker took over while it ran, or since a Flush last
// reported. In
// write-through mode there is nothing to write.
func (s *Store) Flush(ctx context.Context) error {
	ctx, sp := s.tel.Start(ctx, obs.Flush, uuid.Nil)
	err := s.check(ctx)
	if err == nil {
		err = s.flush(ctx)
	}
	err = cairn.WrapOp("flush", uuid.Nil, err)
	sp.End(err)
	return err
}

// flush writes everything dirty now and reports the fencing conflicts
// met while it ran (by its own flush or another) and those no Flush has
// reported yet.
func (s *Store) flush(ctx context.Context) error {
	start := s.fence.flushBegins()
	err := s.flushDirty(ctx)
	return errors.Join(append([]error{err}, s.fence.flushEnds(start)...)...)
}

// flushDirty writes everything dirty now. One successful flush suffices:
// it takes its snapshot of the dirty runs after this call began, so it
// writes, for every run saved before it, that Save or a later one. (Waiting
// until no run is dirty would never end while Saves keep coming.)
//
// With nothing dirty it still waits for a flush in progress, so that the
// conflicts a background flush is meeting are kept before Flush reports.
func (s *Store) flushDirty(ctx context.Context) error {
	return s.flushOnce(ctx)
}

// Load implements cairn.Store: from the cache when it holds the run, else
// with one GET shared by concurrent Loads of the run.
func (s *Store) Load(ctx context.Context, runID uuid.UUID) (*cairn.Checkpoint, error) {
	ctx, sp := s.tel.Start(ctx, obs.Load, runID)
	cp, hit, err := s.load(ctx, runID, nil)
	cacheHit(sp, hit)
	sp.End(err)
	return cp, err
}

// load is Load, with LoadRecord's options; hit reports that the cache
// served it.
func (s *Store) load(ctx context.Context, runID uuid.UUID, opts *cairn.LoadRecordOptions) (_ *cairn.Checkpoint, hit bool, _ error) {
	rec, hit, err := s.loadRecord(ctx, runID, opts)
	if err != nil {
		return nil, hit, err
	}
	// A record, cached or read, is never changed: the checkpoint's
	// strings may alias it.
	cp, err := s.codec.DecodeSharedRecord(rec)
	if err == nil && cp.RunID != runID {
		err = fmt.Errorf("%w: the object of run %v holds run %v", cairn.ErrCorrupt, runID, cp.RunID)
	}
	if err != nil {
		return nil, hit, cairn.WrapOp("load", runID, err)
	}
	return cp, hit, nil
}

// LoadRecord implements cairn.RecordStore as Load reads: the record the
// cache holds (shared with it), else one GET's. With opts.Listed, a clean
// cached copy of another timestamp is dropped and read again.
func (s *Store) LoadRecord(ctx context.Context, runID uuid.UUID, opts *cairn.LoadRecordOptions) ([]byte, error) {
	ctx, sp := s.tel.Start(ctx, obs.Load, runID)
	rec, hit, err := s.loadRecord(ctx, runID, opts)
	cacheHit(sp, hit)
	sp.End(err)
	return rec, err
}

// loadRecord is LoadRecord; hit reports that the cache served it.
func (s *Store) loadRecord(ctx context.Context, runID uuid.UUID, opts *cairn.LoadRecordOptions) (_ []byte, hit bool, _ error) {
	if err := cairn.CheckRunID("load", runID); err != nil {
		return nil, false, err
	}
	if err := s.check(ctx); err != nil {
		return nil, false, cairn.WrapOp("load", runID, err)
	}
	if opts != nil && (!opts.Listed.IsZero() || opts.ListedSize > 0) {
		if e, ok := s.cache.Peek(runID); ok && !e.Dirty && (!opts.Listed.IsZero() && !e.Timestamp.Equal(opts.Listed) ||
			opts.ListedSize > 0 && int64(len(e.Value)) != opts.ListedSize) {
			s.cache.CompareAndRemove(runID, e.Version)
		}
	}
	e, ok := s.cache.Get(runID)
	var err error
	switch {
	case ok && s.o.Revalidate && !e.Dirty && e.ETag != "":
		e, err = s.revalidate(ctx, runID, e)
	case !ok:
		e, err = s.fetch(ctx, runID)
	}
	if err != nil {
		return nil, ok, cairn.WrapOp("load", runID, err)
	}
	return e.Value, ok, nil
}

// revalidate confirms the cached e of run with a conditional GET, and
// returns what is current: e, or the object that replaced it (cached in
// its place, and its ETag taken for fencing, unless this store wrote or
// deleted the run meanwhile).
func (s *Store) revalidate(ctx context.Context, run uuid.UUID, e lru.Entry) (lru.Entry, error) {
	gen := s.gens.at(run)
	still := func() bool { return s.gens.unchanged(run, gen) }
	rec, etag, err := s.d.Read(ctx, run, e.ETag)
	s.stats.gets.Add(1)
	switch {
	case errors.Is(err, bucket.ErrNotModified):
		s.stats.revalidated.Add(1)
		return e, nil
	case err != nil:
		if errors.Is(err, cairn.ErrNotFound) && still() && s.cache.CompareAndRemove(run, e.Version) {
			s.fence.forgetIf(run, still) // deleted elsewhere, and not written here since
		}
		return e, err
	}
	fresh := lru.Entry{Value: rec, ETag: etag}
	if h, err := s.codec.ReadHeader(rec); err == nil { // the new object's, not the one it replaces
		fresh.WorkflowName, fresh.Timestamp = h.WorkflowName, h.Timestamp
	}
	s.keep(run, etag, still, func() (uint64, bool) { return s.cache.CompareAndPut(run, e.Version, fresh) })
	return fresh, nil
}

// keep caches what a GET of run read, with put, and takes its ETag for
// fencing, if still() holds (this store did not write or delete run since
// the GET began): the caller's copy is based on it, even when the copy
// is too large to cache. Not when put finds another copy cached
// meanwhile (another Load's, which may be newer). A copy cached while a
// write or Delete began is taken out again.
func (s *Store) keep(run uuid.UUID, etag string, still func() bool, put func() (uint64, bool)) {
	if !still() {
		return
	}
	version, stored := put()
	if stored && !still() {
		s.cache.CompareAndRemove(run, version)
		return
	}
	if _, cached := s.cache.Peek(run); stored || !cached {
		s.fence.sawIf(run, etag, still)
	}
}

// fetched is what one GET of a run brought, and the generation it began
// at.
type fetched struct {
	e   lru.Entry
	gen uint64
}

// fetch reads a run the cache does not hold, with one GET shared by the
// Loads of it in flight (each its own with revalidation, or when this
// store wrote or deleted the run since the shared GET began), and caches
// it unless this store wrote or deleted it meanwhile.
func (s *Store) fetch(ctx context.Context, run uuid.UUID) (lru.Entry, error) {
	if s.o.Revalidate {
		// A Load that joined a GET already in flight could return what
		// the run was before a write that finished before the Load
		// began: with revalidation promised, each Load reads.
		f, err := s.get(ctx, run)
		return f.e, err
	}
	gen := s.gens.at(run)
	v, err, _ := s.loads.Do(run.String(), func() (any, error) { return s.get(ctx, run) })
	if err != nil {
		return lru.Entry{}, err
	}
	if f := v.(fetched); f.gen != gen {
		// The shared GET began before a write or Delete of this store
		// that this Load follows: it may hold what was before.
		f, err := s.get(ctx, run)
		return f.e, err
	}
	return v.(fetched).e, nil
}

// get reads run with one GET and keeps it (see keep).
func (s *Store) get(ctx context.Context, run uuid.UUID) (fetched, error) {
	gen := s.gens.at(run)
	still := func() bool { return s.gens.unchanged(run, gen) }
	rec, etag, err := s.d.Read(ctx, run, "")
	s.stats.gets.Add(1)
	if errors.Is(err, cairn.ErrNotFound) {
		s.fence.forgetIf(run, still) // gone: with fencing, it may be created again
	}
	if err != nil {
		return fetched{gen: gen}, err
	}
	e := lru.Entry{Value: rec, ETag: etag}
	if h, err := s.codec.ReadHeader(rec); err == nil {
		// No labels: List reads those of dirty entries only, and a
		// read's entry is clean until a Save replaces it.
		e.WorkflowName, e.Timestamp = h.WorkflowName, h.Timestamp
	}
	s.keep(run, etag, still, func() (uint64, bool) { return s.cache.CompareAndPut(run, 0, e) })
	return fetched{e: e, gen: gen}, nil
}

// List implements cairn.Store: the durable index, with this process's
// unflushed runs in it.
func (s *Store) List(ctx context.Context, opts *cairn.ListOptions) (*cairn.Page, error) {
	ctx, sp := s.tel.Start(ctx, obs.List, uuid.Nil)
	page, err := s.list(ctx, opts)
	sp.End(err)
	return page, err
}

// list is List.
func (s *Store) list(ctx context.Context, opts *cairn.ListOptions) (*cairn.Page, error) {
	if err := s.check(ctx); err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	q, err := opts.Query()
	if err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	dirty, err := s.dirtySummaries(&q)
	if err != nil {
		return nil, err
	}
	if q.Claimable && len(dirty) > 0 {
		if err := s.keepClaimable(ctx, dirty); err != nil {
			return nil, cairn.WrapOp("list", uuid.Nil, err)
		}
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
	if len(dirty) > 0 {
		page = merge(page, dirty, &q)
	}
	if q.WithCheckpoints {
		if err := cairn.FillCheckpoints(ctx, page, s.o.FlushConcurrency, s.listLoader(page)); err != nil {
			return nil, cairn.WrapOp("list", uuid.Nil, err)
		}
	}
	return page, nil
}

// dirtySummaries returns the summaries of the unflushed runs, labels
// included (copies, the caller's), with their checkpoints when q asks for
// them. merge filters them.
func (s *Store) dirtySummaries(q *cairn.Query) (map[uuid.UUID]cairn.Summary, error) {
	dirty := map[uuid.UUID]cairn.Summary{}
	for _, it := range s.cache.Dirty() {
		sum := cairn.Summary{RunID: it.Key, WorkflowName: it.Entry.WorkflowName, Timestamp: it.Entry.Timestamp,
			Size: int64(len(it.Entry.Value)), Labels: maps.Clone(it.Entry.Labels)}
		if q.WithCheckpoints {
			var err error
			if sum.Checkpoint, err = s.codec.DecodeRecord(it.Entry.Value); err != nil {
				return nil, cairn.WrapOp("list", it.Key, err)
			}
		}
		dirty[it.Key] = sum
	}
	return dirty, nil
}

// merge returns page with the dirty runs that match q in it, in place of
// their durable summaries, cut to q's limit.
func merge(page *cairn.Page, dirty map[uuid.UUID]cairn.Summary, q *cairn.Query) *cairn.Page {
	runs := make([]cairn.Summary, 0, len(page.Runs)+len(dirty))
	for _, r := range page.Runs {
		if _, shadowed := dirty[r.RunID]; !shadowed {
			runs = append(runs, r)
		}
	}
	for _, d := range dirty {
		if q.Match(d.WorkflowName, d.Timestamp, d.Labels) && (!q.HasAfter || q.After.Compare(d.Key()) < 0) {
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
	return out
}

// listLoader returns the Load that fills page's checkpoints: through the
// cache, except that a clean cached copy whose time or size differs from
// the index's is dropped first (another process wrote the run since), so
// a summary comes with an older checkpoint only if another process
// rewrote the run with the same timestamp and size. A dirty run's checkpoint
// is filled already.
func (s *Store) listLoader(page *cairn.Page) func(context.Context, uuid.UUID) (*cairn.Checkpoint, error) {
	listed := make(map[uuid.UUID]cairn.LoadRecordOptions, len(page.Runs))
	for _, r := range page.Runs {
		listed[r.RunID] = cairn.LoadRecordOptions{Listed: r.Timestamp, ListedSize: r.Size}
	}
	return func(ctx context.Context, id uuid.UUID) (*cairn.Checkpoint, error) {
		o := listed[id]
		cp, _, err := s.load(ctx, id, &o)
		return cp, err
	}
}

// Delete implements cairn.Store: it waits for a flush in progress, then
// deletes the run from the durable store, dropping it from the cache
// (unflushed Saves of it included) once the tombstone is committed, with
// the run locked there. A Delete that fails before its tombstone deleted
// nothing, and keeps the cache as it was.
func (s *Store) Delete(ctx context.Context, runID uuid.UUID) error {
	ctx, sp := s.tel.Start(ctx, obs.Delete, runID)
	err := s.delete(ctx, runID)
	sp.End(err)
	return err
}

// delete is Delete.
func (s *Store) delete(ctx context.Context, runID uuid.UUID) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	if err := s.acquireFlush(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	defer s.releaseFlush()
	// While the Delete is out, no GET of the run fills the cache or the
	// fence: one may read the object between the tombstone and its
	// removal.
	s.gens.begin(runID)
	defer s.gens.end(runID)
	return s.d.DeleteWith(ctx, runID, &durable.DeleteOptions{Tombstoned: func() {
		s.cache.Remove(runID) // unflushed Saves included
		s.fence.forget(runID)
	}})
}

// Close stops the flusher, flushes (write-back) and closes the durable
// store. It returns the flush's error, if any, with the conflicts of
// background flushes not yet reported; if ctx ends first (Saves or a
// flush still in progress), ctx's error. The store is closed either way,
// and unflushed runs are then lost.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return cairn.WrapOp("close", uuid.Nil, cairn.ErrClosed)
	}
	// Saves waiting for room give up; Saves in progress finish, later
	// ones get ErrClosed; a background flush in progress finishes (its
	// conflicts kept): so the last flush sees every Save that returned
	// nil, and reports every conflict.
	s.wakeWaiters()
	err := s.waitForSaves(ctx)
	if err == nil {
		err = s.stopFlusher(ctx)
	} else {
		_ = s.stopFlusher(ctx)
	}
	if err == nil {
		err = s.flush(ctx)
	}
	err = errors.Join(err, s.d.Close(ctx))
	s.tel.Close()
	if err != nil {
		s.closeFailed(ctx, err)
	}
	return cairn.WrapOp("close", uuid.Nil, err)
}

// waitForSaves waits, until ctx ends (and closing.Grace more), for the
// Saves holding the gate.
func (s *Store) waitForSaves(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.gate.Lock()
		s.gate.Unlock()
		close(done)
	}()
	return closing.Wait(ctx, done)
}

// stopFlusher stops the write-back flusher and waits, until ctx ends (and
// closing.Grace more), for the flush it is making.
func (s *Store) stopFlusher(ctx context.Context) error {
	if s.o.Mode != WriteBack {
		return nil
	}
	close(s.flusher.stop)
	return closing.Wait(ctx, s.flusher.done)
}

// Stats are counters of a Store.
type Stats struct {
	Cache          lru.Stats
	PUTs           int64 // run objects written
	GETs           int64 // run objects read: Load misses, revalidations, List WithCheckpoints
	SkippedSaves   int64 // Saves whose bytes were already durable
	Revalidated    int64 // cache hits confirmed unchanged by a conditional GET
	Flushes        int64 // flushes that wrote something
	Committed      int64 // runs an index commit listed, so durable: write-through Saves, flushed runs (each batch as it commits)
	IndexCommits   int64 // log objects written by the index
	BytesEncoded   int64 // MessagePack bytes of every Save accepted
	BytesStored    int64 // compressed bytes of the run objects written
	BytesUnflushed int64
}

// Durable returns the durable store below the cache, for the operations
// that have no tiered counterpart (Reindex, Verify, GC, Compact). Writes
// made through it bypass this store's cache.
func (s *Store) Durable() *durable.Store { return s.d }

// Stats returns the counters.
func (s *Store) Stats() Stats {
	ds := s.d.Stats()
	return Stats{
		Cache: s.cache.Stats(), PUTs: s.stats.puts.Load(), GETs: s.stats.gets.Load(), SkippedSaves: s.stats.skipped.Load(),
		Flushes: s.stats.flushes.Load(), Committed: s.stats.committed.Load(), Revalidated: s.stats.revalidated.Load(), IndexCommits: ds.Index.Commits,
		BytesEncoded: s.stats.rawBytes.Load(), BytesStored: ds.BytesStored, BytesUnflushed: s.cache.DirtyBytes(),
	}
}
