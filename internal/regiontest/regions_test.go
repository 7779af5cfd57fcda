package regiontest

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/internal/claimtest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The failover scenario's settings.
const (
	steps     = 6                      // of every run
	leaseA    = 4 * time.Second        // of region a's workers
	leaseB    = 2 * time.Second        // of region b's resumers
	workA     = 250 * time.Millisecond // before each of a's steps
	lagBound  = 10 * time.Second       // an acknowledged write reaches the other region within it
	pollEvery = 20 * time.Millisecond  // the watcher's
	// linkFirstFor is how long a's workers go on at least once the link
	// is cut, in the link-first story.
	linkFirstFor = 500 * time.Millisecond
)

// TestRegionsMinIO runs Cairn in two regions on two MinIO sites that
// replicate one bucket both ways: region a on site A, region b on site
// B. The subtests steady, failover and heal are one story on one prefix
// (each needs the one before); link-first tells it again with the link
// cut before region a dies; delete-replicated and split-brain are
// stories of their own. All share one pair of sites.
func TestRegionsMinIO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a first run builds the image
	defer cancel()
	r := newRig(ctx, t)
	f := &failover{top: t, r: r, prefix: "failover", workflow: "orders", dir: t.TempDir(), steadyFor: 6 * time.Second}
	_ = t.Run("steady", f.steady) && t.Run("failover", f.failover) && t.Run("heal", f.heal)
	t.Run("link-first", func(t *testing.T) {
		f := &failover{top: t, r: r, prefix: "link-first", workflow: "orders", dir: t.TempDir(), steadyFor: 3 * time.Second, linkFirst: true}
		_ = t.Run("steady", f.steady) && t.Run("failover", f.failover) && t.Run("heal", f.heal)
	})
	t.Run("delete-replicated", func(t *testing.T) { deleteReplicated(t, r) })
	t.Run("split-brain", func(t *testing.T) {
		t.Run("reconcile", func(t *testing.T) { splitBrain(t, r, "split-reconcile", true) })
		t.Run("compaction", func(t *testing.T) { splitBrain(t, r, "split-compaction", false) })
	})
}

// failover is the story of the steady, failover and heal subtests.
type failover struct {
	top       *testing.T // the stores and processes live as long as it
	steadyFor time.Duration
	// linkFirst: the link is cut linkFirstFor before a's workers are
	// killed, rather than just after: a acknowledges writes that never
	// reach b.
	linkFirst        bool
	r                *rig
	prefix, workflow string
	dir              string // the recorders' files

	procs []*exec.Cmd         // a's workers
	a, b  *tiered.Store       // write-through stores of each region, in this process
	aRec  *claimtest.Recorder // a's deletes
	bRec  *claimtest.Recorder // b's resumer and deletes
	watch *watcher

	deleted map[uuid.UUID]string    // by region
	atCut   map[uuid.UUID]loadState // b's runs when the link was cut
}

// nameRuns names runs in reports: by their ID, and how they were deleted.
func (f *failover) nameRuns(ids []uuid.UUID) []string {
	var out []string
	for _, id := range ids {
		if r, ok := f.deleted[id]; ok {
			out = append(out, fmt.Sprintf("%v (deleted in %s)", id, r))
		} else {
			out = append(out, id.String())
		}
	}
	return out
}

func (f *failover) file(name string) string { return filepath.Join(f.dir, name) }

// aFiles are the recorders of region a's writes.
func (f *failover) aFiles() []string { return []string{f.file("a1"), f.file("a2"), f.file("a-admin")} }

// steady: two worker processes in region a create runs and save their
// steps under claims (one store write-through, the other write-back with
// a Flush after each write), while a watcher in region b reads every run
// written until it sees each acknowledged write. Then, with the workers
// stopped (SIGSTOP), b lists by label, a page at a time, and finds what
// a lists, and loads what a loads; a run a deleted is gone in b too.
func (f *failover) steady(t *testing.T) {
	ctx := context.Background()
	f.a, f.b = f.r.open(f.top, siteA, f.prefix), f.r.open(f.top, siteB, f.prefix)
	var err error
	if f.aRec, err = claimtest.NewRecorder(f.file("a-admin"), "a-admin"); err != nil {
		t.Fatal(err)
	}
	if f.bRec, err = claimtest.NewRecorder(f.file("b1"), "b1"); err != nil {
		t.Fatal(err)
	}
	f.deleted = map[uuid.UUID]string{}
	for i, writeBack := range []bool{false, true} {
		cfg := Config{Name: fmt.Sprint("a", i+1), Region: "a", Workflow: f.workflow, Steps: steps, Lease: leaseA, Parallel: 3, Work: workA, Flush: writeBack}
		f.procs = append(f.procs, f.r.startWorker(f.top, f.prefix, f.dir, cfg, writeBack))
	}
	f.watch = watch(f.b.Durable(), pollEvery, f.aFiles()...)
	start := time.Now()
	time.Sleep(f.steadyFor)
	waitFor(t, time.Minute, "a's workers finish six runs", func() bool {
		released := 0
		for _, e := range readEvents(t, f.file("a1"), f.file("a2")) {
			if e.Op == claimtest.OpRelease && e.Result == claimtest.ResultOK {
				released++
			}
		}
		return released >= 6
	})

	signal(t, f.procs, syscall.SIGSTOP)
	f.deleteInA(t)
	if err := f.watch.settled(lagBound); err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, f.aFiles()...)
	lags, unseen := f.watch.lags(events)
	p50, p90, worst := percentile(lags, 0.5), percentile(lags, 0.9), percentile(lags, 1)
	t.Logf("%d writes acknowledged in a in %v; visible in b after p50 %v, p90 %v, max %v (read every %v)",
		len(lags)+len(unseen), time.Since(start).Round(time.Millisecond), p50.Round(time.Millisecond), p90.Round(time.Millisecond),
		worst.Round(time.Millisecond), pollEvery)
	if len(unseen) > 0 || worst > lagBound {
		t.Errorf("%d acknowledged writes never seen in b; the slowest took %v, bound %v", len(unseen), worst, lagBound)
	}
	if len(lags) < 20 {
		t.Errorf("only %d writes acknowledged in a: the workers did not get going", len(lags))
	}
	if err := f.r.sites.WaitConverged(ctx, f.prefix+"/", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	f.compareRegions(t, events)

	signal(t, f.procs, syscall.SIGCONT)
	time.Sleep(2 * time.Second) // a's workers get going again: writes in flight at the kill
}

// deleteInA deletes, in region a, three runs its workers finished and
// released, and waits until b sees them gone.
func (f *failover) deleteInA(t *testing.T) {
	ctx := context.Background()
	events := readEvents(t, f.file("a1"), f.file("a2"))
	var victims []uuid.UUID
	for _, e := range events {
		if e.Op == claimtest.OpRelease && e.Result == claimtest.ResultOK && len(victims) < 3 {
			victims = append(victims, e.Run)
		}
	}
	if len(victims) < 3 {
		t.Fatalf("only %d runs released in a", len(victims))
	}
	for _, run := range victims {
		end := f.aRec.Begin(claimtest.Event{Op: OpDelete, Run: run})
		if err := f.a.Delete(ctx, run); err != nil {
			t.Fatal(err)
		}
		end(claimtest.ResultOK, nil, 0, 0)
		f.deleted[run] = "a"
	}
}

// compareRegions checks that b lists what a lists, by label and a page at
// a time, loads what a loads, and agrees with the writers' histories.
func (f *failover) compareRegions(t *testing.T, events []claimtest.Event) {
	ctx := context.Background()
	last := LastAcked(events, 0)
	// A write in flight when its worker was stopped may have written the
	// run's object and not yet its index entry (see package durable):
	// such runs may be listed with their previous state until it goes on.
	inFlight := map[uuid.UUID]bool{}
	for _, e := range events {
		if e.End == 0 {
			inFlight[e.Run] = true
		}
	}
	for _, sel := range []map[string]string{{"status": "running"}, {"status": "done"}, nil} {
		opts := cairn.ListOptions{WorkflowName: f.workflow, Labels: sel}
		var lists [2][]cairn.Summary
		for i, s := range []*tiered.Store{f.a, f.b} {
			l, err := pagedList(ctx, s, opts, 4)
			if err != nil {
				t.Fatalf("region %s: List %v: %v", regionOf[i], sel, err)
			}
			lists[i] = l
		}
		if diff := sameListing(lists[0], lists[1]); diff != "" {
			t.Errorf("List %v: regions differ: %s", sel, diff)
		}
		t.Logf("List %v: %d runs in each region", sel, len(lists[1]))
		if sel != nil {
			continue
		}
		listed := map[uuid.UUID]bool{}
		for _, sum := range lists[1] {
			listed[sum.RunID] = true
			st, err := load(ctx, f.b.Durable(), sum.RunID)
			if err != nil {
				t.Fatal(err)
			}
			inA, err := load(ctx, f.a.Durable(), sum.RunID)
			if err != nil {
				t.Fatal(err)
			}
			a := last[sum.RunID]
			switch {
			case !st.found || !inA.found || !st.cp.Timestamp.Equal(inA.cp.Timestamp) || st.step != inA.step || st.epoch != inA.epoch:
				t.Errorf("run %v: loads %s in b, %s in a", sum.RunID, st, inA)
			case !inFlight[sum.RunID] && (!st.cp.Timestamp.Equal(sum.Timestamp) || sum.Labels["status"] != status(st.step)):
				t.Errorf("run %v: listed in b at %s with %v, loads at %s, %s", sum.RunID, sum.Timestamp, sum.Labels, st.cp.Timestamp, st)
			case st.step < a.Step || st.epoch < a.Epoch:
				t.Errorf("run %v: loads %s in b, a acknowledged step %d epoch %d", sum.RunID, st, a.Step, a.Epoch)
			}
		}
		for run, a := range last {
			if listed[run] == a.Deleted {
				t.Errorf("run %v: listed in b %v, deleted %v", run, listed[run], a.Deleted)
			}
		}
	}
}

func status(step int) string {
	if step >= steps {
		return "done"
	}
	return "running"
}

// failover: a's workers are killed with SIGKILL and the link is cut at
// once (link-first: the link is cut, a's workers go on writing for half a
// second, then they are killed). Region b checks what it has (prepareB),
// claims every run it has labelled status=running (a run whose lease from
// a is still live in b's copy only once that lease has run out) and
// finishes it from the checkpoint b has; it then deletes some runs it
// finished and some a finished.
func (f *failover) failover(t *testing.T) {
	ctx := context.Background()
	var cut int64
	cutLink := func() {
		cut = time.Now().UnixNano()
		if err := f.r.sites.Cut(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.watch.halt(); err != nil {
			t.Fatal(err)
		}
	}
	if f.linkFirst {
		cutLink()
		time.Sleep(linkFirstFor)
		waitFor(t, 30*time.Second, "a acknowledges three writes after the cut", func() bool {
			n := 0
			for _, e := range readEvents(t, f.aFiles()...) {
				if e.Result == claimtest.ResultOK && e.End > cut && (e.Op == OpCreate || e.Op == claimtest.OpSave) {
					n++
				}
			}
			return n >= 3
		})
	}
	signal(t, f.procs, syscall.SIGKILL)
	killed := time.Now()
	if !f.linkFirst {
		cutLink()
	}
	for _, p := range f.procs {
		p.Wait()
	}
	deleted := map[uuid.UUID]bool{}
	for run := range f.deleted {
		deleted[run] = true
	}
	if reg := f.watch.regressions(deleted); len(reg) > 0 {
		t.Errorf("reads in b went back: %v", reg)
	}
	events := readEvents(t, f.aFiles()...)
	f.atCut = f.loadAll(t, f.b, runsOf(events))
	if lost := f.lostAtCut(t, events); f.linkFirst && lost == 0 {
		t.Errorf("a acknowledged writes for %v after the cut, b lacks none of them", linkFirstFor)
	}
	f.prepareB(t)

	start := time.Now()
	cfg := Config{Name: "b1", Region: "b", Workflow: f.workflow, Steps: steps, Lease: leaseB, Parallel: 4, Work: 20 * time.Millisecond}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := Resume(rctx, f.b, f.bRec, cfg, 100*time.Millisecond); err != nil {
		t.Fatalf("resume in b: %v", err)
	}
	t.Logf("b claimed and finished every unfinished run in %v (%v after the kill)", time.Since(start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	bEvents := readEvents(t, f.file("b1"))
	f.checkResumed(t, events, bEvents, cut)
	f.deleteInB(t, events, bEvents)
}

// prepareB is what an operator does in region b before resuming there:
// Verify shows what replication had delivered when the link was cut. A run
// object whose index entry had not arrived (or whose region's log stream
// has a gap before it) is Unindexed: List in b does not show it, so no
// resumer would find it. Reindex lists them (cairn reindex with
// CAIRN_REGION=b). Index entries whose object had not arrived are Missing:
// those runs cannot be resumed in b (a claim finds no checkpoint) until
// the link heals.
func (f *failover) prepareB(t *testing.T) {
	ctx := context.Background()
	rep, err := f.b.Durable().Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("region b at the cut: Verify %s", fmtReport(rep, f.nameRuns))
	if len(rep.Unindexed) == 0 {
		return
	}
	rr, err := f.b.Durable().Reindex(ctx, nil)
	if err != nil {
		t.Fatalf("Reindex in b: %v", err)
	}
	t.Logf("region b: Reindex listed %d run objects, indexed %d", rr.Runs, rr.Indexed)
	if rep, err = f.b.Durable().Verify(ctx); err != nil {
		t.Fatal(err)
	} else if len(rep.Unindexed) > 0 {
		t.Errorf("region b after Reindex: Verify %s", fmtReport(rep, f.nameRuns))
	}
}

// loadAll loads runs from s's region (the bucket, not a cache).
func (f *failover) loadAll(t *testing.T, s *tiered.Store, runs []uuid.UUID) map[uuid.UUID]loadState {
	t.Helper()
	out := map[uuid.UUID]loadState{}
	for _, run := range runs {
		st, err := load(context.Background(), s.Durable(), run)
		if err != nil {
			t.Fatal(err)
		}
		out[run] = st
	}
	return out
}

// lostAtCut logs and returns the number of steps a acknowledged that b
// did not have at the cut, and checks that b had nothing a did not write,
// and nothing older than the watcher saw there.
func (f *failover) lostAtCut(t *testing.T, events []claimtest.Event) int {
	lost, runs := 0, 0
	begun := map[uuid.UUID]int{} // the highest step a began to write
	for _, e := range events {
		if e.Op == OpCreate || e.Op == claimtest.OpSave {
			begun[e.Run] = max(begun[e.Run], int(e.Step))
		}
	}
	for run, a := range LastAcked(events, 0) {
		b := f.atCut[run]
		if a.Deleted {
			if b.found {
				t.Errorf("run %v: deleted in a, found in b at the cut: %s", run, b)
			}
			continue
		}
		if !shows(a, b) {
			runs++
			lost += a.Step - b.step
		}
		if b.step > begun[run] {
			t.Errorf("run %v: b holds %s, a never began a step past %d", run, b, begun[run])
		}
		if seen, ok := f.watch.last(run); ok && seen.found && (b.step < seen.step || b.epoch < seen.epoch) {
			t.Errorf("run %v: b held %s at the cut, the watcher had read %s", run, b, seen)
		}
	}
	t.Logf("at the cut, b lacked %d acknowledged steps of %d runs (of %d runs)", lost, runs, len(f.atCut))
	return lost
}

// checkResumed checks b's resumption: every run b had unfinished was
// claimed from the checkpoint b had, with an epoch above a's, never while
// a lease from a that b had was live, and finished.
func (f *failover) checkResumed(t *testing.T, aEvents, bEvents []claimtest.Event, cut int64) {
	ctx := context.Background()
	now := f.loadAll(t, f.b, slices.Collect(maps.Keys(f.atCut)))
	claims, waited := map[uuid.UUID]claimtest.Event{}, 0
	for _, e := range bEvents {
		switch {
		case e.Op == claimtest.OpClaim && e.Result == claimtest.ResultOK && e.Step < steps:
			if _, again := claims[e.Run]; again {
				t.Errorf("run %v claimed unfinished twice in b", e.Run)
			}
			claims[e.Run] = e
		case e.Op == claimtest.OpClaim && e.Result == claimtest.ResultClaimed:
			waited++
		}
	}
	for run, b := range f.atCut {
		if !b.found || b.step >= steps {
			if _, ok := claims[run]; ok && b.found {
				t.Errorf("run %v: done in b at the cut, claimed", run)
			}
			continue
		}
		c, ok := claims[run]
		switch {
		case !ok:
			t.Errorf("run %v: unfinished in b at the cut (%s), never claimed there", run, b)
			continue
		case int(c.Step) != b.step || c.Epoch <= b.epoch:
			t.Errorf("run %v: b had %s at the cut, its claim read step %d and got epoch %d", run, b, c.Step, c.Epoch)
		case now[run].step != steps || now[run].by != "b1" || now[run].epoch < c.Epoch:
			t.Errorf("run %v: after the resumption b loads %s, want step %d by b1 at epoch %d", run, now[run], steps, c.Epoch)
		}
		// A lease from a that b had surely received (acknowledged a
		// second before the cut) ends no sooner than its start plus the
		// lease: b's claim must not succeed before.
		for _, e := range aEvents {
			if e.Run == run && e.Result == claimtest.ResultOK && (e.Op == claimtest.OpClaim || e.Op == claimtest.OpRenew) &&
				e.End < cut-int64(time.Second) && c.End < e.Start+int64(leaseA) {
				t.Errorf("run %v: b claimed it %v after a's %s, which holds it %v", run, time.Duration(c.End-e.Start), e.Op, leaseA)
			}
		}
	}
	running, err := f.b.List(ctx, &cairn.ListOptions{WorkflowName: f.workflow, Labels: map[string]string{"status": "running"}})
	if err != nil || len(running.Runs) > 0 {
		t.Errorf("after the resumption b lists %d runs status=running (%v)", len(running.Runs), err)
	}
	t.Logf("b claimed %d runs; %d claims found a lease from a still live and waited for it", len(claims), waited)
	if len(claims) == 0 {
		t.Errorf("b resumed no run")
	}
}

// deleteInB deletes, in b, two runs b finished and two that a had
// finished (and b did not touch).
func (f *failover) deleteInB(t *testing.T, aEvents, bEvents []claimtest.Event) {
	ctx := context.Background()
	var victims []uuid.UUID
	for run, a := range LastAcked(bEvents, 0) {
		if a.Step == steps && len(victims) < 2 {
			victims = append(victims, run)
		}
	}
	touched := LastAcked(bEvents, 0)
	for run, a := range LastAcked(aEvents, 0) {
		if _, ok := touched[run]; !ok && !a.Deleted && a.Step == steps && f.atCut[run].step == steps && len(victims) < 4 {
			victims = append(victims, run)
		}
	}
	if len(victims) < 4 {
		t.Fatalf("only %d runs to delete in b", len(victims))
	}
	for _, run := range victims {
		end := f.bRec.Begin(claimtest.Event{Op: OpDelete, Run: run})
		if err := f.b.Delete(ctx, run); err != nil {
			t.Fatal(err)
		}
		end(claimtest.ResultOK, nil, 0, 0)
		f.deleted[run] = "b"
	}
}

// heal: the link comes back. Once the sites converge (runs, claims and
// index objects), both regions list the same runs, and load each run's
// last state acknowledged in b, or where b did not touch it, in a; no run
// deleted in either region comes back; Verify finds nothing wrong in
// either region but the expected split brains (runs claimed in both
// regions at one epoch) and, for runs a was writing when it was killed,
// the object of a write whose index commit never came (Mismatched,
// Unindexed). Those an operator repairs with Reindex in each region and
// by letting the resumers finish the runs still running, which b then
// does: its claims resume from a's last state, and afterwards Verify
// finds nothing but the split brains.
func (f *failover) heal(t *testing.T) {
	ctx := context.Background()
	if err := f.r.sites.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.r.sites.WaitConverged(ctx, f.prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("the sites converged %v after the heal", time.Since(start).Round(time.Millisecond))
	aEvents, bEvents := readEvents(t, f.aFiles()...), readEvents(t, f.file("b1"))
	crashed := inFlight(aEvents)
	split, maybe := expectedSplits(aEvents, bEvents)
	repair := f.verify(t, "after the heal", split, maybe, crashed)
	f.checkRegions(t, aEvents, bEvents, crashed)
	if repair {
		for i, s := range []*tiered.Store{f.a, f.b} {
			rr, err := s.Durable().Reindex(ctx, nil)
			if err != nil {
				t.Fatalf("region %s: Reindex: %v", regionOf[i], err)
			}
			t.Logf("region %s: Reindex listed %d run objects, indexed %d", regionOf[i], rr.Runs, rr.Indexed)
		}
		if err := f.r.sites.WaitConverged(ctx, f.prefix+"/", time.Minute); err != nil {
			t.Fatal(err)
		}
		f.verify(t, "after Reindex in each region", split, maybe, crashed)
	}

	before := len(bEvents)
	start = time.Now()
	cfg := Config{Name: "b1", Region: "b", Workflow: f.workflow, Steps: steps, Lease: leaseB, Parallel: 4, Work: 20 * time.Millisecond}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := Resume(rctx, f.b, f.bRec, cfg, 100*time.Millisecond); err != nil {
		t.Fatalf("resume in b after the heal: %v", err)
	}
	bEvents = readEvents(t, f.file("b1"))
	lastA := LastAcked(aEvents, 0)
	resumed := 0
	for _, e := range bEvents[before:] {
		if e.Op != claimtest.OpClaim || e.Result != claimtest.ResultOK || e.Step >= steps {
			continue
		}
		resumed++
		if a := lastA[e.Run]; int(e.Step) != a.Step && !crashed[e.Run] {
			t.Errorf("run %v: b's claim after the heal read step %d, a's last acknowledged step is %d", e.Run, e.Step, a.Step)
		}
	}
	t.Logf("after the heal b resumed and finished %d runs still running, in %v", resumed, time.Since(start).Round(time.Millisecond))
	if err := f.r.sites.WaitConverged(ctx, f.prefix+"/", time.Minute); err != nil {
		t.Fatal(err)
	}
	split, maybe = expectedSplits(aEvents, bEvents)
	f.verify(t, "after the resumption", split, maybe, nil)
	f.checkRegions(t, aEvents, bEvents, nil)
}

// checkRegions checks each region against the histories, and that both
// list the same runs; runs of loose (a wrote their object and was killed
// before the index commit) may be listed with their previous state.
func (f *failover) checkRegions(t *testing.T, aEvents, bEvents []claimtest.Event, loose map[uuid.UUID]bool) {
	ctx := context.Background()
	want := expected(aEvents, bEvents)
	var lists [2][]cairn.Summary
	for i, s := range []*tiered.Store{f.a, f.b} {
		f.checkRegion(t, regionOf[i], s, want, aEvents, loose)
		l, err := pagedList(ctx, s, cairn.ListOptions{WorkflowName: f.workflow}, 5)
		if err != nil {
			t.Fatal(err)
		}
		lists[i] = slices.DeleteFunc(l, func(sum cairn.Summary) bool { return loose[sum.RunID] })
	}
	if diff := sameListing(lists[0], lists[1]); diff != "" {
		t.Errorf("after the heal the regions list different runs: %s", diff)
	}
}

// logOps logs each region's last op of runs, as region's index has them.
func (f *failover) logOps(t *testing.T, region string, runs []uuid.UUID) {
	i := slices.Index(regionOf[:], region)
	ops, err := f.r.index(t, i, f.prefix).RunOps(context.Background(), runs...)
	if err != nil {
		t.Fatal(err)
	}
	events := readEvents(t, append(f.aFiles(), f.file("b1"))...)
	for _, run := range runs {
		for _, e := range events {
			if e.Run == run {
				t.Logf("event %s %s step %d epoch %d %s..%s %s %s", e.Worker, e.Op, e.Step, e.Epoch, time.Unix(0, e.Start).UTC().Format("15:04:05.000"), time.Unix(0, e.End).UTC().Format("15:04:05.000"), e.Result, e.Err)
			}
		}
		t.Logf("at the cut b had %s", f.atCut[run])
		for i, srv := range f.r.sites.Site {
			c := srv.NewClient(t)
			out, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(f.r.sites.Bucket), Prefix: aws.String(f.prefix + "/runs/" + run.String())})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range out.Versions {
				t.Logf("site %s: version %s etag %s mtime %s latest %v", regionOf[i], *v.VersionId, *v.ETag, v.LastModified.Format("15:04:05.000"), *v.IsLatest)
			}
			for _, v := range out.DeleteMarkers {
				t.Logf("site %s: delete marker %s mtime %s latest %v", regionOf[i], *v.VersionId, v.LastModified.Format("15:04:05.000"), *v.IsLatest)
			}
		}
		for _, op := range ops[run] {
			t.Logf("region %s: run %v: region %q's op: delete %v epoch %d time %s ETag %s", region, run, op.Entry.Region, op.Delete, op.Entry.Epoch,
				op.Entry.Timestamp.Format(time.RFC3339Nano), op.Entry.ETag)
		}
	}
}

// expected returns each run's last acknowledged write: b's where b wrote
// the run, else a's.
func expected(aEvents, bEvents []claimtest.Event) map[uuid.UUID]Acked {
	want := LastAcked(aEvents, 0)
	maps.Copy(want, LastAcked(bEvents, 0))
	return want
}

// checkRegion checks region's store s against want.
func (f *failover) checkRegion(t *testing.T, region string, s *tiered.Store, want map[uuid.UUID]Acked, aEvents []claimtest.Event, loose map[uuid.UUID]bool) {
	ctx := context.Background()
	begun := map[uuid.UUID]claimtest.Event{} // a's last write begun, perhaps never acknowledged
	for _, e := range aEvents {
		if e.Op == OpCreate || e.Op == claimtest.OpSave || e.Op == claimtest.OpClaim {
			if b, ok := begun[e.Run]; !ok || e.Start > b.Start {
				begun[e.Run] = e
			}
		}
	}
	listed := map[uuid.UUID]cairn.Summary{}
	all, err := listAll(ctx, s, cairn.ListOptions{WorkflowName: f.workflow})
	if err != nil {
		t.Fatalf("region %s: List: %v", region, err)
	}
	for _, sum := range all {
		listed[sum.RunID] = sum
	}
	for run, w := range want {
		st, err := load(ctx, s.Durable(), run)
		if err != nil {
			t.Fatal(err)
		}
		sum, ok := listed[run]
		bg := begun[run]
		alt := Acked{Step: int(bg.Step), Epoch: bg.Epoch} // a write a began as it was killed
		if bg.Op == claimtest.OpClaim && bg.End == 0 {
			alt = Acked{Step: w.Step, Epoch: w.Epoch + 1}
		}
		switch {
		case w.Deleted && (st.found || ok):
			t.Errorf("region %s: run %v, deleted in %s, is back: loads %s, listed %v", region, run, f.deleted[run], st, ok)
		case w.Deleted:
		case !ok:
			if !loose[run] {
				t.Errorf("region %s: run %v (%s) is not listed", region, run, st)
			}
		case !st.found || !(st.step == w.Step && st.epoch == w.Epoch || w.Worker != "b1" && st.step == alt.Step && st.epoch == alt.Epoch):
			t.Errorf("region %s: run %v loads %s, want step %d epoch %d by %s", region, run, st, w.Step, w.Epoch, w.Worker)
		case !loose[run] && (!sum.Timestamp.Equal(st.cp.Timestamp) || sum.Labels["status"] != status(st.step)):
			t.Errorf("region %s: run %v listed at %s with %v, loads %s at %s", region, run, sum.Timestamp, sum.Labels, st, st.cp.Timestamp)
		}
	}
	for run := range listed {
		if _, ok := want[run]; !ok && begun[run].Op != OpCreate {
			t.Errorf("region %s: lists run %v, which no worker wrote", region, run)
		}
	}
	t.Logf("region %s: %d runs listed, %d deleted", region, len(listed), len(f.deleted))
}

// verify runs Verify in both regions and checks that each reports as
// split brains the runs split, and perhaps those of maybe, and as
// Mismatched or Unindexed only runs of repairable (a's writes in flight
// when it was killed, whose object may have been written and its index
// commit not), and nothing else. It reports whether either region
// reported runs to repair.
func (f *failover) verify(t *testing.T, when string, split, maybe, repairable map[uuid.UUID]bool) (repair bool) {
	ctx := context.Background()
	for i, s := range []*tiered.Store{f.a, f.b} {
		rep, err := s.Durable().Verify(ctx)
		if err != nil {
			t.Fatalf("region %s: Verify: %v", regionOf[i], err)
		}
		t.Logf("region %s %s: Verify %s", regionOf[i], when, fmtReport(rep, f.nameRuns))
		var bad []uuid.UUID
		for run := range split {
			if !slices.Contains(rep.SplitBrain, run) {
				bad = append(bad, run)
			}
		}
		for _, run := range rep.SplitBrain {
			if !split[run] && !maybe[run] {
				bad = append(bad, run)
			}
		}
		for _, run := range slices.Concat(rep.Mismatched, rep.Unindexed) {
			repair = true
			if !repairable[run] {
				bad = append(bad, run)
			}
		}
		if len(bad) > 0 || rep.Index != nil || len(rep.Missing)+len(rep.Dead)+len(rep.Corrupt)+len(rep.Strays)+len(rep.Stale) > 0 {
			t.Errorf("region %s %s: Verify %s; unexpected: %v (split brains expected: %v)", regionOf[i], when, fmtReport(rep, f.nameRuns), bad, split)
			f.logOps(t, regionOf[i], bad)
		}
	}
	return repair
}

// expectedSplits returns the runs whose last writes in a and b have the
// same epoch (a's claim had not reached b when b claimed the run: both
// claims took the same epoch), which Verify must report as split brains,
// and the runs a was writing when it was killed (the epoch of that write
// is unknown), which it may.
func expectedSplits(aEvents, bEvents []claimtest.Event) (split, maybe map[uuid.UUID]bool) {
	split = map[uuid.UUID]bool{}
	lastA := LastAcked(aEvents, 0)
	for run, b := range LastAcked(bEvents, 0) {
		if a, ok := lastA[run]; ok && a.Epoch == b.Epoch && b.Epoch > 0 {
			split[run] = true
		}
	}
	return split, inFlight(aEvents)
}

// inFlight returns the runs with an operation that never ended in events.
func inFlight(events []claimtest.Event) map[uuid.UUID]bool {
	out := map[uuid.UUID]bool{}
	for _, e := range events {
		if e.End == 0 && e.Op != claimtest.OpRenew && e.Op != claimtest.OpRelease {
			out[e.Run] = true
		}
	}
	return out
}
