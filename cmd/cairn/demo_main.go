package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
)

// demoMain runs the phases of the demo and prints the report: the worker
// process killed partway, the runs resumed by worker processes claiming
// them, the index checked against the objects, every run checked from a
// cold store and the ledger.
func demoMain(ctx context.Context, e *env, cfg *demoConfig) error {
	err := checkDemoStore(ctx, e, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Cairn demo: %d runs of a %d-step pipeline (%s), checkpointing after every step.\n",
		cfg.runs, len(demoSteps), strings.Join(demoSteps, " → "))
	fmt.Fprintf(e.stdout, "store:    %s\nworkflow: %s\n\n", where(cfg.store), cfg.workflow)

	lg := newLedger()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.env, err = lg.serve(lctx); err != nil {
		return err
	}
	// The worker processes open the store as this one does: sealed with
	// the same keyring, offloading alike.
	if path := keyringFile(e); path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		cfg.env = append(cfg.env, "CAIRN_KEYRING="+path)
	}
	if off := e.flags.offload; off != "" {
		cfg.env = append(cfg.env, "CAIRN_OFFLOAD="+off)
	}
	crash, err := crashPhase(ctx, e, cfg)
	if err != nil {
		return err
	}
	res, err := resumePhase(ctx, e, cfg, crash.acked)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "3. Verify compares the index with the objects.\n")
	if err := repairAfterCrash(ctx, e, cfg); err != nil {
		return err
	}
	ver, err := verifyPhase(ctx, e, cfg, lg)
	if err != nil {
		return err
	}
	printDemoSummary(e, cfg, crash, res, ver)
	return nil
}

// checkDemoStore opens the store and lists it: a store that cannot be
// reached fails here, in one line, rather than in the worker process.
func checkDemoStore(ctx context.Context, e *env, cfg *demoConfig) error {
	pre, err := openStore(ctx, e, cfg.store, false, nil)
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
	fmt.Fprintf(e.stdout, "1. A worker process submits the runs (labelled status=running), claims them with %v leases and\n"+
		"   runs the pipeline in write-back mode, flushing every 50 ms.\n", cfg.lease)
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

// resumePhase is phase 2: cfg.resumers worker processes share the
// resume, claiming runs (resumeWorker); their reports are checked against
// what the killed worker had acknowledged.
func resumePhase(ctx context.Context, e *env, cfg *demoConfig, acked map[int]int) (*resumeResult, error) {
	fmt.Fprintf(e.stdout, "2. %d worker processes share the resume. Each lists the runs labelled status=running that no live\n"+
		"   lease holds, claims one, resumes it from the claim's checkpoint, performs each step's side effect\n"+
		"   through the ledger (key: run/step/epoch), saves under the lease and releases the run when it is done.\n", cfg.resumers)
	t0 := time.Now()
	reps, err := runResumers(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := combine(reps)
	res.took = time.Since(t0)
	if err := checkAcked(cfg, res.from, acked); err != nil {
		return nil, err
	}
	printResume(e, cfg, res)
	return res, nil
}

// checkAcked checks that every claim after the crash resumed from a step
// at least as far as the last one the killed worker's Flushes had
// acknowledged (from and acked map run indexes to steps). Runs nobody
// claimed were finished before the crash; verifyDemo checks them.
func checkAcked(cfg *demoConfig, from, acked map[int]int) error {
	for i := range cfg.runs {
		if f, ok := from[i]; ok && f < acked[i] {
			return fmt.Errorf("run %v: a claim resumed it from step %d, but step %d was acknowledged durable", cfg.runID(i), f, acked[i])
		}
	}
	return nil
}

// runResumers runs the resume worker processes, all at once, and returns
// their reports.
func runResumers(ctx context.Context, cfg *demoConfig) ([]*resumeReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmds := make([]*exec.Cmd, cfg.resumers)
	outs := make([]*bytes.Buffer, cfg.resumers)
	errs := make([]*strings.Builder, cfg.resumers)
	for w := range cmds {
		cmds[w] = exec.CommandContext(ctx, exe, cfg.args("--resume-as", fmt.Sprint("w", w+1))...)
		cmds[w].Env = cfg.environ()
		outs[w], errs[w] = &bytes.Buffer{}, &strings.Builder{}
		cmds[w].Stdout, cmds[w].Stderr = outs[w], errs[w]
		if err := cmds[w].Start(); err != nil {
			return nil, fmt.Errorf("start resume worker w%d: %w", w+1, err)
		}
	}
	var failed []string
	reps := make([]*resumeReport, cfg.resumers)
	for w, cmd := range cmds {
		err := cmd.Wait()
		if err == nil {
			reps[w] = &resumeReport{}
			err = json.Unmarshal(outs[w].Bytes(), reps[w])
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("w%d: %v: %s", w+1, err, strings.TrimSpace(errs[w].String())))
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("resume worker(s) failed: %s", strings.Join(failed, "; "))
	}
	return reps, nil
}

// printResume prints what the resume workers did.
func printResume(e *env, cfg *demoConfig, res *resumeResult) {
	for _, r := range res.workers {
		fmt.Fprintf(e.stdout, "   %s resumed %3d runs (%d taken over), ran %4d steps, renewed %d leases; %d claims lost a race, %d found the run done.\n",
			r.Name, r.Resumed, r.Takeovers, r.Steps, r.Renewals, r.Conflicts, r.Done)
	}
	fmt.Fprintf(e.stdout, "   %d takeovers: runs whose holder died were claimed once its %v lease ran out.\n", res.takeovers, cfg.lease)
	fmt.Fprintf(e.stdout, "   %d runs were resumed from a step, %d from step 1, %d found finished; %d steps run in %v.\n",
		res.resumed, res.fromStart, res.finished, res.steps, res.took.Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "   %d steps' effects had been performed already, by a worker that died or lost its lease before\n"+
		"   their checkpoints were durable: the ledger answered with the first receipt and did nothing again.\n", res.replays)
	if res.lost > 0 {
		fmt.Fprintf(e.stdout, "   %d leases were taken over from resume workers too slow to renew them; their runs were\n"+
			"   finished by the new holders.\n", res.lost)
	}
	fmt.Fprintf(e.stdout, "   %d Saves with %d PUTs and %d index commits.\n\n", res.saves, res.puts, res.commits)
}

// verifyPhase is phase 4: a cold store and the ledger check every run
// (verifyDemo). Problems are printed, the first ten of them, and fail the
// demo.
func verifyPhase(ctx context.Context, e *env, cfg *demoConfig, lg *ledger) (*verification, error) {
	fmt.Fprintf(e.stdout, "4. A cold store and the ledger check every run.\n")
	v, err := openStore(ctx, e, cfg.store, false, nil)
	if err != nil {
		return nil, err
	}
	ver, err := verifyDemo(ctx, v, lg, cfg)
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
	fmt.Fprintf(e.stdout, "   Verified: all %d runs listed once, none left status=running, each finished every step exactly\n"+
		"   once, in order, from its last durable step; no acknowledged step was lost. The ledger performed\n"+
		"   each of the %d steps' effects exactly once across the %d worker processes, under epochs that never\n"+
		"   went back, and every run kept the ledger's receipts.\n\n", cfg.runs, ver.effects, cfg.resumers+1)
	return ver, nil
}

// printDemoSummary prints the demo's numbers: the worker's, up to its
// last report, with those of the resume workers (res), and the sizes and
// Load latencies the verification measured.
func printDemoSummary(e *env, cfg *demoConfig, crash *crashResult, res *resumeResult, ver *verification) {
	last := crash.last
	saves, puts, commits := last.Saves+res.saves, last.PUTs+res.puts, last.IndexCommits+res.commits
	saveLat := append(crash.saveLat, res.saveLat...)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "runs\t%d\n", cfg.runs)
	fmt.Fprintf(tw, "Saves\t%d\t(%d by the worker up to its last report, %d after the crash)\n", saves, last.Saves, res.saves)
	fmt.Fprintf(tw, "run PUTs\t%d\t(%.1f Saves per PUT: write-back batching)\n", puts, ratio(saves, puts))
	fmt.Fprintf(tw, "index commits\t%d\t(%.1f Saves per commit)\n", commits, ratio(saves, commits))
	fmt.Fprintf(tw, "bytes written\t%s in PUTs\t(of %s MessagePack Saved: batching and zstd)\n",
		size(last.BytesStored+res.stored), size(last.BytesEncoded+res.encoded))
	fmt.Fprintf(tw, "bytes held\t%s in the final objects\t(%s as MessagePack: zstd %.1f× smaller)\n",
		size(ver.stored), size(ver.encoded), ratio(ver.encoded, ver.stored))
	fmt.Fprintf(tw, "Save (write-back)\t%s\n", percentiles(saveLat))
	fmt.Fprintf(tw, "Load, from storage\t%s\n", percentiles(ver.missLat))
	fmt.Fprintf(tw, "Load, cache hit\t%s\n", percentiles(ver.hitLat))
	tw.Flush()
	fmt.Fprintf(e.stdout, "\nThe runs stay in the store. Try:\n  cairn ls --workflow %s --label status=done --limit 5\n  cairn show %s\n",
		cfg.workflow, cfg.runID(0))
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
	cmd := exec.CommandContext(ctx, exe, cfg.args()...)
	cmd.Env = cfg.environ()
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
