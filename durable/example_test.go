package durable_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// The durable store alone, on a local directory: every Save is durable
// when it returns (the run object, then its index entry), with no cache in
// front. Most programs open a tiered.Store instead, which adds the cache
// and write-back; the durable store is also what the admin commands use:
// here Reindex rebuilds the index from the run objects alone, as after
// losing it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cairn-durable-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, err := bucket.NewDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	store, err := durable.New(b, &durable.Options{Prefix: "prod"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := store.Close(ctx); err != nil {
			log.Print(err)
		}
	}()

	for i, name := range []string{"billing", "shipping"} {
		err := store.Save(ctx, &cairn.Checkpoint{
			WorkflowName: name,
			RunID:        uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)),
			Timestamp:    time.Date(2026, 11, 30, 9, i, 0, 0, time.UTC),
			State:        map[string]any{"step": int64(1)},
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	report, err := store.Reindex(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("reindexed", report.Indexed, "of", report.Runs, "runs")

	page, err := store.List(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range page.Runs {
		fmt.Println(s.WorkflowName)
	}
	// Output:
	// reindexed 2 of 2 runs
	// shipping
	// billing
}
