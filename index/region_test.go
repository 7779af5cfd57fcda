package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// clock is a settable clock for GC grace periods.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func regionIndex(t testing.TB, b bucket.Bucket, region string, c *clock) *index.Index {
	t.Helper()
	return newIndex(t, b, &index.Options{Region: region, CompactAfter: 4, PageSize: 8, Now: c.Now})
}

// A repl stands in for one direction of a bucket's replication: each
// call of run delivers what changed at src since the last one (new or
// changed objects, deletes), but for the keys skip holds, which wait for
// a later call.
type repl struct {
	src, dst *bucket.Mem
	sent     map[string]string // key → ETag delivered
}

func newRepl(src, dst *bucket.Mem) *repl { return &repl{src: src, dst: dst, sent: map[string]string{}} }

func (r *repl) run(t testing.TB, skip func(key string) bool) {
	t.Helper()
	ctx := context.Background()
	now := map[string]string{}
	for start := ""; ; {
		infos, more, err := r.src.List(ctx, "", start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			now[in.Key] = in.ETag
		}
		if !more || len(infos) == 0 {
			break
		}
		start = infos[len(infos)-1].Key
	}
	for key, etag := range now {
		if (skip != nil && skip(key)) || r.sent[key] == etag {
			continue
		}
		obj, err := r.src.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.dst.Put(ctx, key, obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
			t.Fatal(err)
		}
		r.sent[key] = etag
	}
	for key := range r.sent {
		if _, ok := now[key]; !ok && (skip == nil || !skip(key)) {
			if err := r.dst.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			delete(r.sent, key)
		}
	}
}

// memAt returns a Mem bucket whose clock is c's.
func memAt(c *clock) *bucket.Mem {
	b := bucket.NewMem()
	b.SetClock(c.Now)
	return b
}

func commit(t testing.TB, ix *index.Index, ops ...index.Op) {
	t.Helper()
	if err := ix.Commit(context.Background(), ops...); err != nil {
		t.Fatal(err)
	}
}

func epochPut(n int, ts time.Time, epoch uint64, wf string) index.Op {
	op := put(n, ts, wf)
	op.Entry.Epoch = epoch
	return op
}

// rmodel is what a store of several regions must hold: the last op of
// each region for each run, the winner decided by the documented rules
// (restated here, apart from the index's code).
type rmodel map[uuid.UUID]map[string]index.Op

func (m rmodel) apply(region string, ops ...index.Op) {
	for _, op := range ops {
		op.Entry.Region = region
		if m[op.Entry.RunID] == nil {
			m[op.Entry.RunID] = map[string]index.Op{}
		}
		m[op.Entry.RunID][region] = op
	}
}

func wins(a, b index.Op) bool {
	switch {
	case a.Entry.Epoch != b.Entry.Epoch:
		return a.Entry.Epoch > b.Entry.Epoch
	case !a.Entry.Timestamp.Equal(b.Entry.Timestamp):
		return a.Entry.Timestamp.After(b.Entry.Timestamp)
	case a.Delete != b.Delete:
		return a.Delete
	case a.Entry.Region != b.Entry.Region:
		return a.Entry.Region > b.Entry.Region
	}
	return a.Entry.ETag > b.Entry.ETag
}

// live returns the winning entries, "<run> <region> <epoch>" each, in List
// order.
func (m rmodel) live() []string {
	var es []index.Entry
	for _, byRegion := range m {
		var w *index.Op
		for _, op := range byRegion {
			if w == nil || wins(op, *w) {
				w = &op
			}
		}
		if !w.Delete {
			es = append(es, w.Entry)
		}
	}
	slices.SortFunc(es, func(a, b index.Entry) int { return a.Key().Compare(b.Key()) })
	return described(es)
}

func described(es []index.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%v %q %d", e.RunID, e.Region, e.Epoch)
	}
	return out
}

func listed(t testing.TB, ix *index.Index, limit int) []string {
	t.Helper()
	return described(listAll(t, ix, cairn.ListOptions{Limit: limit}))
}

func sameList(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %d entries, want %d\ngot  %s\nwant %s", what, len(got), len(want), strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// TestRegionsShareOneBucket writes one store from three regions (the
// default one and two named) at random, with compactions and GC, and
// checks after each step that every region lists exactly the winners the
// rules pick, whichever region compacted what.
func TestRegionsShareOneBucket(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			c := &clock{now: t0}
			b := memAt(c)
			regions := []string{"", "eu", "us"}
			ixs := map[string]*index.Index{}
			for _, r := range regions {
				ixs[r] = regionIndex(t, b, r, c)
			}
			m := rmodel{}
			ctx := context.Background()
			for step := range 120 {
				r := regions[rng.IntN(len(regions))]
				var ops []index.Op
				for range 1 + rng.IntN(3) {
					n := rng.IntN(25)
					if rng.IntN(6) == 0 {
						op := del(n)
						op.Entry.Timestamp = t0.Add(time.Duration(step) * time.Second)
						op.Entry.Epoch = uint64(rng.IntN(3))
						ops = append(ops, op)
						continue
					}
					ops = append(ops, epochPut(n, t0.Add(time.Duration(rng.IntN(100))*time.Second), uint64(rng.IntN(3)), "w"))
				}
				commit(t, ixs[r], ops...)
				m.apply(r, ops...)
				switch rng.IntN(10) {
				case 0:
					if err := ixs[r].Compact(ctx); err != nil {
						t.Fatal(err)
					}
				case 1:
					c.add(2 * time.Minute)
					if _, err := ixs[r].GC(ctx, time.Minute, false); err != nil {
						t.Fatal(err)
					}
				}
				if step%10 == 9 {
					for _, r := range regions {
						ixs[r].Wait()
						sameList(t, fmt.Sprintf("step %d, region %q", step, r), listed(t, ixs[r], 7), m.live())
					}
				}
			}
			for _, r := range regions {
				ixs[r].Wait()
				if err := ixs[r].Check(ctx); err != nil {
					t.Fatalf("region %q: Check: %v", r, err)
				}
				ops, err := ixs[r].LastOps(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var es []index.Entry
				for _, op := range ops {
					if !op.Delete {
						es = append(es, op.Entry)
					}
				}
				slices.SortFunc(es, func(a, b index.Entry) int { return a.Key().Compare(b.Key()) })
				sameList(t, fmt.Sprintf("region %q: LastOps", r), described(es), m.live())
			}
		})
	}
}

// TestRegionGapIsWaitedFor: a log of another region that replication has
// not delivered yet is a gap List waits at, not an error; the logs after
// it show once it arrives.
func TestRegionGapIsWaitedFor(t *testing.T) {
	c := &clock{now: t0}
	ba, bb := memAt(c), memAt(c)
	ab, ba2 := newRepl(ba, bb), newRepl(bb, ba)
	a := regionIndex(t, ba, "a", c)
	commit(t, a, put(1, t0, "w"))
	commit(t, a, put(2, t0.Add(time.Second), "w"))
	commit(t, a, put(3, t0.Add(2*time.Second), "w"))
	missing := "index/regions/a/log/" + fmt.Sprintf("%020d", 2)
	ab.run(t, func(key string) bool { return key == missing })
	b := regionIndex(t, bb, "b", c)
	want := rmodel{}
	want.apply("a", put(1, t0, "w"))
	sameList(t, "log 2 missing", listed(t, b, 0), want.live())
	// b writes and compacts meanwhile: its snapshot covers a's stream
	// only up to the gap.
	for i := range 6 {
		commit(t, b, put(10+i, t0.Add(time.Minute), "w"))
		want.apply("b", put(10+i, t0.Add(time.Minute), "w"))
	}
	if err := b.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameList(t, "log 2 missing, b compacted", listed(t, b, 0), want.live())
	ab.run(t, nil)
	want.apply("a", put(2, t0.Add(time.Second), "w"), put(3, t0.Add(2*time.Second), "w"))
	sameList(t, "log 2 arrived", listed(t, b, 0), want.live())
	ba2.run(t, nil)
	sameList(t, "in a", listed(t, a, 0), want.live())
}

// TestRegionEpochDecides: a run resumed in region b under a new claim
// (epoch 2) wins on both sides over what a stale worker in a writes during
// a partition, later by every clock; at equal epochs the rules decide, the
// same way on both sides, and Contested and SplitBrain report both.
func TestRegionEpochDecides(t *testing.T) {
	c := &clock{now: t0}
	ctx := context.Background()
	ba, bb := memAt(c), memAt(c)
	ab, ba2 := newRepl(ba, bb), newRepl(bb, ba)
	a, b := regionIndex(t, ba, "a", c), regionIndex(t, bb, "b", c)
	commit(t, a, epochPut(1, t0, 1, "w"), epochPut(2, t0, 0, "w"))
	ab.run(t, nil)
	// The partition: b resumes run 1 under epoch 2; a's stale worker
	// goes on at epoch 1 with later timestamps. Both write run 2 without
	// a claim.
	commit(t, b, epochPut(1, t0.Add(time.Minute), 2, "w"), epochPut(2, t0.Add(2*time.Minute), 0, "w"))
	for i := range 6 {
		commit(t, a, epochPut(1, t0.Add(time.Hour+time.Duration(i)*time.Second), 1, "w"), epochPut(2, t0.Add(time.Minute), 0, "w"))
	}
	if err := a.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// The heal.
	ab.run(t, nil)
	ba2.run(t, nil)
	want := []string{
		fmt.Sprintf("%v %q %d", run(2), "b", 0), // equal epochs: the later timestamp
		fmt.Sprintf("%v %q %d", run(1), "b", 2), // the higher epoch, though a's timestamps are later
	}
	for _, ix := range []*index.Index{a, b} {
		sameList(t, "after the heal", listed(t, ix, 0), want)
		if err := ix.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		sameList(t, "compacted", listed(t, ix, 0), want)
		cont, err := ix.Contested(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cont) != 2 || index.SplitBrain(cont[run(1)]) || !index.SplitBrain(cont[run(2)]) {
			t.Fatalf("Contested = %v; want runs 1 (resumed) and 2 (split brain)", cont)
		}
	}
	// A delete at the winner's epoch wins, wherever it is written.
	d := del(1)
	d.Entry.Epoch, d.Entry.Timestamp = 2, t0.Add(3*time.Minute)
	commit(t, a, d)
	ab.run(t, nil)
	for _, ix := range []*index.Index{a, b} {
		sameList(t, "deleted", listed(t, ix, 0), want[:1])
	}
}

// TestRegionJoinsCompactedStore: a region added to a store whose logs were
// collected long ago starts from the default region's snapshot, writes a
// full snapshot of its own at its first compaction, and reads on after the
// default region's GC deletes the pages it started from.
func TestRegionJoinsCompactedStore(t *testing.T) {
	c := &clock{now: t0}
	ctx := context.Background()
	bkt := memAt(c)
	d := regionIndex(t, bkt, "", c)
	m := rmodel{}
	for i := range 40 {
		commit(t, d, put(i, t0.Add(time.Duration(i)*time.Second), "w"))
		m.apply("", put(i, t0.Add(time.Duration(i)*time.Second), "w"))
	}
	d.Wait()
	if err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute)
	if rep, err := d.GC(ctx, time.Minute, false); err != nil || rep.Logs == 0 {
		t.Fatalf("GC before the region joins: %+v, %v; want logs deleted", rep, err)
	}
	e, err := index.New(bkt, &index.Options{Region: "eu", CompactAfter: 4, PageSize: 8, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Wait)
	sameList(t, "joined", listed(t, e, 5), m.live())
	for i := range 5 {
		commit(t, e, put(100+i, t0.Add(time.Hour), "w"))
		m.apply("eu", put(100+i, t0.Add(time.Hour), "w"))
	}
	e.Wait()
	if err := e.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	sameList(t, "region compacted", listed(t, e, 5), m.live())
	// The default region moves on and collects its old pages.
	for i := range 10 {
		commit(t, d, put(i, t0.Add(2*time.Hour), "w"))
		m.apply("", put(i, t0.Add(2*time.Hour), "w"))
	}
	d.Wait()
	if err := d.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute)
	if _, err := d.GC(ctx, time.Minute, false); err != nil {
		t.Fatal(err)
	}
	fresh := regionIndex(t, bkt, "eu", c)
	for _, ix := range []*index.Index{e, fresh, d} {
		sameList(t, "after the default region's GC", listed(t, ix, 5), m.live())
		if err := ix.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegionGCKeepsWhatOthersNeed: a region's GC keeps its logs until the
// other region's head covers them (or, for a region with no snapshot yet,
// the snapshot it starts from), and a GC in either region never breaks
// the other's reads, replicated deletes included.
func TestRegionGCKeepsWhatOthersNeed(t *testing.T) {
	c := &clock{now: t0}
	ctx := context.Background()
	ba, bb := memAt(c), memAt(c)
	ab, ba2 := newRepl(ba, bb), newRepl(bb, ba)
	a := regionIndex(t, ba, "a", c)
	m := rmodel{}
	write := func(ix *index.Index, r string, from, n int) {
		for i := from; i < from+n; i++ {
			commit(t, ix, put(i, t0.Add(time.Duration(i)*time.Second), "w"))
			m.apply(r, put(i, t0.Add(time.Duration(i)*time.Second), "w"))
		}
		ix.Wait()
		if err := ix.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gc := func(ix *index.Index) *index.GCReport {
		c.add(2 * time.Minute)
		rep, err := ix.GC(ctx, time.Minute, false)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	logs := func(b *bucket.Mem, r string) int {
		infos, _, err := b.List(ctx, "index/regions/"+r+"/log/", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(infos)
	}
	write(a, "a", 0, 12)
	ab.run(t, nil)
	b := regionIndex(t, bb, "b", c) // b has a stream, and no snapshot: it reads a's
	ba2.run(t, nil)
	gc(a)
	ab.run(t, nil)
	sameList(t, "b, reading a's snapshot", listed(t, b, 0), m.live())
	write(b, "b", 100, 2) // b's first snapshot, covering a's stream up to 12
	ba2.run(t, nil)
	write(a, "a", 12, 10)
	ab.run(t, nil)
	kept := logs(ba, "a")
	gc(a)
	if n := logs(ba, "a"); n != kept {
		t.Fatalf("a's GC deleted %d logs past what b's snapshot covers", kept-n)
	}
	if err := b.Compact(ctx); err != nil { // b reads a's new logs and covers them
		t.Fatal(err)
	}
	ba2.run(t, nil)
	gc(a)
	if n := logs(ba, "a"); n >= kept {
		t.Fatalf("a's GC kept its %d logs, though b's snapshot covers them", n)
	}
	gc(b)
	ab.run(t, nil)
	ba2.run(t, nil)
	for _, ix := range []*index.Index{a, b} {
		sameList(t, "after both GCs", listed(t, ix, 0), m.live())
		if err := ix.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
