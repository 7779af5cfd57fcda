package tiered_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// slowGet delays the return of run GETs after they have read.
type slowGet struct {
	*bucket.Mem
	delay atomic.Int64
}

func (b *slowGet) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	obj, err := b.Mem.Get(ctx, key, o)
	if strings.Contains(key, "/runs/") {
		time.Sleep(time.Duration(b.delay.Load()))
	}
	return obj, err
}

// 1. Two concurrent Closes: close of closed channel.
func TestDoubleCloseDoesNotPanic(t *testing.T) {
	mem := bucket.NewMem()
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	ctx := context.Background()
	s.Save(ctx, cp(uuid.New(), 1))
	var wg sync.WaitGroup
	var panicked atomic.Bool
	for range 2 {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					panicked.Store(true)
					t.Logf("panic: %v", r)
				}
			}()
			s.Close(ctx)
		})
	}
	wg.Wait()
	if panicked.Load() {
		t.Fatal("concurrent Close panicked")
	}
}

// 2. Revalidating Load that finds the run deleted elsewhere removes a dirty
// Save made meanwhile: Save ok, Flush nil, run lost.
func TestRevalidateRemovesDirty(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	a := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, Revalidate: true})
	b := open(t, mem, nil)
	run := uuid.New()
	if err := a.Save(ctx, cp(run, 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, run); err != nil {
		t.Fatal(err)
	}
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "get" && strings.Contains(key, "/runs/") {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	done := make(chan error)
	go func() { _, err := a.Load(ctx, run); done <- err }()
	time.Sleep(30 * time.Millisecond)
	if err := a.Save(ctx, cp(run, 2)); err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %v", <-done)
	mem.SetHook(nil)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, run); err != nil {
		t.Fatalf("Save acknowledged, Flush returned nil, run lost: %v", err)
	}
}

// 3. Flush never returns while one run is saved continuously.
func TestFlushLivelock(t *testing.T) {
	mem := bucket.NewMem()
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" {
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	ctx := context.Background()
	run := uuid.New()
	s.Save(ctx, cp(run, 0))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Save(ctx, cp(run, i))
			time.Sleep(time.Millisecond)
		}
	})
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Flush(fctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Flush of one pending Save did not finish in %v: %v (%d PUTs)", time.Since(start), err, s.Stats().PUTs)
	}
}

// 4. Flush ignores its ctx while a background flush is stuck.
func TestFlushIgnoresCtx(t *testing.T) {
	mem := bucket.NewMem()
	var block atomic.Bool
	block.Store(true)
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && block.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond})
	ctx := context.Background()
	s.Save(ctx, cp(uuid.New(), 1))
	time.Sleep(50 * time.Millisecond) // background flush now stuck in PUT
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Flush(fctx) }()
	select {
	case err := <-done:
		t.Logf("Flush returned after %v: %v", time.Since(start), err)
	case <-time.After(3 * time.Second):
		t.Fatalf("Flush(ctx 200ms) still blocked after 3s (background flush holds flushMu for up to 1 min)")
	}
}

// 5. Load racing Delete fills the cache with the deleted run.
func TestLoadFillAfterDelete(t *testing.T) {
	mem := &slowGet{Mem: bucket.NewMem()}
	ctx := context.Background()
	w := open(t, mem, nil)
	run := uuid.New()
	if err := w.Save(ctx, cp(run, 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, mem, nil) // cold cache
	mem.delay.Store(int64(100 * time.Millisecond))
	done := make(chan error)
	go func() { _, err := s.Load(ctx, run); done <- err }()
	time.Sleep(30 * time.Millisecond)
	if err := s.Delete(ctx, run); err != nil {
		t.Fatal(err)
	}
	<-done
	mem.delay.Store(0)
	if got, err := s.Load(ctx, run); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load after Delete returned: %v, %v", got != nil, err)
	}
}

// 6. Write-through Save racing Delete leaves the deleted run in the cache.
func TestWriteThroughSaveDelete(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := open(t, mem, nil)
	run := uuid.New()
	var once atomic.Bool
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/log/") && once.CompareAndSwap(false, true) {
			time.Sleep(150 * time.Millisecond)
		}
		return nil
	})
	done := make(chan error)
	go func() { done <- s.Save(ctx, cp(run, 1)) }()
	time.Sleep(50 * time.Millisecond)
	if err := s.Delete(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, lerr := s.Load(ctx, run)
	fresh := open(t, mem, nil)
	_, ferr := fresh.Load(ctx, run)
	if (lerr == nil) != (ferr == nil) {
		t.Fatalf("this store Load: %v; fresh process Load: %v", lerr, ferr)
	}
}

// 7. Fencing: a Save identical to the cached bytes is skipped, missing the conflict.
func TestFencingSkipMissesConflict(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	o := &tiered.Options{Fencing: true}
	a := open(t, mem, o)
	b := open(t, mem, o)
	run := uuid.New()
	if err := a.Save(ctx, cp(run, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, cp(run, 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, cp(run, 1)); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("A's Save after B took the run over: %v, want ErrConflict", err)
	}
}

// 8. A conflict found by a background flush is swallowed when Flush's own
// flush fails for another reason.
func TestLostConflictSwallowed(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	a := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, Fencing: true, FlushWindow: 10 * time.Millisecond})
	b := open(t, mem, &tiered.Options{Fencing: true})
	x, y := uuid.New(), uuid.New()
	if err := a.Save(ctx, cp(x, 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.Load(ctx, x)
	if err := b.Save(ctx, cp(x, 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, cp(x, 3)); err != nil { // acknowledged, will conflict
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // background flush finds the conflict
	var fail atomic.Bool
	fail.Store(true)
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/runs/") && fail.Load() {
			return errors.New("injected 500")
		}
		return nil
	})
	a.Save(ctx, cp(y, 1))
	err1 := a.Flush(ctx)
	fail.Store(false)
	err2 := a.Flush(ctx)
	t.Logf("Flush 1: %v\nFlush 2: %v", err1, err2)
	if !errors.Is(err1, cairn.ErrConflict) && !errors.Is(err2, cairn.ErrConflict) {
		t.Fatal("the conflict on x (an acknowledged Save dropped) was never reported")
	}
}

// 9. A Save that returns nil while Close flushes is lost though Close returns nil.
func TestSaveDuringClose(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	var entered = make(chan struct{}, 1)
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/runs/") {
			select {
			case entered <- struct{}{}:
			default:
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	s.Save(ctx, cp(uuid.New(), 1))
	done := make(chan error)
	go func() { done <- s.Close(ctx) }()
	<-entered
	late := uuid.New()
	serr := s.Save(ctx, cp(late, 1))
	cerr := <-done
	if serr == nil && cerr == nil {
		mem.SetHook(nil)
		if _, err := open(t, mem, nil).Load(ctx, late); err != nil {
			t.Fatalf("Save returned nil before Close returned nil, yet lost: %v", err)
		}
	}
}

// A write-back Save waiting for room fails with the flush's error when
// flushes fail, instead of waiting as long as the store fails (a server
// that refuses every write, here), even with a context that never ends.
func TestSaveWaitingForRoomFailsWithFlush(t *testing.T) {
	mem := bucket.NewMem()
	errDown := errors.New("store refuses writes")
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, MaxDirtyBytes: 1 << 10, FlushWindow: time.Millisecond})
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/runs/") {
			return errDown
		}
		return nil
	})
	big := cp(uuid.New(), 1)
	big.State["pad"] = strings.Repeat("x", 800)
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			c := cp(uuid.New(), i)
			c.State["pad"] = big.State["pad"]
			if err := s.Save(context.Background(), c); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errDown) {
			t.Fatalf("Save = %v, want the flush's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Save waiting for room still blocked while every flush fails")
	}
	mem.SetHook(nil)
}

// SkipUnchanged skips only bytes this store wrote and committed: not a
// copy it read of an object whose Save lost its commit, nor of one whose
// Delete was cut short. Then the Save writes, and the run stays listed and
// loadable, GC an hour later included.
func TestSkipUnchangedOnlyAfterOwnWrite(t *testing.T) {
	ctx := context.Background()
	for _, cut := range []string{"/index/log/", "/runs/"} {
		mem := bucket.NewMem()
		var failing atomic.Bool
		errCut := errors.New("cut short")
		mem.SetHook(func(ctx context.Context, op, key string) error {
			if failing.Load() && strings.Contains(key, cut) && (op == "put" || op == "delete") {
				return errCut
			}
			return nil
		})
		var off atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
		s, err := tiered.New(mem, &tiered.Options{SkipUnchanged: true,
			Durable: durable.Options{Prefix: "t", Now: now, Index: &index.Options{RetryFor: 100 * time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		d := s.Durable()
		id := uuid.New()
		if cut == "/runs/" { // saved, then a Delete cut after its tombstone
			if err := s.Save(ctx, cp(id, 1)); err != nil {
				t.Fatal(err)
			}
			failing.Store(true)
			if err := s.Delete(ctx, id); err == nil {
				t.Fatal("Delete succeeded without deleting the object")
			}
		} else { // a Save whose index commit is lost
			failing.Store(true)
			if err := s.Save(ctx, cp(id, 1)); err == nil {
				t.Fatal("Save succeeded without its index commit")
			}
		}
		failing.Store(false)
		if _, err := s.Load(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, cp(id, 1)); err != nil {
			t.Fatal(err)
		}
		if n := s.Stats().SkippedSaves; n != 0 {
			t.Fatalf("cut at %s: %d Saves skipped over a copy that was read", cut, n)
		}
		off.Store(int64(time.Hour))
		if _, err := d.GC(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Load(ctx, id); err != nil {
			t.Fatalf("cut at %s: the acknowledged Save after GC: %v", cut, err)
		}
		if p, err := d.List(ctx, nil); err != nil || len(p.Runs) != 1 {
			t.Fatalf("cut at %s: List = %v, %v", cut, p, err)
		}
		s.Close(ctx)
	}
}
