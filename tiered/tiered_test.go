package tiered_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// testDurable is the durable configuration of the tests' stores.
func testDurable() durable.Options {
	return durable.Options{Prefix: "t", Index: &index.Options{PageSize: 4, CompactAfter: 4}}
}

// newDurable opens a durable store over b configured as the tests'
// tiered stores are: another process's view of their bucket.
func newDurable(t testing.TB, b bucket.Bucket) *durable.Store {
	t.Helper()
	o := testDurable()
	d, err := durable.New(b, &o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func open(t testing.TB, b bucket.Bucket, o *tiered.Options) *tiered.Store {
	t.Helper()
	var to tiered.Options
	if o != nil {
		to = *o
	}
	to.Durable = testDurable()
	s, err := tiered.New(b, &to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceWriteThrough(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cairn.Store { return open(t, bucket.NewMem(), nil) })
}

func TestConformanceWriteBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cairn.Store {
		return open(t, bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond})
	})
}

var t0 = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func cp(id uuid.UUID, step int) *cairn.Checkpoint {
	return &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: t0.Add(time.Duration(step) * time.Second),
		State: map[string]any{"step": int64(step)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
}

// Write-back: many Saves of a few runs within one window cost one PUT per
// run and one index commit; after Flush a fresh store (another process)
// sees the last Save of each.
func TestWriteBackBatches(t *testing.T) {
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	ctx := context.Background()
	runs := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	for step := range 20 {
		for _, r := range runs {
			if err := s.Save(ctx, cp(r, step)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := s.Stats(); st.PUTs != 0 || st.BytesUnflushed == 0 {
		t.Fatalf("before Flush: %+v", st)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.PUTs != int64(len(runs)) || st.IndexCommits != 1 || st.BytesUnflushed != 0 || st.BytesStored == 0 || st.BytesStored >= st.BytesEncoded {
		t.Fatalf("60 Saves of 3 runs flushed with %d PUTs and %d index commits (%+v), want 3 and 1", st.PUTs, st.IndexCommits, st)
	}
	fresh := newDurable(t, mem)
	for _, r := range runs {
		got, err := fresh.Load(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if d := storetest.Diff(got, cp(r, 19)); d != "" {
			t.Fatal(d)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// The flusher runs on its own within the window.
func TestWriteBackFlushesInWindow(t *testing.T) {
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: 10 * time.Millisecond})
	defer s.Close(context.Background())
	r := uuid.New()
	if err := s.Save(context.Background(), cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().BytesUnflushed != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the flusher never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := newDurable(t, mem).Load(context.Background(), r); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// A failed flush keeps the runs dirty and reports the failure through
// Flush; once the bucket is back, Flush succeeds and nothing is lost.
func TestFailedFlushIsReported(t *testing.T) {
	mem := bucket.NewMem()
	var down atomic.Bool
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if down.Load() && op == "put" {
			return errors.New("bucket unreachable")
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	ctx := context.Background()
	r := uuid.New()
	if err := s.Save(ctx, cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	if err := s.Flush(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Flush with the bucket down: %v, want its error", err)
	}
	if s.Stats().BytesUnflushed == 0 {
		t.Fatal("a failed flush dropped the dirty run")
	}
	if got, err := s.Load(ctx, r); err != nil || got.State["step"] != int64(1) {
		t.Fatalf("Load of the unflushed run: %v, %v", got, err)
	}
	down.Store(false)
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush with the bucket back: %v", err)
	}
	if _, err := newDurable(t, mem).Load(ctx, r); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// With SkipUnchanged, an unchanged Save costs no PUT; Loads of a cached
// run cost no GET.
func TestUnchangedSaveAndCachedLoad(t *testing.T) {
	s := open(t, bucket.NewMem(), &tiered.Options{SkipUnchanged: true})
	ctx := context.Background()
	r := uuid.New()
	for range 3 {
		if err := s.Save(ctx, cp(r, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := s.Load(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.PUTs != 1 || st.SkippedSaves != 2 || st.GETs != 0 || st.Cache.Hits != 3 {
		t.Fatalf("stats = %+v, want 1 PUT, 2 skipped Saves, no GET, 3 hits", st)
	}
}

// By default an unchanged Save writes: another process may have deleted
// the run since, and the Save must be durable all the same.
func TestUnchangedSaveAfterDeleteElsewhere(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	for _, mode := range []tiered.Mode{tiered.WriteThrough, tiered.WriteBack} {
		a, b := open(t, mem, &tiered.Options{Mode: mode}), open(t, mem, nil)
		r := uuid.New()
		if err := a.Save(ctx, cp(r, 1)); err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := a.Save(ctx, cp(r, 1)); err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := open(t, mem, nil).Load(ctx, r); err != nil {
			t.Fatalf("mode %v: the acknowledged Save after a Delete elsewhere: %v", mode, err)
		}
		if st := a.Stats(); st.SkippedSaves != 0 {
			t.Fatalf("mode %v: %d Saves skipped by default", mode, st.SkippedSaves)
		}
	}
}

// List with WithCheckpoints loads through the cache: runs cached here cost
// no GET, the others one GET each, counted in Stats, and a run saved but
// not yet flushed comes with its checkpoint too.
func TestListWithCheckpointsUsesCache(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	other := newDurable(t, mem)
	elsewhere := []uuid.UUID{uuid.New(), uuid.New()}
	for _, r := range elsewhere {
		if err := other.Save(ctx, cp(r, 1)); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	here, dirty := uuid.New(), uuid.New()
	if err := s.Save(ctx, cp(here, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, cp(dirty, 3)); err != nil {
		t.Fatal(err)
	}
	page, err := s.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 4 {
		t.Fatalf("listed %d runs, want 4", len(page.Runs))
	}
	for _, r := range page.Runs {
		if r.Checkpoint == nil || r.Checkpoint.RunID != r.RunID {
			t.Fatalf("run %v listed without its checkpoint: %+v", r.RunID, r)
		}
	}
	if g := s.Stats().GETs; g != int64(len(elsewhere)) {
		t.Fatalf("List made %d GETs, want %d (one per run not cached here)", g, len(elsewhere))
	}
	if _, err := s.List(ctx, &cairn.ListOptions{WithCheckpoints: true}); err != nil {
		t.Fatal(err)
	}
	if g := s.Stats().GETs; g != int64(len(elsewhere)) {
		t.Fatalf("a second List made %d GETs in all, want %d: the first filled the cache", g, len(elsewhere))
	}
}

// Concurrent Loads of a run missing from the cache share one GET.
func TestConcurrentMissesShareOneGet(t *testing.T) {
	mem := bucket.NewMem()
	r := uuid.New()
	if err := newDurable(t, mem).Save(context.Background(), cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if op == "get" {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	s := open(t, mem, nil)
	errs := make(chan error, 16)
	for range 16 {
		go func() { _, err := s.Load(context.Background(), r); errs <- err }()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if g := s.Stats().GETs; g != 1 {
		t.Fatalf("16 concurrent misses made %d GETs, want 1", g)
	}
}

// Backpressure: with the dirty bound reached, Save waits for a flush, and
// gives up with its context.
func TestBackpressure(t *testing.T) {
	mem := bucket.NewMem()
	var slow atomic.Bool
	mem.SetHook(func(ctx context.Context, op, key string) error {
		if slow.Load() && op == "put" {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
		return nil
	})
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond, MaxDirtyBytes: 1})
	defer s.Close(context.Background())
	if err := s.Save(context.Background(), cp(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Save(ctx, cp(uuid.New(), 2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Save over the dirty bound with a short deadline: %v", err)
	}
	slow.Store(false)
	if err := s.Save(context.Background(), cp(uuid.New(), 3)); err != nil {
		t.Fatalf("Save once flushes go through: %v", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := tiered.Open(ctx, "file://"+dir, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	r := uuid.New()
	if err := s.Save(ctx, cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := tiered.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Load(ctx, r); err != nil {
		t.Fatalf("a run saved through one Open, loaded through another: %v", err)
	}
	if _, err := tiered.Open(ctx, "mem://", nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ftp://x", "file://", "s3://", "s3://b/p?path_style=maybe", "s3://b?checksum=sometimes", "%%"} {
		if _, err := tiered.Open(ctx, bad, nil); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", bad, err)
		}
	}
	for _, withSecret := range []string{"s3://user:secret@b/p?region=x", "s3://user:secret@b/p%zz", "ftp://user:secret@x",
		"s3://b/p?endpoint=http://user:secret@127.0.0.1:1&checksum=sometimes"} {
		_, err = tiered.Open(ctx, withSecret, nil)
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) printed the password: %v", withSecret, err)
		}
		if r := bucket.RedactURL(withSecret); strings.Contains(r, "secret") {
			t.Errorf("RedactURL(%q) = %q", withSecret, r)
		}
	}
}

// List with WithCheckpoints never pairs a summary with an older checkpoint
// from the cache: a run another process wrote since it was cached comes
// with what the index lists.
func TestListWithCheckpointsIsFresh(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	a, b := open(t, mem, nil), open(t, mem, nil)
	r := uuid.New()
	if err := a.Save(ctx, cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, r); err != nil { // b caches step 1
		t.Fatal(err)
	}
	v2 := cp(r, 2)
	v2.Timestamp = v2.Timestamp.Add(time.Second)
	if err := a.Save(ctx, v2); err != nil {
		t.Fatal(err)
	}
	page, err := b.List(ctx, &cairn.ListOptions{WithCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 || page.Runs[0].Checkpoint == nil || !page.Runs[0].Checkpoint.Timestamp.Equal(page.Runs[0].Timestamp) ||
		page.Runs[0].Checkpoint.State["step"] != v2.State["step"] {
		t.Fatalf("List paired the summary at %v with %+v", page.Runs[0].Timestamp, page.Runs[0].Checkpoint)
	}
}

// Two stores share a bucket. A saves v1, B loads v1, A saves v2: B with
// revalidation loads v2; without it, B serves its cached v1 (documented).
func TestRevalidation(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	a := open(t, mem, nil)
	b := open(t, mem, &tiered.Options{Revalidate: true})
	stale := open(t, mem, nil)
	r := uuid.New()
	if err := a.Save(ctx, cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*tiered.Store{b, stale} {
		if got, err := s.Load(ctx, r); err != nil || got.State["step"] != int64(1) {
			t.Fatalf("first Load: %v, %v", got, err)
		}
	}
	if got, err := b.Load(ctx, r); err != nil || got.State["step"] != int64(1) {
		t.Fatalf("revalidated unchanged Load: %v, %v", got, err)
	}
	if b.Stats().Revalidated != 1 {
		t.Fatalf("an unchanged run was not revalidated with a 304: %+v", b.Stats())
	}
	if err := a.Save(ctx, cp(r, 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Load(ctx, r); err != nil || got.State["step"] != int64(2) {
		t.Fatalf("with revalidation, Load after another store's Save = %v, %v; want step 2", got, err)
	}
	if got, _ := stale.Load(ctx, r); got.State["step"] != int64(1) {
		t.Fatalf("without revalidation the cached copy is served: got step %v", got.State["step"])
	}
}

// Two workers resume the same run with fencing: each round exactly one
// Save wins and the other gets ErrConflict.
func TestFencing(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	w1 := open(t, mem, &tiered.Options{Fencing: true})
	w2 := open(t, mem, &tiered.Options{Fencing: true})
	r := uuid.New()
	if err := w1.Save(ctx, cp(r, 0)); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 5; round++ {
		for _, w := range []*tiered.Store{w1, w2} {
			if _, err := w.Load(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		e1 := w1.Save(ctx, cp(r, 10*round+1))
		e2 := w2.Save(ctx, cp(r, 10*round+2))
		if (e1 == nil) == (e2 == nil) {
			t.Fatalf("round %d: Saves returned %v and %v; want exactly one ErrConflict", round, e1, e2)
		}
		for _, err := range []error{e1, e2} {
			if err != nil && !errors.Is(err, cairn.ErrConflict) {
				t.Fatalf("round %d: %v, want ErrConflict", round, err)
			}
		}
	}
	// A worker that never saw the run cannot create it over the other's.
	w3 := open(t, mem, &tiered.Options{Fencing: true})
	if err := w3.Save(ctx, cp(r, 99)); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("blind Save of an existing run with fencing: %v, want ErrConflict", err)
	}
}

// takenOver returns a fencing write-back store w1 (flush window window)
// whose run r a second fencing store has since loaded and saved (step 2):
// w1's next write of r must conflict.
func takenOver(t *testing.T, mem *bucket.Mem, window time.Duration) (*tiered.Store, uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	w1 := open(t, mem, &tiered.Options{Fencing: true, Mode: tiered.WriteBack, FlushWindow: window})
	w2 := open(t, mem, &tiered.Options{Fencing: true})
	r := uuid.New()
	if err := w1.Save(ctx, cp(r, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Load(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := w2.Save(ctx, cp(r, 2)); err != nil { // w2 takes the run over
		t.Fatal(err)
	}
	return w1, r
}

// Fencing in write-back mode: the conflict surfaces in Flush, and later
// Saves of the run fail until it is loaded again.
func TestFencingWriteBack(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	w1, r := takenOver(t, mem, time.Hour)
	if err := w1.Save(ctx, cp(r, 3)); err != nil {
		t.Fatal(err) // accepted into the cache: the conflict is found at flush
	}
	if err := w1.Flush(ctx); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("Flush after another worker took the run: %v, want ErrConflict", err)
	}
	if err := w1.Save(ctx, cp(r, 4)); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("Save of a run taken over: %v, want ErrConflict", err)
	}
	if got, err := newDurable(t, mem).Load(ctx, r); err != nil || got.State["step"] != int64(2) {
		t.Fatalf("the durable run = %v, %v; want w2's step 2", got, err)
	}
	if _, err := w1.Load(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := w1.Save(ctx, cp(r, 5)); err != nil {
		t.Fatalf("Save after Loading the run again: %v", err)
	}
	if err := w1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// A conflict found by a background flush is reported by the next Flush.
func TestFencingConflictInBackgroundFlush(t *testing.T) {
	mem := bucket.NewMem()
	ctx := context.Background()
	w1, r := takenOver(t, mem, time.Millisecond)
	if err := w1.Save(ctx, cp(r, 3)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w1.Stats().BytesUnflushed != 0 { // the background flush meets the conflict
		if time.Now().After(deadline) {
			t.Fatal("no background flush")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := w1.Flush(ctx); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("Flush after a background conflict: %v, want ErrConflict", err)
	}
	if err := w1.Flush(ctx); err != nil {
		t.Fatalf("a conflict is reported once: %v", err)
	}
}
