package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// The claim tests (cairn.Claimer) of Run. Leases are real durations, kept
// short; every wait is for longer than the lease, so a slow machine makes
// them slower, never wrong. A store that does not implement cairn.Claimer
// skips them, saying so.

func claimer(t *testing.T, s cairn.Store) cairn.Claimer {
	t.Helper()
	c, ok := s.(cairn.Claimer)
	if !ok {
		t.Skipf("%T does not implement cairn.Claimer", s)
	}
	return c
}

func mustClaim(t *testing.T, c cairn.Claimer, run uuid.UUID, owner string, lease time.Duration) *cairn.Lease {
	t.Helper()
	l, err := c.Claim(context.Background(), run, &cairn.ClaimOptions{Owner: owner, Lease: lease})
	if err != nil {
		t.Fatalf("%s: Claim(%v): %v", owner, run, err)
	}
	return l
}

// saveLeased saves c under l and flushes s, so that a write-back store's
// conflict shows.
func saveLeased(ctx context.Context, s cairn.Store, l *cairn.Lease, c *cairn.Checkpoint) error {
	if err := s.(cairn.Claimer).SaveLeased(ctx, l, c); err != nil {
		return err
	}
	return flush(ctx, s)
}

// unstamped returns a copy of c without the lease stamp in its Metadata.
func unstamped(c *cairn.Checkpoint) *cairn.Checkpoint {
	cp := *c
	cp.Metadata = map[string]any{}
	for k, v := range c.Metadata {
		if k != cairn.LeaseKey {
			cp.Metadata[k] = v
		}
	}
	return &cp
}

// expectLeased checks that s loads run as want, stamped with epoch.
func expectLeased(t *testing.T, s cairn.Store, want *cairn.Checkpoint, epoch uint64) {
	t.Helper()
	got := mustLoad(t, s, want.RunID)
	if e := cairn.LeaseEpoch(got.Metadata); e != epoch {
		t.Errorf("Load(%v): stamped with epoch %d, want %d (metadata %v)", want.RunID, e, epoch, got.Metadata[cairn.LeaseKey])
	}
	if d := Diff(unstamped(got), unstamped(want)); d != "" {
		t.Errorf("Load(%v): %s", want.RunID, d)
	}
}

func testClaimBasics(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	if _, err := c.Claim(ctx, run, &cairn.ClaimOptions{Owner: "w1"}); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Claim of a missing run: %v, want ErrNotFound", err)
	}
	cp := checkpoint(1, base)
	mustSave(t, s, cp)
	for name, o := range map[string]*cairn.ClaimOptions{
		"nil options":    nil,
		"no owner":       {},
		"long owner":     {Owner: string(make([]byte, cairn.MaxOwner+1))},
		"invalid UTF-8":  {Owner: "w\xff"},
		"negative lease": {Owner: "w1", Lease: -time.Second},
	} {
		if _, err := c.Claim(ctx, run, o); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("Claim with %s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := c.Claim(ctx, uuid.Nil, &cairn.ClaimOptions{Owner: "w1"}); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("Claim of uuid.Nil: %v, want ErrInvalid", err)
	}
	before := time.Now()
	l := mustClaim(t, c, run, "w1", 0)
	if l.RunID != run || l.Owner != "w1" || l.Epoch == 0 || l.Duration != cairn.DefaultLease {
		t.Errorf("lease %+v: want run %v, owner w1, an epoch above 0, the default lease", l, run)
	}
	if l.Expires.Before(before.Add(cairn.DefaultLease - time.Second)) {
		t.Errorf("lease expires at %v, want about %v from %v", l.Expires, cairn.DefaultLease, before)
	}
	if l.Checkpoint == nil || cairn.LeaseEpoch(l.Checkpoint.Metadata) != l.Epoch {
		t.Fatalf("lease's checkpoint %+v: want the run stamped with epoch %d", l.Checkpoint, l.Epoch)
	}
	if d := Diff(unstamped(l.Checkpoint), cp); d != "" {
		t.Errorf("lease's checkpoint is not the run's: %s", d)
	}
	expectLeased(t, s, cp, l.Epoch)
	if _, err := c.Claim(ctx, run, &cairn.ClaimOptions{Owner: "w2"}); !errors.Is(err, cairn.ErrClaimed) {
		t.Errorf("second Claim of a held run: %v, want ErrClaimed", err)
	}
	if _, err := c.Claim(ctx, run, &cairn.ClaimOptions{Owner: "w1"}); !errors.Is(err, cairn.ErrClaimed) {
		t.Errorf("Claim of a held run by an owner of the same name: %v, want ErrClaimed", err)
	}
}

func testClaimSaveLeased(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	mustSave(t, s, checkpoint(1, base))
	mustSave(t, s, checkpoint(2, base))
	l := mustClaim(t, c, runID(1), "w1", time.Minute)
	next := checkpoint(1, base.Add(time.Second))
	next.State["step"] = int64(2)
	if err := saveLeased(ctx, s, l, next); err != nil {
		t.Fatalf("SaveLeased: %v", err)
	}
	if _, ok := next.Metadata[cairn.LeaseKey]; ok {
		t.Error("SaveLeased changed the caller's checkpoint")
	}
	expectLeased(t, s, next, l.Epoch)
	again := checkpoint(1, base.Add(2*time.Second))
	if err := saveLeased(ctx, s, l, again); err != nil {
		t.Fatalf("second SaveLeased: %v", err)
	}
	expectLeased(t, s, again, l.Epoch)
	if err := c.SaveLeased(ctx, l, checkpoint(2, base)); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("SaveLeased of another run's checkpoint: %v, want ErrInvalid", err)
	}
	if err := c.SaveLeased(ctx, nil, again); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("SaveLeased without a lease: %v, want ErrInvalid", err)
	}
	if err := c.SaveLeased(ctx, l, nil); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("SaveLeased of nil: %v, want ErrInvalid", err)
	}
	expectLeased(t, s, again, l.Epoch)
}

func testClaimTakeover(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	mustSave(t, s, checkpoint(1, base))
	a := mustClaim(t, c, run, "a", 50*time.Millisecond)
	step := checkpoint(1, base.Add(time.Second))
	step.State["by"] = "a"
	if err := saveLeased(ctx, s, a, step); err != nil {
		t.Fatalf("a: SaveLeased: %v", err)
	}
	time.Sleep(time.Until(a.Expires) + 50*time.Millisecond) // a's lease ends
	b := mustClaim(t, c, run, "b", time.Minute)
	if b.Epoch <= a.Epoch {
		t.Errorf("b's epoch %d after a's %d: epochs must grow", b.Epoch, a.Epoch)
	}
	if d := Diff(unstamped(b.Checkpoint), step); d != "" {
		t.Errorf("b resumes from something other than a's last save: %s", d)
	}
	stale := checkpoint(1, base.Add(3*time.Second))
	stale.State["by"] = "a, stale"
	if err := saveLeased(ctx, s, a, stale); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("a: SaveLeased after b took over: %v, want ErrConflict", err)
	}
	if err := c.Renew(ctx, a); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("a: Renew after b took over: %v, want ErrConflict", err)
	}
	if err := c.Release(ctx, a); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("a: Release after b took over: %v, want ErrConflict", err)
	}
	expectLeased(t, s, step, b.Epoch)
	mine := checkpoint(1, base.Add(2*time.Second))
	mine.State["by"] = "b"
	if err := saveLeased(ctx, s, b, mine); err != nil {
		t.Fatalf("b: SaveLeased: %v", err)
	}
	expectLeased(t, s, mine, b.Epoch)
}

func testClaimRenew(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	mustSave(t, s, checkpoint(1, base))
	const lease = time.Second
	l := mustClaim(t, c, run, "holder", lease)
	for i := range 3 {
		time.Sleep(lease / 2)
		was := l.Expires
		if err := c.Renew(ctx, l); err != nil {
			t.Fatalf("Renew %d: %v", i, err)
		}
		if !l.Expires.After(was) {
			t.Errorf("Renew %d: Expires %v, not after %v", i, l.Expires, was)
		}
		if _, err := c.Claim(ctx, run, &cairn.ClaimOptions{Owner: "other"}); !errors.Is(err, cairn.ErrClaimed) {
			t.Fatalf("Claim %v after the holder renewed (lease %v in all): %v, want ErrClaimed", time.Duration(i+1)*lease/2, lease, err)
		}
	}
	if err := c.Renew(ctx, nil); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("Renew(nil): %v, want ErrInvalid", err)
	}
}

func testClaimRelease(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	mustSave(t, s, checkpoint(1, base))
	a := mustClaim(t, c, run, "a", time.Minute)
	if err := c.Release(ctx, a); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := c.Release(ctx, a); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
	if err := c.SaveLeased(ctx, a, checkpoint(1, base.Add(time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("SaveLeased after Release: %v, want ErrConflict", err)
	}
	if err := c.Renew(ctx, a); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("Renew after Release: %v, want ErrConflict", err)
	}
	b := mustClaim(t, c, run, "b", time.Minute) // at once: released
	if b.Epoch <= a.Epoch {
		t.Errorf("epoch %d after a released epoch %d: epochs must grow", b.Epoch, a.Epoch)
	}
	if err := c.Release(ctx, nil); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("Release(nil): %v, want ErrInvalid", err)
	}
}

func testClaimRace(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	const workers = 8
	for n := range 3 {
		mustSave(t, s, checkpoint(n, base))
		var wg sync.WaitGroup
		errs := make([]error, workers)
		start := make(chan struct{})
		for w := range workers {
			wg.Go(func() {
				<-start
				_, errs[w] = c.Claim(context.Background(), runID(n), &cairn.ClaimOptions{Owner: fmt.Sprint("w", w), Lease: time.Minute})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for w, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, cairn.ErrClaimed):
				t.Errorf("run %d: worker %d: Claim: %v, want nil or ErrClaimed", n, w, err)
			}
		}
		if won != 1 {
			t.Errorf("run %d: %d of %d racing claims succeeded, want exactly 1", n, won, workers)
		}
	}
}

// A plain Save of a held run cannot silently overwrite the holder: once
// it is durable, the holder's next SaveLeased fails. Deleting the run
// ends the lease the same way, and the epochs of a run saved again keep
// growing.
func testClaimOutsideWrites(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	mustSave(t, s, checkpoint(1, base))
	l := mustClaim(t, c, runID(1), "holder", time.Minute)
	other := checkpoint(1, base.Add(time.Second))
	other.State["by"] = "a plain Save"
	if err := saveVisible(ctx, s, other); err != nil {
		t.Fatal(err)
	}
	if err := saveLeased(ctx, s, l, checkpoint(1, base.Add(2*time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("SaveLeased after a plain Save of the run: %v, want ErrConflict", err)
	}
	if d := Diff(mustLoad(t, s, other.RunID), other); d != "" {
		t.Errorf("the plain Save was overwritten: %s", d)
	}

	mustSave(t, s, checkpoint(2, base))
	d := mustClaim(t, c, runID(2), "holder", time.Minute)
	if err := s.Delete(ctx, runID(2)); err != nil {
		t.Fatal(err)
	}
	if err := saveLeased(ctx, s, d, checkpoint(2, base.Add(time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("SaveLeased of a deleted run: %v, want ErrConflict", err)
	}
	if _, err := s.Load(ctx, runID(2)); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("the deleted run came back: Load: %v", err)
	}
	if _, err := c.Claim(ctx, runID(2), &cairn.ClaimOptions{Owner: "x"}); !errors.Is(err, cairn.ErrNotFound) && !errors.Is(err, cairn.ErrClaimed) {
		t.Errorf("Claim of a deleted run: %v, want ErrNotFound (or ErrClaimed while the old lease lives)", err)
	}
	if err := c.Release(ctx, d); err != nil {
		t.Errorf("Release of the deleted run's lease (its claim still the run's): %v", err)
	}
	mustSave(t, s, checkpoint(2, base.Add(time.Hour)))
	again := mustClaim(t, c, runID(2), "new", time.Minute)
	if again.Epoch <= d.Epoch {
		t.Errorf("epoch %d of a run saved again after a Delete, after %d: epochs must grow", again.Epoch, d.Epoch)
	}
}

// List's Claimable keeps the runs no live lease holds, with the label
// selector a resume loop uses, and pages stably.
func testClaimableList(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	for n := range 6 {
		cp := checkpoint(n, base.Add(time.Duration(n)*time.Second))
		cp.SetLabel("status", "running")
		if n == 5 {
			cp.SetLabel("status", "done")
		}
		mustSave(t, s, cp)
	}
	mustClaim(t, c, runID(0), "live", time.Minute)
	released := mustClaim(t, c, runID(1), "released", time.Minute)
	if err := c.Release(ctx, released); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, c, runID(2), "expired", 30*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	// Newest first: 4, 3, 2, 1 (0 is held, 5 is done).
	want := []uuid.UUID{runID(4), runID(3), runID(2), runID(1)}
	o := &cairn.ListOptions{Labels: map[string]string{"status": "running"}, Claimable: true}
	if got := runIDs(mustList(t, s, o)); !slices.Equal(got, want) {
		t.Errorf("claimable running runs: %v, want %v", got, want)
	}
	var paged []uuid.UUID
	o.Limit = 1
	for sum, err := range cairn.All(ctx, s, o) {
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, sum.RunID)
	}
	if !slices.Equal(paged, want) {
		t.Errorf("claimable running runs, one per page: %v, want %v", paged, want)
	}
	o = &cairn.ListOptions{Claimable: true}
	if got := runIDs(mustList(t, s, o)); !slices.Equal(got, append([]uuid.UUID{runID(5)}, want...)) {
		t.Errorf("claimable runs: %v, want 5 and %v", got, want)
	}
}

// testSharedLeaseTakeover: store A holds a lease and saves under it; its
// lease ends; store B claims the run, resuming from A's last save; A's
// next SaveLeased (or its flush), Renew and Release fail with ErrConflict,
// and the run keeps B's state. Two stores claiming at once: one wins.
func testSharedLeaseTakeover(t *testing.T, sh Shared) {
	ctx := context.Background()
	stores := openShared(t, sh.Open, 2)
	a, b := stores[0], stores[1]
	ca, cb := claimer(t, a), claimer(t, b)
	first := sharedCheckpoint(1, "A", 1)
	if err := saveVisible(ctx, a, first); err != nil {
		t.Fatal(err)
	}
	la := mustClaim(t, ca, first.RunID, "A", time.Second)
	step := sharedCheckpoint(1, "A", 2)
	if err := saveLeased(ctx, a, la, step); err != nil {
		t.Fatalf("store A: SaveLeased: %v", err)
	}
	if _, err := cb.Claim(ctx, first.RunID, &cairn.ClaimOptions{Owner: "B"}); !errors.Is(err, cairn.ErrClaimed) {
		t.Errorf("store B: Claim of a run A holds: %v, want ErrClaimed", err)
	}
	time.Sleep(time.Until(la.Expires) + 50*time.Millisecond) // A's lease ends; A is "paused"
	lb := mustClaim(t, cb, first.RunID, "B", time.Minute)
	if lb.Epoch <= la.Epoch {
		t.Errorf("B's epoch %d after A's %d", lb.Epoch, la.Epoch)
	}
	if d := Diff(unstamped(lb.Checkpoint), step); d != "" {
		t.Errorf("store B resumes from something other than A's last save: %s", d)
	}
	mine := sharedCheckpoint(1, "B", 3)
	if err := saveLeased(ctx, b, lb, mine); err != nil {
		t.Fatalf("store B: SaveLeased: %v", err)
	}
	if err := saveLeased(ctx, a, la, sharedCheckpoint(1, "A", 4)); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("store A: SaveLeased after B took over: %v, want ErrConflict", err)
	}
	if err := ca.Renew(ctx, la); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("store A: Renew after B took over: %v, want ErrConflict", err)
	}
	if err := ca.Release(ctx, la); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("store A: Release after B took over: %v, want ErrConflict", err)
	}
	fresh := openShared(t, sh.Open, 1)
	expectLeased(t, fresh[0], mine, lb.Epoch)

	second := sharedCheckpoint(2, "A", 1)
	if err := saveVisible(ctx, a, second); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []cairn.Claimer{ca, cb} {
		wg.Go(func() {
			_, errs[i] = c.Claim(ctx, second.RunID, &cairn.ClaimOptions{Owner: fmt.Sprint(i), Lease: time.Minute})
		})
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two stores claiming one run at once: %v and %v; want exactly one nil, the other ErrClaimed", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, cairn.ErrClaimed) {
			t.Errorf("losing Claim: %v, want ErrClaimed", err)
		}
	}
}
