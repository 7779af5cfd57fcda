package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// Shared opens stores on one shared backing (a bucket, a directory), as
// separate processes would. RunShared asks for a fresh one per subtest.
type Shared struct {
	// Open opens a new store on the backing, with its own cache and
	// connections, as another process would. Required.
	Open func(t *testing.T) cairn.Store
	// OpenFenced, if not nil, opens a new store on the backing whose
	// writes are fenced: a Save of a run that another store has written
	// since this one last loaded or saved it fails with cairn.ErrConflict
	// (in Save, or in Flush for a store that buffers), and so does a Save
	// of a run this store never saw that another store created meanwhile.
	// It enables the fencing subtests. Set it in every Shared or in none.
	OpenFenced func(t *testing.T) cairn.Store
	// Reindex, if not nil, rebuilds the backing's index from what is
	// stored, through s (one of the suite's stores). The suite then checks
	// that a rebuild brings no deleted run back.
	Reindex func(ctx context.Context, s cairn.Store) error
}

// Flusher is implemented by stores that acknowledge a Save before it is
// durable (a write-back cache). RunShared flushes such a store after its
// writes and before it expects another store to see them.
type Flusher interface {
	Flush(ctx context.Context) error
}

// RunShared runs the multi-store tests: two or more stores on one
// backing, writing at the same time, must not lose each other's writes.
// For each subtest it calls newShared for a fresh, empty backing and
// opens its stores with Open (and OpenFenced); it closes them at the end.
//
// These subtests fail on a server that accepts conditional writes but
// does not honour them (If-None-Match: *, If-Match), which single-store
// tests cannot see:
//
//   - ConcurrentSaves: two stores save distinct runs at once; every run is
//     listed and loadable from both.
//   - SaveDeleteAcross: runs saved by one store and deleted by the other
//     (one after the other, then at the same time as new Saves) are gone
//     for both, also after a Reindex when Shared.Reindex is set.
//   - Overwrite: a run overwritten by the other store reads, for both, as
//     the last acknowledged Save.
//   - ConcurrentOverwrites: two stores save and delete the same runs
//     (never one run by both at the same instant); afterwards both list
//     and load exactly the last acknowledged operation of each run.
//   - LeaseTakeover: A holds a lease on a run and saves under it; after
//     the lease ends B claims the run, resuming from A's last save, and
//     A's next SaveLeased (or its flush), Renew and Release fail with
//     cairn.ErrConflict while the run keeps B's state. Of two stores
//     claiming one run at once, exactly one wins (stores that do not
//     implement cairn.Claimer skip it).
//   - FencedTakeover (with OpenFenced): after B loads and saves a run, A's
//     next Save of it fails with cairn.ErrConflict and the run keeps B's
//     state.
//   - FencedCreate (with OpenFenced): two stores that never saw a run save
//     it at the same time: at most one succeeds, the other gets
//     cairn.ErrConflict, and the run holds the winner's state.
//
// The stores must see each other's writes: a store that caches
// checkpoints must revalidate them (tiered.Options.Revalidate), and a
// store that buffers Saves must implement Flusher.
func RunShared(t *testing.T, newShared func(t *testing.T) Shared) {
	tests := []struct {
		name   string
		fenced bool
		fn     func(t *testing.T, sh Shared)
	}{
		{"ConcurrentSaves", false, testSharedConcurrentSaves},
		{"SaveDeleteAcross", false, testSharedSaveDelete},
		{"Overwrite", false, testSharedOverwrite},
		{"ConcurrentOverwrites", false, testSharedConcurrentOverwrites},
		{"LeaseTakeover", false, testSharedLeaseTakeover},
		{"FencedTakeover", true, testSharedFencedTakeover},
		{"FencedCreate", true, testSharedFencedCreate},
	}
	// Whether the store fences is known from the first Shared; the
	// fencing subtests run only then, after the others.
	fencing := false
	for _, fenced := range []bool{false, true} {
		if fenced && !fencing {
			return
		}
		for _, tt := range tests {
			if tt.fenced != fenced {
				continue
			}
			t.Run(tt.name, func(t *testing.T) {
				sh := newShared(t)
				if sh.Open == nil || fenced && sh.OpenFenced == nil {
					t.Fatal("storetest.Shared without Open, or without OpenFenced after one with it")
				}
				fencing = fencing || sh.OpenFenced != nil
				tt.fn(t, sh)
			})
		}
	}
}

// openShared opens n stores with open, closed when t ends.
func openShared(t *testing.T, open func(t *testing.T) cairn.Store, n int) []cairn.Store {
	stores := make([]cairn.Store, n)
	for i := range stores {
		s := open(t)
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		stores[i] = s
	}
	return stores
}

// flush makes s's acknowledged Saves visible to other stores.
func flush(ctx context.Context, s cairn.Store) error {
	if f, ok := s.(Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// saveVisible saves c in s and flushes s.
func saveVisible(ctx context.Context, s cairn.Store, c *cairn.Checkpoint) error {
	if err := s.Save(ctx, c); err != nil {
		return err
	}
	return flush(ctx, s)
}

func mustFlush(t *testing.T, s cairn.Store) {
	t.Helper()
	if err := flush(context.Background(), s); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// listAll returns every listed run of s with its timestamp, failing t on
// a run listed twice.
func listAll(t *testing.T, s cairn.Store) map[uuid.UUID]time.Time {
	t.Helper()
	got := map[uuid.UUID]time.Time{}
	for sum, err := range cairn.All(context.Background(), s, &cairn.ListOptions{Limit: 7}) {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if _, dup := got[sum.RunID]; dup {
			t.Errorf("run %v listed twice", sum.RunID)
		}
		got[sum.RunID] = sum.Timestamp
	}
	return got
}

// expectRuns checks that each store lists exactly want (by run, with its
// timestamp) and loads each run in want as want has it.
func expectRuns(t *testing.T, what string, stores []cairn.Store, want map[uuid.UUID]*cairn.Checkpoint) {
	t.Helper()
	for i, s := range stores {
		name := string(rune('A' + i))
		listed := listAll(t, s)
		var lost, extra []string
		for id, c := range want {
			ts, ok := listed[id]
			switch {
			case !ok:
				lost = append(lost, id.String())
			case !ts.Equal(c.Timestamp):
				t.Errorf("%s: store %s lists run %v at %v, its last acknowledged Save was at %v", what, name, id, ts, c.Timestamp)
			}
		}
		for id := range listed {
			if _, ok := want[id]; !ok {
				extra = append(extra, id.String())
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s: store %s does not list %d of %d acknowledged runs: %s", what, name, len(lost), len(want), some(lost))
		}
		if len(extra) > 0 {
			t.Errorf("%s: store %s lists %d runs that were deleted or never saved: %s", what, name, len(extra), some(extra))
		}
		for id, c := range want {
			got, err := s.Load(context.Background(), id)
			if err != nil {
				t.Errorf("%s: store %s: Load(%v): %v", what, name, id, err)
				continue
			}
			if d := Diff(got, c); d != "" {
				t.Errorf("%s: store %s: Load(%v) is not its last acknowledged Save: %s", what, name, id, d)
			}
		}
	}
}

// some returns up to 3 of ids, sorted, for a message.
func some(ids []string) string {
	sort.Strings(ids)
	if len(ids) > 3 {
		return strings.Join(ids[:3], ", ") + ", ..."
	}
	return strings.Join(ids, ", ")
}

// expectGone checks that no store loads any of ids.
func expectGone(t *testing.T, what string, stores []cairn.Store, ids []uuid.UUID) {
	t.Helper()
	for i, s := range stores {
		for _, id := range ids {
			if _, err := s.Load(context.Background(), id); !errors.Is(err, cairn.ErrNotFound) {
				t.Errorf("%s: store %c: Load of deleted run %v: %v, want ErrNotFound", what, 'A'+i, id, err)
			}
		}
	}
}

// sharedCheckpoint is run n's checkpoint as store `by` saves it at step.
func sharedCheckpoint(n int, by string, step int) *cairn.Checkpoint {
	return &cairn.Checkpoint{
		WorkflowName:  "shared-" + fmt.Sprint(n%3),
		RunID:         runID(n),
		Timestamp:     base.Add(time.Duration(step)*time.Second + time.Duration(n)*time.Millisecond),
		State:         map[string]any{"by": by, "step": int64(step)},
		PendingEvents: []cairn.Event{},
		Metadata:      map[string]any{},
	}
}

func testSharedConcurrentSaves(t *testing.T, sh Shared) {
	const workers, perWorker = 4, 8
	ctx := context.Background()
	stores := openShared(t, sh.Open, 2)
	var mu sync.Mutex
	want := map[uuid.UUID]*cairn.Checkpoint{}
	var wg sync.WaitGroup
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					c := sharedCheckpoint(1000*(si+1)+100*w+i, string(rune('A'+si)), i)
					if err := s.Save(ctx, c); err != nil {
						t.Errorf("store %c: Save(%v): %v", 'A'+si, c.RunID, err)
						continue
					}
					mu.Lock()
					want[c.RunID] = c
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for _, s := range stores {
		mustFlush(t, s)
	}
	expectRuns(t, "after concurrent Saves by two stores", stores, want)
}

func testSharedSaveDelete(t *testing.T, sh Shared) {
	ctx := context.Background()
	stores := openShared(t, sh.Open, 2)
	a, b := stores[0], stores[1]
	want := map[uuid.UUID]*cairn.Checkpoint{}
	var gone []uuid.UUID
	for n := range 10 {
		c := sharedCheckpoint(n, "A", 1)
		mustSave(t, a, c)
		want[c.RunID] = c
	}
	mustFlush(t, a)
	for n := range 5 { // one after the other: B deletes what A saved
		if err := b.Delete(ctx, runID(n)); err != nil {
			t.Fatalf("store B: Delete(%v): %v", runID(n), err)
		}
		delete(want, runID(n))
		gone = append(gone, runID(n))
	}
	expectRuns(t, "after B deleted runs A saved", stores, want)
	expectGone(t, "after B deleted runs A saved", stores, gone)

	// At the same time: A saves new runs while B deletes A's older ones.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Go(func() {
		for n := 100; n < 120; n++ {
			c := sharedCheckpoint(n, "A", 2)
			if err := saveVisible(ctx, a, c); err != nil {
				t.Errorf("store A: Save(%v): %v", c.RunID, err)
				continue
			}
			mu.Lock()
			want[c.RunID] = c
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for n := 5; n < 10; n++ {
			if err := b.Delete(ctx, runID(n)); err != nil {
				t.Errorf("store B: Delete(%v): %v", runID(n), err)
				continue
			}
			mu.Lock()
			delete(want, runID(n))
			gone = append(gone, runID(n))
			mu.Unlock()
		}
	})
	wg.Wait()
	expectRuns(t, "after A saved while B deleted", stores, want)
	expectGone(t, "after A saved while B deleted", stores, gone)
	if sh.Reindex == nil {
		return
	}
	if err := sh.Reindex(ctx, a); err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	expectRuns(t, "after a Reindex", stores, want)
	expectGone(t, "after a Reindex", stores, gone)
}

func testSharedOverwrite(t *testing.T, sh Shared) {
	stores := openShared(t, sh.Open, 2)
	a, b := stores[0], stores[1]
	ctx := context.Background()
	for step, by := range []cairn.Store{a, b, a, b} {
		name := string(rune('A' + step%2))
		c := sharedCheckpoint(7, name, step)
		c.WorkflowName = "renamed-by-" + name // the summary changes too
		if err := saveVisible(ctx, by, c); err != nil {
			t.Fatalf("step %d: store %s: Save: %v", step, name, err)
		}
		expectRuns(t, fmt.Sprintf("after store %s's overwrite (step %d)", name, step), stores,
			map[uuid.UUID]*cairn.Checkpoint{c.RunID: c})
		for i, s := range stores {
			p := mustList(t, s, nil)
			if len(p.Runs) != 1 || p.Runs[0].WorkflowName != c.WorkflowName {
				t.Errorf("step %d: store %c lists %+v, want workflow %q", step, 'A'+i, p.Runs, c.WorkflowName)
			}
		}
	}
}

func testSharedConcurrentOverwrites(t *testing.T, sh Shared) {
	const runs, workers, opsPerWorker = 12, 4, 12
	ctx := context.Background()
	stores := openShared(t, sh.Open, 2)
	locks := make([]sync.Mutex, runs)
	last := make([]*cairn.Checkpoint, runs) // nil: never saved or deleted last; guarded by locks
	var wg sync.WaitGroup
	for si, s := range stores {
		name := string(rune('A' + si))
		for w := range workers {
			wg.Go(func() {
				for op := range opsPerWorker {
					i := (w*7 + op*5 + si*3) % runs
					step := (si*workers+w)*opsPerWorker + op
					locks[i].Lock()
					if op%4 == 3 {
						err := s.Delete(ctx, runID(5000+i))
						if err == nil {
							last[i] = nil
						} else {
							t.Errorf("store %s: Delete: %v", name, err)
						}
					} else {
						c := sharedCheckpoint(5000+i, name, step)
						if err := saveVisible(ctx, s, c); err == nil {
							last[i] = c
						} else {
							t.Errorf("store %s: Save: %v", name, err)
						}
					}
					locks[i].Unlock()
				}
			})
		}
	}
	wg.Wait()
	want := map[uuid.UUID]*cairn.Checkpoint{}
	var gone []uuid.UUID
	for i, c := range last {
		if c != nil {
			want[c.RunID] = c
		} else {
			gone = append(gone, runID(5000+i))
		}
	}
	expectRuns(t, "after both stores saved and deleted the same runs", stores, want)
	expectGone(t, "after both stores saved and deleted the same runs", stores, gone)
}

func testSharedFencedTakeover(t *testing.T, sh Shared) {
	ctx := context.Background()
	stores := openShared(t, sh.OpenFenced, 2)
	a, b := stores[0], stores[1]
	first := sharedCheckpoint(1, "A", 1)
	if err := saveVisible(ctx, a, first); err != nil {
		t.Fatalf("store A: Save: %v", err)
	}
	if _, err := b.Load(ctx, first.RunID); err != nil {
		t.Fatalf("store B: Load: %v", err)
	}
	taken := sharedCheckpoint(1, "B", 2)
	if err := saveVisible(ctx, b, taken); err != nil { // B takes the run over
		t.Fatalf("store B: Save after Load: %v", err)
	}
	err := saveVisible(ctx, a, sharedCheckpoint(1, "A", 3))
	if !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("store A's Save of a run B took over: %v, want ErrConflict", err)
	}
	expectRuns(t, "after a fenced takeover", stores, map[uuid.UUID]*cairn.Checkpoint{taken.RunID: taken})
}

func testSharedFencedCreate(t *testing.T, sh Shared) {
	const runs = 8
	ctx := context.Background()
	stores := openShared(t, sh.OpenFenced, 2)
	want := map[uuid.UUID]*cairn.Checkpoint{}
	for n := range runs {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		cps := make([]*cairn.Checkpoint, 2)
		for si, s := range stores {
			cps[si] = sharedCheckpoint(n, string(rune('A'+si)), si+1)
			wg.Go(func() {
				<-start
				errs[si] = saveVisible(ctx, s, cps[si])
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for si, err := range errs {
			switch {
			case err == nil:
				won++
				want[cps[si].RunID] = cps[si]
			case !errors.Is(err, cairn.ErrConflict):
				t.Errorf("run %d: store %c: Save: %v, want nil or ErrConflict", n, 'A'+si, err)
			}
		}
		if won > 1 {
			t.Errorf("run %d: two stores that never saw it both created it; want at most one, the other ErrConflict", n)
		}
	}
	// A store that lost is fenced until it loads the run again; a fresh
	// store reads what is durable.
	fresh := openShared(t, sh.Open, 1)
	expectRuns(t, "after racing creates", fresh, want)
}
