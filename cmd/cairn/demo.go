package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
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

// demoFlags are the flags of cairn demo.
type demoFlags struct {
	runs, workers, resumers int
	work, lease             time.Duration
	crashAt                 float64
	worker, resumeAs        string // internal: the demo's own worker processes
}

func newDemoCmd(e *env) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run a sample workflow, crash it, resume it from the store, verify it",
		Long: "Run the sample workflow: a worker process claims the runs and checkpoints every step in\n" +
			"write-back mode, is killed with SIGKILL partway, and worker processes claim and resume the\n" +
			"unfinished runs; then the result is verified from a cold store. Needs a file:// or s3://\n" +
			"store (the default is a directory).",
		Args:        noArgs,
		Annotations: map[string]string{annotationNoJSON: "a report for a person"},
		RunE:        func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.runs, "runs", 300, "number of workflow runs")
	fl.IntVar(&f.workers, "workers", 8, "concurrent runs: in the worker process that is killed, and in the resume workers together")
	fl.IntVar(&f.resumers, "resumers", 4, "worker processes that share the resume, claiming runs (at most 64)")
	fl.DurationVar(&f.work, "work", 3*time.Millisecond, "simulated work per step (0 to 1m)")
	fl.Float64Var(&f.crashAt, "crash-at", 0.4, "fraction of the steps acknowledged (flushed) before the worker process is killed, between 0 and 1")
	fl.DurationVar(&f.lease, "lease", 2*time.Second, "lease of every claim, 100ms to 1h: the killed worker's runs are taken over once theirs end")
	fl.StringVar(&f.worker, "worker", "", "internal: run as a worker process of the demo of this workflow")
	fl.StringVar(&f.resumeAs, "resume-as", "", "internal: with --worker, run as the resume worker of this name")
	// The demo starts its own processes with these; a person never does.
	_ = fl.MarkHidden("worker")
	_ = fl.MarkHidden("resume-as")
	return cmd
}

// runDemo is `cairn demo`. It starts a worker process that claims the
// runs and runs the pipeline in write-back mode, flushing now and then,
// kills it with SIGKILL partway, has --resumers worker processes share
// the resume by claiming the unfinished runs, and verifies the result
// from a cold store and the side-effect ledger.
//
// A demo needs a store that outlives a process: file:// (the default) or
// s3://. mem:// is refused.
func runDemo(ctx context.Context, e *env, f *demoFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	cfg := &demoConfig{store: storeURL(e), runs: f.runs, workers: f.workers, resumers: f.resumers, work: f.work,
		crashAt: f.crashAt, lease: f.lease, named: e.flags.store != ""}
	if strings.HasPrefix(cfg.store, "mem:") {
		return usagef("the demo crashes a process and resumes from the store: it needs a file:// or s3:// store, not mem://")
	}
	switch {
	case f.worker != "" && f.resumeAs != "":
		cfg.workflow = f.worker
		return resumeWorker(ctx, e, cfg, f.resumeAs)
	case f.worker != "":
		cfg.workflow = f.worker
		return demoWorker(ctx, e, cfg)
	case f.resumeAs != "":
		return usagef("--resume-as needs --worker")
	}
	cfg.workflow = "demo-" + uuid.NewString()[:8]
	return demoMain(ctx, e, cfg)
}

// Bounds of the demo's flags. A lease or a step's work longer than these
// is no demo: the resume waits for the killed worker's leases to end, and
// a resume worker gives up after five leases without a claim.
const (
	demoMinLease = 100 * time.Millisecond
	demoMaxLease = time.Hour
	demoMaxWork  = time.Minute
	demoMaxProcs = 64 // --resumers: processes started at once
)

// check returns a usage error naming every flag of f out of its range,
// or nil. --crash-at must be a fraction strictly between 0 and 1, which
// NaN is not (every comparison with it is false, hence the negation).
func (f *demoFlags) check() error {
	var bad []string
	if f.runs < 1 {
		bad = append(bad, fmt.Sprintf("--runs %d: want 1 or more", f.runs))
	}
	if f.workers < 1 {
		bad = append(bad, fmt.Sprintf("--workers %d: want 1 or more", f.workers))
	}
	if f.resumers < 1 || f.resumers > demoMaxProcs {
		bad = append(bad, fmt.Sprintf("--resumers %d: want 1 to %d", f.resumers, demoMaxProcs))
	}
	if !(f.crashAt > 0 && f.crashAt < 1) {
		bad = append(bad, fmt.Sprintf("--crash-at %v: want a fraction between 0 and 1 (exclusive), such as 0.4", f.crashAt))
	}
	if f.work < 0 || f.work > demoMaxWork {
		bad = append(bad, fmt.Sprintf("--work %v: want 0 to %v", f.work, demoMaxWork))
	}
	if f.lease < demoMinLease || f.lease > demoMaxLease {
		bad = append(bad, fmt.Sprintf("--lease %v: want %v to %v", f.lease, demoMinLease, demoMaxLease))
	}
	if len(bad) > 0 {
		return usagef("%s (run cairn demo --help)", strings.Join(bad, "; "))
	}
	return nil
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
