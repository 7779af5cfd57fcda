package durable_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// readOnlyStore opens a read-only store over b, counting the requests
// that reach b.
func readOnlyStore(t *testing.T, b bucket.Bucket) (*durable.Store, *counting) {
	t.Helper()
	c := newCounting(b)
	return newStore(t, c, &durable.Options{Prefix: "cairn", Index: smallIndex, ReadOnly: true}), c
}

// A read-only store reads what a writer wrote (Load, List by label,
// Exists, Claimable, Verify, a dry GC) and refuses every write with
// cairn.ErrReadOnly: no request but reads reaches the bucket, and no
// commit or compaction is even tried.
func TestReadOnlyStore(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	w := newStore(t, mem, nil)
	for i := range 12 { // past smallIndex's CompactAfter: a snapshot and a log tail
		if err := w.Save(ctx, labeledCP(i, t0.Add(time.Duration(i)*time.Second), map[string]string{"even": parity(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Delete(ctx, cp(11, t0).RunID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Claim(ctx, cp(1, t0).RunID, &cairn.ClaimOptions{Owner: "w"}); err != nil {
		t.Fatal(err)
	}
	durable.WaitBackground(w)

	s, c := readOnlyStore(t, mem)
	if got, err := s.Load(ctx, cp(3, t0).RunID); err != nil || got.State["n"] != int64(3) {
		t.Errorf("Load: %v, %v", got, err)
	}
	if _, err := s.Load(ctx, cp(11, t0).RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Load of the deleted run: %v, want ErrNotFound", err)
	}
	if ok, err := s.Exists(ctx, cp(4, t0).RunID); !ok || err != nil {
		t.Errorf("Exists: %v, %v", ok, err)
	}
	if ids := listIDs(t, s); len(ids) != 11 {
		t.Errorf("List: %d runs, want 11", len(ids))
	}
	if got := byLabel(t, s, map[string]string{"even": "odd"}); len(got) != 5 {
		t.Errorf("List(even=odd): %d runs, want 5 (1, 3, 5, 7, 9)", len(got))
	}
	page, err := s.List(ctx, &cairn.ListOptions{Claimable: true})
	if err != nil || len(page.Runs) != 10 {
		t.Errorf("List(Claimable): %v, %v; want the 10 runs not claimed", page, err)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() || rep.Runs != 11 {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	if _, err := s.GC(ctx, &durable.GCOptions{DryRun: true}); err != nil {
		t.Errorf("GC DryRun: %v", err)
	}

	run := cp(3, t0).RunID
	lease := &cairn.Lease{RunID: run, Owner: "r", Epoch: 1, Duration: time.Minute}
	for name, err := range map[string]error{
		"Save":        s.Save(ctx, cp(20, t0)),
		"SaveRecord":  s.SaveRecord(ctx, newRecord(t, cp(21, t0))),
		"Write":       writeErr(s.Write(ctx, []durable.Record{record(t, cp(22, t0))}, nil)),
		"Delete":      s.Delete(ctx, run),
		"Claim":       second(s.Claim(ctx, run, &cairn.ClaimOptions{Owner: "r"})),
		"SaveLeased":  s.SaveLeased(ctx, lease, cp(3, t0.Add(time.Hour))),
		"Renew":       s.Renew(ctx, lease),
		"Release":     s.Release(ctx, lease),
		"Compact":     s.Compact(ctx),
		"Reindex":     second(s.Reindex(ctx, nil)),
		"GC":          second(s.GC(ctx, nil)),
		"Reconcile":   second(s.Reconcile(ctx, nil)),
		"CheckServer": s.CheckServer(ctx),
	} {
		if !errors.Is(err, cairn.ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v, want cairn.ErrReadOnly", name, err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	checkOnlyReads(t, s, c)
	if got, err := w.Load(ctx, run); err != nil || got.State["n"] != int64(3) {
		t.Errorf("the run after the refused writes: %v, %v", got, err)
	}
}

// checkOnlyReads checks that only reads reached the bucket under c and
// that s's index committed and compacted nothing, nor tried to.
func checkOnlyReads(t *testing.T, s *durable.Store, c *counting) {
	t.Helper()
	n := c.take()
	if n["PUT"]+n["DELETE"] > 0 {
		t.Errorf("requests of a read-only store: %v, want no PUT or DELETE", n)
	}
	if st := s.Stats().Index; st.Commits+st.Compactions+st.CompactionErrors > 0 {
		t.Errorf("index stats of a read-only store: %+v, want no commit or compaction tried", st)
	}
}

// A read-only store over a bucket with no index tells a new store (no
// runs: an empty listing) from a lost index (runs: ErrIndexLost), and
// creates no index in either.
func TestReadOnlyStoreNoIndex(t *testing.T) {
	ctx := context.Background()
	s, c := readOnlyStore(t, bucket.NewMem())
	if ids := listIDs(t, s); len(ids) != 0 {
		t.Errorf("List of an empty bucket: %v", ids)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify of an empty bucket: %+v, %v", rep, err)
	}
	checkOnlyReads(t, s, c)

	mem := bucket.NewMem()
	w := newStore(t, mem, nil)
	if err := w.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
	durable.WaitBackground(w)
	loseIndex(t, mem)
	s, c = readOnlyStore(t, mem)
	if _, err := s.List(ctx, nil); !errors.Is(err, durable.ErrIndexLost) {
		t.Errorf("List over a lost index: %v, want ErrIndexLost", err)
	}
	if rep, err := s.Verify(ctx); err != nil || !errors.Is(rep.Index, durable.ErrIndexLost) || len(rep.Unindexed) != 1 {
		t.Errorf("Verify over a lost index: %+v, %v; want ErrIndexLost and the run unindexed", rep, err)
	}
	checkOnlyReads(t, s, c)
	if ks := keys(t, mem, "cairn/index/"); len(ks) != 0 {
		t.Errorf("index objects after a read-only store looked: %v", ks)
	}
}

// newRecord returns the encoded record of c.
func newRecord(t *testing.T, c *cairn.Checkpoint) cairn.Record {
	t.Helper()
	r, err := cairn.DefaultCodec().NewRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// writeErr is the error of a Write of one record, its own or the call's.
func writeErr(res []durable.WriteResult, err error) error {
	if err == nil && len(res) == 1 {
		err = res[0].Err
	}
	return err
}

func second[T any](_ T, err error) error { return err }
