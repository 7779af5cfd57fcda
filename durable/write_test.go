package durable_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// record encodes c as a Write record.
func record(t testing.TB, c *cairn.Checkpoint) durable.Record {
	t.Helper()
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return durable.Record{RunID: c.RunID, Workflow: c.WorkflowName, Timestamp: c.Timestamp, Data: rec}
}

// etagFence is a durable.Fence that bases every write on the ETag it last
// learned, as the tiered store's fencing does.
type etagFence struct {
	mu    sync.Mutex
	etags map[uuid.UUID]string
}

func (f *etagFence) Condition(run uuid.UUID) durable.Condition {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.etags[run]; ok {
		return durable.Condition{IfMatch: e}
	}
	return durable.Condition{IfAbsent: true}
}

func (f *etagFence) Written(run uuid.UUID, etag string) {
	f.mu.Lock()
	f.etags[run] = etag
	f.mu.Unlock()
}

// A Write of several runs: the objects of those whose condition holds,
// one index commit listing them, Committed for each of those alone, and
// ErrConflict for the one whose condition fails.
func TestWriteBatch(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	taken := cp(3, t0)
	if err := s.Save(ctx, taken); err != nil { // another worker's run
		t.Fatal(err)
	}
	commits := s.Stats().Index.Commits
	recs := []durable.Record{record(t, cp(1, t0)), record(t, cp(2, t0.Add(1))), record(t, cp(3, t0.Add(2)))}
	f := &etagFence{etags: map[uuid.UUID]string{}}
	var committed []int
	res, err := s.Write(ctx, recs, &durable.WriteOptions{Fence: f, Committed: func(i int, etag string) {
		if etag == "" || etag != f.etags[recs[i].RunID] {
			t.Errorf("Committed(%d, %q): not the ETag written", i, etag)
		}
		committed = append(committed, i)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || res[0].ETag == "" || res[1].ETag == "" {
		t.Fatalf("results %+v; want runs 1 and 2 written", res)
	}
	if !errors.Is(res[2].Err, cairn.ErrConflict) || res[2].ETag != "" {
		t.Fatalf("result of the run written elsewhere: %+v; want ErrConflict", res[2])
	}
	if !slices.Equal(committed, []int{0, 1}) {
		t.Errorf("Committed for %v; want [0 1]", committed)
	}
	if n := s.Stats().Index.Commits - commits; n != 1 {
		t.Errorf("%d index commits for one Write; want 1", n)
	}
	if got := listIDs(t, s); len(got) != 3 {
		t.Errorf("listed %v; want the three runs", got)
	}
	if got, err := s.Load(ctx, taken.RunID); err != nil || !got.Timestamp.Equal(taken.Timestamp) {
		t.Errorf("the run written elsewhere: %v, %v; want it untouched", got, err)
	}
}

// A Write naming a run twice, or the nil run, writes nothing.
func TestWriteRefusesRepeatedRuns(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	for name, recs := range map[string][]durable.Record{
		"twice": {record(t, cp(1, t0)), record(t, cp(1, t0.Add(1)))},
		"nil":   {record(t, cp(2, t0)), {Workflow: "wf", Timestamp: t0, Data: []byte{0x80}}},
	} {
		if res, err := s.Write(ctx, recs, nil); !errors.Is(err, cairn.ErrInvalid) || res != nil {
			t.Errorf("%s: %v, %v; want ErrInvalid and no results", name, res, err)
		}
	}
	if n := mem.Stats().Puts; n != 0 {
		t.Errorf("%d PUTs; want none", n)
	}
}

// When the index commit fails, the objects written stay (Load finds them,
// List does not) and no Committed call is made.
func TestWriteCommitFails(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	if err := s.Save(ctx, cp(9, t0)); err != nil { // the index exists
		t.Fatal(err)
	}
	cut := errors.New("index cut")
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.Contains(key, "/index/") {
			return cut
		}
		return nil
	})
	c := cp(1, t0)
	res, err := s.Write(ctx, []durable.Record{record(t, c)}, &durable.WriteOptions{Committed: func(int, string) {
		t.Error("Committed called for a Write whose commit failed")
	}})
	if !errors.Is(err, cut) || len(res) != 1 || res[0].Err != nil || res[0].ETag == "" {
		t.Fatalf("%+v, %v; want the object written and the commit's error", res, err)
	}
	mem.SetHook(nil)
	if _, err := s.Load(ctx, c.RunID); err != nil {
		t.Errorf("Load of the object written: %v", err)
	}
	if got := listIDs(t, s); slices.Contains(got, c.RunID) {
		t.Errorf("listed %v; the commit failed", got)
	}
}

// Concurrent Writes of one run, each conditional on the ETag the previous
// one wrote, never conflict with each other: the condition is taken with
// the run locked.
func TestWriteFenceUnderRunLock(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, bucket.NewMem(), nil)
	f := &etagFence{etags: map[uuid.UUID]string{}}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			res, err := s.Write(ctx, []durable.Record{record(t, cp(1, t0.Add(time.Duration(i)*time.Millisecond)))}, &durable.WriteOptions{Fence: f})
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// DeleteWith calls Tombstoned once, after the tombstone and before the
// object goes; a Delete that fails before its tombstone does not call it.
func TestDeleteWithTombstoned(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	reset := errors.New("connection reset")
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "head" && strings.Contains(key, "/runs/") {
			return reset
		}
		return nil
	})
	err := s.DeleteWith(ctx, c.RunID, &durable.DeleteOptions{Tombstoned: func() {
		t.Error("Tombstoned called for a Delete that failed before its tombstone")
	}})
	if !errors.Is(err, reset) {
		t.Fatalf("DeleteWith with HEAD failing: %v", err)
	}
	mem.SetHook(nil)
	if got := listIDs(t, s); !slices.Contains(got, c.RunID) {
		t.Fatalf("the run is no longer listed after a failed Delete: %v", got)
	}
	calls := 0
	other := newStore(t, mem, nil) // the hook must not call into s
	err = s.DeleteWith(ctx, c.RunID, &durable.DeleteOptions{Tombstoned: func() {
		calls++
		if got := listIDs(t, other); slices.Contains(got, c.RunID) {
			t.Error("in Tombstoned the run is still listed")
		}
		if _, _, err := other.Read(ctx, c.RunID, ""); err != nil {
			t.Errorf("in Tombstoned the object is gone already: %v", err)
		}
	}})
	if err != nil || calls != 1 {
		t.Fatalf("DeleteWith: %v, %d calls of Tombstoned", err, calls)
	}
	if _, err := s.Load(ctx, c.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Load after DeleteWith: %v", err)
	}
}

// A Write waiting for a run lock held by another Write gives up when its
// context ends, and writes nothing.
func TestWriteLockWaitEndsWithContext(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	if err := s.Save(ctx, cp(9, t0)); err != nil { // probe and index done
		t.Fatal(err)
	}
	slow, release := make(chan struct{}), make(chan struct{})
	first, second := cp(1, t0), cp(2, t0) // one lock stripe (cp's IDs end alike)
	mem.SetHook(func(_ context.Context, op, key string) error {
		if op == "put" && strings.HasSuffix(key, first.RunID.String()) {
			close(slow)
			<-release
		}
		return nil
	})
	done := make(chan error)
	go func() {
		_, err := s.Write(ctx, []durable.Record{record(t, first)}, nil)
		done <- err
	}()
	<-slow
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Write(short, []durable.Record{record(t, second)}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a Write waiting for a held run lock: %v; want its context's deadline", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, second.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("the Write that gave up wrote its run: %v", err)
	}
}

// Empty and oversized records are refused before anything is written;
// an empty Write writes nothing at all (not even the probe).
func TestWriteRefusesBadRecords(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	if res, err := s.Write(ctx, nil, nil); err != nil || res != nil {
		t.Errorf("empty Write: %v, %v", res, err)
	}
	big := durable.Record{RunID: cp(1, t0).RunID, Workflow: "wf", Timestamp: t0, Data: make([]byte, cairn.DefaultCodec().MaxSize()+1)}
	if _, err := s.Write(ctx, []durable.Record{big}, nil); !errors.Is(err, cairn.ErrTooLarge) {
		t.Errorf("oversized record: %v; want ErrTooLarge", err)
	}
	empty := durable.Record{RunID: cp(2, t0).RunID, Workflow: "wf", Timestamp: t0}
	if _, err := s.Write(ctx, []durable.Record{empty}, nil); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("empty record: %v; want ErrInvalid", err)
	}
	if st := mem.Stats(); st.Puts+st.Gets+st.Lists+st.Heads != 0 {
		t.Errorf("requests made: %+v; want none", st)
	}
}
