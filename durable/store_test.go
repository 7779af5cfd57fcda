package durable_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
)

// Small pages and frequent compaction, so that the conformance suite runs
// through snapshots, split pages and long tails alike.
var smallIndex = &index.Options{PageSize: 4, CompactAfter: 3}

func newStore(t testing.TB, b bucket.Bucket, o *durable.Options) *durable.Store {
	t.Helper()
	if o == nil {
		o = &durable.Options{Prefix: "cairn", Index: smallIndex}
	}
	s, err := durable.New(b, o)
	if err != nil {
		t.Fatal(err)
	}
	// Close waits for a background compaction, which must not write into
	// a temporary directory being removed. (A test's own Close comes
	// first; this one then only reports ErrClosed.)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestConformanceMem(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cairn.Store { return newStore(t, bucket.NewMem(), nil) })
}

func TestConformanceDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cairn.Store {
		dir, err := bucket.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return newStore(t, dir, nil)
	})
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func cp(n int, ts time.Time) *cairn.Checkpoint {
	var id uuid.UUID
	id[0], id[1] = byte(n>>8), byte(n)
	id[6], id[8], id[15] = 0x40, 0x80, 7
	return &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: ts, State: map[string]any{"n": int64(n)},
		PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
}

func listIDs(t testing.TB, s cairn.Store) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for sum, err := range cairn.All(context.Background(), s, nil) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sum.RunID)
	}
	return ids
}

// failing fails the Puts and Deletes whose key matches, as a process that
// dies at that point would never make them.
type failing struct {
	bucket.Bucket
	put, del func(key string) bool
}

var errCrash = errors.New("crashed here")

func (f *failing) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if f.put != nil && f.put(key) {
		return "", errCrash
	}
	return f.Bucket.Put(ctx, key, body, o)
}

func (f *failing) Delete(ctx context.Context, key string) error {
	if f.del != nil && f.del(key) {
		return errCrash
	}
	return f.Bucket.Delete(ctx, key)
}

// A Save that dies between its object and its index commit leaves an
// object the index does not list: reported by Verify as unindexed, never
// deleted by GC (it is the newest state a writer wrote), and listed again
// by Reindex; every acknowledged Save survives.
func TestCrashBetweenObjectAndCommit(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	good := newStore(t, mem, nil)
	for i := range 5 {
		if err := good.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	crashing := newStore(t, &failing{Bucket: mem, put: func(k string) bool { return strings.Contains(k, "/index/log/") }},
		&durable.Options{Prefix: "cairn", Index: &index.Options{RetryFor: 50 * time.Millisecond}})
	lost := cp(99, t0)
	if err := crashing.Save(ctx, lost); err == nil {
		t.Fatal("Save succeeded without its index commit")
	}
	fresh := newStore(t, mem, nil)
	if ids := listIDs(t, fresh); len(ids) != 5 {
		t.Fatalf("List after the crash = %v, want the 5 acknowledged runs", ids)
	}
	rep, err := fresh.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unindexed) != 1 || rep.Unindexed[0] != lost.RunID || len(rep.Missing)+len(rep.Dead) != 0 {
		t.Fatalf("Verify = %+v, want exactly the unacknowledged run as unindexed", rep)
	}
	later := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: func() time.Time { return time.Now().Add(time.Hour) }})
	gc, err := later.GC(ctx, &durable.GCOptions{Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(gc.Unindexed) != 1 || len(gc.Dead)+len(gc.Expired) != 0 {
		t.Fatalf("GC = %+v, want the unindexed run reported and nothing deleted", gc)
	}
	if _, err := fresh.Load(ctx, lost.RunID); err != nil {
		t.Fatalf("Load of the unindexed run after GC: %v", err)
	}
	if _, err := fresh.Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ids := listIDs(t, fresh); len(ids) != 6 {
		t.Fatalf("List after Reindex = %v, want the 5 acknowledged runs and the unindexed one", ids)
	}
}

// interruptedDelete saves two runs in mem and deletes the first through a
// bucket that fails to delete run objects: its tombstone is committed, its
// object stays. It returns the store that saved them and the victim.
func interruptedDelete(t *testing.T, mem *bucket.Mem) (*durable.Store, *cairn.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	victim := cp(1, t0)
	for _, c := range []*cairn.Checkpoint{victim, cp(2, t0)} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	crashing := newStore(t, &failing{Bucket: mem, del: func(k string) bool { return strings.Contains(k, "/runs/") }}, nil)
	if err := crashing.Delete(ctx, victim.RunID); err == nil {
		t.Fatal("Delete succeeded without deleting the object")
	}
	return s, victim
}

// A Delete that dies between its tombstone and the object's deletion
// leaves the run unlisted (never an entry without an object); GC finishes.
func TestCrashBetweenTombstoneAndDelete(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	interruptedDelete(t, mem)
	fresh := newStore(t, mem, nil)
	if ids := listIDs(t, fresh); len(ids) != 1 || ids[0] != cp(2, t0).RunID {
		t.Fatalf("List after the interrupted delete = %v", ids)
	}
	rep, err := fresh.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Missing)+len(rep.Unindexed) != 0 || len(rep.Dead) != 1 {
		t.Fatalf("Verify = %+v, want one dead object and no missing or unindexed ones", rep)
	}
	later := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if gc, err := later.GC(ctx, nil); err != nil || len(gc.Dead) != 1 {
		t.Fatalf("GC = %+v, %v; want the dead object deleted", gc, err)
	}
	if rep, _ := fresh.Verify(ctx); !rep.OK() {
		t.Fatalf("after GC: %+v", rep)
	}
}

// Crashes at every step of a compaction: pages written, manifest written,
// head not moved... Afterwards every acknowledged Save is listed.
func TestCrashDuringCompaction(t *testing.T) {
	for _, step := range []string{"/index/pages/", "/index/snap/", "/index/head"} {
		t.Run(strings.Trim(step, "/"), func(t *testing.T) {
			mem := bucket.NewMem()
			ctx := context.Background()
			var crashed, compacting atomic.Bool
			f := &failing{Bucket: mem, put: func(k string) bool {
				if compacting.Load() && strings.Contains(k, step) {
					crashed.Store(true)
					return true
				}
				return false
			}}
			s := newStore(t, f, &durable.Options{Prefix: "cairn", Index: &index.Options{PageSize: 4, CompactAfter: 1000}})
			want := map[uuid.UUID]bool{}
			for i := range 20 {
				c := cp(i, t0.Add(time.Duration(i)*time.Second))
				if err := s.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
				want[c.RunID] = true
			}
			compacting.Store(true) // not the head that marks the new index
			if err := durable.IndexOf(s).Compact(ctx); err == nil || !crashed.Load() {
				t.Fatalf("compaction did not reach the crash point: %v", err)
			}
			fresh := newStore(t, mem, nil)
			ids := listIDs(t, fresh)
			if len(ids) != len(want) {
				t.Fatalf("after a crash at %s: %d runs listed, want %d", step, len(ids), len(want))
			}
			for _, id := range ids {
				if !want[id] {
					t.Fatalf("unexpected run %v", id)
				}
			}
			// The next compaction, by anyone, completes.
			if err := durable.IndexOf(fresh).Compact(ctx); err != nil {
				t.Fatal(err)
			}
			if got := listIDs(t, newStore(t, mem, nil)); len(got) != len(want) {
				t.Fatalf("after recovery: %d runs", len(got))
			}
		})
	}
}

func TestTTL(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	mem := bucket.NewMem()
	s := newStore(t, mem, &durable.Options{TTL: time.Hour, Now: clock})
	ctx := context.Background()
	a, b := cp(1, t0), cp(2, t0)
	for _, c := range []*cairn.Checkpoint{a, b} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	advance(40 * time.Minute)
	if err := s.Save(ctx, b); err != nil { // refreshes b's TTL
		t.Fatal(err)
	}
	advance(30 * time.Minute) // a expired, b has 30 minutes left
	if _, err := s.Load(ctx, a.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load of an expired run: %v", err)
	}
	if _, err := s.Load(ctx, b.RunID); err != nil {
		t.Fatalf("Load of a refreshed run: %v", err)
	}
	if ids := listIDs(t, s); len(ids) != 1 || ids[0] != b.RunID {
		t.Fatalf("List = %v, want only the refreshed run", ids)
	}
	rep, err := s.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Expired) != 1 || rep.Expired[0] != a.RunID {
		t.Fatalf("GC = %+v", rep)
	}
	if _, err := mem.Head(ctx, "runs/"+a.RunID.String()); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("the expired run's object is still there: %v", err)
	}
}

// Reindex rebuilds a lost or damaged index from the objects' metadata.
func TestReindex(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	for i := range 30 {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i%7)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, cp(3, t0).RunID); err != nil {
		t.Fatal(err)
	}
	durable.IndexOf(s).Wait()
	want := listIDs(t, s)

	// Damage: the head becomes garbage.
	if _, err := mem.Put(ctx, "cairn/index/head", []byte("garbage"), nil); err != nil {
		t.Fatal(err)
	}
	broken := newStore(t, mem, nil)
	if got := listIDs(t, broken); !slices.Equal(got, want) {
		t.Fatalf("List over a damaged head (falling back to the log) = %v\nwant %v", got, want)
	}
	rep, err := broken.Reindex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Indexed != len(want) || rep.Runs != len(want) {
		t.Fatalf("Reindex = %+v, want %d runs indexed", rep, len(want))
	}
	got := listIDs(t, newStore(t, mem, nil))
	if len(got) != len(want) {
		t.Fatalf("after Reindex: %v\nwant %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("after Reindex: %v\nwant %v", got, want)
		}
	}
	if rep, err := newStore(t, mem, nil).Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after Reindex: %+v, %v", rep, err)
	}
}

// One undecodable object is reported by Verify without hiding the others,
// and Load refuses it with ErrCorrupt.
func TestVerifyCorruptObject(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	for i := range 3 {
		if err := s.Save(ctx, cp(i, t0)); err != nil {
			t.Fatal(err)
		}
	}
	bad := cp(1, t0).RunID
	if _, err := mem.Put(ctx, "cairn/runs/"+bad.String(), []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, bad); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("Load of a damaged object: %v", err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 3 || len(rep.Corrupt) != 1 || rep.Corrupt[bad] == nil || len(rep.Missing)+len(rep.Unindexed) != 0 {
		t.Fatalf("Verify = %+v", rep)
	}
}

// Index GC removes logs and pages no snapshot needs, and the store still
// lists everything afterwards.
func TestIndexGC(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: &index.Options{PageSize: 4, CompactAfter: 1000}})
	for round := range 2 { // two snapshots: the first one's newest page is replaced by the second's
		for i := range 20 {
			if err := s.Save(ctx, cp(100*round+i, t0.Add(time.Duration(100*round+i)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if err := durable.IndexOf(s).Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := listIDs(t, s)
	later := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: func() time.Time { return time.Now().Add(time.Hour) }})
	rep, err := later.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Index.Logs != 40 || rep.Index.Snapshots != 1 || rep.Index.Pages == 0 {
		t.Fatalf("index GC = %+v, want the 40 logs, the older snapshot and its replaced pages removed", rep.Index)
	}
	got := listIDs(t, newStore(t, mem, nil))
	if len(got) != len(want) {
		t.Fatalf("after GC: %d runs, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("after GC: %v\nwant %v", got, want)
		}
	}
}

func TestReindexLeavesDeletedRunsOut(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s, victim := interruptedDelete(t, mem)
	if err := durable.IndexOf(s).Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(listIDs(t, newStore(t, mem, nil)), victim.RunID) {
		t.Errorf("deleted run resurrected by Reindex")
	}
}

func TestReindexAfterGC(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	for i := range 20 {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	durable.IndexOf(s).Wait()
	if err := durable.IndexOf(s).Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: func() time.Time { return time.Now().Add(time.Hour) }}).GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 22; i++ {
		if err := s.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mem.Put(ctx, "cairn/index/head", []byte("garbage"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := newStore(t, mem, nil).Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := newStore(t, mem, nil).List(ctx, nil); err != nil {
		t.Errorf("List after Reindex: %v", err)
	}
}

func TestSaveDeleteRaceInProcess(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	bad := 0
	for i := range 300 {
		c := cp(i, t0)
		var wg sync.WaitGroup
		wg.Go(func() { _ = s.Save(ctx, c) })
		wg.Go(func() { _ = s.Delete(ctx, c.RunID) })
		wg.Wait()
		listed := slices.Contains(listIDs(t, s), c.RunID)
		if _, err := s.Load(ctx, c.RunID); listed && errors.Is(err, cairn.ErrNotFound) {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d/300 runs listed with no object", bad)
	}
}

// A writer that stays idle while another process compacts and GC collects
// the logs must not reuse a freed log number: its next Save is listed, and
// survives the next GC. All processes share one clock that jumps an hour.
func TestStaleWriterAfterGC(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := func() *durable.Options {
		return &durable.Options{Prefix: "cairn", Now: clock, Index: &index.Options{PageSize: 4, CompactAfter: 3}}
	}
	a, b := newStore(t, mem, o()), newStore(t, mem, o())
	if err := a.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 12; i++ {
		if err := b.Save(ctx, cp(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	durable.IndexOf(b).Wait()
	if err := durable.IndexOf(b).Compact(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if rep, err := newStore(t, mem, o()).GC(ctx, nil); err != nil || rep.Index.Logs == 0 {
		t.Fatalf("GC = %+v, %v; want logs collected", rep, err)
	}
	late := cp(99, t0.Add(time.Hour))
	if err := a.Save(ctx, late); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(listIDs(t, newStore(t, mem, o())), late.RunID) {
		t.Fatal("an acknowledged Save from the idle writer is not listed")
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if _, err := newStore(t, mem, o()).GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, late.RunID); err != nil {
		t.Fatalf("GC removed an acknowledged run: %v", err)
	}
}

// Exists agrees with Load: a saved run exists, a deleted or expired one
// does not, and a corrupt one does (it can still be deleted).
func TestExists(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	mem := bucket.NewMem()
	s := newStore(t, mem, &durable.Options{Prefix: "cairn", TTL: time.Hour, Now: clock})
	ctx := context.Background()
	a, b, c := cp(1, t0), cp(2, t0), cp(3, t0)
	for _, x := range []*cairn.Checkpoint{a, b, c} {
		if err := s.Save(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, b.RunID); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Put(ctx, "cairn/runs/"+c.RunID.String(), []byte("garbage"), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		run  uuid.UUID
		want bool
	}{{a.RunID, true}, {b.RunID, false}, {c.RunID, true}, {cp(4, t0).RunID, false}} {
		if got, err := s.Exists(ctx, tc.run); err != nil || got != tc.want {
			t.Errorf("Exists(%v) = %v, %v; want %v", tc.run, got, err, tc.want)
		}
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if got, err := s.Exists(ctx, a.RunID); err != nil || got {
		t.Errorf("Exists of an expired run = %v, %v; want false", got, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exists(ctx, a.RunID); !errors.Is(err, cairn.ErrClosed) {
		t.Errorf("Exists after Close: %v, want ErrClosed", err)
	}
}

// VerifyWith reports its progress: one call per object read, serialized,
// counting up to the number of objects listed, a corrupt one included.
func TestVerifyProgress(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	s := newStore(t, mem, nil)
	for i := range 7 {
		if err := s.Save(ctx, cp(i, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mem.Put(ctx, "cairn/runs/"+cp(3, t0).RunID.String(), []byte("junk"), nil); err != nil {
		t.Fatal(err)
	}
	var calls [][2]int
	rep, err := s.VerifyWith(ctx, &durable.VerifyOptions{Progress: func(done, total int) {
		calls = append(calls, [2]int{done, total}) // serialized: no lock needed (-race checks)
	}})
	if err != nil || rep.Runs != 7 || len(rep.Corrupt) != 1 {
		t.Fatalf("VerifyWith = %+v, %v", rep, err)
	}
	if len(calls) != 7 {
		t.Fatalf("%d progress calls, want 7: %v", len(calls), calls)
	}
	for i, c := range calls {
		if c != [2]int{i + 1, 7} {
			t.Errorf("progress call %d = %v, want [%d 7]", i, c, i+1)
		}
	}
}
