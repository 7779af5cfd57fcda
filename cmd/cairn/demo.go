package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The demo is `cairn demo`, in the files demo_*.go: this one parses its
// command line; demo_pipeline.go is the sample workflow; demo_worker.go
// the process that runs it and gets killed; demo_main.go the process that
// kills it, resumes the runs and checks them (demo_check.go); and
// demo_report.go formats the numbers.

// demoConfig is what the demo process and its worker process agree on.
type demoConfig struct {
	store    string
	workflow string
	runs     int
	workers  int
	work     time.Duration // simulated work per step
	crashAt  float64       // fraction of all steps acknowledged before the crash
	named    bool          // the store was named with --store
}

// runID is the run ID of the i-th run of a demo: derived, so that the
// worker process and the demo process agree without talking.
func (c *demoConfig) runID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "cairn-demo/%s/%d", c.workflow, i))
}

// runDemo is `cairn demo`. It starts a worker process that runs the
// pipeline in write-back mode and flushes now and then, kills it with
// SIGKILL partway, resumes every unfinished run from the store in a fresh
// store, and verifies the result from a third, cold one.
//
// A demo needs a store that outlives a process: file:// (the default) or
// s3://. mem:// is refused.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "demo", "")
	runs := fs.Int("runs", 300, "number of workflow runs")
	workers := fs.Int("workers", 8, "concurrent workers")
	work := fs.Duration("work", 3*time.Millisecond, "simulated work per step")
	crashAt := fs.Float64("crash-at", 0.4, "fraction of the steps acknowledged (flushed) before the worker process is killed")
	worker := fs.String("worker", "", "internal: run as the worker process of the demo of this workflow")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo takes no arguments, got %q", fs.Args())
	}
	if *runs < 1 || *workers < 1 || *crashAt <= 0 || *crashAt >= 1 {
		return usagef("want --runs ≥ 1, --workers ≥ 1 and 0 < --crash-at < 1")
	}
	cfg := &demoConfig{store: storeURL(e, *storeFlag), runs: *runs, workers: *workers, work: *work, crashAt: *crashAt,
		named: *storeFlag != ""}
	if strings.HasPrefix(cfg.store, "mem:") {
		return usagef("the demo crashes a process and resumes from the store: it needs a file:// or s3:// store, not mem://")
	}
	if *worker != "" {
		cfg.workflow = *worker
		return demoWorker(ctx, e, cfg)
	}
	cfg.workflow = "demo-" + uuid.NewString()[:8]
	return demoMain(ctx, e, cfg)
}
