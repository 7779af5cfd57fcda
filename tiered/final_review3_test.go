package tiered_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

func review3Text(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// The README's Memory section says a store's memory is bounded by
// CacheBytes, MaxDirtyBytes and FlushConcurrency, and MemoryPreset(limit)
// gives the cache an eighth of limit. With Offload on, durable's blob
// cache (OffloadOptions.CacheBytes, 32 MiB by default) holds blobs on top
// of that, and MemoryPreset leaves it at 32 MiB whatever the limit: for a
// 16 MiB function, the blob cache alone keeps well over the eighth of
// the limit the preset meant for caching (here, every chunk of 10 MiB of
// state, as the hits of a second round of Loads show).
func TestReview3MemoryPresetBoundsTheBlobCache(t *testing.T) {
	ctx := context.Background()
	const limit = 16 << 20
	o := tiered.MemoryPreset(limit)
	o.Durable = testDurable()
	o.Durable.Offload = &durable.OffloadOptions{}
	s, err := tiered.New(bucket.NewMem(), &o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var ids []uuid.UUID
	for i := range 40 {
		c := &cairn.Checkpoint{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Unix(int64(1e9+i), 0).UTC(),
			State: map[string]any{"v": review3Text(256 << 10)}}
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.RunID)
	}
	for range 2 {
		for _, id := range ids {
			if _, err := s.Load(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := s.Durable().Stats()
	retained := st.BlobCacheHits * 8 << 10 // a chunk other than a value's last is at least 8 KiB
	t.Logf("preset cache %d B; blob cache hits %d, fetched %d: at least %d B of blobs retained", o.CacheBytes, st.BlobCacheHits, st.BlobsFetched, retained)
	if retained > o.CacheBytes {
		t.Fatalf("MemoryPreset(%d) caches %d B of records, but the blob cache kept at least %d B more", limit, o.CacheBytes, retained)
	}
}

// Two processes, both write-back, fenced, revalidating, sealed and
// offloading, take turns on one run with large values: each Load sees the
// other's latest Save, a Save after that Load is not refused as a
// conflict, and a Delete then a Save of the same run with an old large
// value (whose blobs the writer knows it PUT before) loads back whole in
// the other process.
func TestReview3TwoProcessesSealedOffloadedFenced(t *testing.T) {
	ctx := context.Background()
	k, err := seal.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	raw := bucket.NewMem()
	open := func() *tiered.Store {
		o := tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, Fencing: true, Revalidate: true}
		o.Durable = testDurable()
		o.Durable.Keyring = kr
		o.Durable.Offload = &durable.OffloadOptions{Threshold: 16 << 10}
		s, err := tiered.New(raw, &o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(ctx) })
		return s
	}
	a, b := open(), open()
	id := uuid.New()
	ts := time.Unix(1e9, 0).UTC()
	save := func(s *tiered.Store, v string) {
		t.Helper()
		ts = ts.Add(time.Second)
		if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "w", RunID: id, Timestamp: ts, State: map[string]any{"v": v, "n": int64(len(v))}}); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	load := func(s *tiered.Store, want string) {
		t.Helper()
		c, err := s.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if got, _ := c.State["v"].(string); got != want {
			t.Fatalf("Load gave a value of %d bytes, want the %d-byte one last saved", len(got), len(want))
		}
	}
	v1, v2 := review3Text(300<<10), review3Text(200<<10)
	v3 := v1 + review3Text(10<<10) // grown: shares v1's chunks
	save(a, v1)
	load(b, v1)
	save(b, v2)
	load(a, v2)
	save(a, v3)
	load(b, v3)
	if err := b.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, id); err == nil {
		t.Fatal("Load after the other process's Delete found the run")
	}
	save(a, v1)
	load(b, v1)
	load(a, v1)
}
