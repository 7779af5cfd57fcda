package durable_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// epochLog is a Mem that logs, in the bucket's order, the lease epoch
// stamped in every run object written.
type epochLog struct {
	*bucket.Mem
	mu     sync.Mutex
	epochs []uint64
	saves  []bool // the write was a SaveLeased (its state names its epoch), not a claim's rewrite
}

func (b *epochLog) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	etag, err := b.Mem.Put(ctx, key, body, o)
	if err == nil && strings.Contains(key, "/runs/") {
		codec := cairn.DefaultCodec()
		rec, derr := codec.Decompress(body)
		if derr == nil {
			if c, derr := codec.DecodeRecord(rec); derr == nil {
				e := cairn.LeaseEpoch(c.Metadata)
				b.epochs = append(b.epochs, e)
				se, _ := c.State["e"].(int64)
				b.saves = append(b.saves, uint64(se) == e)
			}
		}
	}
	return etag, err
}

// Fencing by epoch, with real clocks and no injected pauses: workers in
// separate stores on one bucket claim one run with leases of a few
// milliseconds (so that takeovers happen while claims are in flight),
// save under their leases, renew, release or walk away. Once a write
// stamped with epoch e reached the bucket, no write stamped with a lower
// epoch may follow: the epoch orders the owners.
func TestReviewStressEpochsNeverGoBack(t *testing.T) {
	ctx := context.Background()
	b := &epochLog{Mem: bucket.NewMem()}
	setup := newStore(t, b, nil)
	c := cp(1, t0)
	if err := setup.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	const workers = 4
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for w := range workers {
		s := newStore(t, b, &durable.Options{Prefix: "cairn", Index: smallIndex})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for step := 0; time.Now().Before(deadline); step++ {
				l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: fmt.Sprint("w", w), Lease: time.Duration(1+rng.IntN(3)) * time.Millisecond})
				if err != nil {
					time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					continue
				}
				for range rng.IntN(4) {
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
					next := cp(1, t0.Add(time.Duration(step)*time.Millisecond))
					next.State["e"] = int64(l.Epoch)
					if s.SaveLeased(ctx, l, next) != nil {
						break
					}
					if rng.IntN(3) == 0 {
						_ = s.Renew(ctx, l)
					}
				}
				if rng.IntN(2) == 0 {
					_ = s.Release(ctx, l)
				}
			}
		})
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	var high uint64
	back, backSaves := 0, 0
	for i, e := range b.epochs {
		if e < high {
			kind := "a claim's rewrite"
			if b.saves[i] {
				kind = "a SaveLeased"
				backSaves++
			}
			if back < 5 {
				t.Errorf("write %d of the run (%s) is stamped with epoch %d after a write of epoch %d", i, kind, e, high)
			}
			back++
		}
		high = max(high, e)
	}
	t.Logf("%d writes, highest epoch %d, %d went back (%d of them SaveLeased)", len(b.epochs), high, back, backSaves)
}
