package regiontest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The runs of the split-brain story, each written in both regions during
// a cut.
const (
	plainSaves  = iota // plain Saves; a's has the later checkpoint time, b's was written later
	localClaims        // each region claims it (both get epoch 1) and saves under the lease
	deleteSave         // a deletes it, b saves it later
	saveDelete         // a saves it, b deletes it later
	splitRuns
)

var splitNames = [splitRuns]string{"plain saves", "local claims", "delete and save", "save and delete"}

// splitBrain: during a cut both regions write the same runs with no claim
// between them. After the heal both regions decide the same way: once
// Reconcile has run in each (reconcile), or a compaction in one region
// has reconciled them in the background, Load gives the same checkpoint
// in both, which is the state index.Winner chooses from the regions' ops;
// Verify reports every such run as SplitBrain in both regions.
func splitBrain(t *testing.T, r *rig, prefix string, reconcile bool) {
	ctx := context.Background()
	const workflow = "split"
	if err := r.sites.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	stores := [2]*tiered.Store{r.open(t, siteA, prefix), r.open(t, siteB, prefix)}
	a, b := stores[siteA], stores[siteB]
	var runs [splitRuns]uuid.UUID
	for i := range runs {
		runs[i] = uuid.New()
		if err := a.Save(ctx, Checkpoint(workflow, runs[i], 0, steps, "a-admin", "a")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the runs reach b", func() bool {
		for _, run := range runs {
			if st, err := load(ctx, b.Durable(), run); err != nil || !st.found {
				return false
			}
		}
		return true
	})

	if err := r.sites.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ca := Checkpoint(workflow, runs[plainSaves], 1, steps, "a-admin", "a")
	ca.Timestamp = t0.Add(time.Second)
	must(t, a.Save(ctx, ca))
	time.Sleep(20 * time.Millisecond) // MinIO orders versions by modification time
	cb := Checkpoint(workflow, runs[plainSaves], 1, steps, "b-admin", "b")
	cb.Timestamp = t0
	must(t, b.Save(ctx, cb))

	var epochs [2]uint64
	for i, s := range stores {
		l, err := s.Claim(ctx, runs[localClaims], &cairn.ClaimOptions{Owner: regionOf[i] + "-admin", Lease: time.Minute})
		if err != nil {
			t.Fatalf("region %s: Claim during the cut: %v", regionOf[i], err)
		}
		epochs[i] = l.Epoch
		must(t, s.SaveLeased(ctx, l, Checkpoint(workflow, runs[localClaims], 1, steps, regionOf[i]+"-admin", regionOf[i])))
	}
	if epochs[0] != epochs[1] {
		t.Errorf("the regions' claims during the cut got epochs %d and %d, want the same", epochs[0], epochs[1])
	}

	must(t, a.Delete(ctx, runs[deleteSave]))
	time.Sleep(20 * time.Millisecond)
	must(t, b.Save(ctx, Checkpoint(workflow, runs[deleteSave], 1, steps, "b-admin", "b")))

	must(t, a.Save(ctx, Checkpoint(workflow, runs[saveDelete], 1, steps, "a-admin", "a")))
	time.Sleep(20 * time.Millisecond)
	must(t, b.Delete(ctx, runs[saveDelete]))

	if err := r.sites.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.sites.WaitConverged(ctx, prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		rep, err := s.Durable().Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("region %s, after the heal, before Reconcile: Verify %s", regionOf[i], describe(rep, runs))
	}
	if reconcile {
		for i, s := range stores {
			rep, err := s.Durable().Reconcile(ctx, nil)
			if err != nil {
				t.Fatalf("region %s: Reconcile: %v", regionOf[i], err)
			}
			t.Logf("region %s: Reconcile checked %d runs, restored %d, %d unrestorable", regionOf[i], rep.Checked, len(rep.Restored), len(rep.Unrestorable))
		}
	} else {
		// The background: a compaction reconciles the runs it decided
		// (each region those it won).
		must(t, a.Durable().Compact(ctx))
		must(t, b.Durable().Compact(ctx))
		start := time.Now()
		waitFor(t, 30*time.Second, "no run stale in either region after a compaction in a", func() bool {
			for _, s := range stores {
				rep, err := s.Durable().Verify(ctx)
				if err != nil || len(rep.Stale) > 0 {
					return false
				}
			}
			return true
		})
		t.Logf("the compaction's background Reconcile restored the winners within %v", time.Since(start).Round(time.Millisecond))
	}
	if err := r.sites.WaitConverged(ctx, prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	checkSplit(t, r, stores, prefix, runs)
}

// checkSplit checks that both regions decide each run of the split-brain
// story the same way, as index.Winner does, and report it as a split brain.
func checkSplit(t *testing.T, r *rig, stores [2]*tiered.Store, prefix string, runs [splitRuns]uuid.UUID) {
	ctx := context.Background()
	var winners [2][splitRuns]index.Op
	var loaded [2][splitRuns]loadState
	for i, s := range stores {
		ix := r.index(t, i, prefix)
		ops, err := ix.RunOps(ctx, runs[:]...)
		if err != nil {
			t.Fatal(err)
		}
		listed, err := listAll(ctx, s, cairn.ListOptions{WorkflowName: "split"})
		if err != nil {
			t.Fatal(err)
		}
		for k, run := range runs {
			if len(ops[run]) != 2 {
				t.Errorf("region %s: run %q has ops from %d regions, want 2: %+v", regionOf[i], splitNames[k], len(ops[run]), ops[run])
				continue
			}
			w := index.Winner(ops[run])
			winners[i][k] = w
			st, etag := loadETag(t, s.Durable(), run)
			loaded[i][k] = st
			isListed := slices.ContainsFunc(listed, func(sum cairn.Summary) bool { return sum.RunID == run })
			switch {
			case w.Delete && isListed:
				t.Errorf("region %s: run %q: the winner is a delete, the run is listed", regionOf[i], splitNames[k])
			case w.Delete:
				t.Logf("region %s: run %q: the winner is a delete; Load gives %s", regionOf[i], splitNames[k], st)
			case !st.found || etag != w.Entry.ETag || !st.cp.Timestamp.Equal(w.Entry.Timestamp):
				t.Errorf("region %s: run %q loads %s (ETag %s), the winner is region %q's op (ETag %s)", regionOf[i], splitNames[k], st, etag, w.Entry.Region, w.Entry.ETag)
			case !isListed:
				t.Errorf("region %s: run %q is not listed", regionOf[i], splitNames[k])
			}
		}
		rep, err := s.Durable().Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("region %s, after Reconcile: Verify %s", regionOf[i], describe(rep, runs))
		for k, run := range runs {
			if !slices.Contains(rep.SplitBrain, run) {
				t.Errorf("region %s: Verify does not report run %q as a split brain", regionOf[i], splitNames[k])
			}
		}
		if len(rep.Stale)+len(rep.Missing)+len(rep.Unindexed)+len(rep.Mismatched)+len(rep.Corrupt) > 0 {
			t.Errorf("region %s: Verify after Reconcile: %s", regionOf[i], describe(rep, runs))
		}
	}
	for k := range runs {
		wa, wb := winners[0][k], winners[1][k]
		if wa.Entry.Region != wb.Entry.Region || wa.Entry.ETag != wb.Entry.ETag || wa.Delete != wb.Delete {
			t.Errorf("run %q: region a chooses region %q's op, b region %q's", splitNames[k], wa.Entry.Region, wb.Entry.Region)
		}
		la, lb := loaded[0][k], loaded[1][k]
		if la.found != lb.found || la.found && !reflect.DeepEqual(la.cp, lb.cp) {
			t.Errorf("run %q: region a loads %s, b %s", splitNames[k], la, lb)
		}
	}
	if w := winners[0][plainSaves]; w.Entry.Region != "a" {
		t.Errorf("run %q: the winner is region %q's save, want a's (the later checkpoint time)", splitNames[plainSaves], w.Entry.Region)
	}
	// At equal epochs the later time wins: a save's checkpoint time, a
	// delete's time of deletion.
	if w := winners[0][deleteSave]; w.Delete || w.Entry.Region != "b" {
		t.Errorf("run %q: the winner is region %q's op (delete %v), want b's later save", splitNames[deleteSave], w.Entry.Region, w.Delete)
	}
	if w := winners[0][saveDelete]; !w.Delete || w.Entry.Region != "b" {
		t.Errorf("run %q: the winner is region %q's op (delete %v), want b's later delete", splitNames[saveDelete], w.Entry.Region, w.Delete)
	}
	if w := winners[0][localClaims]; w.Entry.Region != "b" {
		t.Errorf("run %q: the winner is region %q's op, want b's later save", splitNames[localClaims], w.Entry.Region)
	}
}

// loadETag loads run from d with the ETag of its object.
func loadETag(t *testing.T, d *durable.Store, run uuid.UUID) (loadState, string) {
	t.Helper()
	st, err := load(context.Background(), d, run)
	if err != nil {
		t.Fatal(err)
	}
	if !st.found {
		return st, ""
	}
	_, etag, err := d.Read(context.Background(), run, "")
	if err != nil {
		t.Fatal(err)
	}
	return st, etag
}

// describe prints a Verify report, naming the split-brain story's runs.
func describe(rep *durable.Report, runs [splitRuns]uuid.UUID) string {
	name := func(ids []uuid.UUID) []string {
		var out []string
		for _, id := range ids {
			if k := slices.Index(runs[:], id); k >= 0 {
				out = append(out, splitNames[k])
			} else {
				out = append(out, id.String())
			}
		}
		return out
	}
	return fmtReport(rep, name)
}

func fmtReport(rep *durable.Report, name func([]uuid.UUID) []string) string {
	s := ""
	add := func(what string, ids []uuid.UUID) {
		if len(ids) > 0 {
			s += " " + what + " " + strings.Join(name(ids), ",")
		}
	}
	add("SplitBrain", rep.SplitBrain)
	add("Stale", rep.Stale)
	add("Dead", rep.Dead)
	add("Missing", rep.Missing)
	add("Unindexed", rep.Unindexed)
	add("Mismatched", rep.Mismatched)
	if len(rep.Corrupt) > 0 {
		s += fmt.Sprintf(" Corrupt %v", rep.Corrupt)
	}
	if rep.Index != nil {
		s += " Index " + rep.Index.Error()
	}
	if s == "" {
		s = " OK"
	}
	return fmt.Sprintf("%d runs:%s", rep.Runs, s)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls ok until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteReplicated: region b deletes runs that region a wrote and that
// replication delivered, one saved with a checkpoint time ahead of b's
// clock (a's clock runs ahead, or the engine set the time). The Delete
// came after the state it deleted, whatever the clocks say: neither
// region lists either run again, neither loads it, and Verify calls
// neither a split brain.
func deleteReplicated(t *testing.T, r *rig) {
	ctx := context.Background()
	const prefix, workflow = "delete-replicated", "deletes"
	if err := r.sites.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	stores := [2]*tiered.Store{r.open(t, siteA, prefix), r.open(t, siteB, prefix)}
	a, b := stores[siteA], stores[siteB]
	names := []string{"on time", "ahead of b's clock"}
	runs := []uuid.UUID{uuid.New(), uuid.New()}
	for i, run := range runs {
		c := Checkpoint(workflow, run, steps, steps, "a-admin", "a")
		if i == 1 {
			c.Timestamp = time.Now().Add(30 * time.Second)
		}
		must(t, a.Save(ctx, c))
	}
	waitFor(t, 10*time.Second, "the runs reach b", func() bool {
		for _, run := range runs {
			if st, err := load(ctx, b.Durable(), run); err != nil || !st.found {
				return false
			}
		}
		return true
	})
	// b's first write must wait for a's index objects as well as its
	// runs: a region whose copy holds runs and no index yet takes the
	// index for lost (ErrIndexLost) until they arrive.
	if err := r.sites.WaitConverged(ctx, prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		must(t, b.Delete(ctx, run))
	}
	check := func(when string) {
		for i, s := range stores {
			listed, err := listAll(ctx, s, cairn.ListOptions{WorkflowName: workflow})
			if err != nil {
				t.Fatal(err)
			}
			for k, run := range runs {
				st, err := load(ctx, s.Durable(), run)
				if err != nil {
					t.Fatal(err)
				}
				if slices.ContainsFunc(listed, func(sum cairn.Summary) bool { return sum.RunID == run }) || st.found {
					t.Errorf("%s: region %s: run %q, deleted in b, is listed or loads (%s)", when, regionOf[i], names[k], st)
				}
			}
			rep, err := s.Durable().Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Errorf("%s: region %s: Verify %s", when, regionOf[i], fmtReport(rep, func(ids []uuid.UUID) []string {
					var out []string
					for _, id := range ids {
						out = append(out, names[slices.Index(runs, id)])
					}
					return out
				}))
			}
		}
	}
	if err := r.sites.WaitConverged(ctx, prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	check("replicated")
	for _, s := range stores {
		must(t, s.Durable().Compact(ctx))
	}
	if err := r.sites.WaitConverged(ctx, prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	check("compacted")
}
