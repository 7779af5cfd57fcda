package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// Save a run's checkpoint after each step, load it to resume, list runs
// newest first, delete the run: on a local directory store in write-back
// mode. For S3 or MinIO, open an s3:// URL instead.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cairn-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := tiered.Open(ctx, "file://"+dir, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Close flushes: in write-back mode a flush failure surfaces
		// here, so never discard its error.
		if err := store.Close(ctx); err != nil {
			log.Print(err)
		}
	}()

	run := uuid.MustParse("67e55044-10b1-426f-9247-bb680e5fe0c8")
	for step := 1; step <= 3; step++ {
		err := store.Save(ctx, &cairn.Checkpoint{
			WorkflowName: "orders",
			RunID:        run,
			Timestamp:    time.Date(2026, 11, 25, 12, 0, step, 0, time.UTC),
			State:        map[string]any{"step": step, "customer": "c-42"},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	// Durable once Flush returns nil: do this before acknowledging the
	// step to the outside world, or before a serverless handler returns.
	if err := store.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	cp, err := store.Load(ctx, run)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resume", cp.WorkflowName, "after step", cp.State["step"])

	page, err := store.List(ctx, &cairn.ListOptions{Limit: 20})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range page.Runs {
		fmt.Println("listed", r.RunID, r.WorkflowName, r.Timestamp.Format(time.RFC3339))
	}

	if err := store.Delete(ctx, run); err != nil {
		log.Fatal(err)
	}
	_, err = store.Load(ctx, run)
	fmt.Println("after Delete:", errors.Is(err, cairn.ErrNotFound))
	// Output:
	// resume orders after step 3
	// listed 67e55044-10b1-426f-9247-bb680e5fe0c8 orders 2026-11-25T12:00:03Z
	// after Delete: true
}
