package durable_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/tiered"
)

// maxGetBucket records the largest body a raw Get returned.
type maxGetBucket struct {
	bucket.Bucket
	mu      sync.Mutex
	maxBody int
	maxAsk  int64
}

func (m *maxGetBucket) Get(ctx context.Context, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	obj, err := m.Bucket.Get(ctx, key, opts)
	m.mu.Lock()
	defer m.mu.Unlock()
	if opts != nil && opts.MaxSize > m.maxAsk {
		m.maxAsk = opts.MaxSize
	}
	if err == nil && len(obj.Body) > m.maxBody {
		m.maxBody = len(obj.Body)
	}
	return obj, err
}

// Review: a hostile run object must not make the store read more than
// its own read bound (what Load allows: the codec's MaxSize, compressed,
// plus slack, plus seal.Overhead). Someone with write access keeps the
// object's valid cairn-seal (so the data key opens), sets
// cairn-sealed-meta to "-" and replaces the body with 24 MiB: Exists (and
// Reindex, which HEADs every object) then reads up to seal.MaxHeadFallback
// (64 MiB) per object, four times what Load would ever read, before
// refusing it.
func TestReviewHeadFallbackWithinReadBound(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	raw := &maxGetBucket{Bucket: mem}
	kr := sealRing(t, sealKey(t, "k1"))
	s := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr})
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	key := "p/runs/" + c.RunID.String()
	info, err := mem.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"cairn-seal": info.Metadata["cairn-seal"], "cairn-sealed-meta": "-"}
	if _, err := mem.Put(ctx, key, make([]byte, 24<<20), &bucket.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	codecMax := int64(cairn.DefaultCodec().MaxSize())
	bound := codecMax + codecMax/64 + 64<<10 + int64(seal.Overhead)
	raw.maxBody, raw.maxAsk = 0, 0
	_, err = s.Exists(ctx, c.RunID)
	if _, lerr := s.Load(ctx, c.RunID); !errors.Is(lerr, cairn.ErrCorrupt) {
		t.Errorf("Load of the hostile object: %v, want ErrCorrupt", lerr)
	}
	if raw.maxBody > int(bound) || raw.maxAsk > bound {
		t.Errorf("Exists (err %v) read a body of %d bytes (asked MaxSize %d); the store's read bound is %d", err, raw.maxBody, raw.maxAsk, bound)
	}
}

// Review (holds): a lease holder, and tiered stores with Fencing in both
// modes, carry on across a rekey of the objects they hold: the rekey
// keeps ETags on the memory bucket, so their conditional writes succeed,
// and afterwards everything opens with the new key alone.
func TestReviewLeaseAndFencingSurviveRekey(t *testing.T) {
	ctx := context.Background()
	raw := bucket.NewMem()
	k1, k2 := sealKey(t, "k1"), sealKey(t, "k2")
	old := sealRing(t, k1)
	rotated, err := old.Rotate(k2)
	if err != nil {
		t.Fatal(err)
	}
	w := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: old})
	leased, fencedThrough, fencedBack := cp(1, t0), cp(2, t0), cp(3, t0)
	for _, c := range []*cairn.Checkpoint{leased, fencedThrough, fencedBack} {
		if err := w.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	h := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: rotated})
	l, err := h.Claim(ctx, leased.RunID, &cairn.ClaimOptions{Owner: "holder", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	open := func(mode tiered.Mode) *tiered.Store {
		ts, err := tiered.New(raw, &tiered.Options{Mode: mode, Fencing: true, FlushWindow: time.Hour,
			Durable: durable.Options{Prefix: "p", Index: smallIndex, Keyring: rotated}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts.Close(context.Background()) })
		return ts
	}
	through, back := open(tiered.WriteThrough), open(tiered.WriteBack)
	if _, err := through.Load(ctx, fencedThrough.RunID); err != nil {
		t.Fatal(err)
	}
	if _, err := back.Load(ctx, fencedBack.RunID); err != nil {
		t.Fatal(err)
	}
	// Rekey everything the old key sealed while they hold their ETags.
	if rep, err := seal.Rekey(ctx, raw, rotated, "p", nil); err != nil || rep.Resealed == 0 {
		t.Fatalf("Rekey = %+v, %v", rep, err)
	}
	next := func(c *cairn.Checkpoint) *cairn.Checkpoint {
		n := *c
		n.Timestamp = c.Timestamp.Add(time.Minute)
		n.State = map[string]any{"after": "rekey"}
		return &n
	}
	if err := h.SaveLeased(ctx, l, next(l.Checkpoint)); err != nil {
		t.Errorf("SaveLeased after rekey: %v", err)
	}
	if err := h.Renew(ctx, l); err != nil {
		t.Errorf("Renew after rekey: %v", err)
	}
	if err := through.Save(ctx, next(fencedThrough)); err != nil {
		t.Errorf("fenced write-through Save after rekey: %v", err)
	}
	if err := back.Save(ctx, next(fencedBack)); err != nil {
		t.Errorf("fenced write-back Save after rekey: %v", err)
	}
	if err := back.Flush(ctx); err != nil {
		t.Errorf("fenced write-back Flush after rekey: %v", err)
	}
	if err := h.Release(ctx, l); err != nil {
		t.Errorf("Release after rekey: %v", err)
	}
	// The old key retired: every run holds its post-rekey state.
	retired, err := rotated.Retire("k1")
	if err != nil {
		t.Fatal(err)
	}
	r := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: retired})
	for _, c := range []*cairn.Checkpoint{leased, fencedThrough, fencedBack} {
		got, err := r.Load(ctx, c.RunID)
		if err != nil || got.State["after"] != "rekey" {
			t.Errorf("Load %v with the new key alone: %v, %v", c.RunID, got, err)
		}
	}
	if bad, err := seal.Verify(ctx, raw, retired, "p", 2); err != nil || len(bad) > 0 {
		t.Errorf("Verify with the new key alone: %v, %v", bad, err)
	}
}
