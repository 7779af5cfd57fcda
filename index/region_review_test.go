package index_test

// Review tests of the regions of the index (commits fe6ef67^..HEAD): they
// try to break it from the outside. A failing TestReview* test is the
// evidence of a defect; see the comment on each.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
)

// twoRegions is regions a and b, each with its own copy of the bucket and
// a replication in each direction.
type twoRegions struct {
	c       *clock
	ba, bb  *bucket.Mem
	ab, ba2 *repl // a → b, b → a
	m       rmodel
}

func newTwoRegions() *twoRegions {
	c := &clock{now: t0}
	ba, bb := memAt(c), memAt(c)
	return &twoRegions{c: c, ba: ba, bb: bb, ab: newRepl(ba, bb), ba2: newRepl(bb, ba), m: rmodel{}}
}

func (w *twoRegions) sync(t testing.TB) {
	t.Helper()
	for range 2 {
		w.ab.run(t, nil)
		w.ba2.run(t, nil)
	}
}

// writeN commits n puts of runs from..from+n-1 in region r, one per
// commit, then waits for the compactions they started and compacts.
func (w *twoRegions) writeN(t testing.TB, ix *index.Index, r string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		op := put(i, t0.Add(time.Duration(i)*time.Second), "w")
		commit(t, ix, op)
		w.m.apply(r, op)
	}
	ix.Wait()
	if err := ix.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func gcAfterGrace(t testing.TB, c *clock, ix *index.Index) *index.GCReport {
	t.Helper()
	c.add(2 * time.Minute)
	rep, err := ix.GC(context.Background(), time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func listErr(ix *index.Index, limit int) ([]string, error) {
	var all []index.Entry
	o := cairn.ListOptions{Limit: limit}
	for {
		q, err := o.Query()
		if err != nil {
			return nil, err
		}
		got, more, err := ix.List(context.Background(), &q)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
		if !more {
			return described(all), nil
		}
		o.Cursor = got[len(got)-1].Key().Cursor()
	}
}

// TestReviewGCBeforeJoinersSnapshotArrives: region b joins a store of
// region a, starts from a's snapshot and writes its first snapshot (which
// covers a's stream up to where a was then). Before b's snapshot reaches
// a's copy of the bucket (marker only, head only, or head without its
// manifest: replication keeps no order between keys), a compacts and runs
// GC. coveredBy takes b for a region without a snapshot, which starts from
// a's newest one, and a deletes the logs b's snapshot does not cover. b
// then waits forever at that "gap": it never sees a's writes again, even
// after everything is delivered.
func TestReviewGCBeforeJoinersSnapshotArrives(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered func(key string) bool // which of b's keys reach a before a's GC
	}{
		{"nothing", func(string) bool { return false }},
		{"marker", func(k string) bool { return strings.Contains(k, "/streams/") }},
		{"marker+head", func(k string) bool { return strings.Contains(k, "/streams/") || strings.HasSuffix(k, "/head") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTwoRegions()
			a := regionIndex(t, w.ba, "a", w.c)
			w.writeN(t, a, "a", 0, 12)
			w.sync(t)
			b := regionIndex(t, w.bb, "b", w.c)
			w.writeN(t, b, "b", 100, 1) // b's first commit: its first, full snapshot
			if st := b.Stats(); st.Compactions == 0 {
				t.Fatalf("b wrote no snapshot: %+v", st)
			}
			w.ba2.run(t, func(k string) bool { return !tc.delivered(k) })
			w.writeN(t, a, "a", 12, 12)
			rep := gcAfterGrace(t, w.c, a)
			w.sync(t)
			w.writeN(t, a, "a", 24, 3) // a goes on writing
			w.sync(t)
			sameList(t, fmt.Sprintf("a (its GC deleted %d logs)", rep.Logs), listed(t, a, 5), w.m.live())
			sameList(t, fmt.Sprintf("b after full delivery (a's GC deleted %d logs)", rep.Logs), listed(t, b, 5), w.m.live())
		})
	}
}

// TestReviewGCHeadWithoutManifest: b has had a snapshot in a's copy for
// long (covering a's stream up to 12); b then compacts again, and its new
// head reaches a before the new manifest does. headSnapshot reads a head
// whose manifest is missing as "no snapshot", coveredBy falls back to a's
// own head, and a's GC deletes logs b has not covered.
func TestReviewGCHeadWithoutManifest(t *testing.T) {
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	b := regionIndex(t, w.bb, "b", w.c)
	w.writeN(t, a, "a", 0, 12)
	w.sync(t)
	w.writeN(t, b, "b", 100, 2) // b's snapshot covers a up to 12 or so
	w.sync(t)
	// b writes and compacts again, without having seen more of a.
	w.writeN(t, b, "b", 102, 6)
	w.ba2.run(t, func(k string) bool { return strings.Contains(k, "/regions/b/snap/") })
	// a moves on and collects.
	w.writeN(t, a, "a", 12, 12)
	rep := gcAfterGrace(t, w.c, a)
	w.sync(t)
	w.writeN(t, a, "a", 24, 3)
	w.sync(t)
	sameList(t, fmt.Sprintf("b after full delivery (a's GC deleted %d logs)", rep.Logs), listed(t, b, 5), w.m.live())
}

// TestReviewSnapshotlessRegionStartsElsewhere: one bucket, no replication
// at all. A process of the default region looked for streams before
// region eu wrote its marker (it looks again only after 30 s). eu writes,
// compacts and runs GC: the default region has no snapshot yet, so
// coveredBy takes it to start from eu's snapshot, and eu deletes its
// logs. But the default region does not know eu's stream: its first
// snapshot starts from nothing and covers eu's stream up to 0. Every
// process of the default region then waits for ever at eu's log 1, which
// GC deleted: eu's runs are never listed there.
func TestReviewSnapshotlessRegionStartsElsewhere(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	bkt := memAt(c)
	m := rmodel{}
	d := regionIndex(t, bkt, "", c)
	if _, err := listErr(d, 5); err != nil { // d looks for streams: none yet
		t.Fatal(err)
	}
	e := regionIndex(t, bkt, "eu", c)
	for i := range 12 {
		op := put(i, t0.Add(time.Duration(i)*time.Second), "w")
		commit(t, e, op)
		m.apply("eu", op)
	}
	e.Wait()
	if err := e.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	rep := gcAfterGrace(t, c, e)
	for i := range 8 {
		op := put(100+i, t0.Add(time.Hour), "w")
		commit(t, d, op)
		m.apply("", op)
	}
	d.Wait()
	if err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	sameList(t, "eu", listed(t, e, 5), m.live())
	sameList(t, fmt.Sprintf("a new process of the default region (eu's GC deleted %d logs)", rep.Logs), listed(t, regionIndex(t, bkt, "", c), 5), m.live())
}

// TestReviewJoinerMissesManifest: region a has compacted and collected
// twice; its new head reaches b's copy before the manifest it names
// (and after the deletes of the logs that manifest covers). A region b
// starting then finds no snapshot to start from (headSnapshot reads a
// head whose manifest is missing as "none"), starts from an empty one,
// and its first compaction, an ordinary one since the empty manifest is
// b's own, covers a's stream up to 0. Once everything is delivered b
// still lists none of a's runs, and never will: a's logs 1.. are gone.
func TestReviewJoinerMissesManifest(t *testing.T) {
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	w.writeN(t, a, "a", 0, 12)
	gcAfterGrace(t, w.c, a)
	w.writeN(t, a, "a", 12, 12)
	gcAfterGrace(t, w.c, a)
	w.ab.run(t, func(k string) bool { return strings.Contains(k, "/regions/a/snap/") })
	b := regionIndex(t, w.bb, "b", w.c)
	w.writeN(t, b, "b", 100, 6)
	w.sync(t)
	w.writeN(t, a, "a", 200, 2)
	w.sync(t)
	sameList(t, "a", listed(t, a, 5), w.m.live())
	sameList(t, "b after full delivery", listed(t, regionIndex(t, w.bb, "b", w.c), 5), w.m.live())
}

// TestReviewForeignPagesGoneBeforeHead: b has no snapshot of its own (it
// only reads) and starts from a's. a compacts and collects the old
// snapshot's pages; the page deletions reach b before a's new head and
// manifest do. A new process in b then fails to List, with ErrDamaged:
// a gap of replication must never fail a List.
func TestReviewForeignPagesGoneBeforeHead(t *testing.T) {
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	w.writeN(t, a, "a", 0, 40)
	w.sync(t)
	b := regionIndex(t, w.bb, "b", w.c)
	sameList(t, "b from a's snapshot", listed(t, b, 5), w.m.live())
	// a rewrites every run (every page changes), compacts and collects.
	for i := range 40 {
		op := put(i, t0.Add(time.Hour+time.Duration(i)*time.Second), "w")
		commit(t, a, op)
		w.m.apply("a", op)
	}
	a.Wait()
	if err := a.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := gcAfterGrace(t, w.c, a)
	if rep.Pages == 0 {
		t.Fatalf("a's GC deleted no page: %+v", rep)
	}
	// Everything but a's head and manifests reaches b: the new pages, the
	// new logs, and the deletes of the old pages and logs.
	w.ab.run(t, func(k string) bool { return strings.HasSuffix(k, "/head") || strings.Contains(k, "/snap/") })
	fresh := regionIndex(t, w.bb, "b", w.c)
	for name, ix := range map[string]*index.Index{"b": b, "new process in b": fresh} {
		if _, err := listErr(ix, 5); err != nil {
			t.Errorf("%s: List during replication: %v", name, err)
		}
	}
	w.sync(t)
	sameList(t, "b after full delivery", listed(t, fresh, 5), w.m.live())
}

// TestReviewForeignManifestBeforePages: no GC at all. Region a compacts;
// its head and manifest reach b before the pages they name (small objects
// replicate first; S3 keeps no order between keys). b has no snapshot of
// its own (a process that only reads, or one that has not committed yet),
// so it reads a's: its List fails with ErrDamaged, and so does every
// List in b until the pages arrive. The random tests below hit the same in
// most seeds.
func TestReviewForeignManifestBeforePages(t *testing.T) {
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	b := regionIndex(t, w.bb, "b", w.c)
	w.sync(t)
	w.writeN(t, a, "a", 0, 12)
	w.ab.run(t, func(k string) bool { return strings.Contains(k, "/pages/") || strings.Contains(k, "/label-pages/") })
	if _, err := listErr(b, 5); err != nil {
		t.Errorf("b: List during replication: %v", err)
	}
	if _, err := b.LastOps(context.Background()); err != nil {
		t.Errorf("b: LastOps during replication: %v", err)
	}
	w.sync(t)
	sameList(t, "b after full delivery", listed(t, b, 5), w.m.live())
}

// TestReviewRebuildInFreshProcess: Barrier and Rebuild in region b by a
// process that has not read the index (as Reindex does on a damaged index,
// where LastOps falls back to Salvage): Rebuild takes the coverage of the
// other streams from the manifest the process has in memory, none, so
// its snapshot covers a's stream up to 0. a's logs up to what b's
// previous snapshot covered are long collected: b waits at that gap
// forever, and a's GC, which now reads b's head as covering nothing,
// never collects again (checked apart: 0 logs collected after 12 more
// commits and a compaction of a).
func TestReviewRebuildInFreshProcess(t *testing.T) {
	ctx := context.Background()
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	b := regionIndex(t, w.bb, "b", w.c)
	w.writeN(t, a, "a", 0, 12)
	w.sync(t)
	w.writeN(t, b, "b", 100, 2)
	w.sync(t)
	w.writeN(t, a, "a", 12, 4)
	w.sync(t)
	if err := b.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	w.sync(t)
	if rep := gcAfterGrace(t, w.c, a); rep.Logs == 0 {
		t.Fatalf("a's GC deleted no log")
	}
	w.sync(t)
	// A Reindex in b, by a new process: the entries are what the model
	// holds (the run objects).
	r := regionIndex(t, w.bb, "b", w.c)
	seq, err := r.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(ctx, seq, modelEntries(w.m), nil); err != nil {
		t.Fatal(err)
	}
	w.sync(t)
	sameList(t, "b after the rebuild", listed(t, r, 5), w.m.live())
	w.writeN(t, a, "a", 200, 3) // a goes on writing
	w.sync(t)
	fresh := regionIndex(t, w.bb, "b", w.c)
	sameList(t, "b after a's next writes", listed(t, fresh, 5), w.m.live())
}

// modelEntries returns the winners of m that are saves: the run objects a
// Reindex would find.
func modelEntries(m rmodel) []index.Entry {
	var entries []index.Entry
	for _, byRegion := range m {
		var win *index.Op
		for _, op := range byRegion {
			if win == nil || wins(op, *win) {
				win = &op
			}
		}
		if !win.Delete {
			entries = append(entries, win.Entry)
		}
	}
	return entries
}

// TestReviewRebuildWhileOtherRegionWrites: as durable's Reindex does it
// on an index that reads (LastOps loads it first), Barrier and Rebuild in
// b while a goes on writing, compacting and collecting, with replication
// in between: b converges. (Holds.)
func TestReviewRebuildWhileOtherRegionWrites(t *testing.T) {
	ctx := context.Background()
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	b := regionIndex(t, w.bb, "b", w.c)
	w.writeN(t, a, "a", 0, 12)
	w.sync(t)
	w.writeN(t, b, "b", 100, 6)
	w.sync(t)
	w.writeN(t, a, "a", 12, 6)
	w.ab.run(t, nil)
	r := regionIndex(t, w.bb, "b", w.c)
	if _, err := r.LastOps(ctx); err != nil {
		t.Fatal(err)
	}
	seq, err := r.Barrier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries := modelEntries(w.m) // the objects as listed after the barrier
	w.writeN(t, a, "a", 30, 6)   // a writes meanwhile
	w.ab.run(t, nil)
	if err := r.Rebuild(ctx, seq, entries, nil); err != nil {
		t.Fatal(err)
	}
	w.sync(t)
	gcAfterGrace(t, w.c, a)
	w.sync(t)
	w.writeN(t, a, "a", 40, 6)
	w.sync(t)
	for name, ix := range map[string]*index.Index{"b": r, "a": a, "new process in b": regionIndex(t, w.bb, "b", w.c)} {
		sameList(t, name, listed(t, ix, 5), w.m.live())
	}
}

// TestReviewTombstoneExpiryAcrossRegions: a deletes run 1 (a's own run);
// b saw the delete. Past KeepTombstones, a's compaction drops the
// tombstone (a holds only its own ops of run 1), but b keeps it (it never
// drops a run's tombstone while another region's save of the run is
// kept). b then saves run 1 at the same epoch: b's index keeps hiding it
// (a delete beats a save at equal epochs), a's lists it, for ever.
func TestReviewTombstoneExpiryAcrossRegions(t *testing.T) {
	ctx := context.Background()
	w := newTwoRegions()
	opts := func(r string) *index.Options {
		return &index.Options{Region: r, CompactAfter: 4, PageSize: 8, Now: w.c.Now, KeepTombstones: time.Hour}
	}
	a := newIndex(t, w.ba, opts("a"))
	b := newIndex(t, w.bb, opts("b"))
	commit(t, a, put(1, t0, "w"))
	w.m.apply("a", put(1, t0, "w"))
	w.writeN(t, a, "a", 10, 4)
	w.sync(t)
	w.writeN(t, b, "b", 100, 2)
	d := del(1)
	d.Entry.Timestamp = w.c.Now()
	commit(t, a, d)
	w.m.apply("a", d)
	w.writeN(t, a, "a", 20, 4)
	w.sync(t)
	w.writeN(t, b, "b", 110, 4) // b's snapshot holds a's tombstone
	w.sync(t)
	w.c.add(2 * time.Hour) // the tombstone expires
	w.writeN(t, a, "a", 30, 12)
	w.sync(t)
	// b saves run 1 again, at the same epoch (0: no claims).
	again := put(1, w.c.Now(), "w")
	commit(t, b, again)
	w.m.apply("b", again)
	w.writeN(t, b, "b", 120, 4)
	w.sync(t)
	w.writeN(t, a, "a", 50, 4)
	w.sync(t)
	la, lb := listed(t, a, 0), listed(t, b, 0)
	if !slices.Equal(la, lb) {
		ha, hb := slices.Contains(la, fmt.Sprintf("%v %q %d", run(1), "b", 0)), slices.Contains(lb, fmt.Sprintf("%v %q %d", run(1), "b", 0))
		t.Fatalf("regions disagree for ever: a lists run 1: %v, b lists run 1: %v\na %s\nb %s", ha, hb, strings.Join(la, "\n  "), strings.Join(lb, "\n  "))
	}
	_ = ctx
}

var _ = errors.Is
var _ = rand.N[int]

// regionsWorld is several regions, each with its own copy of the bucket,
// and a replication between every two.
type regionsWorld struct {
	c       *clock
	regions []string
	bs      map[string]*bucket.Mem
	ixs     map[string]*index.Index
	repls   map[[2]string]*repl
	m       rmodel
}

func newRegionsWorld(t testing.TB, regions []string, o index.Options) *regionsWorld {
	c := &clock{now: t0}
	w := &regionsWorld{c: c, regions: regions, bs: map[string]*bucket.Mem{}, ixs: map[string]*index.Index{}, repls: map[[2]string]*repl{}, m: rmodel{}}
	for _, r := range regions {
		w.bs[r] = memAt(c)
	}
	for _, r := range regions {
		for _, s := range regions {
			if r != s {
				w.repls[[2]string{r, s}] = newRepl(w.bs[r], w.bs[s])
			}
		}
		w.ixs[r] = w.open(t, r, o)
	}
	return w
}

func (w *regionsWorld) open(t testing.TB, r string, o index.Options) *index.Index {
	o.Region, o.Now = r, w.c.Now
	if o.CompactAfter == 0 {
		o.CompactAfter = 4
	}
	if o.PageSize == 0 {
		o.PageSize = 8
	}
	return newIndex(t, w.bs[r], &o)
}

func (w *regionsWorld) syncAll(t testing.TB) {
	t.Helper()
	for range 3 {
		for _, rp := range w.repls {
			rp.run(t, nil)
		}
	}
}

// opDesc describes an op for comparisons.
func opDesc(op index.Op) string {
	return fmt.Sprintf("%v %q e%d del=%v ts=%s", op.Entry.RunID, op.Entry.Region, op.Entry.Epoch, op.Delete, op.Entry.Timestamp.Format(time.TimeOnly))
}

// checkAgainstModel compares ix's List (paged), LastOps and Contested with
// the model.
func checkAgainstModel(t testing.TB, what string, ix *index.Index, m rmodel, limit int) {
	t.Helper()
	ctx := context.Background()
	got, err := listErr(ix, limit)
	if err != nil {
		t.Fatalf("%s: List: %v", what, err)
	}
	sameList(t, what+": List", got, m.live())
	for _, o := range []cairn.ListOptions{
		{Limit: 2, Labels: map[string]string{"status": "running"}},
		{Limit: 3, WorkflowName: "w1", Labels: map[string]string{"status": "done"}},
		{Limit: 2, WorkflowName: "w0"},
	} {
		var want []index.Entry
		for _, byRegion := range m {
			var win *index.Op
			for _, op := range byRegion {
				if win == nil || wins(op, *win) {
					win = &op
				}
			}
			labels, _ := cairn.ParseLabels(win.Entry.Labels)
			if !win.Delete && (o.WorkflowName == "" || win.Entry.Workflow == o.WorkflowName) && (o.Labels == nil || labels["status"] == o.Labels["status"]) {
				want = append(want, win.Entry)
			}
		}
		slices.SortFunc(want, func(a, b index.Entry) int { return a.Key().Compare(b.Key()) })
		sameList(t, fmt.Sprintf("%s: List(%+v)", what, o), described(listAll(t, ix, o)), described(want))
	}
	last, err := ix.LastOps(ctx)
	if err != nil {
		t.Fatalf("%s: LastOps: %v", what, err)
	}
	var gotLast, wantLast []string
	for _, op := range last {
		gotLast = append(gotLast, opDesc(op))
	}
	for _, byRegion := range m {
		var win *index.Op
		for _, op := range byRegion {
			if win == nil || wins(op, *win) {
				win = &op
			}
		}
		wantLast = append(wantLast, opDesc(*win))
	}
	slices.Sort(gotLast)
	slices.Sort(wantLast)
	sameList(t, what+": LastOps", gotLast, wantLast)
	for run, byRegion := range m {
		var win *index.Op
		for _, op := range byRegion {
			if win == nil || wins(op, *win) {
				win = &op
			}
		}
		e, ok, err := index.Lookup(ix, ctx, run)
		if err != nil || ok == win.Delete || (ok && (e.Region != win.Entry.Region || e.Epoch != win.Entry.Epoch || !e.Timestamp.Equal(win.Entry.Timestamp))) {
			t.Fatalf("%s: Lookup(%v) = %v, %v, %v; want %s", what, run, opDesc(index.Op{Entry: e}), ok, err, opDesc(*win))
		}
		op, found, err := ix.LastOp(ctx, run)
		if err != nil || !found || opDesc(op) != opDesc(*win) {
			t.Fatalf("%s: LastOp(%v) = %s, %v, %v; want %s", what, run, opDesc(op), found, err, opDesc(*win))
		}
	}
	cont, err := ix.Contested(ctx)
	if err != nil {
		t.Fatalf("%s: Contested: %v", what, err)
	}
	var gotC, wantC []string
	for _, ops := range cont {
		for _, op := range ops {
			gotC = append(gotC, opDesc(op))
		}
	}
	for _, byRegion := range m {
		if len(byRegion) > 1 {
			for _, op := range byRegion {
				wantC = append(wantC, opDesc(op))
			}
		}
	}
	slices.Sort(gotC)
	slices.Sort(wantC)
	sameList(t, what+": Contested", gotC, wantC)
}

// randomOps returns 1 to 3 random ops on runs 0..19.
func randomOps(rng *rand.Rand, now time.Time) []index.Op {
	var ops []index.Op
	for range 1 + rng.IntN(3) {
		n := rng.IntN(20)
		if rng.IntN(5) == 0 {
			op := del(n)
			op.Entry.Timestamp = now
			op.Entry.Epoch = uint64(rng.IntN(3))
			ops = append(ops, op)
			continue
		}
		op := epochPut(n, t0.Add(time.Duration(rng.IntN(60))*time.Second), uint64(rng.IntN(3)), fmt.Sprint("w", rng.IntN(2)))
		if k := rng.IntN(3); k > 0 {
			op.Entry.Labels = cairn.EncodeLabels(map[string]string{"status": []string{"", "running", "done"}[k]})
		}
		ops = append(ops, op)
	}
	return ops
}

// partialRun delivers what changed at one replication's source, each key
// held back with probability 1/3 (the same key in one call either way).
func partialRun(t testing.TB, rng *rand.Rand, rp *repl) {
	salt := rng.Uint64()
	rp.run(t, func(key string) bool {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%s", salt, key)
		return h.Sum64()%3 == 0
	})
}

// testRandomRegions writes a store from regions at random, each step in
// one region, with compactions, partial replication in random directions
// and, with gc, GC after the grace period; List must never fail. Once all
// is delivered, every region (its long-lived process and a new one) must
// list, and report in LastOps and Contested, what the model holds; again
// after every region compacts, in a random order.
func testRandomRegions(t *testing.T, regions []string, gc, syncBeforeGC bool, seeds int) {
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 7))
			w := newRegionsWorld(t, regions, index.Options{})
			failed, first := 0, ""
			for step := range 80 {
				r := regions[rng.IntN(len(regions))]
				ops := randomOps(rng, w.c.Now())
				commit(t, w.ixs[r], ops...)
				w.m.apply(r, ops...)
				switch rng.IntN(8) {
				case 0:
					if err := w.ixs[r].Compact(ctx); err != nil {
						// A region's first compaction reads the pages of
						// the snapshot it starts from, which may not
						// have arrived: it is tried again later.
						t.Logf("step %d: Compact in %q: %v", step, r, err)
					}
				case 1:
					if gc {
						if syncBeforeGC {
							for _, ix := range w.ixs {
								ix.Wait()
							}
							w.syncAll(t)
						}
						w.ixs[r].Wait()
						if _, err := w.ixs[r].GC(ctx, time.Minute, false); err != nil {
							t.Fatalf("step %d: GC in %q: %v", step, r, err)
						}
					}
				}
				w.c.add(time.Duration(rng.IntN(40)) * time.Second)
				for _, r := range regions {
					for _, s := range regions {
						if rp := w.repls[[2]string{r, s}]; rp != nil && rng.IntN(3) == 0 {
							partialRun(t, rng, rp)
						}
					}
				}
				for _, r := range regions {
					if _, err := listErr(w.ixs[r], 3); err != nil {
						if failed == 0 {
							first = fmt.Sprintf("step %d: List in %q during replication: %v", step, r, err)
						}
						failed++
					}
				}
			}
			if failed > 0 {
				// Reported, and the test goes on: what follows checks
				// that the regions converge all the same.
				t.Errorf("%d Lists failed during replication; the first: %s", failed, first)
			}
			for _, ix := range w.ixs {
				ix.Wait()
			}
			w.syncAll(t)
			for _, r := range regions {
				if r != "" { // the default region looks for new streams only every 30 s
					checkAgainstModel(t, fmt.Sprintf("region %q", r), w.ixs[r], w.m, 3)
				}
				checkAgainstModel(t, fmt.Sprintf("region %q, new process", r), w.open(t, r, index.Options{}), w.m, 4)
			}
			order := slices.Clone(regions)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, r := range order {
				if err := w.ixs[r].Compact(ctx); err != nil {
					t.Fatal(err)
				}
				w.syncAll(t)
			}
			for _, r := range regions {
				checkAgainstModel(t, fmt.Sprintf("region %q compacted, new process", r), w.open(t, r, index.Options{}), w.m, 5)
				if err := w.open(t, r, index.Options{}).Check(ctx); err != nil {
					t.Fatalf("region %q: Check: %v", r, err)
				}
			}
		})
	}
}

func TestReviewRandomRegionsNoGC(t *testing.T) {
	testRandomRegions(t, []string{"", "eu", "us"}, false, false, 6)
}

func TestReviewRandomRegionsGC(t *testing.T) {
	testRandomRegions(t, []string{"", "eu", "us"}, true, false, 6)
}

// TestReviewRandomRegionsGCSynced is TestReviewRandomRegionsGC with every
// region's objects delivered everywhere before each GC, which keeps clear
// of the defect TestReviewGCBeforeJoinersSnapshotArrives shows.
func TestReviewRandomRegionsGCSynced(t *testing.T) {
	testRandomRegions(t, []string{"", "eu", "us"}, true, true, 6)
}

// TestReviewCostsOfRegionLists measures the requests of a warm List
// (one call, Limit 5, nothing new since the last List): in a store of the default
// region only; in a named region with a snapshot of its own, with one
// other region; and in a region with no snapshot of its own, which
// reads another's. The head and manifest of the other region's snapshot
// are read again on every load (manifests never change, but
// headSnapshot does not cache them).
func TestReviewCostsOfRegionLists(t *testing.T) {
	ctx := context.Background()
	warm := func(b *bucket.Mem, ix *index.Index) bucket.MemStats {
		t.Helper()
		if _, err := listErr(ix, 5); err != nil {
			t.Fatal(err)
		}
		ix.Wait() // a region reading another's snapshot compacts into its own on its first List
		before := b.Stats()
		if _, _, err := ix.List(ctx, query(t, cairn.ListOptions{Limit: 5})); err != nil {
			t.Fatal(err)
		}
		after := b.Stats()
		return bucket.MemStats{Gets: after.Gets - before.Gets, Lists: after.Lists - before.Lists, Heads: after.Heads - before.Heads}
	}
	c := &clock{now: t0}
	one := memAt(c)
	d := regionIndex(t, one, "", c)
	for i := range 30 {
		commit(t, d, put(i, t0.Add(time.Duration(i)*time.Second), "w"))
	}
	d.Wait()
	if err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	single := warm(one, d)

	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	w.writeN(t, a, "a", 0, 30)
	w.sync(t)
	own := warm(w.ba, a)
	b := regionIndex(t, w.bb, "b", w.c)
	foreign := warm(w.bb, b)
	t.Logf("warm List: default region alone %+v; region a (own snapshot) %+v; region b (a's snapshot) %+v", single, own, foreign)
	if single.Gets+single.Lists+single.Heads > 2 { // the head, the tail: as at aab31a1
		t.Errorf("a store of one region: warm List makes %+v", single)
	}
	if foreign.Gets > own.Gets+1 { // + the other region's head, to see it move
		t.Errorf("a region without a snapshot GETs %d objects per warm List, one with its own %d", foreign.Gets, own.Gets)
	}
}

// TestReviewSingleRegionRequests compares the requests of a store of the
// default region only with those measured at aab31a1 (the same steps run
// in a worktree of it): cold List gets=8 lists=1, warm List gets=1
// lists=1, a first commit by a new process gets=7 lists=1 puts=1. The
// default region now LISTs the stream markers on its first load and then
// every 30 s (discover): one LIST more, in parallel with the head's GET.
func TestReviewSingleRegionRequests(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	mem := memAt(c)
	o := &index.Options{Now: c.Now}
	w := newIndex(t, mem, o)
	for i := range 300 {
		commit(t, w, put(i, t0.Add(time.Duration(i)*time.Second), "w"))
	}
	w.Wait()
	if err := w.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		commit(t, w, put(1000+i, t0.Add(time.Hour), "w"))
	}
	step := func(f func()) bucket.MemStats {
		before := mem.Stats()
		f()
		after := mem.Stats()
		return bucket.MemStats{Gets: after.Gets - before.Gets, Lists: after.Lists - before.Lists, Puts: after.Puts - before.Puts, Heads: after.Heads - before.Heads}
	}
	list := func(ix *index.Index) {
		if _, _, err := ix.List(ctx, query(t, cairn.ListOptions{Limit: 10})); err != nil {
			t.Fatal(err)
		}
	}
	r, err := index.New(mem, o)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := index.New(mem, o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bucket.MemStats{
		"cold List": step(func() { list(r) }),
		"warm List": step(func() { list(r) }),
		"first commit of a new process": step(func() {
			if err := nc.Commit(ctx, put(2000, t0.Add(2*time.Hour), "w")); err != nil {
				t.Fatal(err)
			}
		}),
	}
	want := map[string]bucket.MemStats{
		"cold List":                     {Gets: 8, Lists: 1},
		"warm List":                     {Gets: 1, Lists: 1},
		"first commit of a new process": {Gets: 7, Lists: 1, Puts: 1},
	}
	for k, g := range got {
		if g != want[k] {
			t.Errorf("%s: %+v, at aab31a1 %+v", k, g, want[k])
		}
	}
}

// TestReviewSalvageMatchesLastOps: on an intact index Salvage (what
// Reindex falls back to when the index is damaged) must give what LastOps
// gives, in a region with a snapshot of its own and in one that starts
// from another region's. Salvage looks only at the region's own
// snapshots: in b, which has none, it returns only the ops of the logs
// still there, missing every run a's snapshot holds (their tombstones
// included, which Reindex needs as evidence).
func TestReviewSalvageMatchesLastOps(t *testing.T) {
	ctx := context.Background()
	w := newTwoRegions()
	a := regionIndex(t, w.ba, "a", w.c)
	w.writeN(t, a, "a", 0, 12)
	d := del(3)
	d.Entry.Timestamp = w.c.Now()
	commit(t, a, d)
	w.m.apply("a", d)
	w.writeN(t, a, "a", 12, 8)
	gcAfterGrace(t, w.c, a)
	w.sync(t)
	b := regionIndex(t, w.bb, "b", w.c)
	for name, ix := range map[string]*index.Index{"a": a, "b (no snapshot)": b} {
		last, err := ix.LastOps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		salv, skipped, err := ix.Salvage(ctx)
		if err != nil || len(skipped) > 0 {
			t.Fatalf("%s: Salvage: %v, %v", name, skipped, err)
		}
		var l, s []string
		for _, op := range last {
			l = append(l, opDesc(op))
		}
		for _, op := range salv {
			s = append(s, opDesc(op))
		}
		slices.Sort(l)
		slices.Sort(s)
		sameList(t, name+": Salvage against LastOps", s, l)
	}
}
