package durable_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
)

// minioBucket returns a new S3 bucket on srv with a client of its own, as
// a separate process would have.
func minioBucket(t testing.TB, srv *miniofixture.Server, name string) *s3store.S3 {
	t.Helper()
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint:    srv.Endpoint,
		Region:      srv.Region,
		PathStyle:   true,
		Credentials: srv.Credentials(),
		Concurrency: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3store.NewS3(client, name)
}

func startMinIO(t *testing.T) *miniofixture.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a first run builds the image
	defer cancel()
	return miniofixture.Start(ctx, t)
}

func TestMinIOConformance(t *testing.T) {
	srv := startMinIO(t)
	storetest.Run(t, func(t *testing.T) cairn.Store {
		return newStore(t, minioBucket(t, srv, srv.NewBucket(t)), nil)
	})
}

// Three stores, each with its own S3 client as separate processes would
// have, eight goroutines each, save, overwrite and delete an overlapping
// set of runs for several seconds. Operations on one run never overlap in
// time (so "its last acknowledged operation" is well defined), but every
// run is touched by all three stores, and the stores commit and compact
// the shared index all the while. Afterwards a fresh store lists exactly
// the runs whose last operation was a Save, with that Save's timestamp,
// and loads each of them.
func TestMinIOConcurrentStores(t *testing.T) {
	srv := startMinIO(t)
	name := srv.NewBucket(t)
	const stores, workers, runs = 3, 8, 48
	duration := 4 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	opts := &durable.Options{Prefix: "shared", Index: &index.Options{PageSize: 8, CompactAfter: 8}}
	ids := make([]uuid.UUID, runs)
	locks := make([]sync.Mutex, runs)
	for i := range ids {
		ids[i] = uuid.New()
	}
	type outcome struct {
		saved bool
		ts    time.Time
	}
	last := make([]outcome, runs) // guarded by locks[i]
	var wg sync.WaitGroup
	var failures sync.Map
	deadline := time.Now().Add(duration)
	var opsDone, saves, deletes int64
	var countMu sync.Mutex
	for s := range stores {
		st := newStore(t, minioBucket(t, srv, name), opts)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(s), uint64(w)))
				ctx := context.Background()
				for n := 0; time.Now().Before(deadline); n++ {
					i := rng.IntN(runs)
					locks[i].Lock()
					var err error
					save := rng.IntN(10) < 7
					if save {
						ts := time.Now().UTC()
						err = st.Save(ctx, &cairn.Checkpoint{WorkflowName: "wf", RunID: ids[i], Timestamp: ts,
							State: map[string]any{"store": int64(s), "worker": int64(w), "n": int64(n)}})
						if err == nil {
							last[i] = outcome{saved: true, ts: ts}
						}
					} else {
						err = st.Delete(ctx, ids[i])
						if err == nil {
							last[i] = outcome{}
						}
					}
					locks[i].Unlock()
					if err != nil {
						failures.Store(err.Error(), true)
						return
					}
					countMu.Lock()
					opsDone++
					if save {
						saves++
					} else {
						deletes++
					}
					countMu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	failures.Range(func(k, _ any) bool { t.Errorf("operation failed: %v", k); return true })
	t.Logf("%d operations (%d saves, %d deletes) by %d stores x %d workers over %v", opsDone, saves, deletes, stores, workers, duration)

	fresh := newStore(t, minioBucket(t, srv, name), opts)
	ctx := context.Background()
	listed := map[uuid.UUID]time.Time{}
	for sum, err := range cairn.All(ctx, fresh, &cairn.ListOptions{Limit: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := listed[sum.RunID]; dup {
			t.Errorf("run %v listed twice", sum.RunID)
		}
		listed[sum.RunID] = sum.Timestamp
	}
	for i, id := range ids {
		o := last[i]
		ts, ok := listed[id]
		switch {
		case o.saved && !ok:
			t.Errorf("run %d: last acknowledged op was a Save at %v, but it is not listed (lost entry)", i, o.ts)
		case !o.saved && ok:
			t.Errorf("run %d: last acknowledged op was a Delete, but it is listed at %v (resurrected)", i, ts)
		case o.saved && !ts.Equal(o.ts):
			t.Errorf("run %d: listed at %v, last Save was at %v", i, ts, o.ts)
		}
		cp, err := fresh.Load(ctx, id)
		switch {
		case o.saved && err != nil:
			t.Errorf("run %d: Load: %v", i, err)
		case o.saved && !cp.Timestamp.Equal(o.ts):
			t.Errorf("run %d: Load gives the checkpoint of %v, last Save was at %v", i, cp.Timestamp, o.ts)
		case !o.saved && !errors.Is(err, cairn.ErrNotFound):
			t.Errorf("run %d: deleted, but Load = %v", i, err)
		}
	}
	if len(listed) > runs {
		t.Errorf("%d runs listed, only %d exist", len(listed), runs)
	}
	rep, err := fresh.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Missing) != 0 || len(rep.Mismatched) != 0 || len(rep.Corrupt) != 0 {
		t.Errorf("Verify after the run: %+v", rep)
	}
	st := durable.IndexOf(fresh).Stats()
	t.Logf("fresh store sees snapshot %d, tail %d", st.Snapshot, st.Tail)
}
