package durable

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/google/uuid"
)

// The blob cache stays within Options.BlobCacheBytes, measured on the
// cache itself, while far more blob bytes than that are loaded, and a
// cache smaller than a chunk still serves every Load.
func TestReview3BlobCacheWithinCacheBytes(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int64{4 << 10, 256 << 10} {
		s, err := New(bucket.NewMem(), &Options{Prefix: "p", Offload: &OffloadOptions{Threshold: 16 << 10}, BlobCacheBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		var ids []uuid.UUID
		for i := range 12 {
			b := make([]byte, 100<<10)
			_, _ = rand.Read(b)
			c := &cairn.Checkpoint{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Unix(int64(1e9+i), 0).UTC(),
				State: map[string]any{"v": hex.EncodeToString(b)}} // 200 KiB each: 2.4 MB in all
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.RunID)
		}
		for round := range 2 {
			for _, id := range ids {
				if _, err := s.Load(ctx, id); err != nil {
					t.Fatalf("CacheBytes %d, round %d: %v", limit, round, err)
				}
				if got := s.blob.cache.Bytes(); got > limit {
					t.Fatalf("CacheBytes %d: the blob cache holds %d bytes", limit, got)
				}
			}
		}
		if s.blob.fetched.Load() == 0 {
			t.Fatalf("CacheBytes %d: no blob fetched", limit)
		}
		_ = s.Close(ctx)
	}
}
