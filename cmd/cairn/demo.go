package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The demo is `cairn demo`, in the files demo_*.go: this one parses its
// command line; demo_pipeline.go is the sample workflow; demo_ledger.go
// the service that performs its steps' side effects; demo_lease.go runs
// the steps of a claimed run; demo_worker.go is the process that runs the
// pipeline and gets killed; demo_resume.go the processes that share the
// resume by claiming runs; demo_main.go the process that starts the
// others, kills the first and checks the result (demo_check.go); and
// demo_report.go formats the numbers.

// demoConfig is what the demo process and its worker process agree on.
type demoConfig struct {
	store    string
	workflow string
	runs     int
	workers  int           // concurrent runs in the killed worker, and in all the resume workers together
	resumers int           // resume worker processes
	work     time.Duration // simulated work per step
	crashAt  float64       // fraction of all steps acknowledged before the crash
	lease    time.Duration // of every claim
	named    bool          // the store was named with --store
	env      []string      // for the worker processes: the ledger's address
}

// runID is the run ID of the i-th run of a demo: derived, so that the
// worker process and the demo process agree without talking.
func (c *demoConfig) runID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "cairn-demo/%s/%d", c.workflow, i))
}

// runDemo is `cairn demo`. It starts a worker process that claims the
// runs and runs the pipeline in write-back mode, flushing now and then,
// kills it with SIGKILL partway, has --resumers worker processes share
// the resume by claiming the unfinished runs, and verifies the result
// from a cold store and the side-effect ledger.
//
// A demo needs a store that outlives a process: file:// (the default) or
// s3://. mem:// is refused.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "demo", "")
	runs := fs.Int("runs", 300, "number of workflow runs")
	workers := fs.Int("workers", 8, "concurrent runs: in the worker process that is killed, and in the resume workers together")
	resumers := fs.Int("resumers", 4, "worker processes that share the resume, claiming runs")
	work := fs.Duration("work", 3*time.Millisecond, "simulated work per step")
	crashAt := fs.Float64("crash-at", 0.4, "fraction of the steps acknowledged (flushed) before the worker process is killed")
	lease := fs.Duration("lease", 2*time.Second, "lease of every claim: the killed worker's runs are taken over once theirs end")
	worker := fs.String("worker", "", "internal: run as a worker process of the demo of this workflow")
	resumeAs := fs.String("resume-as", "", "internal: with --worker, run as the resume worker of this name")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo takes no arguments, got %q", fs.Args())
	}
	if *runs < 1 || *workers < 1 || *resumers < 1 || *crashAt <= 0 || *crashAt >= 1 || *lease < 100*time.Millisecond {
		return usagef("want --runs ≥ 1, --workers ≥ 1, --resumers ≥ 1, 0 < --crash-at < 1 and --lease ≥ 100ms")
	}
	cfg := &demoConfig{store: storeURL(e, *storeFlag), runs: *runs, workers: *workers, resumers: *resumers, work: *work,
		crashAt: *crashAt, lease: *lease, named: *storeFlag != ""}
	if strings.HasPrefix(cfg.store, "mem:") {
		return usagef("the demo crashes a process and resumes from the store: it needs a file:// or s3:// store, not mem://")
	}
	switch {
	case *worker != "" && *resumeAs != "":
		cfg.workflow = *worker
		return resumeWorker(ctx, e, cfg, *resumeAs)
	case *worker != "":
		cfg.workflow = *worker
		return demoWorker(ctx, e, cfg)
	case *resumeAs != "":
		return usagef("--resume-as needs --worker")
	}
	cfg.workflow = "demo-" + uuid.NewString()[:8]
	return demoMain(ctx, e, cfg)
}

// environ returns the environment of a worker process: this process's,
// the store (there, not on a command line others can read) and c.env.
func (c *demoConfig) environ() []string {
	return append(append(os.Environ(), "CAIRN_STORE="+c.store), c.env...)
}

// args returns the command line of a worker process of the demo: cfg's
// settings, the workflow, and extra.
func (c *demoConfig) args(extra ...string) []string {
	return append([]string{"demo", "--worker", c.workflow, "--runs", fmt.Sprint(c.runs), "--workers", fmt.Sprint(c.workers),
		"--resumers", fmt.Sprint(c.resumers), "--work", c.work.String(), "--crash-at", fmt.Sprint(c.crashAt),
		"--lease", c.lease.String()}, extra...)
}
