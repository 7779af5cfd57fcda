package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/memstore"
	"github.com/google/uuid"
)

// resumeOrStart is how an engine uses any cairn.Store: load the run's
// last checkpoint to resume it, or start it when there is none.
func resumeOrStart(ctx context.Context, store cairn.Store, run uuid.UUID) (step int64, err error) {
	cp, err := store.Load(ctx, run)
	switch {
	case errors.Is(err, cairn.ErrNotFound):
		return 0, nil // a new run
	case err != nil:
		return 0, err
	}
	step, _ = cp.State["step"].(int64)
	return step, nil
}

// The Store contract, on the in-memory store: Save after each step, Load
// to resume (ErrNotFound for a run never saved), List newest first,
// Delete (nil for a missing run). Every store kind (memstore, durable,
// tiered) passes the same conformance suite, package storetest.
func Example_store() {
	ctx := context.Background()
	store := memstore.New(nil)
	run := uuid.MustParse("0d8a3c2e-5f1b-4c7a-9e2d-3b4c5d6e7f80")

	for {
		step, err := resumeOrStart(ctx, store, run)
		if err != nil {
			log.Fatal(err)
		}
		if step == 3 {
			break
		}
		step++
		err = store.Save(ctx, &cairn.Checkpoint{
			WorkflowName: "invoice",
			RunID:        run,
			Timestamp:    time.Date(2026, 11, 30, 9, 0, int(step), 0, time.UTC),
			State:        map[string]any{"step": step},
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("did step", step)
	}

	page, err := store.List(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range page.Runs {
		fmt.Println("listed", s.WorkflowName, s.Timestamp.Format(time.TimeOnly))
	}
	if err := store.Delete(ctx, run); err != nil {
		log.Fatal(err)
	}
	_, err = store.Load(ctx, run)
	fmt.Println("after Delete:", errors.Is(err, cairn.ErrNotFound))
	// Output:
	// did step 1
	// did step 2
	// did step 3
	// listed invoice 09:00:03
	// after Delete: true
}
