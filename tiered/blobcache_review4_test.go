package tiered_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// review4BlobHits saves n runs of one 256 KiB offloaded value each through
// a store built with o, loads them all twice from a second store of the
// same options (so that the reads go through its blob cache, not its
// record cache alone), the second time in reverse order, and returns the
// second store's blob cache hits.
func review4BlobHits(t *testing.T, o tiered.Options, n int) int64 {
	t.Helper()
	ctx := context.Background()
	mem := bucket.NewMem()
	o.Durable.Offload = &durable.OffloadOptions{}
	w, err := tiered.New(mem, &o)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for i := range n {
		c := &cairn.Checkpoint{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Unix(int64(1e9+i), 0).UTC(),
			State: map[string]any{"v": review3Text(256 << 10)}}
		if err := w.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.RunID)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The reader caches no records, so every Load reads the run object
	// and its blobs.
	ro := o
	ro.CacheBytes = 1
	if o.Durable.BlobCacheBytes == 0 {
		// Keep the blob cache of the options under test, not half of 1.
		ro.Durable.BlobCacheBytes = o.CacheBytes / 2
		if o.CacheBytes == 0 {
			ro.Durable.BlobCacheBytes = 0
		}
	}
	r, err := tiered.New(mem, &ro)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	// A second round in reverse order finds what the cache kept of the
	// first: the last runs loaded first.
	for round := range 2 {
		for i := range ids {
			id := ids[i]
			if round == 1 {
				id = ids[len(ids)-1-i]
			}
			if _, err := r.Load(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r.Durable().Stats().BlobCacheHits
}

// A tiered store's blob cache is half its CacheBytes unless
// Durable.BlobCacheBytes is set: with 2 MiB of cache, a second round of
// Loads over 10 MiB of blobs finds some, and at most 1 MiB of them,
// cached; with
// BlobCacheBytes negative, none; and a CacheBytes of 1 byte (half of it
// rounds to zero) means no blob cache, not the 32 MiB default.
func TestReview4TieredBlobCacheIsHalfCacheBytes(t *testing.T) {
	const chunk = 8 << 10 // the least chunk that is not a value's last
	t.Run("half of CacheBytes", func(t *testing.T) {
		hits := review4BlobHits(t, tiered.Options{Durable: testDurable(), CacheBytes: 2 << 20}, 40)
		if hits == 0 {
			t.Fatal("no blob cache hits: the cache is not there at all")
		}
		if hits*chunk > 1<<20 {
			t.Errorf("%d hits: at least %d B retained, over half of CacheBytes (1 MiB)", hits, hits*chunk)
		}
	})
	t.Run("BlobCacheBytes negative", func(t *testing.T) {
		o := tiered.Options{Durable: testDurable(), CacheBytes: 64 << 20}
		o.Durable.BlobCacheBytes = -1
		if hits := review4BlobHits(t, o, 8); hits != 0 {
			t.Errorf("%d blob cache hits with BlobCacheBytes -1", hits)
		}
	})
	t.Run("CacheBytes of one byte", func(t *testing.T) {
		ctx := context.Background()
		o := tiered.Options{Durable: testDurable(), CacheBytes: 1}
		o.Durable.Offload = &durable.OffloadOptions{}
		s, err := tiered.New(bucket.NewMem(), &o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		c := &cairn.Checkpoint{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Unix(1e9, 0).UTC(),
			State: map[string]any{"v": review3Text(256 << 10)}}
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := s.Load(ctx, c.RunID); err != nil {
				t.Fatal(err)
			}
		}
		if hits := s.Durable().Stats().BlobCacheHits; hits != 0 {
			t.Errorf("%d blob cache hits with CacheBytes 1 (half of it is no cache)", hits)
		}
	})
}
