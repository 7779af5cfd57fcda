package durable

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/lru"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
)

// OffloadOptions turn on the offloading of large state values to
// content-addressed blobs (see "Blobs" in the package doc). Zero fields
// mean defaults.
type OffloadOptions struct {
	// Threshold: a top-level state value whose MessagePack encoding is at
	// least this many bytes is offloaded. Default 64 KiB; at least 4 KiB.
	Threshold int
}

// Offloading's fixed parameters.
const (
	// BlobEpoch is the span of a blob epoch (see "Blobs"). It is fixed,
	// not an option: every writer and GC of a bucket must agree on it.
	BlobEpoch = time.Hour
	// DefaultOffloadThreshold is OffloadOptions.Threshold's default.
	DefaultOffloadThreshold = 64 << 10
	// MinOffloadThreshold is the least OffloadOptions.Threshold.
	MinOffloadThreshold = 4 << 10
	// DefaultBlobCacheBytes is Options.BlobCacheBytes' default.
	DefaultBlobCacheBytes = 32 << 20
	// DefaultBlobGrace is GCOptions.BlobGrace's default.
	DefaultBlobGrace = 6 * time.Hour
	// MinBlobGrace is the least GCOptions.BlobGrace: four epochs, the
	// margin the safety argument of "Blobs" needs (an hour of clock skew,
	// two hours for a run object's PUT to land, one epoch of reuse).
	MinBlobGrace = 4 * BlobEpoch
)

// metaBlobs is the run object metadata key that says how many distinct
// blobs its record references; absent for none.
const metaBlobs = "cairn-blobs"

// maxKnownBlobs bounds the names of blobs known to exist: the set is
// emptied when it grows past it (a value then costs its chunks' PUTs once
// more).
const maxKnownBlobs = 1 << 16

// maxBlobObject bounds a blob's GET: a chunk of chunkMax bytes, zstd'd.
const maxBlobObject = chunkMax + chunkMax/64 + 1<<10

// blobs is a Store's offloading state.
type blobs struct {
	threshold int                  // 0: writes do not offload
	prefix    string               // "<prefix>/blobs/"
	cache     *lru.Cache[[32]byte] // nil: none
	sem       chan struct{}        // bounds the blob requests in flight

	mu struct {
		sync.Mutex
		known map[[32]byte]uint64 // name -> the latest epoch it exists in
	}

	put, bytesPut, reused, fetched, hits atomic.Int64
}

// initBlobs sets up s.blob from o, and returns what is wrong with it.
func (s *Store) initBlobs(o *Options) []error {
	var problems []error
	b := &s.blob
	b.prefix = "blobs/"
	if o.Prefix != "" {
		b.prefix = o.Prefix + "/blobs/"
	}
	b.sem = make(chan struct{}, max(o.Concurrency, 1))
	b.mu.known = map[[32]byte]uint64{}
	cacheBytes := o.BlobCacheBytes
	if cacheBytes == 0 {
		cacheBytes = DefaultBlobCacheBytes
	}
	if off := o.Offload; off != nil {
		b.threshold = off.Threshold
		switch {
		case b.threshold == 0:
			b.threshold = DefaultOffloadThreshold
		case b.threshold < MinOffloadThreshold:
			problems = append(problems, fmt.Errorf("Offload.Threshold %d under the minimum of %d", b.threshold, MinOffloadThreshold))
		}
	}
	if cacheBytes > 0 {
		c, err := lru.New(&lru.Options[[32]byte]{MaxBytes: cacheBytes})
		if err != nil {
			problems = append(problems, err)
		}
		b.cache = c
	}
	return problems
}

// blobEpochOf returns the blob epoch of t.
func blobEpochOf(t time.Time) uint64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return min(uint64(u)/uint64(BlobEpoch/time.Second), maxBlobEpoch)
}

// blobKey returns the key of the blob name in epoch.
func (s *Store) blobKey(epoch uint64, name [32]byte) string {
	return fmt.Sprintf("%s%010d/%s", s.blob.prefix, epoch, hex.EncodeToString(name[:]))
}

// parseBlobKey returns the epoch and name of a blob's key, false for a key
// that names none.
func (s *Store) parseBlobKey(key string) (uint64, [32]byte, bool) {
	var name [32]byte
	rest, ok := strings.CutPrefix(key, s.blob.prefix)
	if !ok || len(rest) != 10+1+64 || rest[10] != '/' {
		return 0, name, false
	}
	e, err := strconv.ParseUint(rest[:10], 10, 64)
	if err != nil {
		return 0, name, false
	}
	if n, err := hex.Decode(name[:], []byte(rest[11:])); err != nil || n != 32 || hex.EncodeToString(name[:]) != rest[11:] {
		return 0, name, false
	}
	return e, name, true
}

// reusable reports whether a blob of epoch may be referenced without a
// PUT at epoch now: it is at most one epoch old.
func reusable(epoch, now uint64) bool { return epoch+1 >= now }

// knownEpoch returns the latest epoch name is known to exist in.
func (s *Store) knownEpoch(name [32]byte) (uint64, bool) {
	s.blob.mu.Lock()
	defer s.blob.mu.Unlock()
	e, ok := s.blob.mu.known[name]
	return e, ok
}

// know records that the blob name exists in epoch.
func (s *Store) know(name [32]byte, epoch uint64) {
	s.blob.mu.Lock()
	defer s.blob.mu.Unlock()
	if len(s.blob.mu.known) >= maxKnownBlobs {
		clear(s.blob.mu.known)
	}
	if e, ok := s.blob.mu.known[name]; !ok || e < epoch {
		s.blob.mu.known[name] = epoch
	}
}

// blobRequest runs f with a slot of the blob requests in flight.
func (s *Store) blobRequest(ctx context.Context, f func() error) error {
	select {
	case s.blob.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.blob.sem }()
	return f()
}

// An offloaded record is what a Write stores of a record: rec, whose
// state values may be references to blobs (blobs distinct ones; 0 when
// nothing was offloaded).
type offloaded struct {
	rec   []byte
	blobs int
}

// offload returns the stored form of the record data: data itself when
// offloading is off or nothing in it is large enough, else the record
// with its large state values replaced by references, once every blob they
// name exists (the new ones PUT, in parallel) in an epoch still reusable
// by the clock. A failed PUT fails it.
func (s *Store) offload(ctx context.Context, data []byte) (offloaded, error) {
	th := s.blob.threshold
	if th == 0 || len(data) < th {
		return offloaded{rec: data}, nil
	}
	var vals []valueSpan
	if err := walkState(data, func(start, end int) error {
		if end-start >= th {
			vals = append(vals, valueSpan{start, end})
		}
		return nil
	}); err != nil || len(vals) == 0 {
		return offloaded{rec: data}, nil // Write stores what it is given as it is
	}
	refs := make([]blobRef, len(vals))
	bodies := map[[32]byte][]byte{}
	for i, v := range vals {
		val := data[v.start:v.end]
		h := containerHead(val)
		cs := chunks(val[h:])
		var tail []byte
		if len(cs) > 1 { // the last chunk stays inline (see blobExt)
			tail, cs = cs[len(cs)-1], cs[:len(cs)-1]
		}
		refs[i] = blobRef{total: len(val), head: val[:h:h], chunks: make([]chunkRef, len(cs)), tail: tail}
		for j, c := range cs {
			name := s.blobName(c)
			refs[i].chunks[j] = chunkRef{name: name, length: len(c)}
			bodies[name] = c
		}
	}
	if rec := s.rewrite(data, vals, refs); len(rec) >= len(data) {
		return offloaded{rec: data}, nil // never inflate
	}
	// Place every chunk in an epoch, reusing the ones known to exist in a
	// reusable epoch and putting the others; then check the clock again
	// before the caller's PUT of the run object, which only a chunk
	// placed within the last epoch may be referenced by (see "Blobs").
	// A Write that took more than an epoch goes round again.
	placed := map[[32]byte]uint64{}
	for attempt := 0; ; attempt++ {
		now := blobEpochOf(s.o.Now())
		var missing [][32]byte
		for name := range bodies {
			e, ok := placed[name]
			if !ok {
				e, ok = s.knownEpoch(name)
				if ok && reusable(e, now) {
					s.blob.reused.Add(1)
				}
			}
			if ok && reusable(e, now) {
				placed[name] = e
				continue
			}
			missing = append(missing, name)
		}
		if len(missing) == 0 {
			break
		}
		if attempt == 3 {
			return offloaded{}, fmt.Errorf("blobs of the record: the clock moved past their epoch %d times", attempt)
		}
		if err := s.putBlobs(ctx, now, missing, bodies); err != nil {
			return offloaded{}, err
		}
		for _, name := range missing {
			placed[name] = now
		}
	}
	for i := range refs {
		for j := range refs[i].chunks {
			refs[i].chunks[j].epoch = placed[refs[i].chunks[j].name]
		}
	}
	return offloaded{rec: s.rewrite(data, vals, refs), blobs: len(bodies)}, nil
}

// rewrite returns data with the values vals replaced by refs.
func (s *Store) rewrite(data []byte, vals []valueSpan, refs []blobRef) []byte {
	out := make([]byte, 0, len(data)/4)
	at := 0
	for i, v := range vals {
		out = appendRef(append(out, data[at:v.start]...), &refs[i])
		at = v.end
	}
	return append(out, data[at:]...)
}

// putBlobs PUTs the chunks names of bodies as blobs of epoch, in parallel.
func (s *Store) putBlobs(ctx context.Context, epoch uint64, names [][32]byte, bodies map[[32]byte][]byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(s.o.Concurrency, 1))
	for _, name := range names {
		g.Go(func() error {
			body := s.codec.Compress(nil, bodies[name])
			err := s.blobRequest(gctx, func() error {
				_, err := s.b.Put(gctx, s.blobKey(epoch, name), body, nil)
				return err
			})
			if err != nil {
				return fmt.Errorf("blob %s: %w", s.blobKey(epoch, name), classify(err))
			}
			s.blob.put.Add(1)
			s.blob.bytesPut.Add(int64(len(body)))
			s.know(name, epoch)
			return nil
		})
	}
	return g.Wait()
}

// blobRefs returns the references of rec, a stored record of the object
// key with metadata meta, checked against the metadata: an object whose
// metadata counts blobs holds references, and one with the summary in
// its metadata and no count holds none (GC protects the blobs of exactly
// those objects). An object without metadata (copied by a tool that
// dropped it) is taken as its record says.
func (s *Store) blobRefs(key string, meta map[string]string, rec []byte) ([]refSpan, error) {
	spans, err := findRefs(rec, s.codec.MaxSize())
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", key, err)
	}
	count, flagged := meta[metaBlobs]
	_, summarized := meta[metaTimestamp]
	switch {
	case flagged && len(spans) == 0:
		return nil, fmt.Errorf("%w: object %s: metadata counts %s blobs, the record references none", cairn.ErrCorrupt, key, count)
	case !flagged && summarized && len(spans) > 0:
		return nil, fmt.Errorf("%w: object %s: the record references blobs its metadata does not count", cairn.ErrCorrupt, key)
	}
	return spans, nil
}

// inline returns rec, the stored record of run's object key with metadata
// meta, with its references replaced by their values: the record written.
// Blobs come from the cache, else from the bucket in parallel (with
// fresh, from the bucket alone). A missing or damaged blob is ErrCorrupt.
func (s *Store) inline(ctx context.Context, run uuid.UUID, key string, meta map[string]string, rec []byte, fresh bool) ([]byte, error) {
	spans, err := s.blobRefs(key, meta, rec)
	if err != nil || len(spans) == 0 {
		return rec, err
	}
	return s.assemble(ctx, run, rec, spans, fresh)
}

// assemble is inline of references already found.
func (s *Store) assemble(ctx context.Context, run uuid.UUID, rec []byte, spans []refSpan, fresh bool) ([]byte, error) {
	want := map[[32]byte]chunkRef{}
	for _, sp := range spans {
		for _, c := range sp.ref.chunks {
			if w, ok := want[c.name]; ok && w.length != c.length {
				return nil, fmt.Errorf("%w: run %v: blob %x referenced with lengths %d and %d", cairn.ErrCorrupt, run, c.name, w.length, c.length)
			}
			want[c.name] = c
		}
	}
	var mu sync.Mutex
	got := make(map[[32]byte][]byte, len(want))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(s.o.Concurrency, 1)) // a goroutine per request in flight, however many blobs
	for name, c := range want {
		g.Go(func() error {
			b, err := s.fetchBlob(gctx, run, c, fresh)
			if err != nil {
				return err
			}
			mu.Lock()
			got[name] = b
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return splice(rec, spans, func(c chunkRef) []byte { return got[c.name] })
}

// fetchBlob returns the chunk c of run's record: from the cache (unless
// fresh), else read from the bucket, checked and cached.
func (s *Store) fetchBlob(ctx context.Context, run uuid.UUID, c chunkRef, fresh bool) ([]byte, error) {
	if s.blob.cache != nil && !fresh {
		if e, ok := s.blob.cache.Get(c.name); ok && len(e.Value) == c.length {
			s.blob.hits.Add(1)
			s.know(c.name, c.epoch)
			return e.Value, nil
		}
	}
	key := s.blobKey(c.epoch, c.name)
	var obj *bucket.Object
	err := s.blobRequest(ctx, func() (err error) {
		obj, err = s.b.Get(ctx, key, &bucket.GetOptions{MaxSize: maxBlobObject})
		return err
	})
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return nil, fmt.Errorf("%w: run %v: blob %s is missing", cairn.ErrCorrupt, run, key)
	case errors.Is(err, bucket.ErrTooLarge):
		return nil, fmt.Errorf("%w: run %v: blob %s: %w", cairn.ErrCorrupt, run, key, err)
	case err != nil:
		return nil, fmt.Errorf("run %v: blob %s: %w", run, key, classify(err))
	}
	s.blob.fetched.Add(1)
	b, err := s.decodeBlob(obj.Body, c)
	if err != nil {
		return nil, fmt.Errorf("%w: run %v: blob %s: %w", cairn.ErrCorrupt, run, key, err)
	}
	s.know(c.name, c.epoch)
	if s.blob.cache != nil {
		s.blob.cache.Put(c.name, lru.Entry{Value: b})
	}
	return b, nil
}

// blobDecoder inflates blobs, refusing more than a chunk's worth.
var blobDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(1<<20), zstd.WithDecoderMaxWindow(1<<20))
})

// zstdMagic begins a zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// decodeBlob returns the chunk c from a blob's body: a zstd frame (or the
// bare chunk, as a store with an uncompressed codec writes it) of exactly
// c.length bytes whose name is c's.
func (s *Store) decodeBlob(body []byte, c chunkRef) ([]byte, error) {
	if bytes.HasPrefix(body, zstdMagic) {
		var h zstd.Header
		if err := h.Decode(body); err == nil && (!h.HasFCS || h.FrameContentSize == uint64(c.length)) {
			if dec, err := blobDecoder(); err == nil {
				b, err := dec.DecodeAll(body, make([]byte, 0, c.length))
				if err == nil && len(b) == c.length && s.blobNamed(b, c.name) {
					return b, nil
				}
			}
		}
	}
	if len(body) == c.length && s.blobNamed(body, c.name) {
		return body, nil
	}
	return nil, fmt.Errorf("not the chunk of %d bytes its name says", c.length)
}

// gcBlobs deletes (unless dry) the blobs of the epochs that ended grace
// (at least MinBlobGrace) before t0 that no run object references, and
// returns their keys, sorted. t0 was taken before anything was listed.
// Any error before the deletions deletes nothing.
func (s *Store) gcBlobs(ctx context.Context, t0 time.Time, grace time.Duration, dry bool) ([]string, error) {
	if grace == 0 {
		grace = DefaultBlobGrace
	}
	// Epochs before end ended at or before t0 - grace; end <= E(t0) - 4,
	// so the newest epoch collected is at most E(t0) - 5 (see "Blobs").
	end := blobEpochOf(t0.Add(-max(grace, MinBlobGrace)))
	var old []string
	for start := ""; end > 0; {
		infos, more, err := s.b.List(ctx, s.blob.prefix, start, 1000)
		if err != nil {
			return nil, classify(err)
		}
		for _, in := range infos {
			e, _, ok := s.parseBlobKey(in.Key)
			if !ok {
				continue // not a blob's key: never deleted
			}
			if e >= end {
				more = false // keys sort by epoch: none older follows
				break
			}
			old = append(old, in.Key)
		}
		if !more || len(infos) == 0 {
			break
		}
		start = infos[len(infos)-1].Key
	}
	if len(old) == 0 {
		return nil, nil
	}
	live, err := s.referencedBlobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("blobs (none deleted): %w", err)
	}
	var doomed []string
	for _, k := range old {
		if !live[k] {
			doomed = append(doomed, k)
		}
	}
	if dry {
		return doomed, nil
	}
	for i, k := range doomed {
		if err := s.b.Delete(ctx, k); err != nil {
			return doomed[:i], fmt.Errorf("blob %s: %w", k, classify(err))
		}
	}
	return doomed, nil
}

// referencedBlobs returns the keys of the blobs that the run objects
// reference, read from every object whose metadata counts blobs, or has
// no summary (copied without it). An object that cannot be listed, read
// or decoded is an error: GC deletes blobs on positive evidence only.
func (s *Store) referencedBlobs(ctx context.Context) (map[string]bool, error) {
	objs, err := s.listRuns(ctx, func(string) {})
	if err != nil {
		return nil, classify(err)
	}
	var mu sync.Mutex
	live := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	for _, o := range objs {
		g.Go(func() error {
			key := s.runKey(o.id)
			info, err := s.b.Head(gctx, key)
			if errors.Is(err, bucket.ErrNotFound) {
				return nil // deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("run %v: %w", o.id, classify(err))
			}
			_, flagged := info.Metadata[metaBlobs]
			if _, summarized := info.Metadata[metaTimestamp]; summarized && !flagged {
				return nil
			}
			obj, err := s.b.Get(gctx, key, &bucket.GetOptions{MaxSize: s.maxObject()})
			switch {
			case errors.Is(err, bucket.ErrNotFound):
				return nil
			case errors.Is(err, bucket.ErrTooLarge):
				err = fmt.Errorf("%w: %w", cairn.ErrCorrupt, err)
			}
			if err != nil {
				return fmt.Errorf("run %v: %w", o.id, classify(err))
			}
			rec, err := s.codec.Decompress(obj.Body)
			if err != nil {
				return fmt.Errorf("run %v: %w", o.id, err)
			}
			spans, err := s.blobRefs(key, obj.Metadata, rec)
			if err != nil {
				return fmt.Errorf("run %v: %w", o.id, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, sp := range spans {
				for _, c := range sp.ref.chunks {
					live[s.blobKey(c.epoch, c.name)] = true
				}
			}
			return nil
		})
	}
	return live, g.Wait()
}
