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
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// gateGet is a bucket whose next GET of a run object, once armed, reads
// the object, closes read, then waits for release before answering: a
// Load held between its GET and its use of the answer.
type gateGet struct {
	*bucket.Mem
	mu            sync.Mutex
	armed         bool
	read, release chan struct{}
}

func (b *gateGet) arm() {
	b.mu.Lock()
	b.armed, b.read, b.release = true, make(chan struct{}), make(chan struct{})
	b.mu.Unlock()
}

func (b *gateGet) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	obj, err := b.Mem.Get(ctx, key, o)
	if strings.Contains(key, "/runs/") {
		b.mu.Lock()
		armed, read, release := b.armed, b.read, b.release
		b.armed = false
		b.mu.Unlock()
		if armed {
			close(read)
			<-release
		}
	}
	return obj, err
}

// A Flush that drops a run's Saves because another worker took it over
// reports the conflict itself, even while other Flushes run.
func TestFlushReportsItsOwnConflicts(t *testing.T) {
	ctx := context.Background()
	for i := range 50 {
		mem := bucket.NewMem()
		s := open(t, mem, &tiered.Options{Fencing: true, Mode: tiered.WriteBack, FlushWindow: time.Hour})
		id := uuid.New()
		if err := s.Save(ctx, cp(id, 1)); err != nil {
			t.Fatal(err)
		}
		if err := newDurable(t, mem).Save(ctx, cp(id, 9)); err != nil { // another worker
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var once sync.Once
		mem.SetHook(func(_ context.Context, op, key string) error {
			if op == "put" && strings.Contains(key, "/runs/") {
				once.Do(func() {
					wg.Go(func() {
						for !stop.Load() {
							_ = s.Flush(ctx)
						}
					})
					time.Sleep(200 * time.Microsecond)
				})
			}
			return nil
		})
		err := s.Flush(ctx)
		stop.Store(true)
		wg.Wait()
		if !errors.Is(err, cairn.ErrConflict) {
			t.Fatalf("round %d: the Flush that dropped the Save returned %v; want ErrConflict", i, err)
		}
		mem.SetHook(nil)
		_ = s.Close(ctx)
	}
}

// A Load that found a run absent just before this store saved it does not
// make the store forget the ETag it wrote: the next fenced Save succeeds.
func TestMissedLoadKeepsFenceOfConcurrentSave(t *testing.T) {
	ctx := context.Background()
	b := &gateGet{Mem: bucket.NewMem()}
	s := open(t, b, &tiered.Options{Fencing: true})
	id := uuid.New()
	b.arm()
	done := make(chan error)
	go func() {
		_, err := s.Load(ctx, id)
		done <- err
	}()
	<-b.read // the GET found nothing
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	if err := <-done; !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("the Load: %v", err)
	}
	if err := s.Save(ctx, cp(id, 2)); err != nil {
		t.Fatalf("the next Save of this store's own run: %v", err)
	}
}

// A revalidating Load racing a Delete does not leave the deleted object's
// ETag behind: the run can be created again.
func TestRevalidationRacingDeleteLeavesNoETag(t *testing.T) {
	ctx := context.Background()
	b := &gateGet{Mem: bucket.NewMem()}
	s := open(t, b, &tiered.Options{Fencing: true, Revalidate: true})
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	other := newDurable(t, b.Mem)
	if err := other.Save(ctx, cp(id, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := other.Save(ctx, cp(id, 6)); err != nil { // the cached copy is stale now
		t.Fatal(err)
	}
	b.arm()
	done := make(chan error)
	go func() {
		_, err := s.Load(ctx, id)
		done <- err
	}()
	<-b.read // the revalidation read step 6
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	<-done
	if err := s.Save(ctx, cp(id, 2)); err != nil {
		t.Fatalf("Save of the deleted run: %v", err)
	}
}

// A write-through Save too large for the cache is not shadowed by an older
// version that a Load in flight read.
func TestOversizedSaveNotShadowedByLoad(t *testing.T) {
	ctx := context.Background()
	b := &gateGet{Mem: bucket.NewMem()}
	s := open(t, b, &tiered.Options{CacheBytes: 4096})
	id := uuid.New()
	if err := newDurable(t, b.Mem).Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	b.arm()
	done := make(chan struct{})
	go func() {
		_, _ = s.Load(ctx, id)
		close(done)
	}()
	<-b.read // the GET read step 1
	big := cp(id, 2)
	big.State["blob"] = strings.Repeat("x", 10_000)
	if err := s.Save(ctx, big); err != nil {
		t.Fatal(err)
	}
	close(b.release)
	<-done
	if got, err := s.Load(ctx, id); err != nil || got.State["step"] != int64(2) {
		t.Fatalf("Load after the Save: %v, %v; want step 2", got, err)
	}
}

// A Delete that fails before its tombstone deletes nothing: the unflushed
// Saves of the run stay, and the next Flush writes them.
func TestFailedDeleteKeepsUnflushedSaves(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, cp(id, 2)); err != nil {
		t.Fatal(err)
	}
	reset := errors.New("connection reset")
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "head" && strings.Contains(key, "/runs/") {
			return reset
		}
		return nil
	})
	if err := s.Delete(ctx, id); !errors.Is(err, reset) {
		t.Fatalf("Delete: %v", err)
	}
	mem.SetHook(nil)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := newDurable(t, mem).Load(ctx, id); err != nil || got.State["step"] != int64(2) {
		t.Fatalf("after the failed Delete and a Flush: %v, %v; want step 2 durable", got, err)
	}
}

// A Flush called while a background flush is dropping a Save another
// worker took over reports the conflict.
func TestFlushDuringBackgroundConflict(t *testing.T) {
	ctx := context.Background()
	for i := range 100 {
		mem, s, id := takenOverStore(t, time.Millisecond)
		started := make(chan struct{})
		var once sync.Once
		mem.SetHook(func(_ context.Context, op, key string) error {
			if op == "put" && strings.Contains(key, "/runs/") {
				once.Do(func() { close(started); time.Sleep(2 * time.Millisecond) })
			}
			return nil
		})
		if err := s.Save(ctx, cp(id, 2)); err != nil {
			t.Fatal(err)
		}
		<-started
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		if err := s.Flush(ctx); !errors.Is(err, cairn.ErrConflict) {
			t.Fatalf("round %d: Flush after the dropped Save: %v; want ErrConflict", i, err)
		}
		mem.SetHook(nil)
		_ = s.Close(ctx)
	}
}

// big is a checkpoint of step too large for a 4 KiB cache.
func big(id uuid.UUID, step int) *cairn.Checkpoint {
	c := cp(id, step)
	c.State["blob"] = strings.Repeat("x", 10_000)
	return c
}

// A run too large to cache, loaded (or revalidated) and then saved, is
// saved over the version loaded: the fence takes its ETag all the same.
func TestFencedSaveAfterUncachedLoad(t *testing.T) {
	ctx := context.Background()
	t.Run("load", func(t *testing.T) {
		mem := bucket.NewMem()
		id := uuid.New()
		if err := newDurable(t, mem).Save(ctx, big(id, 1)); err != nil {
			t.Fatal(err)
		}
		s := open(t, mem, &tiered.Options{Fencing: true, CacheBytes: 4096})
		if _, err := s.Load(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, big(id, 2)); err != nil {
			t.Fatalf("Save after Load: %v", err)
		}
	})
	t.Run("revalidate", func(t *testing.T) {
		mem := bucket.NewMem()
		id := uuid.New()
		s := open(t, mem, &tiered.Options{Fencing: true, Revalidate: true, CacheBytes: 4096})
		if err := s.Save(ctx, cp(id, 1)); err != nil {
			t.Fatal(err)
		}
		if err := newDurable(t, mem).Save(ctx, big(id, 2)); err != nil { // another worker
			t.Fatal(err)
		}
		if got, err := s.Load(ctx, id); err != nil || got.State["step"] != int64(2) {
			t.Fatalf("Load: %v, %v", got, err)
		}
		if err := s.Save(ctx, big(id, 3)); err != nil {
			t.Fatalf("Save after the revalidating Load: %v", err)
		}
	})
}

// A Load whose GET read the previous version, finishing while a
// write-through Save of the run commits, leaves the Save's ETag in the
// fence: the next Save succeeds.
func TestLoadDuringSaveKeepsTheSavesETag(t *testing.T) {
	ctx := context.Background()
	b := &gateGet{Mem: bucket.NewMem()}
	s := open(t, b, &tiered.Options{Fencing: true, CacheBytes: 400})
	id, other := uuid.New(), uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, cp(other, 1)); err != nil { // evicts id
		t.Fatal(err)
	}
	b.arm()
	loaded := make(chan struct{})
	go func() {
		_, _ = s.Load(ctx, id)
		close(loaded)
	}()
	<-b.read // the GET read step 1
	inCommit, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b.Mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/index/log/") {
			once.Do(func() { close(inCommit); <-release })
		}
		return nil
	})
	saved := make(chan error)
	go func() { saved <- s.Save(ctx, cp(id, 2)) }()
	<-inCommit // the object is written, its commit held
	close(b.release)
	<-loaded
	close(release)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	b.Mem.SetHook(nil)
	if err := s.Save(ctx, cp(id, 3)); err != nil {
		t.Fatalf("the next Save: %v", err)
	}
}

// A Load in flight from before a Save never caches the older version,
// even when the Save's own entry has been evicted since.
func TestLoadInFlightAfterEvictedSave(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []tiered.Mode{tiered.WriteThrough, tiered.WriteBack} {
		b := &gateGet{Mem: bucket.NewMem()}
		s := open(t, b, &tiered.Options{Mode: mode, FlushWindow: time.Hour, CacheBytes: 400})
		id, other := uuid.New(), uuid.New()
		save := func(id uuid.UUID, step int) {
			if err := s.Save(ctx, cp(id, step)); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		save(id, 1)
		save(other, 1) // evicts id
		b.arm()
		loaded := make(chan struct{})
		go func() {
			_, _ = s.Load(ctx, id)
			close(loaded)
		}()
		<-b.read // the GET read step 1
		save(id, 2)
		save(other, 2) // evicts id's step 2
		close(b.release)
		<-loaded
		if got, err := s.Load(ctx, id); err != nil || got.State["step"] != int64(2) {
			t.Fatalf("mode %d: Load after the Save: %v, %v; want step 2", mode, got, err)
		}
	}
}

// A Load made while this store deletes the run (between the tombstone
// and the object's removal) leaves no ETag behind: the run can be
// created again.
func TestSaveAfterOwnDeleteWithLoadInside(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Fencing: true})
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	inDelete, release := make(chan struct{}), make(chan struct{})
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "delete" && strings.HasSuffix(key, "/runs/"+id.String()) {
			close(inDelete)
			<-release
		}
		return nil
	})
	deleted := make(chan error)
	go func() { deleted <- s.Delete(ctx, id) }()
	<-inDelete
	_, _ = s.Load(ctx, id) // reads the object about to go
	close(release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	mem.SetHook(nil)
	if err := s.Save(ctx, cp(id, 2)); err != nil {
		t.Fatalf("Save after this store's Delete: %v", err)
	}
	if got, err := s.Load(ctx, id); err != nil || got.State["step"] != int64(2) {
		t.Fatalf("Load: %v, %v", got, err)
	}
}

// holdPuts makes mem hold the PUT of run's object until relPut, and the
// next index commit after it until relCommit.
func holdPuts(mem *bucket.Mem, run uuid.UUID) (inPut, relPut, inCommit, relCommit chan struct{}) {
	inPut, relPut, inCommit, relCommit = make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	var putOnce, commitOnce sync.Once
	var put atomic.Bool
	mem.SetHook(func(_ context.Context, op, key string) error {
		switch {
		case op == "put" && strings.HasSuffix(key, "/runs/"+run.String()):
			putOnce.Do(func() { close(inPut); <-relPut; put.Store(true) })
		case op == "put" && strings.Contains(key, "/index/log/") && put.Load():
			commitOnce.Do(func() { close(inCommit); <-relCommit })
		}
		return nil
	})
	return inPut, relPut, inCommit, relCommit
}

// A Load that begins during this store's write-through Save (after its
// start, reading the older object) neither caches that older copy nor
// gives its ETag to the fence.
func TestLoadInsideWriteThroughSave(t *testing.T) {
	ctx := context.Background()
	for _, oversized := range []bool{false, true} {
		b := &gateGet{Mem: bucket.NewMem()}
		s := open(t, b, &tiered.Options{Fencing: true, CacheBytes: 400})
		id, other := uuid.New(), uuid.New()
		for _, c := range []*cairn.Checkpoint{cp(id, 1), cp(other, 1)} { // evicts id
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		next := cp(id, 2)
		if oversized {
			next = big(id, 2)
		}
		inPut, relPut, inCommit, relCommit := holdPuts(b.Mem, id)
		saved := make(chan error)
		go func() { saved <- s.Save(ctx, next) }()
		<-inPut
		b.arm()
		loaded := make(chan struct{})
		go func() {
			_, _ = s.Load(ctx, id)
			close(loaded)
		}()
		<-b.read // the GET read step 1
		close(relPut)
		<-inCommit // the object is written, its commit held
		close(b.release)
		<-loaded
		close(relCommit)
		if err := <-saved; err != nil {
			t.Fatal(err)
		}
		b.Mem.SetHook(nil)
		if got, err := s.Load(ctx, id); err != nil || got.State["step"] != int64(2) {
			t.Fatalf("oversized=%v: Load after the Save: %v, %v; want step 2", oversized, got, err)
		}
		if err := s.Save(ctx, cp(id, 3)); err != nil {
			t.Fatalf("oversized=%v: the next Save: %v", oversized, err)
		}
	}
}

// A Load that joins a GET begun before this store's Save (or Delete) of
// the run returned does not return what was before it.
func TestLoadJoiningAnOlderGET(t *testing.T) {
	ctx := context.Background()
	for _, del := range []bool{false, true} {
		b := &gateGet{Mem: bucket.NewMem()}
		s := open(t, b, &tiered.Options{CacheBytes: 400})
		id, other := uuid.New(), uuid.New()
		for _, c := range []*cairn.Checkpoint{cp(id, 1), cp(other, 1)} { // evicts id
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		b.arm()
		go func() { _, _ = s.Load(ctx, id) }()
		<-b.read // the shared GET read step 1
		if del {
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		} else if err := s.Save(ctx, cp(id, 2)); err != nil {
			t.Fatal(err)
		}
		if !del {
			if err := s.Save(ctx, cp(other, 2)); err != nil { // evicts id again
				t.Fatal(err)
			}
		}
		type result struct {
			c   *cairn.Checkpoint
			err error
		}
		got := make(chan result)
		go func() {
			c, err := s.Load(ctx, id)
			got <- result{c, err}
		}()
		time.Sleep(50 * time.Millisecond) // the Load joins the GET in flight, if it does
		close(b.release)
		r := <-got
		switch {
		case del && !errors.Is(r.err, cairn.ErrNotFound):
			t.Errorf("Load after this store's Delete: %v, %v; want ErrNotFound", r.c, r.err)
		case !del && (r.err != nil || r.c.State["step"] != int64(2)):
			t.Errorf("Load after this store's Save: %v, %v; want step 2", r.c, r.err)
		}
	}
}

// Every Flush called after a Save that fencing dropped reports it, also
// when another Flush is the one whose flush dropped it.
func TestConcurrentFlushesBothReportAConflict(t *testing.T) {
	ctx := context.Background()
	mem, s, id := takenOverStore(t, time.Hour)
	if err := s.Save(ctx, cp(id, 2)); err != nil {
		t.Fatal(err)
	}
	inPut, rel := holdFirstRunPut(mem)
	f1, f2 := make(chan error), make(chan error)
	go func() { f1 <- s.Flush(ctx) }()
	<-inPut
	go func() { f2 <- s.Flush(ctx) }()
	time.Sleep(50 * time.Millisecond)
	close(rel)
	for i, err := range []error{<-f1, <-f2} {
		if !errors.Is(err, cairn.ErrConflict) {
			t.Errorf("Flush %d: %v; want ErrConflict", i+1, err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Errorf("a Flush after both reported: %v", err)
	}
}

// After a Close that gave up on its context, a Save returns ErrClosed at
// once, not after the Saves Close was waiting for.
func TestSaveAfterCloseGaveUp(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := open(t, mem, nil)
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	inPut, rel := holdFirstRunPut(mem)
	saved := make(chan error)
	go func() { saved <- s.Save(ctx, cp(id, 2)) }()
	<-inPut
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a Save held: %v; want its deadline", err)
	}
	done := make(chan error)
	go func() { done <- s.Save(ctx, cp(uuid.New(), 1)) }()
	select {
	case err := <-done:
		if !errors.Is(err, cairn.ErrClosed) {
			t.Errorf("Save after Close: %v; want ErrClosed", err)
		}
		close(rel)
	case <-time.After(time.Second):
		t.Error("a Save after Close waits for the Save Close waited for")
		close(rel)
		<-done
	}
	<-saved
}

// takenOverStore returns a fenced write-back store (flush window w) that saved
// and flushed a run, which another worker has saved since.
func takenOverStore(t *testing.T, w time.Duration) (*bucket.Mem, *tiered.Store, uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Fencing: true, Mode: tiered.WriteBack, FlushWindow: w})
	id := uuid.New()
	if err := s.Save(ctx, cp(id, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := newDurable(t, mem).Save(ctx, cp(id, 9)); err != nil { // another worker
		t.Fatal(err)
	}
	return mem, s, id
}

// holdFirstRunPut makes mem hold the first PUT of a run object: inPut is
// closed when it arrives, and it goes on when rel is closed.
func holdFirstRunPut(mem *bucket.Mem) (inPut, rel chan struct{}) {
	inPut, rel = make(chan struct{}), make(chan struct{})
	var once sync.Once
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/runs/") {
			once.Do(func() { close(inPut); <-rel })
		}
		return nil
	})
	return inPut, rel
}
