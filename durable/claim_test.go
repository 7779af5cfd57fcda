package durable_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// claimKey is where a store with the default test prefix keeps run n's
// claim.
func claimKey(c *cairn.Checkpoint) string { return "cairn/claims/" + c.RunID.String() }

// A damaged claim object (not JSON, another run's, or too large to read)
// holds nothing: Claimable lists the run and a Claim replaces it.
func TestClaimReplacesDamagedClaim(t *testing.T) {
	ctx := context.Background()
	for name, body := range map[string][]byte{
		"garbage":   []byte("\x00not json"),
		"other run": []byte(`{"run":"00000000-0000-4000-8000-000000000001","owner":"x","epoch":9,"expires":"2999-01-01T00:00:00Z"}`),
		"too large": bytes.Repeat([]byte("x"), 64<<10),
	} {
		t.Run(name, func(t *testing.T) {
			mem := bucket.NewMem()
			s := newStore(t, mem, nil)
			c := cp(1, t0)
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := mem.Put(ctx, claimKey(c), body, nil); err != nil {
				t.Fatal(err)
			}
			page, err := s.List(ctx, &cairn.ListOptions{Claimable: true})
			if err != nil || len(page.Runs) != 1 {
				t.Fatalf("Claimable List over a damaged claim: %v, %v; want the run", page, err)
			}
			l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w"})
			if err != nil {
				t.Fatalf("Claim over a damaged claim: %v", err)
			}
			if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "v"}); !errors.Is(err, cairn.ErrClaimed) {
				t.Errorf("second Claim: %v, want ErrClaimed", err)
			}
			if err := s.SaveLeased(ctx, l, cp(1, t0.Add(time.Second))); err != nil {
				t.Errorf("SaveLeased: %v", err)
			}
		})
	}
}

// Epochs keep growing when the claim objects are lost: the run's record
// carries the last epoch that wrote it.
func TestClaimEpochSurvivesLostClaims(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 3 {
		l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w"})
		if err != nil {
			t.Fatal(err)
		}
		if l.Epoch <= last {
			t.Fatalf("claim %d: epoch %d after %d", i, l.Epoch, last)
		}
		last = l.Epoch
		if err := s.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := mem.Delete(ctx, claimKey(c)); err != nil {
			t.Fatal(err)
		}
	}
}

// A Claim that fails after it took the claim (its rewrite of the run
// failed) releases it: the run is claimable at once, not after the lease.
func TestClaimFailedFenceReleases(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	fail.Store(true)
	boom := errors.New("injected: the run's rewrite fails")
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/runs/") && fail.Load() {
			return boom
		}
		return nil
	})
	if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour}); !errors.Is(err, boom) {
		t.Fatalf("Claim whose rewrite fails: %v, want the injected error", err)
	}
	fail.Store(false)
	if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "v", Lease: time.Hour}); err != nil {
		t.Fatalf("Claim after a failed one: %v, want the run claimable at once", err)
	}
}

// The lease is judged by the store's clock (Options.Now): a lease past its
// end is claimable, and the old holder is fenced.
func TestClaimExpiresByClock(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	open := func() *durable.Store {
		return newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clock})
	}
	a, b := open(), open()
	c := cp(1, t0)
	if err := a.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	la, err := a.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "a", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now.Add(int64(59 * time.Minute))
	if _, err := b.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "b"}); !errors.Is(err, cairn.ErrClaimed) {
		t.Fatalf("Claim a minute before the lease ends: %v, want ErrClaimed", err)
	}
	now.Add(int64(2 * time.Minute))
	lb, err := b.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "b"})
	if err != nil {
		t.Fatalf("Claim after the lease ended: %v", err)
	}
	if err := a.SaveLeased(ctx, la, cp(1, t0.Add(time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("old holder's SaveLeased: %v, want ErrConflict", err)
	}
	if err := b.SaveLeased(ctx, lb, cp(1, t0.Add(2*time.Second))); err != nil {
		t.Errorf("new holder's SaveLeased: %v", err)
	}
}

// Renew and Release of one lease at the same time (a renewal loop and the
// worker's Release) never make the Release fail: the lease's claim-object
// writes are serialized, so neither meets the other's as a takeover.
func TestRenewRacingRelease(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, bucket.NewMem(), nil)
	for n := range 20 {
		c := cp(n, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		renewed := make(chan error, 1)
		go func() { renewed <- s.Renew(ctx, l) }()
		if err := s.Release(ctx, l); err != nil {
			t.Fatalf("run %d: Release racing a Renew: %v", n, err)
		}
		if err := <-renewed; err != nil && !errors.Is(err, cairn.ErrConflict) {
			t.Fatalf("run %d: Renew racing a Release: %v, want nil or ErrConflict", n, err)
		}
		if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "v"}); err != nil {
			t.Fatalf("run %d: Claim after the Release: %v", n, err)
		}
	}
}
