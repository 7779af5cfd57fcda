package durable_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/regionsim"
	"github.com/google/uuid"
)

// regionStore opens region r's store on its copy of the bucket.
func regionStore(t *testing.T, b bucket.Bucket, r string) *durable.Store {
	t.Helper()
	s, err := durable.New(b, &durable.Options{Region: r, Index: &index.Options{CompactAfter: 4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func checkpointAt(run uuid.UUID, step int, ts time.Time) *cairn.Checkpoint {
	return &cairn.Checkpoint{WorkflowName: "regions", RunID: run, Timestamp: ts, State: map[string]any{"step": int64(step)}}
}

func stepOf(t *testing.T, s *durable.Store, run uuid.UUID) int64 {
	t.Helper()
	c, err := s.Load(context.Background(), run)
	if err != nil {
		t.Fatalf("load %v: %v", run, err)
	}
	return c.State["step"].(int64)
}

func listedRuns(t *testing.T, s *durable.Store) []uuid.UUID {
	t.Helper()
	page, err := s.List(context.Background(), &cairn.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, r := range page.Runs {
		ids = append(ids, r.RunID)
	}
	return ids
}

// TestRegionsStaleWriterLosesEverywhere: a run claimed and resumed in
// region b during a partition wins in both regions over what a's stale
// lease holder wrote later (a's clock even runs ahead, so replication's
// last-writer-wins keeps a's object): Verify reports the run stale,
// Reconcile restores b's state, a's holder then gets ErrConflict, and
// Reindex in either region keeps b's state.
func TestRegionsStaleWriterLosesEverywhere(t *testing.T) {
	ctx := context.Background()
	// a's clock runs half a second ahead: its stale write, made after
	// b's, is what replication's last-writer-wins keeps.
	sim := regionsim.New(1, 2, &regionsim.Options{Skew: []time.Duration{500 * time.Millisecond, 0}})
	a, b := regionStore(t, sim.Site(0), "a"), regionStore(t, sim.Site(1), "b")
	run := uuid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.Save(ctx, checkpointAt(run, 1, t0)); err != nil {
		t.Fatal(err)
	}
	la, err := a.Claim(ctx, run, &cairn.ClaimOptions{Owner: "a-worker", Lease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SaveLeased(ctx, la, checkpointAt(run, 2, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	sim.Settle()
	sim.Cut()
	time.Sleep(1100 * time.Millisecond) // a's lease ends in b's copy of the claim
	lb, err := b.Claim(ctx, run, &cairn.ClaimOptions{Owner: "b-worker", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if lb.Epoch <= la.Epoch {
		t.Fatalf("b's claim has epoch %d, a's %d", lb.Epoch, la.Epoch)
	}
	if err := b.SaveLeased(ctx, lb, checkpointAt(run, 3, t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	// a's stale holder goes on in its partition, later by every clock.
	if err := a.Renew(ctx, la); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveLeased(ctx, la, checkpointAt(run, 99, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	sim.Heal()
	sim.Settle()
	for _, s := range []*durable.Store{a, b} {
		if err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sim.Settle()
	for i, s := range []*durable.Store{a, b} {
		rep, err := s.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(rep.Stale, run) && stepOf(t, s, run) != 3 {
			t.Fatalf("region %d: the run loads as step %d and Verify does not report it stale: %+v", i, stepOf(t, s, run), rep)
		}
	}
	// Reconciling comes later than the stale write by more than the
	// clocks' skew: b's restore is then the latest version by every
	// clock. (b restores: the state it won.)
	time.Sleep(600 * time.Millisecond)
	if _, err := b.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sim.Settle()
	for i, s := range []*durable.Store{a, b} {
		if got := stepOf(t, s, run); got != 3 {
			t.Fatalf("region %d: run at step %d after Reconcile, want b's 3", i, got)
		}
		rep, err := s.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Stale)+len(rep.SplitBrain) != 0 {
			t.Fatalf("region %d: Verify after Reconcile: %+v", i, rep)
		}
	}
	if err := a.SaveLeased(ctx, la, checkpointAt(run, 100, t0.Add(2*time.Hour))); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("a's stale holder after the heal: %v, want ErrConflict", err)
	}
	for i, s := range []*durable.Store{a, b} {
		if _, err := s.Reindex(ctx, nil); err != nil {
			t.Fatal(err)
		}
		sim.Settle()
		if got := stepOf(t, s, run); got != 3 {
			t.Fatalf("region %d: run at step %d after Reindex, want 3", i, got)
		}
		if runs := listedRuns(t, s); len(runs) != 1 || runs[0] != run {
			t.Fatalf("region %d lists %v after Reindex", i, runs)
		}
	}
}

// TestRegionsSplitBrainReported: both regions save one run during a cut
// with no claim between; after the heal both load the same state (the
// later checkpoint timestamp's) and Verify reports the run in both.
func TestRegionsSplitBrainReported(t *testing.T) {
	ctx := context.Background()
	sim := regionsim.New(2, 2, &regionsim.Options{Skew: []time.Duration{0, 300 * time.Millisecond}})
	a, b := regionStore(t, sim.Site(0), "a"), regionStore(t, sim.Site(1), "b")
	run := uuid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.Save(ctx, checkpointAt(run, 1, t0)); err != nil {
		t.Fatal(err)
	}
	sim.Settle()
	sim.Cut()
	// a's checkpoint is the later one; b's clock (and so its object's
	// modification time) runs ahead.
	if err := a.Save(ctx, checkpointAt(run, 2, t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, checkpointAt(run, 3, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	sim.Heal()
	sim.Settle()
	time.Sleep(400 * time.Millisecond) // past the skew, as a reconcile after a heal is
	for _, s := range []*durable.Store{a, b} {
		if _, err := s.Reconcile(ctx, nil); err != nil {
			t.Fatal(err)
		}
		sim.Settle()
	}
	for i, s := range []*durable.Store{a, b} {
		if got := stepOf(t, s, run); got != 2 {
			t.Fatalf("region %d loads step %d, want a's 2 (the later checkpoint)", i, got)
		}
		rep, err := s.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.SplitBrain, []uuid.UUID{run}) || len(rep.Stale) != 0 {
			t.Fatalf("region %d: Verify = %+v; want the run as a split brain", i, rep)
		}
	}
}

// TestGCVersions: GC with Versions removes the old versions and delete
// markers a versioned bucket keeps, but the current versions, and leaves a
// store that reads as before.
func TestGCVersions(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	mem := bucket.NewMemVersioned()
	mem.SetClock(clock)
	s, err := durable.New(mem, &durable.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	kept, gone := uuid.New(), uuid.New()
	for i := range 3 {
		if err := s.Save(ctx, checkpointAt(kept, i, now)); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, checkpointAt(gone, i, now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	count := func() (versions, markers int) {
		for km, vm := "", ""; ; {
			vs, nk, nv, more, err := mem.ListVersions(ctx, "", km, vm, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				if v.DeleteMarker {
					markers++
				} else {
					versions++
				}
			}
			if !more {
				return
			}
			km, vm = nk, nv
		}
	}
	v0, m0 := count()
	now = now.Add(time.Hour)
	rep, err := s.GC(ctx, &durable.GCOptions{Versions: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if v1, m1 := count(); v1 != v0 || m1 != m0 {
		t.Fatalf("a dry run deleted versions: %d+%d, then %d+%d", v0, m0, v1, m1)
	}
	dry := rep.Versions
	if rep, err = s.GC(ctx, &durable.GCOptions{Versions: true}); err != nil {
		t.Fatal(err)
	}
	v1, m1 := count()
	if rep.Versions != dry || rep.Versions == 0 || v0+m0-rep.Versions != v1+m1 {
		t.Fatalf("GC deleted %d versions (dry run: %d); %d versions and %d markers before, %d and %d after", rep.Versions, dry, v0, m0, v1, m1)
	}
	if got := stepOf(t, s, kept); got != 2 {
		t.Fatalf("kept run at step %d", got)
	}
	if _, err := s.Load(ctx, gone); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("deleted run: %v", err)
	}
	// The index objects that GC deleted left delete markers of their
	// own, younger than the grace: the next GC takes them.
	now = now.Add(time.Hour)
	if _, err = s.GC(ctx, &durable.GCOptions{Versions: true}); err != nil {
		t.Fatal(err)
	}
	if v1, m1 = count(); m1 != 0 {
		vs, _, _, _, _ := mem.ListVersions(ctx, "", "", "", 1000)
		for _, v := range vs {
			if v.DeleteMarker {
				t.Logf("marker %s latest=%v at %s (now %s)", v.Key, v.Latest, v.LastModified, now)
			}
		}
		t.Fatalf("%d delete markers left with nothing behind them", m1)
	}
	vrep, err := s.Verify(ctx)
	if err != nil || !vrep.OK() {
		t.Fatalf("Verify after GC: %+v, %v", vrep, err)
	}
	// Every key left has exactly its current version.
	if v1 != len(keysOf(t, mem)) {
		t.Fatalf("%d versions left for %d keys", v1, len(keysOf(t, mem)))
	}
}

func keysOf(t *testing.T, b bucket.Bucket) []string {
	t.Helper()
	var keys []string
	for start := ""; ; {
		infos, more, err := b.List(context.Background(), "", start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			keys = append(keys, in.Key)
		}
		if !more || len(infos) == 0 {
			return keys
		}
		start = infos[len(infos)-1].Key
	}
}

// TestRegionsClaimOverDamagedIndex: in a store of several regions a Claim
// reads the index for the other regions' epochs; on a damaged index it
// goes on, as writes do, taking the run as its object is.
func TestRegionsClaimOverDamagedIndex(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := regionStore(t, mem, "a")
	run := uuid.New()
	if err := s.Save(ctx, checkpointAt(run, 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	damaged := 0
	for _, k := range keysOf(t, mem) {
		if strings.HasPrefix(k, "index/regions/a/log/") {
			if _, err := mem.Put(ctx, k, []byte("not an index log"), nil); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	fresh := regionStore(t, mem, "a")
	if _, err := fresh.List(ctx, nil); !errors.Is(err, index.ErrDamaged) || damaged == 0 {
		t.Fatalf("List over %d damaged logs: %v, want index.ErrDamaged", damaged, err)
	}
	l, err := fresh.Claim(ctx, run, &cairn.ClaimOptions{Owner: "w", Lease: time.Minute})
	if err != nil {
		t.Fatalf("Claim over a damaged index: %v", err)
	}
	if err := fresh.SaveLeased(ctx, l, checkpointAt(run, 2, time.Now())); err != nil {
		t.Fatal(err)
	}
	if got := stepOf(t, fresh, run); got != 2 {
		t.Fatalf("step %d", got)
	}
}
