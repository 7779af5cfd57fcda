package durable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The chaos suite damages a store's index, or kills a process in the
// middle of an import, a Reindex or a GC, and checks DESIGN.md §0: after
// a Reindex every run whose last Save was acknowledged is listed with its
// latest state, GC deletes nothing acknowledged, and Verify is clean.
// It runs on the in-memory and directory buckets and on MinIO.

func TestChaosMem(t *testing.T) {
	runChaos(t, func(t *testing.T) bucket.Bucket { return bucket.NewMem() })
}

func TestChaosDir(t *testing.T) {
	runChaos(t, func(t *testing.T) bucket.Bucket {
		dir, err := bucket.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return dir
	})
}

func TestMinIOChaos(t *testing.T) {
	srv := startMinIO(t)
	runChaos(t, func(t *testing.T) bucket.Bucket { return minioBucket(t, srv, srv.NewBucket(t)) })
}

// chaosIndex compacts often and splits pages small, so that a seeded
// store has several snapshots, many pages and a log tail; a killed
// process's commits give up soon.
var chaosIndex = &index.Options{PageSize: 4, CompactAfter: 4, RetryFor: 300 * time.Millisecond}

func chaosStore(t testing.TB, b bucket.Bucket, now func() time.Time) *durable.Store {
	t.Helper()
	return newStore(t, b, &durable.Options{Prefix: "cairn", Index: chaosIndex, Now: now})
}

// world is what a seeded bucket must hold: the acknowledged state of each
// run, and runs that may also appear (written, never acknowledged).
type world struct {
	b     bucket.Bucket
	want  map[uuid.UUID]*cairn.Checkpoint
	maybe map[uuid.UUID]bool
}

// version returns run n's checkpoint at version v: each version has its
// own time and state.
func version(n, v int) *cairn.Checkpoint {
	c := cp(n, t0.Add(time.Duration(n)*time.Second+time.Duration(v)*time.Hour))
	c.State["v"] = int64(v)
	c.SetLabel("parity", parity(n))
	return c
}

// parity is run n's label: the chaos checks also list by it, through the
// index's by-label pages.
func parity(n int) string {
	if n%2 == 0 {
		return "even"
	}
	return "odd"
}

// seed saves 40 runs, re-saves every third one, deletes every tenth
// (fully), compacts, then saves 6 more runs into the log tail.
func seed(t *testing.T, b bucket.Bucket) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{b: b, want: map[uuid.UUID]*cairn.Checkpoint{}, maybe: map[uuid.UUID]bool{}}
	// The seed is no chaos: its store retries the index commit for longer
	// than the chaos stores do, so that a slow PUT on a loaded machine does
	// not fail the seeding.
	s := newStore(t, b, &durable.Options{Prefix: "cairn", Index: &index.Options{PageSize: 4, CompactAfter: 4, RetryFor: 10 * time.Second}})
	save := func(c *cairn.Checkpoint) {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		w.want[c.RunID] = c
	}
	for n := range 40 {
		save(version(n, 0))
	}
	for n := 0; n < 40; n += 3 {
		save(version(n, 1))
	}
	for n := 7; n < 40; n += 10 {
		if err := s.Delete(ctx, version(n, 0).RunID); err != nil {
			t.Fatal(err)
		}
		delete(w.want, version(n, 0).RunID)
	}
	durable.IndexOf(s).Wait()
	if err := durable.IndexOf(s).Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for n := 40; n < 46; n++ {
		save(version(n, 0))
	}
	durable.IndexOf(s).Wait()
	return w
}

// keys lists the keys under prefix.
func keys(t testing.TB, b bucket.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	for start := ""; ; {
		infos, more, err := b.List(context.Background(), prefix, start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			out = append(out, in.Key)
		}
		if !more || len(infos) == 0 {
			return out
		}
		start = infos[len(infos)-1].Key
	}
}

func deleteAll(t *testing.T, b bucket.Bucket, prefix string) {
	t.Helper()
	ks := keys(t, b, prefix)
	if len(ks) == 0 {
		t.Fatalf("nothing under %s to delete", prefix)
	}
	for _, k := range ks {
		if err := b.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

// damage rewrites the object at key with what f makes of its body.
func damage(t *testing.T, b bucket.Bucket, key string, f func([]byte) []byte) {
	t.Helper()
	obj, err := b.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(context.Background(), key, f(obj.Body), nil); err != nil {
		t.Fatal(err)
	}
}

func garbage([]byte) []byte        { return []byte("\x28\xb5\x2f\xfdgarbage") }
func truncated(body []byte) []byte { return body[:len(body)/2] }

func newest(t *testing.T, b bucket.Bucket, prefix string) string {
	t.Helper()
	ks := keys(t, b, prefix)
	if len(ks) == 0 {
		t.Fatalf("nothing under %s", prefix)
	}
	return ks[len(ks)-1]
}

// check reindexes with a fresh store, then checks that the acknowledged
// runs are listed with their latest state, that GC (an hour later, so that
// every grace period is over) deletes none of them, and that Verify is
// clean before and after.
func check(t *testing.T, w *world) {
	t.Helper()
	ctx := context.Background()
	fresh := chaosStore(t, w.b, nil)
	rep, err := fresh.Reindex(ctx, nil)
	if err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	if len(rep.Corrupt) != 0 {
		t.Fatalf("Reindex found corrupt runs: %v", rep.Corrupt)
	}
	later := chaosStore(t, w.b, func() time.Time { return time.Now().Add(time.Hour) })
	for round, what := range []string{"after Reindex", "after GC"} {
		if round == 1 {
			gc, err := later.GC(ctx, &durable.GCOptions{Grace: time.Minute})
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			for _, id := range slices.Concat(gc.Expired, gc.Dead) {
				if w.want[id] != nil {
					t.Fatalf("GC deleted acknowledged run %v", id)
				}
			}
		}
		s := chaosStore(t, w.b, nil)
		listed := map[uuid.UUID]cairn.Summary{}
		for sum, err := range cairn.All(ctx, s, nil) {
			if err != nil {
				t.Fatalf("List %s: %v", what, err)
			}
			listed[sum.RunID] = sum
		}
		for id, c := range w.want {
			sum, ok := listed[id]
			if !ok {
				t.Fatalf("%s: acknowledged run %v not listed (%d listed, %d acknowledged)", what, id, len(listed), len(w.want))
			}
			if !sum.Timestamp.Equal(c.Timestamp) {
				t.Fatalf("%s: run %v listed at %v, its last acknowledged Save was at %v", what, id, sum.Timestamp, c.Timestamp)
			}
			got, err := s.Load(ctx, id)
			if err != nil {
				t.Fatalf("%s: Load %v: %v", what, id, err)
			}
			if got.State["v"] != c.State["v"] {
				t.Fatalf("%s: run %v loads version %v, want %v", what, id, got.State["v"], c.State["v"])
			}
		}
		for id := range listed {
			if w.want[id] == nil && !w.maybe[id] {
				t.Fatalf("%s: run %v listed, but it was deleted or never written", what, id)
			}
		}
		checkLabelList(t, s, w, what)
		vr, err := s.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify %s: %v", what, err)
		}
		if round == 1 && !vr.OK() || round == 0 && (vr.Index != nil || len(vr.Missing)+len(vr.Unindexed)+len(vr.Mismatched)+len(vr.Corrupt)+len(vr.Strays) != 0) {
			t.Fatalf("Verify %s: %+v", what, vr)
		}
	}
}

// checkLabelList checks that listing by label finds every acknowledged
// run carrying it, and only runs carrying it.
func checkLabelList(t *testing.T, s *durable.Store, w *world, what string) {
	t.Helper()
	sel := map[string]string{"parity": "even"}
	listed := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(context.Background(), s, &cairn.ListOptions{Labels: sel, Limit: 7}) {
		if err != nil {
			t.Fatalf("List by label %s: %v", what, err)
		}
		if sum.Labels["parity"] != "even" {
			t.Fatalf("%s: List(parity=even) gave run %v with labels %v", what, sum.RunID, sum.Labels)
		}
		listed[sum.RunID] = true
	}
	for id, c := range w.want {
		labels, _ := c.Labels()
		if even := labels["parity"] == "even"; even != listed[id] {
			t.Fatalf("%s: run %v (labels %v) listed by parity=even: %v", what, id, c.Metadata[cairn.LabelsKey], listed[id])
		}
	}
}

// killed is a bucket whose process dies after n requests: every request
// from then on fails, as none would be made.
type killed struct {
	bucket.Bucket
	left atomic.Int64
}

var errKilled = errors.New("killed")

func killAfter(b bucket.Bucket, n int) *killed {
	k := &killed{Bucket: b}
	k.left.Store(int64(n))
	return k
}

func (k *killed) alive() bool { return k.left.Add(-1) >= 0 }

func (k *killed) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.Bucket.Get(ctx, key, o)
}

func (k *killed) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if !k.alive() {
		return "", errKilled
	}
	return k.Bucket.Put(ctx, key, body, o)
}

func (k *killed) Head(ctx context.Context, key string) (*bucket.Info, error) {
	if !k.alive() {
		return nil, errKilled
	}
	return k.Bucket.Head(ctx, key)
}

func (k *killed) Delete(ctx context.Context, key string) error {
	if !k.alive() {
		return errKilled
	}
	return k.Bucket.Delete(ctx, key)
}

func (k *killed) List(ctx context.Context, prefix, startAfter string, limit int) ([]bucket.Info, bool, error) {
	if !k.alive() {
		return nil, false, errKilled
	}
	return k.Bucket.List(ctx, prefix, startAfter, limit)
}

// requests counts the requests f makes of b.
func requests(b bucket.Bucket, f func(bucket.Bucket)) int {
	c := newCounting(b)
	f(c)
	n := 0
	for _, k := range c.take() {
		n += k
	}
	return n
}

func runChaos(t *testing.T, newBucket func(t *testing.T) bucket.Bucket) {
	ctx := context.Background()
	seedRand := rand.Uint64()
	t.Logf("random points from seed %d", seedRand)
	rng := rand.New(rand.NewPCG(seedRand, 10))

	damages := []struct {
		name string
		hurt func(t *testing.T, w *world)
	}{
		{"whole index", func(t *testing.T, w *world) {
			deleteAll(t, w.b, "cairn/index/")
			// A lost index is never read as "no runs", and no write
			// starts a new index over the runs.
			s := chaosStore(t, w.b, nil)
			if _, err := s.List(ctx, nil); !errors.Is(err, durable.ErrIndexLost) || !strings.Contains(err.Error(), "cairn reindex") {
				t.Fatalf("List over a lost index: %v, want ErrIndexLost naming cairn reindex", err)
			}
			if err := s.Save(ctx, version(99, 0)); !errors.Is(err, durable.ErrIndexLost) {
				t.Fatalf("Save over a lost index: %v, want ErrIndexLost", err)
			}
			if _, err := s.GC(ctx, nil); !errors.Is(err, durable.ErrIndexLost) {
				t.Fatalf("GC over a lost index: %v, want ErrIndexLost", err)
			}
			rep, err := s.Verify(ctx)
			if err != nil || !errors.Is(rep.Index, durable.ErrIndexLost) || len(rep.Unindexed) != len(w.want) {
				t.Fatalf("Verify over a lost index: %+v, %v; want ErrIndexLost and every run unindexed", rep, err)
			}
			w.maybe[version(99, 0).RunID] = true // its object may be written before the commit fails
		}},
		{"logs", func(t *testing.T, w *world) { deleteAll(t, w.b, "cairn/index/log/") }},
		{"snapshots, head kept", func(t *testing.T, w *world) { deleteAll(t, w.b, "cairn/index/snap/") }},
		{"snapshots and logs, head kept", func(t *testing.T, w *world) {
			deleteAll(t, w.b, "cairn/index/snap/")
			deleteAll(t, w.b, "cairn/index/log/")
			// The head names nothing: List fails with a line naming
			// the repair, and Saves go on.
			s := chaosStore(t, w.b, nil)
			if _, err := s.List(ctx, nil); !errors.Is(err, index.ErrDamaged) {
				t.Fatalf("List with the head naming nothing: %v, want ErrDamaged", err)
			}
			c := version(98, 0)
			if err := s.Save(ctx, c); err != nil {
				t.Fatalf("Save with the head naming nothing: %v", err)
			}
			w.want[c.RunID] = c
		}},
		{"pages", func(t *testing.T, w *world) { deleteAll(t, w.b, "cairn/index/pages/") }},
		{"label pages", func(t *testing.T, w *world) { deleteAll(t, w.b, "cairn/index/label-pages/") }},
		{"corrupt every label page", func(t *testing.T, w *world) {
			ks := keys(t, w.b, "cairn/index/label-pages/")
			if len(ks) == 0 {
				t.Fatal("no label pages to damage: the seed has labels and a compaction")
			}
			for _, k := range ks {
				damage(t, w.b, k, garbage)
			}
		}},
		{"corrupt head", func(t *testing.T, w *world) { damage(t, w.b, "cairn/index/head", garbage) }},
		{"corrupt newest log", func(t *testing.T, w *world) { damage(t, w.b, newest(t, w.b, "cairn/index/log/"), garbage) }},
		{"corrupt every log", func(t *testing.T, w *world) {
			for _, k := range keys(t, w.b, "cairn/index/log/") {
				damage(t, w.b, k, garbage)
			}
		}},
		{"corrupt newest snapshot", func(t *testing.T, w *world) { damage(t, w.b, newest(t, w.b, "cairn/index/snap/"), garbage) }},
		{"corrupt every page", func(t *testing.T, w *world) {
			for _, k := range keys(t, w.b, "cairn/index/pages/") {
				damage(t, w.b, k, garbage)
			}
		}},
		{"truncated page", func(t *testing.T, w *world) {
			ks := keys(t, w.b, "cairn/index/pages/")
			damage(t, w.b, ks[rng.IntN(len(ks))], truncated)
		}},
		{"truncated pages and logs", func(t *testing.T, w *world) {
			for _, k := range slices.Concat(keys(t, w.b, "cairn/index/pages/"), keys(t, w.b, "cairn/index/log/")) {
				damage(t, w.b, k, truncated)
			}
		}},
	}
	for _, d := range damages {
		t.Run("damage/"+d.name, func(t *testing.T) {
			w := seed(t, newBucket(t))
			d.hurt(t, w)
			check(t, w)
		})
	}

	// An import (write-back Saves, a Flush every 8) killed at a random
	// request: the runs of every Flush that returned are acknowledged.
	for i := range 3 {
		t.Run(fmt.Sprintf("killed import/%d", i), func(t *testing.T) {
			w := seed(t, newBucket(t))
			k := killAfter(w.b, 5+rng.IntN(60))
			s, err := tiered.New(k, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour,
				Durable: durable.Options{Prefix: "cairn", Index: chaosIndex}})
			if err != nil {
				t.Fatal(err)
			}
			var batch []*cairn.Checkpoint
			for n := 100; n < 160; n++ {
				c := version(n, 0)
				if err := s.Save(ctx, c); err != nil {
					break
				}
				w.maybe[c.RunID] = true
				if batch = append(batch, c); len(batch) == 8 {
					if err := s.Flush(ctx); err != nil {
						break
					}
					for _, c := range batch {
						w.want[c.RunID] = c
					}
					batch = nil
				}
			}
			_ = s.Close(ctx)
			t.Logf("killed after %d acknowledged runs", len(w.want))
			check(t, w)
		})
	}

	// A Reindex killed at a random request leaves the index as good as
	// before; the next one completes.
	t.Run("killed reindex", func(t *testing.T) {
		w := seed(t, newBucket(t))
		deleteAll(t, w.b, "cairn/index/log/")
		n := requests(w.b, func(b bucket.Bucket) {
			if _, err := chaosStore(t, b, nil).Reindex(ctx, nil); err != nil {
				t.Fatal(err)
			}
		})
		for range 3 {
			w := seed(t, newBucket(t))
			deleteAll(t, w.b, "cairn/index/log/")
			at := rng.IntN(n)
			// (Background compactions make the count vary a little:
			// a kill past the end lets the Reindex finish.)
			if _, err := chaosStore(t, killAfter(w.b, at), nil).Reindex(ctx, nil); err != nil && !errors.Is(err, errKilled) {
				t.Fatalf("Reindex killed after %d of %d requests: %v", at, n, err)
			}
			check(t, w)
		}
	})

	// A GC killed at a random request, with an interrupted Delete and an
	// unindexed run for it to consider, deletes nothing acknowledged.
	t.Run("killed gc", func(t *testing.T) {
		prepare := func(t *testing.T) *world {
			w := seed(t, newBucket(t))
			victim := version(1, 0).RunID
			crashing := chaosStore(t, &failing{Bucket: w.b, del: func(k string) bool { return strings.Contains(k, "/runs/") }}, nil)
			if err := crashing.Delete(ctx, victim); err == nil {
				t.Fatal("Delete succeeded without deleting the object")
			}
			delete(w.want, victim)
			lost := version(200, 0)
			crashing = newStore(t, &failing{Bucket: w.b, put: func(k string) bool { return strings.Contains(k, "/index/log/") }},
				&durable.Options{Prefix: "cairn", Index: &index.Options{RetryFor: 50 * time.Millisecond}})
			if err := crashing.Save(ctx, lost); err == nil {
				t.Fatal("Save succeeded without its index commit")
			}
			w.want[lost.RunID] = lost // never acknowledged, but the newest state written: GC must keep it
			return w
		}
		later := func(b bucket.Bucket) *durable.Store {
			return chaosStore(t, b, func() time.Time { return time.Now().Add(time.Hour) })
		}
		w := prepare(t)
		var rep *durable.GCReport
		n := requests(w.b, func(b bucket.Bucket) {
			var err error
			if rep, err = later(b).GC(ctx, &durable.GCOptions{Grace: time.Minute}); err != nil {
				t.Fatal(err)
			}
		})
		if len(rep.Dead) != 1 || len(rep.Unindexed) != 1 || len(rep.Expired) != 0 {
			t.Fatalf("GC = %+v, want the dead object deleted and the unindexed run kept", rep)
		}
		for range 3 {
			w := prepare(t)
			at := rng.IntN(n)
			if _, err := later(killAfter(w.b, at)).GC(ctx, &durable.GCOptions{Grace: time.Minute}); err != nil && !errors.Is(err, errKilled) {
				t.Fatalf("GC killed after %d of %d requests: %v", at, n, err)
			}
			check(t, w)
		}
	})
}
