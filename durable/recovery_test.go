package durable_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
)

// Cases a review found where recovery could lose or hide an acknowledged
// run; each failed before its fix.

// hooked runs fn before each Put, and after after each List.
type hooked struct {
	bucket.Bucket
	mu         sync.Mutex
	beforePut  func(key string)
	afterList  func(prefix string)
	failRunDel bool
}

func (h *hooked) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	h.mu.Lock()
	fn := h.beforePut
	h.mu.Unlock()
	if fn != nil {
		fn(key)
	}
	return h.Bucket.Put(ctx, key, body, o)
}

func (h *hooked) List(ctx context.Context, prefix, start string, limit int) ([]bucket.Info, bool, error) {
	infos, more, err := h.Bucket.List(ctx, prefix, start, limit)
	h.mu.Lock()
	fn := h.afterList
	h.mu.Unlock()
	if fn != nil {
		fn(prefix)
	}
	return infos, more, err
}

func (h *hooked) Delete(ctx context.Context, key string) error {
	h.mu.Lock()
	fail := h.failRunDel && strings.Contains(key, "/runs/")
	h.mu.Unlock()
	if fail {
		return errCrash
	}
	return h.Bucket.Delete(ctx, key)
}

func (h *hooked) set(f func()) {
	h.mu.Lock()
	f()
	h.mu.Unlock()
}

// clock is a settable offset from the real time.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func isListed(t *testing.T, s *durable.Store, c *cairn.Checkpoint) bool {
	t.Helper()
	for _, id := range listIDs(t, s) {
		if id == c.RunID {
			return true
		}
	}
	return false
}

// deletedRun is run 1 saved and then deleted through a hooked in-memory
// bucket, the deletion of its object cut short when cut is set (its
// tombstone committed, its object left).
type deletedRun struct {
	h   *hooked
	clk *clock
	o   *durable.Options
	s   *durable.Store
	c   *cairn.Checkpoint
}

func saveAndDelete(t *testing.T, io *index.Options, cut bool) *deletedRun {
	t.Helper()
	ctx := context.Background()
	d := &deletedRun{h: &hooked{Bucket: bucket.NewMem()}, clk: &clock{}, c: cp(1, t0)}
	d.o = &durable.Options{Prefix: "cairn", Index: io, Now: d.clk.now}
	d.s = newStore(t, d.h, d.o)
	if err := d.s.Save(ctx, d.c); err != nil {
		t.Fatal(err)
	}
	d.h.set(func() { d.h.failRunDel = cut })
	if err := d.s.Delete(ctx, d.c.RunID); (err == nil) == cut {
		t.Fatalf("Delete (cut short: %v) = %v", cut, err)
	}
	d.h.set(func() { d.h.failRunDel = false })
	return d
}

// A Delete cut short leaves a dead object; the same checkpoint saved again
// writes an object with the same ETag. GC must not take it for the dead
// one, whether the Save lands before GC lists or between its listing and
// its deletions, and however long after.
func TestGCKeepsSameBytesSavedAfterDelete(t *testing.T) {
	ctx := context.Background()
	d := saveAndDelete(t, smallIndex, true)
	h, clk, o, s, c := d.h, d.clk, d.o, d.s, d.c
	clk.advance(time.Second) // the Save comes after the tombstone
	var once sync.Once
	h.set(func() {
		h.afterList = func(prefix string) {
			if strings.HasSuffix(prefix, "/runs/") {
				once.Do(func() {
					if err := s.Save(ctx, c); err != nil {
						t.Error(err)
					}
				})
			}
		}
	})
	gc := newStore(t, h, o)
	if _, err := gc.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h.set(func() { h.afterList = nil })
	clk.advance(time.Hour) // past every grace period
	if rep, err := gc.GC(ctx, nil); err != nil || len(rep.Dead) != 0 {
		t.Fatalf("GC = %+v, %v", rep, err)
	}
	if _, err := s.Load(ctx, c.RunID); err != nil {
		t.Fatalf("the acknowledged Save after the Delete: %v", err)
	}
	if !isListed(t, s, c) {
		t.Fatal("the acknowledged Save after the Delete is not listed")
	}
}

// The same, with the Save's log lost: Reindex lists the object (newer than
// the tombstone) instead of calling it dead.
func TestReindexKeepsSameBytesSavedAfterDelete(t *testing.T) {
	ctx := context.Background()
	d := saveAndDelete(t, &index.Options{CompactAfter: 1000}, false)
	h, clk, o, s, c := d.h, d.clk, d.o, d.s, d.c
	clk.advance(2 * time.Second)
	time.Sleep(1100 * time.Millisecond) // the object's time, the server's, must pass the tombstone's too
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	logs := keys(t, h, "cairn/index/log/")
	damage(t, h, logs[len(logs)-1], garbage)
	rep, err := newStore(t, h, o).Reindex(ctx, nil)
	if err != nil || len(rep.Dead) != 0 {
		t.Fatalf("Reindex = %+v, %v; want the saved run indexed", rep, err)
	}
	clk.advance(time.Hour)
	if _, err := newStore(t, h, o).GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !isListed(t, newStore(t, h, o), c) {
		t.Fatal("the acknowledged Save after the Delete is not listed")
	}
}

// A TTL refreshed by a Save of the same bytes is in the object's metadata,
// not its ETag: Reindex must not take the older expiry from the index.
func TestReindexKeepsRefreshedTTL(t *testing.T) {
	ctx := context.Background()
	var clk clock
	mem := bucket.NewMem()
	o := &durable.Options{Prefix: "cairn", TTL: time.Hour, Index: &index.Options{CompactAfter: 1000}, Now: clk.now}
	s := newStore(t, mem, o)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.advance(30 * time.Minute)
	if err := s.Save(ctx, c); err != nil { // expires an hour from now
		t.Fatal(err)
	}
	logs := keys(t, mem, "cairn/index/log/")
	damage(t, mem, logs[len(logs)-1], garbage)
	if _, err := newStore(t, mem, o).Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	clk.advance(40 * time.Minute) // past the first expiry, before the second
	if !isListed(t, newStore(t, mem, o), c) {
		t.Fatal("a run whose TTL was refreshed is hidden after Reindex")
	}
}

// A head naming a snapshot that is gone: List falls back, Verify says the
// index is damaged, and GC deletes nothing rather than the fallback.
func TestGCRefusesHeadNamingMissingSnapshot(t *testing.T) {
	ctx := context.Background()
	var clk clock
	mem := bucket.NewMem()
	o := &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.now}
	s := newStore(t, mem, o)
	for i := range 20 {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
		durable.IndexOf(s).Wait()
	}
	snaps := keys(t, mem, "cairn/index/snap/")
	if err := mem.Delete(ctx, snaps[len(snaps)-1]); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t, mem, o)
	if n := len(listIDs(t, fresh)); n != 20 {
		t.Fatalf("List through the fallback: %d runs, want 20", n)
	}
	if rep, err := fresh.Verify(ctx); err != nil || !errors.Is(rep.Index, index.ErrDamaged) {
		t.Fatalf("Verify = %+v, %v; want the index reported damaged", rep, err)
	}
	before := keys(t, mem, "cairn/")
	clk.advance(2 * time.Hour)
	if _, err := fresh.GC(ctx, nil); !errors.Is(err, index.ErrDamaged) {
		t.Fatalf("GC over a head naming nothing: %v, want ErrDamaged", err)
	}
	if after := keys(t, mem, "cairn/"); len(after) != len(before) {
		t.Fatalf("GC deleted %d objects from a damaged index", len(before)-len(after))
	}
}

// A damaged by-time page fails List; Verify must say so, not "ok". The
// by-time pages are found as the pages whose damage fails List (the
// index's format is its own): each is damaged in turn, then restored.
func TestVerifyReportsDamagedPage(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	for i := range 12 {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
		durable.IndexOf(s).Wait()
	}
	listed := 0
	for _, key := range keys(t, mem, "cairn/index/pages/") {
		obj, err := mem.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		damage(t, mem, key, garbage)
		fresh := newStore(t, mem, nil)
		if _, err := fresh.List(ctx, nil); errors.Is(err, index.ErrDamaged) {
			listed++
			if rep, err := fresh.Verify(ctx); err != nil || rep.OK() || !errors.Is(rep.Index, index.ErrDamaged) {
				t.Fatalf("%s damaged: Verify = %+v, %v; want the damaged index reported", key, rep, err)
			}
		} else if err != nil {
			t.Fatalf("List with %s damaged: %v, want ErrDamaged or no error", key, err)
		}
		if _, err := mem.Put(ctx, key, obj.Body, nil); err != nil {
			t.Fatal(err)
		}
	}
	if listed == 0 {
		t.Fatal("no damaged page failed List: the by-time pages were not found")
	}
}

// A compaction built on the snapshot before a Reindex's must not move the
// head past the Reindex's snapshot: that would undo the rebuild.
func TestCompactionDoesNotUndoReindex(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	io := &index.Options{PageSize: 4, CompactAfter: 3}
	wb, ab := &hooked{Bucket: mem}, &hooked{Bucket: mem}
	w := newStore(t, wb, &durable.Options{Prefix: "cairn", Index: io})
	adm := newStore(t, ab, &durable.Options{Prefix: "cairn", Index: io})
	for i := range 5 {
		if err := w.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	durable.IndexOf(w).Wait()
	lost := cp(998, t0.Add(2*time.Hour)) // written, its commit lost: unindexed
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, lost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := durable.PutObjectOnly(ctx, adm, durable.Record{RunID: lost.RunID, Workflow: lost.WorkflowName, Timestamp: lost.Timestamp, Data: rec}); err != nil {
		t.Fatal(err)
	}
	// After the Reindex's barrier (at its first page), the writer commits
	// and compacts on the old snapshot, pausing before its own snapshot
	// until the Reindex has moved the head.
	atSnap, release := make(chan struct{}), make(chan struct{})
	var onceW, onceA sync.Once
	wb.set(func() {
		wb.beforePut = func(key string) {
			if strings.Contains(key, "/index/snap/") {
				onceW.Do(func() { close(atSnap); <-release })
			}
		}
	})
	ab.set(func() {
		ab.beforePut = func(key string) {
			if !strings.Contains(key, "/index/pages/") {
				return
			}
			onceA.Do(func() {
				for i := 10; ; i++ {
					if err := w.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
						t.Error(err)
						return
					}
					select {
					case <-atSnap:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			})
		}
	})
	if _, err := adm.Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	durable.IndexOf(w).Wait()
	if !isListed(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Index: io}), lost) {
		t.Fatal("a concurrent compaction undid the Reindex")
	}
	// The snapshot that compaction left behind holds the number the next
	// compaction takes: that one must not adopt it either.
	if err := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: io}).Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if !isListed(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Index: io}), lost) {
		t.Fatal("a later compaction adopted the snapshot left behind and undid the Reindex")
	}
	// Nor does a reader falling back after losing the head take it for
	// the newest state.
	if err := mem.Delete(ctx, "cairn/index/head"); err != nil {
		t.Fatal(err)
	}
	if !isListed(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Index: io}), lost) {
		t.Fatal("falling back after the head was lost, a reader took the snapshot left behind")
	}
}

// A tombstone older than KeepTombstones is no evidence: Reindex and GC
// agree that the object is a run, and a second Reindex says the same.
func TestOldTombstoneIsNoEvidence(t *testing.T) {
	ctx := context.Background()
	d := saveAndDelete(t, &index.Options{CompactAfter: 1000}, true)
	d.clk.advance(31 * 24 * time.Hour)
	later := newStore(t, d.h, d.o)
	for i := range 2 {
		rep, err := later.Reindex(ctx, nil)
		if err != nil || len(rep.Dead) != 0 || rep.Indexed != 1 {
			t.Fatalf("Reindex %d = %+v, %v; want the run indexed", i, rep, err)
		}
		if gc, err := later.GC(ctx, nil); err != nil || len(gc.Dead) != 0 {
			t.Fatalf("GC = %+v, %v", gc, err)
		}
	}
}

// A directory store's head file damaged beyond reading: List falls back,
// Verify reports it, and Reindex replaces it.
func TestReindexReplacesUnreadableHead(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir, err := bucket.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, dir, nil)
	for i := range 3 {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cairn", "index", "head.obj"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t, dir, nil)
	if n := len(listIDs(t, fresh)); n != 3 {
		t.Fatalf("List over an unreadable head: %d runs", n)
	}
	if rep, err := fresh.Verify(ctx); err != nil || !errors.Is(rep.Index, index.ErrDamaged) {
		t.Fatalf("Verify = %+v, %v; want the damaged index reported", rep, err)
	}
	if _, err := fresh.Reindex(ctx, nil); err != nil {
		t.Fatalf("Reindex over an unreadable head: %v", err)
	}
	if rep, err := newStore(t, dir, nil).Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after Reindex = %+v, %v", rep, err)
	}
}

// An unreadable object the index does not list is reported as corrupt, not
// also as unindexed (Reindex cannot add it).
func TestVerifyUnreadableUnindexedIsCorruptOnly(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	if err := s.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
	bad := cp(2, t0).RunID
	if _, err := mem.Put(ctx, "cairn/runs/"+bad.String(), []byte("\x28\xb5\x2f\xfdjunk"), nil); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || rep.Corrupt[bad] == nil || len(rep.Unindexed) != 0 {
		t.Fatalf("Verify = %+v, %v; want the object corrupt and nothing unindexed", rep, err)
	}
}

// GC leaves a dead object younger than index.MinGCGrace whatever Grace it
// is given: a Save of the same bytes may still be committing.
func TestGCDeadObjectMinimumGrace(t *testing.T) {
	ctx := context.Background()
	d := saveAndDelete(t, smallIndex, true)
	d.clk.advance(30 * time.Second)
	gc := newStore(t, d.h, d.o)
	if rep, err := gc.GC(ctx, &durable.GCOptions{Grace: time.Millisecond}); err != nil || len(rep.Dead) != 0 {
		t.Fatalf("GC 30 s after = %+v, %v; want nothing deleted", rep, err)
	}
	d.clk.advance(time.Minute)
	if rep, err := gc.GC(ctx, &durable.GCOptions{Grace: time.Millisecond}); err != nil || len(rep.Dead) != 1 {
		t.Fatalf("GC 90 s after = %+v, %v; want the dead object deleted", rep, err)
	}
}

// A new store (no index, no runs) verifies clean, and GC finds nothing.
func TestVerifyNewStore(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, bucket.NewMem(), nil)
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() || rep.Runs != 0 {
		t.Fatalf("Verify of a new store = %+v, %v", rep, err)
	}
	if rep, err := s.GC(ctx, nil); err != nil || len(rep.Dead)+len(rep.Expired)+len(rep.Unindexed) != 0 {
		t.Fatalf("GC of a new store = %+v, %v", rep, err)
	}
}
