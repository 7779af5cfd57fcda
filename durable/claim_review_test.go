package durable_test

// Review of claims and leases (issue 12, part 2): tests that demonstrate
// defects. Each one states the contract it checks.

import (
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

// afterPut is a Mem whose Puts, once they reached the bucket, call after
// (if set) with the key and outcome; after's error replaces the answer
// (a lost answer: the write landed, the caller hears otherwise).
type afterPut struct {
	*bucket.Mem
	after atomic.Pointer[func(key string, err error) error]
}

func (b *afterPut) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	etag, err := b.Mem.Put(ctx, key, body, o)
	if f := b.after.Load(); f != nil {
		if aerr := (*f)(key, err); aerr != nil {
			return "", aerr
		}
	}
	return etag, err
}

func (b *afterPut) setAfter(f func(key string, err error) error) {
	if f == nil {
		b.after.Store(nil)
		return
	}
	b.after.Store(&f)
}

// errLostAnswer is a Put that reached the bucket but whose answer was
// lost (a timeout, a reset connection): the caller cannot tell it landed.
var errLostAnswer = &bucket.Error{Op: "put", Err: context.DeadlineExceeded}

func clockAt(now *atomic.Int64) func() time.Time {
	return func() time.Time { return time.Unix(0, now.Load()) }
}

// The epoch orders owners (lease.go): "each claim's is higher than every
// earlier claim's", and a takeover fences the earlier holder. Here store A
// takes the claim object (epoch 1) and is paused (or its clock is behind)
// before its fencing rewrite of the run; meanwhile store B, whose clock
// says A's lease is over, claims (epoch 2) and rewrites the run. When A's
// rewrite resumes, its condition fails, and fenceRun re-reads the run and
// writes again over B's fencing write without noticing that the run is
// now stamped with a newer epoch. Both Claims succeed; the older epoch
// wins: B, the newest owner, is fenced out by A, and A's (older) epoch
// keeps writing. Under skew or a pause the epoch, not the lease, must keep
// this safe, and here it does not.
func TestReviewOlderClaimOverwritesNewerClaimsFence(t *testing.T) {
	ctx := context.Background()
	b := &afterPut{Mem: bucket.NewMem()}
	var nowA, nowB atomic.Int64
	nowA.Store(t0.UnixNano())
	nowB.Store(t0.Add(2 * time.Hour).UnixNano()) // B's clock is ahead (or A paused for 2h)
	a := newStore(t, b, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clockAt(&nowA)})
	sb := newStore(t, b, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clockAt(&nowB)})
	c := cp(1, t0)
	if err := a.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	var lb *cairn.Lease
	var errB error
	var fired atomic.Bool
	b.Mem.SetHook(func(_ context.Context, op, key string) error {
		// A's fencing rewrite, about to reach the bucket: B claims first.
		if op == "put" && strings.Contains(key, "/runs/") && fired.CompareAndSwap(false, true) {
			lb, errB = sb.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "B", Lease: time.Hour})
		}
		return nil
	})
	la, errA := a.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "A", Lease: time.Hour})
	b.Mem.SetHook(nil)
	if errB != nil {
		t.Fatalf("B's Claim (A's lease over by B's clock): %v", errB)
	}
	if errA == nil && la.Epoch >= lb.Epoch {
		t.Fatalf("epochs A %d, B %d: B claimed after A took the claim object", la.Epoch, lb.Epoch)
	}
	got, err := a.Load(ctx, c.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if e := cairn.LeaseEpoch(got.Metadata); e != lb.Epoch {
		t.Errorf("after both Claims returned (A: %v), the run is stamped with epoch %d, want B's %d: an older epoch's fencing write landed over the newer one's", errA, e, lb.Epoch)
	}
	if err := sb.SaveLeased(ctx, lb, cp(1, t0.Add(time.Second))); err != nil {
		t.Errorf("B (the newest epoch, %d) is fenced out by the older epoch: SaveLeased: %v", lb.Epoch, err)
	}
	if errA == nil {
		if err := a.SaveLeased(ctx, la, cp(1, t0.Add(2*time.Second))); !errors.Is(err, cairn.ErrConflict) {
			t.Errorf("A (epoch %d, older than B's %d) SaveLeased: %v, want ErrConflict", la.Epoch, lb.Epoch, err)
		}
	}
}

// The same in one store: two Claims of one run, the first paused between
// its claim object's PUT and recording the lease, while its (short) lease
// ends and a second Claim completes. The first then records its older
// lease over the newer one and its fencing rewrite lands: the newer
// holder, whose Claim returned, is fenced out by the older epoch.
func TestReviewOlderClaimInSameStoreOverwritesNewer(t *testing.T) {
	ctx := context.Background()
	b := &afterPut{Mem: bucket.NewMem()}
	var now atomic.Int64
	now.Store(t0.UnixNano())
	s := newStore(t, b, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clockAt(&now)})
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	var l2 *cairn.Lease
	var err2 error
	var fired atomic.Bool
	b.setAfter(func(key string, err error) error {
		// The first Claim's claim object landed; it is paused here.
		if err == nil && strings.Contains(key, "/claims/") && fired.CompareAndSwap(false, true) {
			now.Add(int64(2 * time.Minute)) // its lease of a minute ends
			l2, err2 = s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "second", Lease: time.Hour})
		}
		return nil
	})
	l1, err1 := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "first", Lease: time.Minute})
	b.setAfter(nil)
	if err2 != nil {
		t.Fatalf("second Claim: %v", err2)
	}
	if err := s.SaveLeased(ctx, l2, cp(1, t0.Add(time.Second))); err != nil {
		t.Errorf("the newest lease (epoch %d; the older Claim: %v) cannot write: SaveLeased: %v", l2.Epoch, err1, err)
	}
	if err1 == nil {
		if err := s.SaveLeased(ctx, l1, cp(1, t0.Add(2*time.Second))); !errors.Is(err, cairn.ErrConflict) {
			t.Errorf("the older lease (epoch %d < %d) SaveLeased: %v, want ErrConflict", l1.Epoch, l2.Epoch, err)
		}
	}
}

// A claim object is ordinary JSON in the bucket; a damaged or hostile one
// must not break the guarantees (the brief: "a corrupt/hostile claim
// object"). An epoch of MaxUint64 makes the next claim's epoch wrap to 0,
// and epoch 0 is what durable.Record.Lease uses for "not leased": the
// holder's fencing rewrite and SaveLeased are then unconditional. A
// worker whose lease was taken over then silently overwrites the new
// owner.
func TestReviewClaimEpochOverflow(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	opts := &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clockAt(&now)}
	a, b := newStore(t, mem, opts), newStore(t, mem, opts)
	c := cp(1, t0)
	if err := a.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	hostile := `{"run":"` + c.RunID.String() + `","owner":"x","epoch":18446744073709551615,"expires":"2000-01-01T00:00:00Z"}`
	if _, err := mem.Put(ctx, claimKey(c), []byte(hostile), nil); err != nil {
		t.Fatal(err)
	}
	la, err := a.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "A", Lease: time.Minute})
	if err != nil {
		t.Logf("Claim over an epoch of MaxUint64: %v (refusing is fine)", err)
		return
	}
	if la.Epoch == 0 {
		t.Errorf("Claim over a claim of epoch MaxUint64 gave epoch %d: the epoch wrapped (it must grow, and 0 means 'not leased')", la.Epoch)
	}
	now.Add(int64(2 * time.Minute)) // A's lease ends; B takes over
	lb, err := b.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "B", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mine := cp(1, t0.Add(time.Second))
	mine.State["by"] = "B"
	if err := b.SaveLeased(ctx, lb, mine); err != nil {
		t.Fatal(err)
	}
	stale := cp(1, t0.Add(2*time.Second))
	stale.State["by"] = "A, taken over"
	if err := a.SaveLeased(ctx, la, stale); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("A (epoch %d) SaveLeased after B (epoch %d) took over: %v, want ErrConflict", la.Epoch, lb.Epoch, err)
	}
	got, err := b.Load(ctx, c.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State["by"] != "B" {
		t.Errorf("the new owner's state was silently overwritten: by = %v", got.State["by"])
	}
}

// loseNext arms b so that the next Put whose key contains part lands but
// its answer is lost.
func loseNext(b *afterPut, part string) {
	var once atomic.Bool
	b.setAfter(func(key string, err error) error {
		if err == nil && strings.Contains(key, part) && once.CompareAndSwap(false, true) {
			return errLostAnswer
		}
		return nil
	})
}

// Release: "releasing twice is not an error". A Release whose PUT landed
// but whose answer was lost (a timeout) is retried, as any failed call
// is: the retry finds the claim object released by this very lease and
// reports ErrConflict ("taken over"), though nobody took the run.
func TestReviewReleaseRetriedAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	b := &afterPut{Mem: bucket.NewMem()}
	s := newStore(t, b, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	loseNext(b, "/claims/")
	if err := s.Release(ctx, l); err == nil {
		t.Fatal("Release with its answer lost: nil, want the lost answer's error")
	}
	b.setAfter(nil)
	if err := s.Release(ctx, l); err != nil {
		t.Errorf("Release retried after a lost answer (the run released by this lease, nobody else claimed it): %v, want nil", err)
	}
}

// SaveLeased: "succeeds only if no other worker wrote the run since the
// holder last did. Otherwise it is ErrConflict". A leased write whose PUT
// landed but whose answer was lost leaves the lease conditional on the
// version before it; the holder's next SaveLeased then fails with
// ErrConflict (and every later one: the lease is marked lost), though
// nobody else wrote the run or claimed it. Renew (replaceClaim) already
// re-reads after a lost answer; leased writes do not. In write-back mode
// the same lost answer makes a retried flush drop the run's newer Saves
// as "taken over".
func TestReviewSaveLeasedAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	b := &afterPut{Mem: bucket.NewMem()}
	s := newStore(t, b, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	loseNext(b, "/runs/")
	if err := s.SaveLeased(ctx, l, cp(1, t0.Add(time.Second))); err == nil {
		t.Fatal("SaveLeased with its answer lost: nil, want the lost answer's error")
	}
	b.setAfter(nil)
	if err := s.SaveLeased(ctx, l, cp(1, t0.Add(2*time.Second))); err != nil {
		t.Errorf("SaveLeased after a lost answer (nobody else wrote or claimed the run): %v, want nil", err)
	}
}

// Claim: "ErrClaimed when another live lease holds the run". A Claim
// whose claim-object PUT landed but whose answer was lost returns the
// error, leaving a live claim that no Lease value holds: nobody can
// Release it, the claimer's retry gets ErrClaimed (held by itself, it
// cannot tell), and the run is stuck for the whole lease. (abandon only
// covers failures after the claim object's answer arrived.)
func TestReviewClaimAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	b := &afterPut{Mem: bucket.NewMem()}
	s := newStore(t, b, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	loseNext(b, "/claims/")
	if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour}); err == nil {
		return // the Claim read its claim back and took it: nothing is blocked
	}
	b.setAfter(nil)
	if _, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w", Lease: time.Hour}); err != nil {
		t.Errorf("Claim retried after a lost answer (no Lease was ever returned): %v; the run is unclaimable for the whole hour", err)
	}
}

// ETag ABA: an S3 ETag is the MD5 of the body, so identical bytes give an
// identical ETag. A holds epoch 1 and writes X; a reader L loads X. A
// pauses; B takes over (epoch 2) and saves. L then saves X back unchanged
// (a plain Save of what it loaded: allowed, it may overwrite B, and B's
// next SaveLeased rightly fails). But the run's object is again X with
// A's old ETag, so A, two epochs' worth stale and taken over, resumes and
// its SaveLeased succeeds: a stale holder's write lands after a takeover.
// memstore refuses it (its claim knows the epoch moved on).
func TestReviewStaleHolderWritesAfterETagABA(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	opts := &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clockAt(&now)}
	a, sb, reader := newStore(t, mem, opts), newStore(t, mem, opts), newStore(t, mem, opts)
	c := cp(1, t0)
	if err := a.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	la, err := a.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "A", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	x := cp(1, t0.Add(time.Second))
	x.State["by"] = "A"
	if err := a.SaveLeased(ctx, la, x); err != nil {
		t.Fatal(err)
	}
	loaded, err := reader.Load(ctx, c.RunID)
	if err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Minute)) // A pauses past its lease
	lb, err := sb.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "B", Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	y := cp(1, t0.Add(2*time.Second))
	y.State["by"] = "B"
	if err := sb.SaveLeased(ctx, lb, y); err != nil {
		t.Fatal(err)
	}
	if err := reader.Save(ctx, loaded); err != nil { // a plain Save of what it read
		t.Fatal(err)
	}
	stale := cp(1, t0.Add(3*time.Second))
	stale.State["by"] = "A, epoch 1, taken over"
	if err := a.SaveLeased(ctx, la, stale); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("A (epoch %d) SaveLeased after B (epoch %d) took over: %v, want ErrConflict", la.Epoch, lb.Epoch, err)
	}
}

// Claim's documented errors are ErrClaimed, ErrNotFound and ErrInvalid;
// the README's pool loop skips ErrClaimed and treats anything else as a
// failure. A run that another worker keeps writing with plain Saves while
// it is being claimed makes Claim give up after its re-reads with
// ErrConflict, which its contract does not mention (ErrClaimed's "another
// worker claimed it at the same moment" is the nearest).
func TestReviewClaimRacingPlainSavesErrClaimed(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s, writer := newStore(t, mem, nil), newStore(t, mem, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	var inHook atomic.Bool
	var n atomic.Int64
	mem.SetHook(func(_ context.Context, op, key string) error {
		// Before each of the claim's rewrites, the other worker saves.
		if op == "put" && strings.Contains(key, "/runs/") && inHook.CompareAndSwap(false, true) {
			defer inHook.Store(false)
			_ = writer.Save(ctx, cp(1, t0.Add(time.Duration(n.Add(1))*time.Second)))
		}
		return nil
	})
	_, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w"})
	mem.SetHook(nil)
	if err != nil && !errors.Is(err, cairn.ErrClaimed) && !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Claim racing plain Saves: %v, want nil or one of Claim's documented errors (ErrClaimed)", err)
	}
}
