package regionsim_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/regionsim"
)

// manualClock is a clock shared by the sites that moves by step at each
// reading, so that a run's times depend only on its calls.
type manualClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newClock(step time.Duration) *manualClock {
	return &manualClock{t: time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC), step: step}
}

func (c *manualClock) now(int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// set moves the clock to t.
func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func listAll(t *testing.T, s *regionsim.Site, prefix string) []bucket.Version {
	t.Helper()
	var all []bucket.Version
	key, version := "", ""
	for {
		vs, nk, nv, more, err := s.ListVersions(t.Context(), prefix, key, version, 7)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, vs...)
		if !more {
			return all
		}
		key, version = nk, nv
	}
}

func mustPut(t *testing.T, s *regionsim.Site, key, body string, opts *bucket.PutOptions) string {
	t.Helper()
	etag, err := s.Put(t.Context(), key, []byte(body), opts)
	if err != nil {
		t.Fatalf("Put(%q, %q): %v", key, body, err)
	}
	return etag
}

// body returns the current body of key at s, or "" if there is none.
func body(t *testing.T, s *regionsim.Site, key string) string {
	t.Helper()
	obj, err := s.Get(t.Context(), key, nil)
	if errors.Is(err, bucket.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(obj.Body)
}

func wantConverged(t *testing.T, sim *regionsim.Sim, prefix string) {
	t.Helper()
	if ok, diff := sim.Converged(prefix); !ok {
		t.Fatalf("not converged: %s", diff)
	}
}

// scenario is a random history, drawn from seed, of writes, deletes,
// removals of versions, partial deliveries, cuts and scans at 2 or 3
// sites, with random delivery faults and clock skews, ending with Heal
// and Settle. It checks what must hold after Settle and returns site 0's
// versions.
func scenario(t *testing.T, seed int64) []bucket.Version {
	t.Helper()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	prob := func() float64 {
		switch r.IntN(3) {
		case 0:
			return 0
		case 1:
			return 1
		}
		return r.Float64()
	}
	sites := 2 + r.IntN(2)
	// A clock that stands still makes every time equal: ties.
	clock := newClock([]time.Duration{0, time.Millisecond, time.Second}[r.IntN(3)])
	skew := make([]time.Duration, sites)
	for i := range skew {
		skew[i] = time.Duration(r.IntN(201)-100) * time.Millisecond
	}
	opts := &regionsim.Options{Reorder: prob(), Duplicate: prob(), Drop: prob(), Clock: clock.now, Skew: skew}
	sim := regionsim.New(seed, sites, opts)

	keys := []string{"p/a", "p/b", "p/c", "p/d", "q/x"}
	created := 0
	removed := map[string]bool{}
	for i := range 300 {
		s := sim.Site(r.IntN(sites))
		key := keys[r.IntN(len(keys))]
		body := []byte(fmt.Sprintf("%d %s", i, key))
		switch op := r.IntN(100); {
		case op < 35:
			mustPut(t, s, key, string(body), nil)
			created++
		case op < 45:
			_, err := s.Put(ctx, key, body, &bucket.PutOptions{IfNoneMatch: "*"})
			if err == nil {
				created++
			} else if !errors.Is(err, bucket.ErrPrecondition) {
				t.Fatal(err)
			}
		case op < 55:
			etag := `"stale"`
			if info, err := s.Head(ctx, key); err == nil && r.IntN(4) > 0 {
				etag = info.ETag
			}
			_, err := s.Put(ctx, key, body, &bucket.PutOptions{IfMatch: etag})
			if err == nil {
				created++
			} else if !errors.Is(err, bucket.ErrPrecondition) {
				t.Fatal(err)
			}
		case op < 65:
			if _, err := s.Head(ctx, key); err == nil {
				created++ // a delete marker
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		case op < 75:
			vs := listAll(t, s, key)
			if len(vs) == 0 {
				continue
			}
			v := vs[r.IntN(len(vs))]
			if err := s.DeleteVersion(ctx, v.Key, v.VersionID); err != nil {
				t.Fatal(err)
			}
			removed[v.VersionID] = true
		case op < 92:
			sim.Pump(r.IntN(6))
		case op < 96:
			if r.IntN(2) == 0 {
				sim.Cut()
			} else {
				sim.Heal()
			}
		default:
			sim.Scan()
		}
	}
	sim.Heal()
	sim.Settle()

	if n := sim.Pending(); n != 0 {
		t.Fatalf("%d events pending after Settle", n)
	}
	wantConverged(t, sim, "")
	first := listAll(t, sim.Site(0), "")
	for i := 1; i < sites; i++ {
		if other := listAll(t, sim.Site(i), ""); !slices.Equal(first, other) {
			t.Fatalf("site %d holds other versions than site 0:\n%v\n%v", i, other, first)
		}
	}
	if len(first) != created-len(removed) {
		t.Fatalf("%d versions, want %d made less %d removed", len(first), created, len(removed))
	}
	for i, v := range first {
		if removed[v.VersionID] {
			t.Fatalf("removed version %s of %q is back", v.VersionID, v.Key)
		}
		newFirst := i == 0 || first[i-1].Key != v.Key
		if v.Latest != newFirst {
			t.Fatalf("version %d of %q: Latest %v", i, v.Key, v.Latest)
		}
		if !newFirst && v.LastModified.After(first[i-1].LastModified) {
			t.Fatalf("%q: a version of %v is listed after one of %v: last writer did not win", v.Key, v.LastModified, first[i-1].LastModified)
		}
	}
	// What Get sees is the current version, at every site.
	for _, key := range keys {
		want := ""
		for _, v := range first {
			if v.Key == key && v.Latest && !v.DeleteMarker {
				obj, err := sim.Site(0).GetVersion(ctx, key, v.VersionID, nil)
				if err != nil {
					t.Fatal(err)
				}
				want = string(obj.Body)
			}
		}
		for i := range sites {
			if got := body(t, sim.Site(i), key); got != want {
				t.Fatalf("site %d: Get(%q) = %q, want %q", i, key, got, want)
			}
		}
	}
	return first
}

// Whatever the history and the delivery faults, the sites hold the same
// versions after Settle, and the same current ones, chosen by last writer
// wins.
func TestConvergence(t *testing.T) {
	for seed := range int64(200) {
		t.Run("seed="+strconv.FormatInt(seed, 10), func(t *testing.T) { scenario(t, seed) })
	}
}

// The same seed, clock and calls give the same versions, IDs included.
func TestDeterministic(t *testing.T) {
	for _, seed := range []int64{3, 42} {
		a, b := scenario(t, seed), scenario(t, seed)
		if !slices.Equal(a, b) {
			t.Fatalf("seed %d: two runs differ:\n%v\n%v", seed, a, b)
		}
	}
}

// The version with the greatest modification time wins at every site,
// whatever the order of the writes in real time: here site 0's clock is a
// minute ahead, so its earlier write beats site 1's later one.
func TestLastWriterWins(t *testing.T) {
	clock := newClock(time.Second)
	sim := regionsim.New(1, 2, &regionsim.Options{Clock: clock.now, Skew: []time.Duration{time.Minute}})
	a, b := sim.Site(0), sim.Site(1)
	mustPut(t, a, "k", "from a, first", nil)
	mustPut(t, b, "k", "from b, later", nil)
	if body(t, a, "k") != "from a, first" || body(t, b, "k") != "from b, later" {
		t.Fatal("before delivery, each site should read its own write")
	}
	sim.Settle()
	wantConverged(t, sim, "")
	for i := range 2 {
		if got := body(t, sim.Site(i), "k"); got != "from a, first" {
			t.Fatalf("site %d reads %q, want the write with the later time", i, got)
		}
		vs := listAll(t, sim.Site(i), "k")
		if len(vs) != 2 || vs[1].Latest || !vs[0].LastModified.After(vs[1].LastModified) {
			t.Fatalf("site %d: versions %+v; want the loser kept, noncurrent", i, vs)
		}
	}

	// A site behind writes a version that is noncurrent from the start:
	// the Put succeeds, and Get still returns the other.
	mustPut(t, b, "k", "from b, behind", nil)
	if got := body(t, b, "k"); got != "from a, first" {
		t.Fatalf("after a Put at the site behind, it reads %q", got)
	}
	// So does its Delete: the marker is older than the current version.
	if err := b.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if got := body(t, b, "k"); got != "from a, first" {
		t.Fatalf("after a Delete at the site behind, it reads %q", got)
	}
	sim.Settle()
	wantConverged(t, sim, "")
}

// Writes with the same time at two sites converge too: the tie is broken
// the same way everywhere, whatever the order of delivery.
func TestTiesConverge(t *testing.T) {
	for seed := range int64(20) {
		clock := newClock(0)
		sim := regionsim.New(seed, 2, &regionsim.Options{Clock: clock.now, Reorder: 1})
		mustPut(t, sim.Site(0), "k", "zero", nil)
		mustPut(t, sim.Site(1), "k", "one", nil)
		mustPut(t, sim.Site(1), "k", "one again", nil)
		sim.Settle()
		wantConverged(t, sim, "")
		if got := body(t, sim.Site(1), "k"); got == "one" {
			t.Fatalf("seed %d: a site's earlier write beat its later one of the same time", seed)
		}
	}
}

// Conditions are judged at each site alone: during a cut both sites
// create the same key, and both replace the same ETag. After healing,
// one write of each pair wins and the other is kept, noncurrent.
func TestConditionalWritesDuringCut(t *testing.T) {
	clock := newClock(time.Millisecond)
	sim := regionsim.New(1, 2, &regionsim.Options{Clock: clock.now})
	a, b := sim.Site(0), sim.Site(1)
	create := &bucket.PutOptions{IfNoneMatch: "*"}
	sim.Cut()
	mustPut(t, a, "log/1", "a's batch", create)
	mustPut(t, b, "log/1", "b's batch", create)
	if sim.Step() || sim.Settle() != 0 {
		t.Fatal("events delivered during a cut")
	}
	sim.Heal()
	sim.Settle()

	e := mustPut(t, a, "head", "0", nil)
	sim.Settle()
	sim.Cut()
	mustPut(t, a, "head", "a's 1", &bucket.PutOptions{IfMatch: e})
	mustPut(t, b, "head", "b's 1", &bucket.PutOptions{IfMatch: e})
	// Each site refuses a second creation on its own.
	if _, err := b.Put(t.Context(), "log/1", []byte("again"), create); !errors.Is(err, bucket.ErrPrecondition) {
		t.Fatalf("second creation at one site: %v", err)
	}
	sim.Heal()
	sim.Settle()
	wantConverged(t, sim, "")
	// b wrote last on the shared clock in both cases.
	for i := range 2 {
		s := sim.Site(i)
		if body(t, s, "log/1") != "b's batch" || body(t, s, "head") != "b's 1" {
			t.Fatalf("site %d: %q, %q; want b's writes", i, body(t, s, "log/1"), body(t, s, "head"))
		}
		if vs := listAll(t, s, "log/1"); len(vs) != 2 {
			t.Fatalf("site %d: log/1 has %d versions, want the loser kept", i, len(vs))
		}
	}
}

// Delivery faults: with Drop 1, Step sets every event aside; Scan queues
// them again; Settle delivers all. With Duplicate 1 every event is taken
// twice. With Reorder, a later version may arrive first: it stays current.
func TestDeliveryFaults(t *testing.T) {
	t.Run("Drop", func(t *testing.T) {
		sim := regionsim.New(1, 2, &regionsim.Options{Drop: 1})
		mustPut(t, sim.Site(0), "k", "v", nil)
		if sim.Pump(10) != 1 || sim.Pending() != 1 || body(t, sim.Site(1), "k") != "" {
			t.Fatal("a dropped event was delivered")
		}
		if sim.Scan() != 1 {
			t.Fatal("Scan did not queue the dropped event")
		}
		if sim.Settle() != 1 || sim.Pending() != 0 || body(t, sim.Site(1), "k") != "v" {
			t.Fatal("Settle did not deliver the dropped event")
		}
	})
	t.Run("Duplicate", func(t *testing.T) {
		sim := regionsim.New(1, 2, &regionsim.Options{Duplicate: 1})
		for i := range 5 {
			mustPut(t, sim.Site(0), "k", strconv.Itoa(i), nil)
		}
		if n := sim.Pump(100); n != 10 {
			t.Fatalf("%d deliveries of 5 events duplicated once each, want 10", n)
		}
		if vs := listAll(t, sim.Site(1), "k"); len(vs) != 5 {
			t.Fatalf("duplicates made %d versions, want 5", len(vs))
		}
		wantConverged(t, sim, "")
	})
	t.Run("Reorder", func(t *testing.T) {
		clock := newClock(time.Millisecond)
		sawOld := false
		for seed := range int64(20) {
			sim := regionsim.New(seed, 2, &regionsim.Options{Reorder: 1, Clock: clock.now})
			mustPut(t, sim.Site(0), "k", "old", nil)
			mustPut(t, sim.Site(0), "k", "new", nil)
			sim.Step()
			sawOld = sawOld || body(t, sim.Site(1), "k") == "old"
			sim.Step()
			if got := body(t, sim.Site(1), "k"); got != "new" {
				t.Fatalf("seed %d: after both arrived, site 1 reads %q", seed, got)
			}
		}
		if !sawOld {
			t.Fatal("no seed delivered the older version first")
		}
	})
	t.Run("InOrder", func(t *testing.T) {
		sim := regionsim.New(1, 2, nil)
		mustPut(t, sim.Site(0), "k", "old", nil)
		mustPut(t, sim.Site(0), "k", "new", nil)
		sim.Step()
		if got := body(t, sim.Site(1), "k"); got != "old" {
			t.Fatalf("first delivery in order gave %q", got)
		}
	})
}

// Removals of versions replicate, and a late copy of the version does not
// bring it back.
func TestDeleteVersionReplicated(t *testing.T) {
	sim := regionsim.New(1, 3, nil)
	a, b, c := sim.Site(0), sim.Site(1), sim.Site(2)
	mustPut(t, a, "k", "v1", nil)
	mustPut(t, a, "k", "v2", nil)
	sim.Pump(3) // in order: v1 reaches b and c, v2 reaches b
	vs := listAll(t, b, "k")
	if err := b.DeleteVersion(t.Context(), "k", vs[0].VersionID); err != nil {
		t.Fatal(err)
	}
	sim.Settle() // c gets v1, v2 from a, and the removal of v2 from b, in this order
	wantConverged(t, sim, "")
	for i, s := range []*regionsim.Site{a, b, c} {
		if got := body(t, s, "k"); got != "v1" {
			t.Fatalf("site %d reads %q, want v1 after v2 was removed", i, got)
		}
	}

	// Removal first, the version late: it stays removed.
	sim = regionsim.New(1, 2, &regionsim.Options{Duplicate: 1})
	a, b = sim.Site(0), sim.Site(1)
	mustPut(t, a, "k", "v1", nil)
	sim.Step() // delivered, and a copy queued
	id := listAll(t, b, "k")[0].VersionID
	if err := b.DeleteVersion(t.Context(), "k", id); err != nil {
		t.Fatal(err)
	}
	sim.Settle()
	if vs := listAll(t, b, "k"); len(vs) != 0 {
		t.Fatalf("a duplicate brought back a removed version: %+v", vs)
	}
	wantConverged(t, sim, "")
}

// As S3 cross-region replication: a removal stays at its site, and the
// sites can disagree for good about the current version.
func TestLocalVersionDeletesDiverge(t *testing.T) {
	sim := regionsim.New(1, 2, &regionsim.Options{LocalVersionDeletes: true})
	a, b := sim.Site(0), sim.Site(1)
	mustPut(t, a, "k", "v1", nil)
	mustPut(t, a, "k", "v2", nil)
	sim.Settle()
	vs := listAll(t, a, "k")
	if err := a.DeleteVersion(t.Context(), "k", vs[0].VersionID); err != nil {
		t.Fatal(err)
	}
	if sim.Pending() != 0 {
		t.Fatal("a removal was queued")
	}
	sim.Settle()
	if ok, _ := sim.Converged(""); ok || body(t, a, "k") != "v1" || body(t, b, "k") != "v2" {
		t.Fatalf("sites read %q and %q; want v1 and v2", body(t, a, "k"), body(t, b, "k"))
	}
}

// A Delete at a site the object has not reached yet does nothing (MinIO
// adds no marker there), so the object appears everywhere once delivered.
func TestDeleteBeforeArrival(t *testing.T) {
	sim := regionsim.New(1, 2, nil)
	mustPut(t, sim.Site(0), "k", "v", nil)
	if err := sim.Site(1).Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	sim.Settle()
	wantConverged(t, sim, "")
	if got := body(t, sim.Site(1), "k"); got != "v" {
		t.Fatalf("site 1 reads %q, want the object its early Delete missed", got)
	}
}

func TestConvergedReportsDifference(t *testing.T) {
	sim := regionsim.New(1, 2, nil)
	if ok, _ := sim.Converged(""); !ok {
		t.Fatal("empty sites not converged")
	}
	mustPut(t, sim.Site(1), "p/k", "v", nil)
	mustPut(t, sim.Site(0), "q/k", "v", nil)
	ok, diff := sim.Converged("p/")
	if ok || diff != `key "p/k": site 0 has no object, site 1 has `+etagOf(t, sim.Site(1), "p/k") {
		t.Fatalf("Converged = %v, %q", ok, diff)
	}
	sim.Settle()
	wantConverged(t, sim, "p/")
}

func etagOf(t *testing.T, s *regionsim.Site, key string) string {
	info, err := s.Head(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return info.ETag
}

func TestNewValidates(t *testing.T) {
	defer func() {
		msg := fmt.Sprint(recover())
		for _, want := range []string{"0 sites", "Reorder", "Drop", "Skew"} {
			if !strings.Contains(msg, want) {
				t.Errorf("panic %q does not name %s", msg, want)
			}
		}
	}()
	regionsim.New(1, 0, &regionsim.Options{Reorder: -1, Drop: 2, Skew: []time.Duration{1}})
}

// Background delivers while goroutines write at every site; the sites
// converge, and the delivering goroutine ends with stop, or with its
// context, leaving none behind. Run with -race.
func TestBackground(t *testing.T) {
	before := runtime.NumGoroutine()
	sim := regionsim.New(1, 2, &regionsim.Options{Reorder: 0.5, Duplicate: 0.2, Drop: 0.2})
	stop := sim.Background(t.Context(), 50*time.Microsecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s := sim.Site(w % 2)
			for i := range 50 {
				key := "k" + strconv.Itoa(i%5)
				if i%7 == 0 {
					s.Delete(t.Context(), key)
					continue
				}
				if _, err := s.Put(t.Context(), key, []byte(fmt.Sprint(w, i)), nil); err != nil {
					t.Error(err)
				}
				s.List(t.Context(), "", "", 0)
				if vs, _, _, _, _ := s.ListVersions(t.Context(), key, "", "", 0); len(vs) > 3 && i%3 == 0 {
					s.DeleteVersion(t.Context(), key, vs[len(vs)-1].VersionID)
				}
			}
		})
	}
	wg.Wait()
	// Background alone delivers everything, in time.
	deadline := time.Now().Add(10 * time.Second)
	for sim.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	if n := sim.Pending(); n != 0 {
		t.Fatalf("%d events still pending after Background ran", n)
	}
	wantConverged(t, sim, "")

	// Ended by its context.
	ctx, cancel := context.WithCancel(t.Context())
	stop = sim.Background(ctx, time.Millisecond)
	cancel()
	stop()
	stop = sim.Background(t.Context(), time.Millisecond)
	stop()

	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
