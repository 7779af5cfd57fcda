// Package durable is Cairn's durable tier: checkpoints as objects in a
// bucket.Bucket (S3 through package s3store, a local directory, memory),
// one object per run, with the timestamp-ordered index of package index
// beside them. It is the one owner of the write protocol: every write of
// a run object, by this Store's Save or by the cache of package tiered,
// is a Write (the objects as parallel PUTs, then one index commit, the
// runs locked meanwhile), and nothing outside this package writes index
// state.
//
// # Layout
//
//	<prefix>/runs/<run-id>   the run's latest checkpoint: zstd around the
//	                         MessagePack record (blazen-persist's format),
//	                         with its summary in object metadata
//	<prefix>/index/...       the index (see package index)
//
// # Consistency
//
// A Write (and Save, a Write of one) writes the runs' objects, then
// commits their index entries; it returns once both are durable. Load reads the object alone (one GET). List reads
// the index alone and never downloads bodies unless asked. Delete commits a
// tombstone naming the ETag of the run's object, then deletes the object.
// So a crash between the two steps of a Write leaves an object the index
// does not list (Load finds it, List does not; Verify reports it as
// unindexed and Reindex lists it: it is the newest state a writer wrote,
// and GC never deletes it), and a crash inside a Delete leaves the run
// unlisted but loadable until GC removes the object its tombstone names:
// never an index entry that points at nothing.
//
// The run objects are the truth; the index is a view that Reindex can
// always rebuild from them, whatever became of it. A bucket whose runs
// have no index is ErrIndexLost, never an empty store; a damaged index
// falls back to its newest intact snapshot, or fails List with
// index.ErrDamaged until Reindex, while Saves go on. Nothing deletes a run
// object without proof that the run is dead: a tombstone naming that very
// object, or an expiry this store wrote (see GC).
//
// Within a Store, the Writes and Deletes of one run are serialized (its
// run locks, striped by run ID). Across
// processes, without fencing, two processes saving the same run at the
// same moment leave the object to the bucket's last writer and the index
// entry to the last commit, which may disagree on the timestamp; and a
// Save racing a Delete of the same run in another process can leave an
// index entry whose object the Delete removed. Verify reports both
// (Mismatched, Missing) and Reindex repairs them; fencing (a Write's
// Fence, as the tiered store uses it) prevents the first.
//
// Conditional writes hold within one bucket. Several regions, each with
// its own copy of the bucket kept in step by asynchronous replication,
// write one store when each runs with its own Options.Region: see Regions
// in regions.go (Reconcile) for what they can assume.
//
// # Blobs
//
// With Options.Offload, a Write stores each top-level state value whose
// encoding is at least the threshold as content-defined chunks (8 to 64
// KiB), each a blob at <prefix>/blobs/<epoch>/<name>, zstd-compressed,
// named by the SHA-256 of the chunk (in a sealed store, by an HMAC under a
// key derived from its keyring, and sealed); the record keeps a reference
// (a MessagePack extension of type 67) holding, inline, the value's
// MessagePack length header (of an array, a map, a string or a binary)
// and its last chunk (both change as a value grows), and the object's metadata counts the
// blobs (cairn-blobs). A value unchanged since an earlier Save of this
// store costs no PUT, and a value grown by an append costs one only when
// a chunk closes; Read puts the values back, so every reader (Load,
// List's checkpoints, export, the tiered cache) sees the record as
// written. The state cap applies per blob and per record: a chunk is at
// most 64 KiB, and the record, values included, at most the codec's
// MaxSize. The blobs this store knows exist are kept by name, up to 65,536
// of them (then forgotten at once, and PUT again when next used).
//
// An epoch is an hour of Unix time (BlobEpoch, fixed so that every
// process agrees). A writer references a blob without a PUT only if its
// epoch is the current one or the one before, by its clock, checked just
// before the run object's PUT; otherwise it PUTs the chunk again under the
// current epoch. GC, at time T0 taken before it lists anything, deletes a
// blob only if its epoch ended at least GCOptions.BlobGrace (6 hours by
// default, at least 4) before T0, that is if its epoch is at most
// E(T0-grace)-1, and no run object listed after T0 references it (objects
// are read, not the index: unindexed objects are live). Any run object it
// cannot read stops it before it deletes a blob. This is safe under two
// assumptions: the clocks of writers and GC agree within an hour, and no
// Write's run object PUT lands more than two hours after its check. A
// record written before the listing is read by it. A record landing after
// T0 was checked after T0-2h by the clock, after T0-3h by its writer's
// clock, in an epoch of at least E(T0-3h), so it references epochs of at
// least E(T0-3h)-1; GC deletes at most E(T0-4h)-1, which is less. The
// blobs of deleted runs are reclaimed that way, once old enough.
//
// A noncurrent version of a run object (which Reconcile may restore in a
// store several regions write) can reference blobs GC has since deleted:
// such a restored record reads as ErrCorrupt.
package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/closing"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/cairnstore/cairn/seal"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Options configures a Store. Nil and zero fields mean defaults.
type Options struct {
	// Prefix is prepended, with a '/', to every key. Empty means none.
	Prefix string
	// Codec encodes, compresses and bounds checkpoints. Nil means
	// cairn.DefaultCodec(). With an Uncompressed codec, run objects are
	// bare MessagePack records that a Blazen process reads as they are.
	Codec *cairn.Codec
	// TTL, if positive, makes every run expire that long after its last
	// Save (blazen-persist's Valkey semantics): Load and List stop seeing
	// it, and GC removes it.
	TTL time.Duration
	// Index tunes the index; its Prefix, Codec and Now are the store's.
	Index *index.Options
	// Concurrency bounds the parallel GETs of List with checkpoints and
	// of Reindex, Verify and GC. Default 16.
	Concurrency int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Region names the region this store writes from when several
	// regions write one store through asynchronous bucket replication
	// (index.Options.Region: 1 to 63 of [a-z0-9-]; empty for the default
	// region, the only one of a store in one region). It overrides
	// Index.Region. See "Regions" in the package doc.
	Region string
	// UnsafeSkipProbe skips the probe of the server before the first
	// write (see CheckServer). It is unsafe with more than one writer: on
	// a server that ignores conditional writes, concurrent writers lose
	// each other's runs, Deletes come back and fencing never fires; on
	// one that keeps old metadata on overwrite, a run re-saved without a
	// TTL can still expire. Set it only if exactly one process ever
	// writes to the prefix, or the server cannot take the probe's writes.
	UnsafeSkipProbe bool
	// ReadOnly opens the store for reading only. It writes nothing at
	// all: no probe of the server, no index created, no compaction or
	// reconciliation in the background. Save, Write, Delete, Claim and
	// the lease's writes, Compact, Reindex, GC (but a dry run) and
	// Reconcile fail with cairn.ErrReadOnly, as does CheckServer, whose
	// probe writes. Load, Read, Exists, List, Claimable, Verify and a dry
	// GC work as they would otherwise, on a bucket the credentials or the
	// filesystem let it read only. The bucket is wrapped in
	// bucket.ReadOnly, so nothing can reach it as a write.
	ReadOnly bool
	// Keyring, if set, seals every object the store writes (run objects,
	// index, claims, blobs) on the client with its primary key and opens
	// what any of its keys sealed; an object that fails to open (moved
	// from another key, tampered with, sealed with a key it lacks, or not
	// sealed) is cairn.ErrCorrupt. See package seal for the format, what
	// stays visible, and rotation. A store without a Keyring cannot read
	// a sealed store, nor one with a Keyring an unsealed one.
	Keyring *seal.Keyring

	// Logger receives the store's log records: the probe's verdicts
	// (Info; Error for a refused server), index commit retries (Debug)
	// and conflicts (Info), compactions (Info; Warn when one fails).
	// Records carry run IDs, keys, counts and errors, never checkpoint
	// content or credentials. Nil: no records.
	Logger *slog.Logger
	// TracerProvider, if set, traces Save, Load, List and Delete (spans
	// cairn.Save, ...) and each index commit (cairn.Commit). Nil: no
	// spans, at no cost.
	TracerProvider trace.TracerProvider
	// MeterProvider, if set, receives the store's metrics (cairn.*:
	// operations and their durations, bytes written, index commits,
	// conflicts and compactions; see the README). Nil: none, at no cost.
	MeterProvider metric.MeterProvider

	// Offload, if set, makes Writes store the large values of a record's
	// state as content-addressed blobs (see "Blobs"). Nil: records are
	// stored whole. Reading does not depend on it: a store opened without
	// it still reads the records others offloaded.
	Offload *OffloadOptions
	// BlobCacheBytes bounds the in-process cache of the blobs of
	// offloaded values read, by name (an lru.Cache bounded by bytes),
	// whether or not Offload is set: it fills only as offloaded records
	// are read. Default DefaultBlobCacheBytes (32 MiB; a tiered store
	// gives it half its CacheBytes instead); negative: no cache.
	BlobCacheBytes int64
}

// Store is a cairn.Store over a bucket. It is safe for concurrent use, by
// goroutines and by processes sharing the bucket.
type Store struct {
	b      bucket.Bucket
	o      Options
	codec  *cairn.Codec
	ix     *index.Index
	runs   string // "<prefix>/runs/"
	claims string // "<prefix>/claims/"
	leases leases // this store's leases (Claim)

	mu     sync.RWMutex
	closed bool

	// runLocks serialize the Saves and Deletes of one run in this process
	// (striped by run ID), so that a Delete's tombstone and object
	// deletion cannot interleave with a Save's object write and commit
	// and leave an index entry without an object.
	// Each is a one-slot semaphore, so that waiting for one honours the
	// caller's context.
	runLocks [64]chan struct{}

	bytesStored atomic.Int64 // compressed bytes of run objects written

	indexMu sync.Mutex // ensureIndex's
	indexOK bool       // the bucket has an index (created or seen)

	probe probeState // CheckServer's, before the first write

	tel *obs.T // see observe.go

	blobNameKey []byte // names blobs in a sealed store (blobName); nil: plain SHA-256

	bg background // reconciles the runs compactions decided between regions

	blob blobs // offloaded values (blob.go)
}

var _ cairn.RecordStore = (*Store)(nil)

func (s *Store) lockRun(ctx context.Context, id uuid.UUID) (unlock func(), err error) {
	return s.lockStripes(ctx, []int{stripe(id)})
}

// lockStripes takes the run locks of stripes, which must be ascending
// (so that two callers never wait for each other in a cycle), and returns
// the unlock. If ctx ends first, it takes none and returns ctx's error.
func (s *Store) lockStripes(ctx context.Context, stripes []int) (unlock func(), err error) {
	unlock = func() {}
	for n, i := range stripes {
		select {
		case s.runLocks[i] <- struct{}{}:
		case <-ctx.Done():
			for _, j := range stripes[:n] {
				<-s.runLocks[j]
			}
			return nil, ctx.Err()
		}
	}
	return func() {
		for _, i := range stripes {
			<-s.runLocks[i]
		}
	}, nil
}

// stripe is the index of the lock of run in runLocks.
func stripe(run uuid.UUID) int { return int(run[15]) % 64 }

// New returns a Store over b. b is not closed by Close.
func New(b bucket.Bucket, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Codec == nil {
		o.Codec = cairn.DefaultCodec()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	var problems []error
	if o.TTL < 0 {
		problems = append(problems, fmt.Errorf("negative TTL %v", o.TTL))
	}
	if o.Concurrency < 0 {
		problems = append(problems, fmt.Errorf("negative Concurrency %d", o.Concurrency))
	}
	var io index.Options
	if o.Index != nil {
		io = *o.Index
	}
	var nameKey []byte
	if o.Keyring != nil {
		// Head reads a body only for metadata too large for the seal; it
		// reads no more than Load would.
		b = seal.WrapWith(b, o.Keyring, &seal.Options{HeadReadLimit: maxObjectOf(o.Codec)})
		nameKey = o.Keyring.NameKey()
	}
	if o.ReadOnly {
		b = bucket.ReadOnly(b)
		io.ReadOnly = true
	}
	s := &Store{b: b, o: o, codec: o.Codec, blobNameKey: nameKey}
	problems = append(problems, s.initBlobs(&o)...)
	io.Prefix, io.Codec, io.Now, io.Contested = o.Prefix, o.Codec, o.Now, s.contested
	if io.Logger == nil {
		io.Logger = o.Logger
	}
	if o.Region != "" {
		io.Region = o.Region
	}
	o.Region = io.Region
	ix, err := index.New(b, &io)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: durable options: %w", cairn.ErrInvalid, errors.Join(problems...))
	}
	root := ""
	if o.Prefix != "" {
		root = o.Prefix + "/"
	}
	s.o, s.ix, s.runs, s.claims = o, ix, root+"runs/", root+"claims/"
	if err := s.instrument(&o); err != nil {
		return nil, err
	}
	s.bg.ctx, s.bg.cancel = context.WithCancel(context.Background())
	s.bg.pending = map[uuid.UUID]bool{}
	s.leases.m = map[uuid.UUID]*leaseState{}
	for i := range s.runLocks {
		s.runLocks[i] = make(chan struct{}, 1)
	}
	return s, nil
}

// Compact folds the index's logs into a new snapshot now, rather than
// when Options.Index.CompactAfter logs have gathered, and removes nothing
// a reader may still need (see GC). It waits for a background compaction
// in progress. List reads fewer objects afterwards.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("compact", uuid.Nil, err)
	}
	return cairn.WrapOp("compact", uuid.Nil, s.ix.Compact(ctx))
}

// Stats are counters of a Store, since it was opened.
type Stats struct {
	BytesStored int64 // compressed bytes of the run objects written
	Index       index.Stats

	// Offloaded values (see "Blobs"): the blobs PUT and their compressed
	// bytes, the chunks referenced without a PUT (known to exist), the
	// blobs read from the bucket and those found in the cache.
	BlobsPut, BlobBytesPut, BlobsReused, BlobsFetched, BlobCacheHits int64
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{BytesStored: s.bytesStored.Load(), Index: s.ix.Stats(),
		BlobsPut: s.blob.put.Load(), BlobBytesPut: s.blob.bytesPut.Load(), BlobsReused: s.blob.reused.Load(),
		BlobsFetched: s.blob.fetched.Load(), BlobCacheHits: s.blob.hits.Load()}
}

func (s *Store) runKey(id uuid.UUID) string { return s.runs + id.String() }

func (s *Store) check(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
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

// sealMetaKey is the metadata key of a sealed object's seal (package
// seal): an object that has one, read without a keyring, was sealed.
const sealMetaKey = "cairn-seal"

// sealedWithoutKeyring returns ErrCorrupt wrapping seal.ErrNeedsKeyring
// when this store has no keyring and the object key, whose metadata is
// meta, is sealed: its bytes are not a record, and no decoding is tried.
func (s *Store) sealedWithoutKeyring(key string, meta map[string]string) error {
	if _, sealed := meta[sealMetaKey]; sealed && s.o.Keyring == nil {
		return fmt.Errorf("%w: object %s: %w (durable.Options.Keyring, --keyring)", cairn.ErrCorrupt, key, seal.ErrNeedsKeyring)
	}
	return nil
}

// errReadOnly is what a read-only store answers a write.
var errReadOnly = fmt.Errorf("%w (durable.Options.ReadOnly)", cairn.ErrReadOnly)

// classify turns bucket errors into the store's sentinels, keeping the
// cause in the chain. A server's bucket.ErrBusy (409: another write of
// the key in flight) is no sentinel of the store's: it means "retry",
// not that another writer won (that is a 412, ErrConflict).
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bucket.ErrNotFound):
		return fmt.Errorf("%w: %w", cairn.ErrNotFound, err)
	case errors.Is(err, bucket.ErrPrecondition):
		return fmt.Errorf("%w: %w", cairn.ErrConflict, err)
	case errors.Is(err, bucket.ErrCorrupt), errors.Is(err, bucket.ErrUnreadable):
		return fmt.Errorf("%w: %w", cairn.ErrCorrupt, err)
	case errors.Is(err, bucket.ErrReadOnly):
		return fmt.Errorf("%w: %w", cairn.ErrReadOnly, err)
	}
	return err
}

// Save implements cairn.Store: a Write of one record (the object, then
// its index entry, both with c's labels). It returns once both are
// durable. A lease stamp in c's Metadata is stored as cairn.Unleased
// keeps it.
func (s *Store) Save(ctx context.Context, c *cairn.Checkpoint) error {
	var run uuid.UUID
	if c != nil {
		run = c.RunID
	}
	ctx, sp := s.tel.Start(ctx, obs.Save, run)
	err := s.save(ctx, run, cairn.Unleased(c)) // a plain Save keeps a lease stamp's epoch only
	sp.End(err)
	return err
}

// save is Save of c, on run.
func (s *Store) save(ctx context.Context, run uuid.UUID, c *cairn.Checkpoint) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	r, err := s.codec.NewRecord(nil, c)
	if err != nil {
		return cairn.WrapOp("save", run, err)
	}
	return s.saveRecord(ctx, r)
}

// SaveRecord implements cairn.RecordStore: Save of an encoded record.
func (s *Store) SaveRecord(ctx context.Context, r cairn.Record) error {
	if err := s.codec.CheckRecord(r); err != nil {
		return err
	}
	ctx, sp := s.tel.Start(ctx, obs.Save, r.RunID())
	err := s.saveRecord(ctx, r)
	sp.End(err)
	return err
}

// saveRecord is SaveRecord of a checked record.
func (s *Store) saveRecord(ctx context.Context, r cairn.Record) error {
	run := r.RunID()
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	res, err := s.Write(ctx, []Record{{RunID: run, Workflow: r.WorkflowName(), Timestamp: r.Timestamp(), Labels: r.Labels(),
		Data: r.Bytes(), Epoch: r.Epoch()}}, nil)
	if err == nil {
		err = res[0].Err
	}
	return cairn.WrapOp("save", run, err)
}

// Codec implements cairn.RecordStore.
func (s *Store) Codec() *cairn.Codec { return s.codec }

// LoadRecord implements cairn.RecordStore with one GET, as Load reads
// (the bytes are the caller's). Its options change nothing: there is no
// cache to bypass.
func (s *Store) LoadRecord(ctx context.Context, runID uuid.UUID, _ *cairn.LoadRecordOptions) ([]byte, error) {
	ctx, sp := s.tel.Start(ctx, obs.Load, runID)
	rec, _, err := s.Read(ctx, runID, "")
	sp.End(err)
	return rec, err
}

// maxObject bounds what Load reads: a record of MaxSize, compressed,
// cannot be much larger.
func (s *Store) maxObject() int64 { return maxObjectOf(s.codec) }

func maxObjectOf(c *cairn.Codec) int64 {
	return int64(c.MaxSize()) + int64(c.MaxSize())/64 + 64<<10
}

// Load implements cairn.Store with one GET of the run's object. A run past
// its TTL is ErrNotFound.
func (s *Store) Load(ctx context.Context, runID uuid.UUID) (*cairn.Checkpoint, error) {
	ctx, sp := s.tel.Start(ctx, obs.Load, runID)
	cp, err := s.load(ctx, runID)
	sp.End(err)
	return cp, err
}

// load is Load.
func (s *Store) load(ctx context.Context, runID uuid.UUID) (*cairn.Checkpoint, error) {
	rec, _, err := s.Read(ctx, runID, "")
	if err != nil {
		return nil, err
	}
	cp, err := s.codec.DecodeSharedRecord(rec) // rec is this Load's own
	if err == nil && cp.RunID != runID {
		err = fmt.Errorf("%w: object %s holds run %v", cairn.ErrCorrupt, s.runKey(runID), cp.RunID)
	}
	if err != nil {
		return nil, cairn.WrapOp("load", runID, err)
	}
	return cp, nil
}

// Exists reports whether Load would find runID, with one HEAD and no
// body: the run's object is there and has not expired. It does not decode
// the object, so a run whose object is corrupt exists.
func (s *Store) Exists(ctx context.Context, runID uuid.UUID) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, cairn.WrapOp("exists", runID, err)
	}
	info, err := s.b.Head(ctx, s.runKey(runID))
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return false, nil
	case errors.Is(err, bucket.ErrUnreadable), errors.Is(err, bucket.ErrTooLarge):
		return true, nil // there, but damaged (a sealed one whose seal fails): it exists
	case err != nil:
		return false, cairn.WrapOp("exists", runID, classify(err))
	}
	if exp, ok := info.Metadata[metaExpires]; ok {
		if t, err := cairn.ParseTimestamp(exp); err == nil && !s.o.Now().Before(t) {
			return false, nil
		}
	}
	return true, nil
}

// Read reads the run's object with one GET and returns its uncompressed
// record (the caller's to keep, e.g. in a cache) and its ETag. With
// ifNoneMatch set to the ETag of a copy the caller holds, an unchanged
// object costs no body and gives an error wrapping bucket.ErrNotModified
// (revalidation). A missing run, or one past its TTL, is ErrNotFound; an
// object that does not decompress, or is larger than a record of the
// codec's MaxSize can be, is ErrCorrupt. Read does not decode the record.
// It returns the record as written: values offloaded to blobs are read
// (in parallel, from the blob cache first) and put back; a blob missing
// or damaged is ErrCorrupt.
func (s *Store) Read(ctx context.Context, runID uuid.UUID, ifNoneMatch string) (rec []byte, etag string, err error) {
	if err := cairn.CheckRunID("load", runID); err != nil {
		return nil, "", err
	}
	if err := s.check(ctx); err != nil {
		return nil, "", cairn.WrapOp("load", runID, err)
	}
	obj, err := s.b.Get(ctx, s.runKey(runID), &bucket.GetOptions{MaxSize: s.maxObject(), IfNoneMatch: ifNoneMatch})
	if err != nil {
		switch {
		case errors.Is(err, bucket.ErrNotModified):
			return nil, ifNoneMatch, err
		case errors.Is(err, bucket.ErrTooLarge):
			err = fmt.Errorf("%w: %w", cairn.ErrCorrupt, err)
		}
		return nil, "", cairn.WrapOp("load", runID, classify(err))
	}
	if exp, ok := obj.Metadata[metaExpires]; ok {
		if t, err := cairn.ParseTimestamp(exp); err == nil && !s.o.Now().Before(t) {
			return nil, "", cairn.WrapOp("load", runID, fmt.Errorf("%w: expired at %s", cairn.ErrNotFound, exp))
		}
	}
	if err := s.sealedWithoutKeyring(obj.Key, obj.Metadata); err != nil {
		return nil, "", cairn.WrapOp("load", runID, err)
	}
	rec, err = s.codec.Decompress(obj.Body)
	if err != nil {
		return nil, "", cairn.WrapOp("load", runID, fmt.Errorf("object %s: %w", obj.Key, err))
	}
	if rec, err = s.inline(ctx, runID, obj.Key, obj.Metadata, rec, false); err != nil {
		return nil, "", cairn.WrapOp("load", runID, err)
	}
	return rec, obj.ETag, nil
}

// List implements cairn.Store from the index alone, labels and label
// selectors included (never from run bodies); with WithCheckpoints it loads the page's runs in parallel, leaving out
// any deleted meanwhile. An index entry whose labels do not parse is
// ErrCorrupt (Reindex rewrites it from the run's object).
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
	entries, more, err := s.listIndex(ctx, &q)
	if errors.Is(err, index.ErrNoIndex) {
		// A new store, or a lost index: never an empty listing over runs.
		if err = s.noIndex(ctx); errors.Is(err, errIndexCreated) {
			entries, more, err = s.listIndex(ctx, &q)
		}
	}
	if err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	page := &cairn.Page{Runs: make([]cairn.Summary, len(entries))}
	for i, e := range entries {
		labels, err := cairn.ParseLabels(e.Labels)
		if err != nil {
			return nil, cairn.WrapOp("list", e.RunID, fmt.Errorf("%w: index entry's labels: %w", cairn.ErrCorrupt, err))
		}
		page.Runs[i] = cairn.Summary{RunID: e.RunID, WorkflowName: e.Workflow, Timestamp: e.Timestamp, Size: e.Size, Labels: labels}
	}
	if more {
		page.Next = entries[len(entries)-1].Key().Cursor()
	}
	if !q.WithCheckpoints {
		return page, nil
	}
	if err := cairn.FillCheckpoints(ctx, page, s.o.Concurrency, s.load); err != nil {
		return nil, cairn.WrapOp("list", uuid.Nil, err)
	}
	return page, nil
}

// listIndex lists q from the index; with q.Claimable it reads the claims
// of the runs listed and keeps the claimable ones, listing on until the
// page is full or the index ends.
func (s *Store) listIndex(ctx context.Context, q *cairn.Query) ([]index.Entry, bool, error) {
	if !q.Claimable {
		return s.ix.List(ctx, q)
	}
	var out []index.Entry
	page := *q
	for {
		entries, more, err := s.ix.List(ctx, &page)
		if err != nil {
			return nil, false, err
		}
		runs := make([]uuid.UUID, len(entries))
		for i, e := range entries {
			runs[i] = e.RunID
		}
		free, err := s.claimable(ctx, runs)
		if err != nil {
			return nil, false, err
		}
		for _, e := range entries {
			if free[e.RunID] {
				out = append(out, e)
			}
		}
		if q.Limit > 0 && len(out) >= q.Limit {
			return out[:q.Limit], len(out) > q.Limit || more, nil
		}
		if !more {
			return out, false, nil
		}
		page.After, page.HasAfter = entries[len(entries)-1].Key(), true
	}
}

// Delete implements cairn.Store: the index tombstone, then the object.
func (s *Store) Delete(ctx context.Context, runID uuid.UUID) error {
	return s.DeleteWith(ctx, runID, nil)
}

// DeleteOptions configure DeleteWith. Nil means defaults.
type DeleteOptions struct {
	// Tombstoned, if set, is called once the Delete's tombstone is
	// committed (the run is deleted from then on, even if removing its
	// object then fails), with the run still locked against this store's
	// Writes of it, and before the object is removed. A cache dropped
	// there cannot be refilled by a Write that committed before the
	// Delete, nor miss one that commits after it; and when the Delete
	// fails before its tombstone, nothing was deleted and it is not
	// called. It must not call into this Store (the run's lock is held).
	Tombstoned func()
}

// DeleteWith is Delete, with opts (nil means none).
func (s *Store) DeleteWith(ctx context.Context, runID uuid.UUID, opts *DeleteOptions) error {
	ctx, sp := s.tel.Start(ctx, obs.Delete, runID)
	err := s.deleteWith(ctx, runID, opts)
	sp.End(err)
	return err
}

// deleteWith is DeleteWith.
func (s *Store) deleteWith(ctx context.Context, runID uuid.UUID, opts *DeleteOptions) error {
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	if err := s.writable(ctx); err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	unlock, err := s.lockRun(ctx, runID)
	if err != nil {
		return cairn.WrapOp("delete", runID, err)
	}
	defer unlock()
	var tombstoned func()
	if opts != nil {
		tombstoned = opts.Tombstoned
	}
	return cairn.WrapOp("delete", runID, s.deleteRun(ctx, runID, tombstoned))
}

// deleteRun deletes a run: a HEAD for the ETag of its object, the
// tombstone naming that ETag, then the object. The tombstone is the
// evidence that lets GC finish a Delete cut short, and only for that
// object: one written later (a Save whose commit was lost) has another
// ETag or a later time, and is never taken for dead (see dead). The caller
// holds the run's lock; tombstoned, if not nil, is called once the
// tombstone is committed.
func (s *Store) deleteRun(ctx context.Context, runID uuid.UUID, tombstoned func()) error {
	var etag string
	info, err := s.b.Head(ctx, s.runKey(runID))
	switch {
	case err == nil:
		etag = info.ETag
	case errors.Is(err, bucket.ErrNotFound), errors.Is(err, bucket.ErrUnreadable):
		// Nothing to name: no later object can be taken for this one.
	default:
		return classify(err)
	}
	tomb := index.Entry{RunID: runID, Timestamp: s.o.Now().UTC(), ETag: etag}
	if info != nil {
		// The epoch of the state deleted: at that epoch a delete wins
		// over another region's save (see the index's rules).
		tomb.Epoch = metaEpoch(info.Metadata)
	}
	if err := s.commit(ctx, index.Op{Entry: tomb, Delete: true}); err != nil {
		return err
	}
	if tombstoned != nil {
		tombstoned()
	}
	return classify(s.b.Delete(ctx, s.runKey(runID)))
}

// Close implements cairn.Store. Every Save and Delete has been durable
// since it returned; Close waits for a background compaction to end.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return cairn.WrapOp("close", uuid.Nil, cairn.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.ix.Wait()
		s.bg.mu.Lock()
		s.bg.cancel()
		s.bg.mu.Unlock()
		s.bg.wg.Wait()
		s.tel.Close()
		close(done)
	}()
	if err := closing.Wait(ctx, done); err != nil {
		return cairn.WrapOp("close", uuid.Nil, err)
	}
	return nil
}
