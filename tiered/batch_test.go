package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// errCrash is the failure of the commit a simulated crash cut: one the
// index does not retry (its commits run on a context of their own, and
// would retry any other failure after the flush gave up), so that the
// commit never lands, as after a crash.
var errCrash = &bucket.Error{Op: "put", Err: fmt.Errorf("%w (a simulated crash)", bucket.ErrAccessDenied)}

// crashAtCommit makes mem's nth index commit (log PUT) from now on fail
// with errCrash: the objects of that batch are written, its commit never
// lands, and the flush, which stops at a batch that failed, sends nothing
// more.
func crashAtCommit(mem *bucket.Mem, n int64) {
	var logs atomic.Int64
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/index/log/") && logs.Add(1) == n {
			return errCrash
		}
		return nil
	})
}

// saveN saves n new runs through s, a second apart, and returns them in
// the order saved.
func saveN(t *testing.T, s *tiered.Store, n int, size int) []uuid.UUID {
	t.Helper()
	var runs []uuid.UUID
	for i := range n {
		c := cp(uuid.New(), i)
		c.State["pad"] = strings.Repeat("x", size)
		if err := s.Save(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, c.RunID)
	}
	return runs
}

// listed returns the runs another process lists in the store of b.
func listed(t *testing.T, b bucket.Bucket) map[uuid.UUID]bool {
	t.Helper()
	out := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(context.Background(), newDurable(t, b), nil) {
		if err != nil {
			t.Fatal(err)
		}
		out[sum.RunID] = true
	}
	return out
}

// A write-back flush of many runs commits them in batches of
// FlushBatchRuns, oldest Save first, each committed before the next is
// written: a crash in the third commit leaves the first two batches
// listed (the runs a flush had committed are durable whatever comes
// after), the third batch's objects written but unlisted (Verify:
// unindexed), and the rest dirty; the next flush writes the rest.
func TestFlushCommitsInBatches(t *testing.T) {
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, FlushBatchRuns: 10})
	runs := saveN(t, s, 35, 100)
	crashAtCommit(mem, 3)
	before := s.Stats().IndexCommits
	if err := s.Flush(context.Background()); !errors.Is(err, bucket.ErrAccessDenied) {
		t.Fatalf("Flush cut by a crash in its third commit: %v, want the crash's error", err)
	}
	mem.SetHook(nil)
	if n := s.Stats().IndexCommits - before; n != 2 {
		t.Errorf("%d index commits before the crash, want 2", n)
	}
	got := listed(t, mem)
	for i, run := range runs {
		if want := i < 20; got[run] != want {
			t.Errorf("run %d (of 35, in batches of 10) listed: %v, want %v", i, got[run], want)
		}
	}
	rep, err := newDurable(t, mem).Verify(context.Background())
	if err != nil || len(rep.Unindexed) != 10 {
		t.Errorf("Verify after the crash: %+v, %v; want the 10 runs of the cut batch unindexed", rep, err)
	}
	if st := s.Stats(); st.BytesUnflushed == 0 || st.Committed != 20 {
		t.Errorf("stats after the crash: %+v; want 20 runs committed, the others unflushed", st)
	}

	before = s.Stats().IndexCommits
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().IndexCommits - before; n != 2 {
		t.Errorf("the next flush of 15 runs made %d index commits, want 2 (10 and 5)", n)
	}
	if got := listed(t, mem); len(got) != 35 || s.Stats().Committed != 35 {
		t.Errorf("%d runs listed after the next flush, %d committed; want 35", len(got), s.Stats().Committed)
	}
}

// A batch is also bounded by FlushBatchBytes of records, and a record
// larger than that is a batch alone.
func TestFlushBatchBytes(t *testing.T) {
	mem := bucket.NewMem()
	s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, FlushBatchBytes: 3500})
	saveN(t, s, 9, 1000) // records of about 1 KB: 3 a batch
	saveN(t, s, 1, 5000) // alone
	before := s.Stats().IndexCommits
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().IndexCommits - before; n != 4 {
		t.Errorf("a flush of 9 records of 1 KB and one of 5 KB in batches of 3.5 KB made %d index commits, want 4", n)
	}
	if got := listed(t, mem); len(got) != 10 {
		t.Errorf("%d runs listed, want 10", len(got))
	}
}

// Bad batch bounds are refused.
func TestFlushBatchOptions(t *testing.T) {
	for _, o := range []tiered.Options{{FlushBatchRuns: -1}, {FlushBatchBytes: -1}} {
		if _, err := tiered.New(bucket.NewMem(), &o); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", o, err)
		}
	}
}

// How long a write-back Save can wait to become durable, which is what a
// crash can lose: a Save made just after a flush took its snapshot waits
// for that flush to end, then one FlushWindow, then its own batch's
// writes and commit in the next flush. Here (a window of 100 ms, flushes
// of one PUT and one commit of 30 ms each) a Save made 1 ms after a flush
// began is not durable one window later, and is 220 ms after it returned:
// the window and two flushes.
func TestWriteBackDurableAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem := bucket.NewMem()
		s := open(t, mem, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: 100 * time.Millisecond, FlushConcurrency: 1})
		defer s.Close(ctx)
		// The first write probes the server and creates the index: not
		// what is measured.
		saveN(t, s, 1, 10)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mem.SetHook(func(_ context.Context, op, _ string) error {
			if op == "put" {
				time.Sleep(30 * time.Millisecond)
			}
			return nil
		})
		committed := func() int64 { synctest.Wait(); return s.Stats().Committed }
		base := committed()
		saveN(t, s, 1, 10)                   // a: its flush begins at 100 ms
		time.Sleep(101 * time.Millisecond)   // just after it took its snapshot
		saveN(t, s, 1, 10)                   // b, at 101 ms
		time.Sleep(100 * time.Millisecond)   // 201 ms: one window after b
		if n := committed() - base; n != 1 { // a at 160 ms
			t.Errorf("one window after b: %d Saves durable, want 1 (a)", n)
		}
		time.Sleep(118 * time.Millisecond) // 319 ms
		if n := committed() - base; n != 1 {
			t.Errorf("218 ms after b: %d Saves durable, want 1 (a)", n)
		}
		time.Sleep(2 * time.Millisecond) // 321 ms
		if n := committed() - base; n != 2 {
			t.Errorf("220 ms after b (the window, the rest of a's flush, b's own): %d Saves durable, want 2", n)
		}
	})
}
