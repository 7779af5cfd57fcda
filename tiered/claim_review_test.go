package tiered_test

// Claims and leases in the tiered store: cases found by review.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The conformance suite with fencing and revalidation on, which change
// how Saves are conditioned and what a Load keeps: leases must hold the
// same in every mode.
func TestConformanceFenced(t *testing.T) {
	for name, o := range map[string]tiered.Options{
		"WriteThrough": {Fencing: true, Revalidate: true},
		"WriteBack":    {Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond, Fencing: true, Revalidate: true},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) cairn.Store { return open(t, bucket.NewMem(), &o) })
		})
	}
}

// lostAnswer is a Mem whose next run-object Put, once armed, lands but
// answers with an error (a timeout after the write reached the server).
type lostAnswer struct {
	*bucket.Mem
	armed atomic.Bool
}

func (b *lostAnswer) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	etag, err := b.Mem.Put(ctx, key, body, o)
	if err == nil && strings.Contains(key, "/runs/") && b.armed.CompareAndSwap(true, false) {
		return "", &bucket.Error{Op: "put", Key: key, Err: context.DeadlineExceeded}
	}
	return etag, err
}

// Write-back: a flush whose leased PUT landed but whose answer was lost
// keeps the run dirty and retries, as it should; but the retry is
// conditional on the version before the lost write, so it fails, and the
// flush treats it as a takeover: the holder's newer, acknowledged
// SaveLeased is dropped, Flush reports ErrConflict, and the lease is dead,
// though no other worker wrote or claimed the run. (Package doc: "a
// failed flush keeps the runs dirty and retries them".)
func TestReviewWriteBackLeasedFlushAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	b := &lostAnswer{Mem: bucket.NewMem()}
	s := open(t, b, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, id, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveLeased(ctx, l, cp(id, 2)); err != nil {
		t.Fatal(err)
	}
	b.armed.Store(true)
	if err := s.Flush(ctx); err == nil {
		t.Fatal("Flush with its PUT's answer lost: nil, want the error")
	}
	if err := s.SaveLeased(ctx, l, cp(id, 3)); err != nil {
		t.Fatalf("SaveLeased after a failed flush: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Errorf("retried Flush (nobody else wrote or claimed the run): %v, want nil", err)
	}
	got, err := newDurable(t, b.Mem).Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State["step"] != int64(3) {
		t.Errorf("durable state after the retried flush: step %v, want 3 (the acknowledged SaveLeased)", got.State["step"])
	}
}

// Options.Fencing: "every write of a run conditional on the ETag this
// store last saw for it (from its own write or a Load)". A Claim's
// rewrite of the run is this store's own write, but Claim makes the fence
// forget the run: the store's next plain Save of it is conditional on the
// run not existing, fails with ErrConflict though nobody else wrote it,
// and (write-back) fences the run until it is Loaded again.
func TestReviewFencedSaveAfterOwnClaim(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []tiered.Mode{tiered.WriteThrough, tiered.WriteBack} {
		s := open(t, bucket.NewMem(), &tiered.Options{Mode: mode, FlushWindow: time.Hour, Fencing: true})
		id := uuid.New()
		if err := s.Save(ctx, cp(id, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := s.Claim(ctx, id, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
		err = s.Save(ctx, cp(id, 2))
		if err == nil {
			err = s.Flush(ctx)
		}
		if err != nil {
			t.Errorf("mode %d: plain Save after this store's own Claim and Release (nobody else wrote the run): %v, want nil", mode, err)
		}
	}
}
