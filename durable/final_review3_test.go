package durable_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
)

// review3Sealed returns a store over mem sealed with kr (nil: unsealed),
// offloading values of 16 KiB and more.
func review3Sealed(t *testing.T, mem bucket.Bucket, kr *seal.Keyring) *durable.Store {
	t.Helper()
	return newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Keyring: kr,
		Offload: &durable.OffloadOptions{Threshold: 16 << 10}})
}

// Every error a sealed store gives to a process holding the wrong keyring
// (or none) reads "index damaged; rebuild it from the run objects with
// Reindex", and `cairn verify` adds "(reindex rebuilds it from the
// objects; nothing is lost)". A user who follows that advice with the same
// wrong keyring must not break the store for the processes that hold the
// right one: Reindex cannot read a single run object, so it has no
// evidence to build an index from. Today it commits an empty index sealed
// with the wrong key (or not sealed at all), and every List of the right
// keyring then fails with ErrCorrupt until someone runs Reindex again
// with the right keyring.
func TestReview3ReindexWithWrongKeyringKeepsStoreListable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrong func(t *testing.T) *seal.Keyring
	}{
		{"another keyring", func(t *testing.T) *seal.Keyring { return sealRing(t, sealKey(t, "other")) }},
		{"no keyring", func(*testing.T) *seal.Keyring { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := bucket.NewMem()
			right := sealRing(t, sealKey(t, "k1"))
			s := review3Sealed(t, mem, right)
			var want []*cairn.Checkpoint
			for i := 1; i <= 3; i++ {
				c := cp(i, t0)
				c.State = map[string]any{"big": compressible(40 << 10), "i": int64(i)}
				if err := s.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
				want = append(want, c)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}

			w := review3Sealed(t, mem, tc.wrong(t))
			if _, err := w.List(ctx, nil); err == nil {
				t.Fatal("List with the wrong keyring succeeded")
			}
			rep, err := w.Reindex(ctx, nil)
			t.Logf("Reindex with the wrong keyring: err=%v report=%+v", err, rep)
			_ = w.Close(ctx)

			r := review3Sealed(t, mem, right)
			next := cp(9, t0)
			next.State = map[string]any{"big": compressible(40 << 10)}
			if err := r.Save(ctx, next); err != nil {
				t.Errorf("Save with the right keyring after a Reindex with the wrong one: %v", err)
			} else {
				want = append(want, next)
			}
			page, err := r.List(ctx, nil)
			if err != nil {
				t.Fatalf("List with the right keyring after a Reindex with the wrong one: %v (ErrCorrupt: %v)",
					err, errors.Is(err, cairn.ErrCorrupt))
			}
			if len(page.Runs) != len(want) {
				t.Fatalf("List with the right keyring: %d runs, want %d", len(page.Runs), len(want))
			}
			for _, c := range want {
				checkLoads(t, r, c)
			}
		})
	}
}

// The same advice, followed by GC with the wrong keyring: it must delete
// nothing the right keyring needs (no run object, no blob), whatever it
// could not read.
func TestReview3GCWithWrongKeyringDeletesNothing(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	clk := &blobClock{t: t0}
	right := sealRing(t, sealKey(t, "k1"))
	o := &durable.Options{Prefix: "cairn", Index: smallIndex, Keyring: right, Now: clk.Now,
		Offload: &durable.OffloadOptions{Threshold: 16 << 10}}
	s := newStore(t, mem, o)
	c := cp(1, t0)
	c.State = map[string]any{"big": randomText(200 << 10)}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	before := len(blobKeys(t, mem))
	clk.Advance(48 * 60 * 60 * 1e9) // two days: every blob is past its grace
	wo := *o
	wo.Keyring = sealRing(t, sealKey(t, "other"))
	w := newStore(t, mem, &wo)
	_, _ = w.Reindex(ctx, nil)
	rep, err := w.GC(ctx, nil)
	t.Logf("GC with the wrong keyring: err=%v report=%+v", err, rep)
	_ = w.Close(ctx)
	if after := len(blobKeys(t, mem)); after != before {
		t.Fatalf("GC with the wrong keyring left %d of %d blobs", after, before)
	}
	ro := *o
	r := newStore(t, mem, &ro)
	checkLoads(t, r, c)
}
