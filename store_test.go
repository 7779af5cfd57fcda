package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// FillCheckpoints loads what a page lacks, leaves out runs deleted since
// they were listed, keeps the order and the cursor, and reports failures.
func TestFillCheckpoints(t *testing.T) {
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	have := &cairn.Checkpoint{RunID: ids[0]}
	page := &cairn.Page{Next: "cursor", Runs: []cairn.Summary{{RunID: ids[0], Checkpoint: have}, {RunID: ids[1]}, {RunID: ids[2]}, {RunID: ids[3]}}}
	var calls atomic.Int32
	load := func(ctx context.Context, id uuid.UUID) (*cairn.Checkpoint, error) {
		calls.Add(1)
		if id == ids[2] {
			return nil, cairn.WrapOp("load", id, cairn.ErrNotFound)
		}
		return &cairn.Checkpoint{RunID: id}, nil
	}
	if err := cairn.FillCheckpoints(context.Background(), page, 2, load); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || page.Next != "cursor" || len(page.Runs) != 3 || page.Runs[0].Checkpoint != have {
		t.Fatalf("%d loads, page %+v", calls.Load(), page)
	}
	for i, want := range []uuid.UUID{ids[0], ids[1], ids[3]} {
		if r := page.Runs[i]; r.RunID != want || r.Checkpoint == nil || r.Checkpoint.RunID != want {
			t.Fatalf("run %d: %+v, want %v with its checkpoint", i, r, want)
		}
	}
	boom := errors.New("boom")
	page = &cairn.Page{Runs: []cairn.Summary{{RunID: ids[1]}}}
	err := cairn.FillCheckpoints(context.Background(), page, 0, func(context.Context, uuid.UUID) (*cairn.Checkpoint, error) {
		return nil, fmt.Errorf("get: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("a failing load: %v", err)
	}
}
