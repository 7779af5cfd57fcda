package index_test

import (
	"testing"
	"time"

	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// TestWinnerDeleteOfReplicatedState: a delete in one region that names
// (by ETag) the object another region's save wrote deleted that very
// state, so it came after it: it wins whatever the two clocks said (the
// save's checkpoint time may be ahead of the deleter's clock), and the
// two are no split brain. A save the delete did not see is one.
func TestWinnerDeleteOfReplicatedState(t *testing.T) {
	run := uuid.New()
	save := func(region, etag string, ts time.Time) index.Op {
		return index.Op{Entry: index.Entry{RunID: run, Timestamp: ts, ETag: etag, Region: region, Epoch: 3}}
	}
	del := func(region, etag string, ts time.Time) index.Op {
		op := save(region, etag, ts)
		op.Delete = true
		return op
	}
	for _, tc := range []struct {
		name       string
		ops        []index.Op
		wantDelete bool
		wantSplit  bool
	}{
		{name: "the save's time is ahead of the deleter's clock",
			ops:        []index.Op{save("a", `"x"`, t0.Add(time.Minute)), del("b", `"x"`, t0)},
			wantDelete: true},
		{name: "the deleter's clock is ahead",
			ops:        []index.Op{save("a", `"x"`, t0), del("b", `"x"`, t0.Add(time.Minute))},
			wantDelete: true},
		{name: "the same, the delete listed first",
			ops:        []index.Op{del("b", `"x"`, t0), save("a", `"x"`, t0.Add(time.Minute))},
			wantDelete: true},
		{name: "a later save of another state, not seen by the delete",
			ops:        []index.Op{save("a", `"y"`, t0.Add(time.Minute)), del("b", `"x"`, t0)},
			wantDelete: false, wantSplit: true},
		{name: "an earlier save of another state, not seen by the delete",
			ops:        []index.Op{save("a", `"y"`, t0), del("b", `"x"`, t0.Add(time.Minute))},
			wantDelete: true, wantSplit: true},
		{name: "three regions: the delete of a's state outranks c's earlier save too",
			ops:        []index.Op{save("a", `"x"`, t0.Add(time.Hour)), del("b", `"x"`, t0), save("c", `"z"`, t0.Add(time.Minute))},
			wantDelete: true, wantSplit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := index.Winner(tc.ops)
			if w.Delete != tc.wantDelete {
				t.Errorf("Winner = region %q's op (delete %v), want delete %v", w.Entry.Region, w.Delete, tc.wantDelete)
			}
			// Every order of the ops decides the same way.
			rev := []index.Op{}
			for i := len(tc.ops) - 1; i >= 0; i-- {
				rev = append(rev, tc.ops[i])
			}
			if r := index.Winner(rev); r.Entry.Region != w.Entry.Region {
				t.Errorf("Winner of the ops reversed = region %q's op, want %q's", r.Entry.Region, w.Entry.Region)
			}
			if got := index.SplitBrain(tc.ops); got != tc.wantSplit {
				t.Errorf("SplitBrain = %v, want %v", got, tc.wantSplit)
			}
		})
	}
}
