package durable_test

// Review (review1) of what docs/s3.md says of the index objects' life:
// "index logs [...] created at every commit and deleted by GC within the
// hour after compaction", "Cairn's GC already removes the index objects
// no snapshot needs". Nothing runs GC but Store.GC (`cairn gc`): without
// it, every commit's log and every compaction's snapshot and pages stay
// in the bucket for good. This test pins that behaviour; the defect is
// in the docs (see the report), which should say to run `cairn gc` on a
// schedule.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// r1IndexObjects counts the index objects of the store at prefix p.
func r1IndexObjects(t *testing.T, b bucket.Bucket) int {
	t.Helper()
	n := 0
	for start := ""; ; {
		infos, more, err := b.List(context.Background(), "p/index/", start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			if !strings.Contains(in.Key, "~regions") {
				n++
			}
		}
		if !more || len(infos) == 0 {
			return n
		}
		start = infos[len(infos)-1].Key
	}
}

func TestR1IndexObjectsStayUntilGC(t *testing.T) {
	ctx := context.Background()
	b := bucket.NewMem()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	s, err := durable.New(b, &durable.Options{Prefix: "p", UnsafeSkipProbe: true, Now: now,
		Index: &index.Options{CompactAfter: 4, PageSize: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	id := uuid.New()
	counts := map[int]int{}
	for step := 1; step <= 200; step++ {
		cp := &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: time.Unix(int64(1e9+step), 0).UTC(), State: map[string]any{"step": int64(step)}}
		if err := s.Save(ctx, cp); err != nil {
			t.Fatal(err)
		}
		if step%100 == 0 {
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			counts[step] = r1IndexObjects(t, b)
		}
	}
	// One run, saved 200 times: the index describes one entry, yet the
	// bucket keeps an object per commit.
	if counts[200] < 200 || counts[200] < counts[100]+90 {
		t.Errorf("index objects after 100 and 200 Saves of one run: %d, %d; expected them to grow by one per commit", counts[100], counts[200])
	}
	skew.Store(int64(2 * time.Hour))
	rep, err := s.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := r1IndexObjects(t, b)
	t.Logf("index objects: %d after 100 Saves, %d after 200; GC removed %d logs, %d snapshots, %d pages; %d left",
		counts[100], counts[200], rep.Index.Logs, rep.Index.Snapshots, rep.Index.Pages, after)
	if after > 20 {
		t.Errorf("%d index objects left after GC; want only the newest snapshot's", after)
	}
}
