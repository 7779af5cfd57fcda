package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
)

// demoMain runs the phases of the demo and prints the report: the worker
// process killed partway, the runs resumed in a fresh store, the index
// checked against the objects, every run checked from a cold store.
func demoMain(ctx context.Context, e *env, cfg *demoConfig) error {
	if err := checkDemoStore(ctx, e, cfg); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Cairn demo: %d runs of a %d-step pipeline (%s), checkpointing after every step.\n",
		cfg.runs, len(demoSteps), strings.Join(demoSteps, " → "))
	fmt.Fprintf(e.stdout, "store:    %s\nworkflow: %s\n\n", where(cfg.store), cfg.workflow)

	crash, err := crashPhase(ctx, e, cfg)
	if err != nil {
		return err
	}
	res, st, err := resumePhase(ctx, e, cfg, crash.acked)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "3. Verify compares the index with the objects.\n")
	if err := repairAfterCrash(ctx, e, cfg); err != nil {
		return err
	}
	ver, err := verifyPhase(ctx, e, cfg)
	if err != nil {
		return err
	}
	printDemoSummary(e, cfg, crash, res, st, ver)
	return nil
}

// checkDemoStore opens the store and lists it: a store that cannot be
// reached fails here, in one line, rather than in the worker process.
func checkDemoStore(ctx context.Context, e *env, cfg *demoConfig) error {
	pre, _, err := openStore(ctx, e, cfg.store, nil)
	if err != nil {
		return err
	}
	_, err = pre.List(ctx, &cairn.ListOptions{Limit: 1})
	closeStore(ctx, pre, &err)
	return err
}

// crashResult is what the demo learnt from the worker process's reports.
type crashResult struct {
	acked   map[int]int // run index → last step a Flush made durable
	last    workerReport
	saveLat []time.Duration
}

// crashPhase is phase 1: the worker process, killed with SIGKILL once
// its reports show the crash point reached.
func crashPhase(ctx context.Context, e *env, cfg *demoConfig) (*crashResult, error) {
	fmt.Fprintf(e.stdout, "1. A worker process runs the pipeline in write-back mode, flushing every 50 ms.\n")
	w, err := startWorker(ctx, cfg)
	if err != nil {
		return nil, err
	}
	total := cfg.runs * len(demoSteps)
	r := &crashResult{acked: map[int]int{}}
	killedEarly := false
	for w.next() {
		rep := w.report
		for i, k := range rep.Acked {
			r.acked[i] = max(r.acked[i], k)
		}
		for _, us := range rep.SaveMicros {
			r.saveLat = append(r.saveLat, time.Duration(us)*time.Microsecond)
		}
		r.last = rep
		if n := sum(r.acked); rep.Done || float64(n) >= cfg.crashAt*float64(total) {
			killedEarly = !rep.Done
			break
		}
	}
	if err := w.kill(); err != nil {
		return nil, err
	}
	if killedEarly {
		fmt.Fprintf(e.stdout, "   Killed it with SIGKILL after %d of %d steps were acknowledged durable by a Flush.\n", sum(r.acked), total)
	} else {
		fmt.Fprintf(e.stdout, "   It finished every step before the crash point; killed it with SIGKILL all the same.\n")
	}
	fmt.Fprintf(e.stdout, "   It had made %d Saves with %d PUTs and %d index commits (%.1f Saves per PUT).\n\n",
		r.last.Saves, r.last.PUTs, r.last.IndexCommits, ratio(r.last.Saves, r.last.PUTs))
	return r, nil
}

// resumePhase is phase 2: a fresh store resumes every run, and flushes.
// It returns the store's counters with the result.
func resumePhase(ctx context.Context, e *env, cfg *demoConfig, acked map[int]int) (*resumeResult, tiered.Stats, error) {
	fmt.Fprintf(e.stdout, "2. A fresh store resumes every unfinished run from its last durable checkpoint.\n")
	s, _, err := openStore(ctx, e, cfg.store, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		return nil, tiered.Stats{}, err
	}
	res, err := resume(ctx, s, cfg, acked)
	if err == nil {
		err = s.Flush(ctx)
	}
	st := s.Stats()
	closeStore(ctx, s, &err)
	if err != nil {
		return nil, st, err
	}
	fmt.Fprintf(e.stdout, "   %d runs were already finished, %d resumed mid-pipeline, %d started from step 1 (nothing durable); %d steps run.\n",
		res.finished, res.resumed, res.fromScratch, res.steps)
	fmt.Fprintf(e.stdout, "   %d Saves with %d PUTs and %d index commits.\n\n", res.steps, st.PUTs, st.IndexCommits)
	return res, st, nil
}

// verifyPhase is phase 4: a cold store checks every run (verifyDemo).
// Problems are printed, the first ten of them, and fail the demo.
func verifyPhase(ctx context.Context, e *env, cfg *demoConfig) (*verification, error) {
	fmt.Fprintf(e.stdout, "4. A cold store checks every run.\n")
	v, _, err := openStore(ctx, e, cfg.store, nil)
	if err != nil {
		return nil, err
	}
	ver, err := verifyDemo(ctx, v, cfg)
	closeStore(ctx, v, &err)
	if err != nil {
		return nil, err
	}
	if len(ver.problems) > 0 {
		for _, p := range ver.problems[:min(len(ver.problems), 10)] {
			fmt.Fprintf(e.stdout, "   FAIL %s\n", p)
		}
		return nil, fmt.Errorf("verification failed: %d problem(s), the first: %s", len(ver.problems), ver.problems[0])
	}
	fmt.Fprintf(e.stdout, "   Verified: all %d runs listed once, each finished every step exactly once, in order, from its last durable step; no acknowledged step was lost.\n\n", cfg.runs)
	return ver, nil
}

// printDemoSummary prints the demo's numbers: the worker's, up to its
// last report, with those of the resume (res, st), and the sizes and
// Load latencies the verification measured.
func printDemoSummary(e *env, cfg *demoConfig, crash *crashResult, res *resumeResult, st tiered.Stats, ver *verification) {
	last := crash.last
	saves, puts, commits := last.Saves+int64(res.steps), last.PUTs+st.PUTs, last.IndexCommits+st.IndexCommits
	saveLat := append(crash.saveLat, res.saveLat...)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "runs\t%d\n", cfg.runs)
	fmt.Fprintf(tw, "Saves\t%d\t(%d by the worker up to its last report, %d after the crash)\n", saves, last.Saves, res.steps)
	fmt.Fprintf(tw, "run PUTs\t%d\t(%.1f Saves per PUT: write-back batching)\n", puts, ratio(saves, puts))
	fmt.Fprintf(tw, "index commits\t%d\t(%.1f Saves per commit)\n", commits, ratio(saves, commits))
	fmt.Fprintf(tw, "bytes written\t%s in PUTs\t(of %s MessagePack Saved: batching and zstd)\n",
		size(last.BytesStored+st.BytesStored), size(last.BytesEncoded+st.BytesEncoded))
	fmt.Fprintf(tw, "bytes held\t%s in the final objects\t(%s as MessagePack: zstd %.1f× smaller)\n",
		size(ver.stored), size(ver.encoded), ratio(ver.encoded, ver.stored))
	fmt.Fprintf(tw, "Save (write-back)\t%s\n", percentiles(saveLat))
	fmt.Fprintf(tw, "Load, from storage\t%s\n", percentiles(ver.missLat))
	fmt.Fprintf(tw, "Load, cache hit\t%s\n", percentiles(ver.hitLat))
	tw.Flush()
	fmt.Fprintf(e.stdout, "\nThe runs stay in the store. Try:\n  cairn ls --workflow %s --limit 5\n  cairn show %s\n", cfg.workflow, cfg.runID(0))
	if cfg.named {
		fmt.Fprintf(e.stdout, "(with --store %s)\n", bucket.RedactURL(cfg.store))
	}
}

// worker is the running worker process.
type worker struct {
	cmd    *exec.Cmd
	pipe   io.Reader
	out    *bufio.Scanner
	stderr *strings.Builder
	report workerReport
	err    error
}

func startWorker(ctx context.Context, cfg *demoConfig) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "demo", "--worker", cfg.workflow, "--runs", fmt.Sprint(cfg.runs),
		"--workers", fmt.Sprint(cfg.workers), "--work", cfg.work.String(), "--crash-at", fmt.Sprint(cfg.crashAt))
	// The store in the environment, not on a command line others can read.
	cmd.Env = append(os.Environ(), "CAIRN_STORE="+cfg.store)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, pipe: stdout, out: bufio.NewScanner(stdout), stderr: &strings.Builder{}}
	w.out.Buffer(nil, 64<<20)
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the worker process: %w", err)
	}
	return w, nil
}

// next reads the worker's next report; false at its end or on error.
func (w *worker) next() bool {
	if !w.out.Scan() {
		return false
	}
	w.report = workerReport{}
	if err := json.Unmarshal(w.out.Bytes(), &w.report); err != nil {
		w.err = fmt.Errorf("the worker process wrote %q: %w", w.out.Text(), err)
		return false
	}
	return true
}

// kill ends the worker with SIGKILL and reports whether it had failed
// before.
func (w *worker) kill() error {
	_ = w.cmd.Process.Kill()
	_, _ = io.Copy(io.Discard, w.pipe)
	werr := w.cmd.Wait()
	if w.err != nil {
		return w.err
	}
	if msg := strings.TrimSpace(w.stderr.String()); msg != "" {
		return fmt.Errorf("the worker process failed: %s", msg)
	}
	if ws := w.cmd.ProcessState; ws == nil || ws.Exited() {
		// Exited by itself, not by the signal.
		return fmt.Errorf("the worker process ended before it was killed: %v", werr)
	}
	return nil
}
