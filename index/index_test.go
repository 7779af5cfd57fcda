package index_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func run(n int) uuid.UUID {
	var id uuid.UUID
	id[0], id[1], id[2] = byte(n>>16), byte(n>>8), byte(n)
	id[6], id[8] = 0x40, 0x80
	return id
}

func put(n int, ts time.Time, wf string) index.Op {
	return index.Op{Entry: index.Entry{RunID: run(n), Timestamp: ts, Workflow: wf, Size: int64(100 + n)}}
}

func del(n int) index.Op { return index.Op{Entry: index.Entry{RunID: run(n)}, Delete: true} }

func newIndex(t testing.TB, b bucket.Bucket, o *index.Options) *index.Index {
	t.Helper()
	ix, err := index.New(b, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ix.Wait)
	return ix
}

// model is what the index must hold: the last op of each run applied.
type model map[uuid.UUID]index.Entry

func (m model) apply(ops ...index.Op) {
	for _, op := range ops {
		if op.Delete {
			delete(m, op.Entry.RunID)
		} else {
			m[op.Entry.RunID] = op.Entry
		}
	}
}

// list returns the runs of m that q selects, in List order. It reads
// labels by parsing them, apart from the index's way of matching them.
func (m model) list(q *cairn.Query, now time.Time) []index.Entry {
	var out []index.Entry
	for _, e := range m {
		labels, err := cairn.ParseLabels(e.Labels)
		if err != nil {
			panic(fmt.Sprintf("model: labels %q: %v", e.Labels, err))
		}
		if q.Match(e.Workflow, e.Timestamp, labels) && !e.Expired(now) && (!q.HasAfter || q.After.Compare(e.Key()) < 0) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b index.Entry) int { return a.Key().Compare(b.Key()) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func query(t testing.TB, o cairn.ListOptions) *cairn.Query {
	q, err := o.Query()
	if err != nil {
		t.Fatal(err)
	}
	return &q
}

func listAll(t testing.TB, ix *index.Index, o cairn.ListOptions) []index.Entry {
	t.Helper()
	var all []index.Entry
	for {
		got, more, err := ix.List(context.Background(), query(t, o))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
		if !more {
			return all
		}
		if len(got) == 0 {
			t.Fatal("more with an empty page")
		}
		o.Cursor = got[len(got)-1].Key().Cursor()
	}
}

func check(t *testing.T, ix *index.Index, m model, now time.Time) {
	t.Helper()
	queries := []cairn.ListOptions{
		{},
		{Limit: 3},
		{Limit: 7, WorkflowName: "b"},
		{Since: t0.Add(20 * time.Second), Until: t0.Add(70 * time.Second)},
		{Since: t0.Add(50 * time.Second), Limit: 4},
		{Until: t0.Add(30 * time.Second), Limit: 5},
	}
	for _, o := range queries {
		got := listAll(t, ix, o)
		o.Limit = 0
		want := m.list(query(t, o), now)
		if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("List(%+v): got %d entries, want %d\ngot  %v\nwant %v", o, len(got), len(want), keys(got), keys(want))
		}
	}
	for id, e := range m {
		got, ok, err := index.Lookup(ix, context.Background(), id)
		if err != nil || !ok || !reflect.DeepEqual(got, e) {
			t.Fatalf("Lookup(%v) = %v, %v, %v; want %v", id, got, ok, err, e)
		}
	}
}

func keys(es []index.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d@%s", e.RunID[2], e.Timestamp.Sub(t0)))
	}
	return out
}

// Random ops against one index, with compaction often and small pages so
// that pages split, empty and get reused; after each round the index
// answers List and Lookup exactly as the model does, and so does a fresh
// index on the same bucket (another process).
func TestAgainstModel(t *testing.T) {
	b := bucket.NewMem()
	opts := &index.Options{PageSize: 4, CompactAfter: 3}
	ix := newIndex(t, b, opts)
	m := model{}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for round := range 40 {
		var ops []index.Op
		for range 1 + rng.IntN(6) {
			n := rng.IntN(60)
			if rng.IntN(4) == 0 {
				ops = append(ops, del(n))
			} else {
				ts := t0.Add(time.Duration(rng.IntN(100)) * time.Second)
				ops = append(ops, put(n, ts, []string{"a", "b", "c"}[rng.IntN(3)]))
			}
		}
		if err := ix.Commit(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		m.apply(ops...)
		if round%7 == 6 {
			ix.Wait()
			if err := ix.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}
		check(t, ix, m, t0)
	}
	ix.Wait()
	if st := ix.Stats(); st.Compactions == 0 || st.PagesPut == 0 {
		t.Fatalf("no compaction happened: %+v", st)
	}
	check(t, newIndex(t, b, opts), m, t0)
}

func TestExpiry(t *testing.T) {
	now := t0.Add(time.Hour)
	ix := newIndex(t, bucket.NewMem(), &index.Options{Now: func() time.Time { return now }})
	live, dead := put(1, t0, "a"), put(2, t0, "a")
	live.Entry.Expires = now.Add(time.Minute)
	dead.Entry.Expires = now
	if err := ix.Commit(context.Background(), live, dead); err != nil {
		t.Fatal(err)
	}
	got := listAll(t, ix, cairn.ListOptions{})
	if len(got) != 1 || got[0].RunID != run(1) {
		t.Fatalf("List = %v, want only the unexpired run", keys(got))
	}
	if _, ok, _ := index.Lookup(ix, context.Background(), run(2)); ok {
		t.Fatal("Lookup found an expired run")
	}
}

// Several processes commit at once to one bucket: every acknowledged op is
// in the log, and the index equals the replay of the log in order.
func TestConcurrentWriters(t *testing.T) {
	b := bucket.NewMem()
	const writers, commits = 4, 30
	var wg sync.WaitGroup
	owned := make([]model, writers)
	for w := range writers {
		owned[w] = model{}
		ix := newIndex(t, b, &index.Options{CompactAfter: 5, PageSize: 8})
		wg.Go(func() {
			for c := range commits {
				n := w*1000 + c%10 // each writer owns its runs
				ops := []index.Op{put(n, t0.Add(time.Duration(c)*time.Second), "w")}
				if c%4 == 3 {
					ops = append(ops, del(w*1000+(c+5)%10))
				}
				if err := ix.Commit(context.Background(), ops...); err != nil {
					t.Error(err)
					return
				}
				owned[w].apply(ops...)
			}
		})
	}
	wg.Wait()
	want := model{}
	for _, m := range owned {
		for id, e := range m {
			want[id] = e
		}
	}
	fresh := newIndex(t, b, nil)
	check(t, fresh, want, t0)
}

// flaky loses the answer to chosen Puts after they have taken effect, as a
// connection reset after the request was sent does.
type flaky struct {
	bucket.Bucket
	lose func(key string) bool
	lost atomic.Int64
}

func (f *flaky) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	etag, err := f.Bucket.Put(ctx, key, body, o)
	if err == nil && f.lose(key) {
		f.lost.Add(1)
		return "", errors.New("connection reset by peer")
	}
	return etag, err
}

// A commit whose log PUT landed but whose answer was lost finds its own
// batch on retry (412, then the same batch ID) instead of writing it again.
func TestLostAnswerIsOwnWrite(t *testing.T) {
	var once sync.Once
	f := &flaky{Bucket: bucket.NewMem(), lose: func(key string) bool {
		lose := false
		if strings.HasPrefix(key, "index/log/") {
			once.Do(func() { lose = true })
		}
		return lose
	}}
	ix := newIndex(t, f, nil)
	if err := ix.Commit(context.Background(), put(1, t0, "a")); err != nil {
		t.Fatal(err)
	}
	if f.lost.Load() != 1 {
		t.Fatal("no answer was lost")
	}
	infos, _, err := f.List(context.Background(), "index/log/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("%d logs written for one commit, want 1", len(infos))
	}
	if st := ix.Stats(); st.Commits != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// Concurrent commits from one process share log objects: while one log
// PUT is in flight (5 ms here, as an object store takes), the commits
// that arrive queue up for the next.
func TestGroupCommit(t *testing.T) {
	b := bucket.NewMem()
	b.SetHook(func(ctx context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/log/") {
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	ix := newIndex(t, b, &index.Options{CompactAfter: 1000})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if err := ix.Commit(context.Background(), put(i, t0, "a")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := ix.Stats()
	if st.CommitOps != 64 || st.Commits >= 64 {
		t.Fatalf("64 concurrent commits wrote %d logs for %d ops; want fewer logs than commits", st.Commits, st.CommitOps)
	}
	if got := listAll(t, ix, cairn.ListOptions{}); len(got) != 64 {
		t.Fatalf("List has %d runs, want 64", len(got))
	}
	t.Logf("64 concurrent commits: %d log objects", st.Commits)
}

// The index tolerates damage by refusing with ErrCorrupt, never by
// returning wrong entries.
func TestCorruptLog(t *testing.T) {
	b := bucket.NewMem()
	ix := newIndex(t, b, nil)
	if err := ix.Commit(context.Background(), put(1, t0, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(context.Background(), "index/log/00000000000000000002", []byte("garbage"), nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := newIndex(t, b, nil).List(context.Background(), query(t, cairn.ListOptions{}))
	if !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("List over a corrupt log: %v, want ErrCorrupt", err)
	}
}

// A List reads the head and lists the log tail at the same time: with
// every request held for a while, the two are in flight together.
func TestLoadReadsHeadAndTailTogether(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	ix := newIndex(t, mem, nil)
	if err := ix.Commit(ctx, put(1, t0, "w")); err != nil {
		t.Fatal(err)
	}
	var inflight, peak atomic.Int32
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "get" || op == "list" {
			n := inflight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(100 * time.Millisecond)
			inflight.Add(-1)
		}
		return nil
	})
	for _, name := range []string{"cold", "warm"} {
		peak.Store(0)
		r := ix
		if name == "cold" {
			r = newIndex(t, mem, nil)
		}
		got, _, err := r.List(ctx, query(t, cairn.ListOptions{}))
		if err != nil || len(got) != 1 {
			t.Fatalf("%s List: %v, %v", name, got, err)
		}
		if p := peak.Load(); p < 2 {
			t.Errorf("%s List: at most %d request in flight; the head and the tail listing were read one after the other", name, p)
		}
	}
}

// A cold reader whose listing of logs from the start does not reach the
// end in one page (logs GC has not collected, under a newer snapshot)
// goes on from the head's snapshot and misses nothing.
func TestColdListPastUncollectedLogs(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	w := newIndex(t, mem, &index.Options{CompactAfter: 8, PageSize: 64})
	m := model{}
	for i := range 1100 { // one log each: more than one LIST page of them
		op := put(i%300, t0.Add(time.Duration(i)*time.Second), "w")
		if err := w.Commit(ctx, op); err != nil {
			t.Fatal(err)
		}
		m.apply(op)
	}
	w.Wait()
	var lists atomic.Int32
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "list" {
			lists.Add(1)
		}
		return nil
	})
	r := newIndex(t, mem, nil)
	q := query(t, cairn.ListOptions{})
	got, _, err := r.List(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if want := m.list(q, t0); !reflect.DeepEqual(got, want) {
		t.Fatalf("cold List: %d entries, want %d", len(got), len(want))
	}
	if n := lists.Load(); n < 2 {
		t.Fatalf("%d LIST requests: the first page should not have reached the end", n)
	}
}
