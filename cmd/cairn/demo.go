package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// The demo's pipeline: every run goes through these steps in order and
// checkpoints after each.
var demoSteps = []string{"fetch", "validate", "enrich", "price", "reserve", "ship"}

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

// stepValue is what step k of run i computes; a run's final total is the
// sum over its steps, so the demo knows what every run must end with.
func stepValue(id uuid.UUID, k int) int64 {
	return int64(binary.BigEndian.Uint16(id[k%16:]))%1000 + int64(k)
}

var demoWords = strings.Fields(`order customer item warehouse stock price discount tax invoice
shipment carrier label address payment card refund approved checked reserved pending delayed
the a of to for with from and was is at in on by rule limit score model review`)

// demoText is a step's log: words chosen from the run and step, as a
// model's or a service's output would be, so that compression sees text.
func demoText(id uuid.UUID, k, n int) string {
	h := uint32(id[k]) | uint32(id[15-k])<<8
	words := make([]string, n)
	for i := range words {
		h = h*1664525 + 1013904223
		words[i] = demoWords[int(h>>16)%len(demoWords)]
	}
	return strings.Join(words, " ")
}

func expectedTotal(id uuid.UUID) int64 {
	var t int64
	for k := 1; k <= len(demoSteps); k++ {
		t += stepValue(id, k)
	}
	return t
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

// workerReport is a line the worker process writes after each Flush that
// returned nil: the steps it had saved before the Flush began (so durable
// now), and its counters.
type workerReport struct {
	Acked        map[int]int `json:"acked"` // run index → last step durable
	Saves        int64       `json:"saves"`
	PUTs         int64       `json:"puts"`
	IndexCommits int64       `json:"index_commits"`
	BytesEncoded int64       `json:"bytes_encoded"`
	BytesStored  int64       `json:"bytes_stored"`
	SaveMicros   []int64     `json:"save_us"` // Save latencies since the last report
	Done         bool        `json:"done"`
}

// demoWorker is the process that gets killed: it runs every run of the
// demo from step 1 in write-back mode, flushing every 50 ms and reporting
// on stdout what each Flush made durable. Its workers stop saving a tenth
// of the steps past the crash point, or once a report shows the crash
// point reached, so that the crash falls partway however fast or loaded
// the machine is; the Saves made since the last Flush began may still be
// unflushed then. It never closes the store: it waits to be killed.
func demoWorker(ctx context.Context, e *env, cfg *demoConfig) error {
	s, _, err := openStore(ctx, e, cfg.store, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		saved = map[int]int{} // run index → last step saved
		lat   []int64
		saves int64
	)
	out := json.NewEncoder(e.stdout)
	var frozen atomic.Bool
	total := float64(cfg.runs * len(demoSteps))
	limit := int64(min(cfg.crashAt+0.1, 1) * total) // Saves after which the workers stop
	report := func(done bool) error {
		mu.Lock()
		acked := maps.Clone(saved)
		r := workerReport{Acked: acked, SaveMicros: lat, Saves: saves, Done: done}
		lat = nil
		mu.Unlock()
		if err := s.Flush(ctx); err != nil {
			return err
		}
		st := s.Stats()
		r.PUTs, r.IndexCommits, r.BytesEncoded, r.BytesStored = st.PUTs, st.IndexCommits, st.BytesEncoded, st.BytesStored
		if float64(sum(acked)) >= cfg.crashAt*total {
			frozen.Store(true)
		}
		return out.Encode(r)
	}
	// A failed flush ends the workers too (those past the crash point wait
	// on gctx), so that the worker exits with the flush's error.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for i := range cfg.runs {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range cfg.workers {
		g.Go(func() error {
			for i := range next {
				id := cfg.runID(i)
				var c *cairn.Checkpoint
				for k := 1; k <= len(demoSteps); k++ {
					c = demoStep(c, cfg, id, k, "worker")
					time.Sleep(cfg.work)
					mu.Lock()
					stop := saves >= limit
					mu.Unlock()
					if stop || frozen.Load() {
						<-gctx.Done() // past the crash point: wait for the SIGKILL
						return gctx.Err()
					}
					t0 := time.Now()
					if err := s.Save(gctx, c); err != nil {
						return err
					}
					d := time.Since(t0)
					mu.Lock()
					saved[i], lat, saves = k, append(lat, d.Microseconds()), saves+1
					mu.Unlock()
				}
			}
			return nil
		})
	}
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				flushed <- nil
				return
			case <-t.C:
				if frozen.Load() {
					continue // reported; the demo is about to kill this process
				}
				if err := report(false); err != nil {
					flushed <- err
					cancel()
					return
				}
			}
		}
	}()
	err = g.Wait()
	close(stop)
	if ferr := <-flushed; ferr != nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if err := report(true); err != nil {
		return err
	}
	<-ctx.Done() // the demo kills this process; it does not Close
	return ctx.Err()
}

// demoStep returns the checkpoint after step k of run id, from the one
// after step k-1 (nil for k = 1). Steps before k are carried over, not
// recomputed: a run resumed from a checkpoint continues from what was
// durable.
func demoStep(prev *cairn.Checkpoint, cfg *demoConfig, id uuid.UUID, k int, by string) *cairn.Checkpoint {
	state := map[string]any{"order": map[string]any{"id": id.String()[:8], "customer": fmt.Sprintf("c-%d", id[0]),
		"items": []any{map[string]any{"sku": "A-1", "qty": int64(1 + id[1]%4)}, map[string]any{"sku": "B-7", "qty": int64(1 + id[2]%3)}}},
		"history": []any{}, "total": int64(0)}
	if prev != nil {
		state = prev.State
	}
	state["history"] = append(state["history"].([]any), int64(k))
	outputs, _ := state["outputs"].(map[string]any)
	if outputs == nil {
		outputs = map[string]any{}
		state["outputs"] = outputs
	}
	outputs[demoSteps[k-1]] = map[string]any{"log": demoText(id, k, 60), "value": stepValue(id, k),
		"checks": []any{map[string]any{"name": "schema", "ok": true}, map[string]any{"name": "limits", "ok": true, "score": float64(id[k]) / 255}}}
	state["total"] = state["total"].(int64) + stepValue(id, k)
	state["step"], state["stage"] = int64(k), demoSteps[k-1]
	state["done"] = k == len(demoSteps)
	c := &cairn.Checkpoint{WorkflowName: cfg.workflow, RunID: id, Timestamp: time.Now(), State: state,
		Metadata: map[string]any{"by": by}}
	if k < len(demoSteps) {
		c.PendingEvents = []cairn.Event{{EventType: "demo::Step", Data: map[string]any{"next": demoSteps[k]}}}
	}
	return c
}

// demoMain runs the three phases and prints the report.
func demoMain(ctx context.Context, e *env, cfg *demoConfig) error {
	// A store that cannot be reached fails here, in one line, rather than
	// in the worker process.
	pre, _, err := openStore(ctx, e, cfg.store, nil)
	if err != nil {
		return err
	}
	_, err = pre.List(ctx, &cairn.ListOptions{Limit: 1})
	closeStore(ctx, pre, &err)
	if err != nil {
		return err
	}

	total := cfg.runs * len(demoSteps)
	fmt.Fprintf(e.stdout, "Cairn demo: %d runs of a %d-step pipeline (%s), checkpointing after every step.\n",
		cfg.runs, len(demoSteps), strings.Join(demoSteps, " → "))
	fmt.Fprintf(e.stdout, "store:    %s\nworkflow: %s\n\n", where(cfg.store), cfg.workflow)

	// Phase 1: the worker process, killed partway.
	fmt.Fprintf(e.stdout, "1. A worker process runs the pipeline in write-back mode, flushing every 50 ms.\n")
	w, err := startWorker(ctx, cfg)
	if err != nil {
		return err
	}
	acked := map[int]int{}
	var last workerReport
	var saveLat []time.Duration
	killedEarly := false
	for w.next() {
		r := w.report
		for i, k := range r.Acked {
			acked[i] = max(acked[i], k)
		}
		for _, us := range r.SaveMicros {
			saveLat = append(saveLat, time.Duration(us)*time.Microsecond)
		}
		last = r
		if n := sum(acked); r.Done || float64(n) >= cfg.crashAt*float64(total) {
			killedEarly = !r.Done
			break
		}
	}
	if err := w.kill(); err != nil {
		return err
	}
	ackedSteps := sum(acked)
	if killedEarly {
		fmt.Fprintf(e.stdout, "   Killed it with SIGKILL after %d of %d steps were acknowledged durable by a Flush.\n", ackedSteps, total)
	} else {
		fmt.Fprintf(e.stdout, "   It finished every step before the crash point; killed it with SIGKILL all the same.\n")
	}
	fmt.Fprintf(e.stdout, "   It had made %d Saves with %d PUTs and %d index commits (%.1f Saves per PUT).\n\n",
		last.Saves, last.PUTs, last.IndexCommits, ratio(last.Saves, last.PUTs))

	// Phase 2: resume in a fresh store.
	fmt.Fprintf(e.stdout, "2. A fresh store resumes every unfinished run from its last durable checkpoint.\n")
	s, _, err := openStore(ctx, e, cfg.store, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		return err
	}
	res, err := resume(ctx, s, cfg, acked)
	if err == nil {
		err = s.Flush(ctx)
	}
	st := s.Stats()
	closeStore(ctx, s, &err)
	if err != nil {
		return err
	}
	saveLat = append(saveLat, res.saveLat...)
	fmt.Fprintf(e.stdout, "   %d runs were already finished, %d resumed mid-pipeline, %d started from step 1 (nothing durable); %d steps run.\n",
		res.finished, res.resumed, res.fromScratch, res.steps)
	fmt.Fprintf(e.stdout, "   %d Saves with %d PUTs and %d index commits.\n\n", res.steps, st.PUTs, st.IndexCommits)

	// Phase 3: the index against the objects.
	fmt.Fprintf(e.stdout, "3. Verify compares the index with the objects.\n")
	if err := repairAfterCrash(ctx, e, cfg); err != nil {
		return err
	}

	// Phase 4: verify from a cold store.
	fmt.Fprintf(e.stdout, "4. A cold store checks every run.\n")
	v, _, err := openStore(ctx, e, cfg.store, nil)
	if err != nil {
		return err
	}
	ver, err := verifyDemo(ctx, v, cfg)
	closeStore(ctx, v, &err)
	if err != nil {
		return err
	}
	if len(ver.problems) > 0 {
		for _, p := range ver.problems[:min(len(ver.problems), 10)] {
			fmt.Fprintf(e.stdout, "   FAIL %s\n", p)
		}
		return fmt.Errorf("verification failed: %d problem(s), the first: %s", len(ver.problems), ver.problems[0])
	}
	fmt.Fprintf(e.stdout, "   Verified: all %d runs listed once, each finished every step exactly once, in order, from its last durable step; no acknowledged step was lost.\n\n", cfg.runs)

	saves, puts, commits := last.Saves+int64(res.steps), last.PUTs+st.PUTs, last.IndexCommits+st.IndexCommits
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
	return nil
}

// repairAfterCrash runs Verify and, when the crash cut a flush between
// its PUTs and its index commit, Reindex: a run that was listed and then
// finished in that flush has an object newer than its index entry (Load
// returns the last step, List the time of an earlier one). Runs the index
// did not list were started over by resume, so any other finding —
// unindexed objects included — is a failure.
func repairAfterCrash(ctx context.Context, e *env, cfg *demoConfig) (err error) {
	s, _, err := openStore(ctx, e, cfg.store, nil)
	if err != nil {
		return err
	}
	defer closeStore(ctx, s, &err)
	rep, err := s.Durable().Verify(ctx)
	if err != nil {
		return err
	}
	if n := len(rep.Missing) + len(rep.Corrupt) + len(rep.Strays) + len(rep.Unindexed) + len(rep.Dead); n > 0 || rep.Index != nil {
		return fmt.Errorf("verify found %d missing, %d corrupt, %d stray, %d unlisted and %d dead objects (index: %v)",
			len(rep.Missing), len(rep.Corrupt), len(rep.Strays), len(rep.Unindexed), len(rep.Dead), rep.Index)
	}
	ahead := len(rep.Mismatched)
	if ahead == 0 {
		fmt.Fprintf(e.stdout, "   The index agrees with all %d objects.\n\n", rep.Runs)
		return nil
	}
	if _, err := s.Durable().Reindex(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "   The crash cut a flush between its PUTs and its index commit: %d finished run(s) were listed at an\n"+
		"   earlier step than their objects hold. Reindex brought the index up to date.\n\n", ahead)
	return nil
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

type resumeResult struct {
	finished, resumed, fromScratch, steps int
	saveLat                               []time.Duration
}

// resume finishes every run of the demo from what the store holds, and
// checks that nothing acknowledged was lost.
func resume(ctx context.Context, s *tiered.Store, cfg *demoConfig, acked map[int]int) (*resumeResult, error) {
	// The index says which runs exist: a run it does not list starts over,
	// even if a flush cut before its index commit left an object.
	listed := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(ctx, s, &cairn.ListOptions{WorkflowName: cfg.workflow}) {
		if err != nil {
			return nil, err
		}
		listed[sum.RunID] = true
	}
	var mu sync.Mutex
	r := &resumeResult{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.workers)
	for i := range cfg.runs {
		g.Go(func() error {
			id := cfg.runID(i)
			var c *cairn.Checkpoint
			from := 0
			if listed[id] {
				var err error
				if c, err = s.Load(gctx, id); err != nil {
					return err
				}
				from = int(asInt(c.State["step"]))
				if from < 0 || from > len(demoSteps) {
					return fmt.Errorf("run %v holds no step of this demo: %v", id, c.State["step"])
				}
			}
			if from < acked[i] {
				return fmt.Errorf("run %v: the store holds step %d (listed: %v), but step %d was acknowledged durable", id, from, listed[id], acked[i])
			}
			var lat []time.Duration
			for k := from + 1; k <= len(demoSteps); k++ {
				c = demoStep(c, cfg, id, k, "resume")
				time.Sleep(cfg.work)
				t0 := time.Now()
				if err := s.Save(gctx, c); err != nil {
					return err
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case from == len(demoSteps):
				r.finished++
			case from == 0:
				r.fromScratch++
			default:
				r.resumed++
			}
			r.steps += len(demoSteps) - from
			r.saveLat = append(r.saveLat, lat...)
			return nil
		})
	}
	return r, g.Wait()
}

type verification struct {
	problems        []string
	encoded, stored int64 // bytes of the final checkpoints
	missLat, hitLat []time.Duration
}

// verifyDemo checks the runs of the demo from a cold store: listed once
// each, every step done once and in order, the total each must have.
func verifyDemo(ctx context.Context, s *tiered.Store, cfg *demoConfig) (*verification, error) {
	v := &verification{}
	listed := map[uuid.UUID]int{}
	for sum, err := range cairn.All(ctx, s, &cairn.ListOptions{WorkflowName: cfg.workflow}) {
		if err != nil {
			return nil, err
		}
		listed[sum.RunID]++
	}
	if len(listed) != cfg.runs {
		v.problems = append(v.problems, fmt.Sprintf("List found %d runs of %s, want %d", len(listed), cfg.workflow, cfg.runs))
	}
	want := make([]any, len(demoSteps))
	for k := range want {
		want[k] = int64(k + 1)
	}
	for i := range cfg.runs {
		id := cfg.runID(i)
		if n := listed[id]; n != 1 {
			v.problems = append(v.problems, fmt.Sprintf("run %v listed %d times", id, n))
		}
		var c *cairn.Checkpoint
		for pass := range 2 { // from storage, then from the cache
			t0 := time.Now()
			var err error
			if c, err = s.Load(ctx, id); err != nil {
				return nil, err
			}
			if pass == 0 {
				v.missLat = append(v.missLat, time.Since(t0))
			} else {
				v.hitLat = append(v.hitLat, time.Since(t0))
			}
		}
		rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
		if err != nil {
			return nil, err
		}
		v.encoded += int64(len(rec))
		v.stored += int64(len(cairn.DefaultCodec().Compress(nil, rec)))
		h, _ := c.State["history"].([]any)
		switch {
		case c.State["done"] != true:
			v.problems = append(v.problems, fmt.Sprintf("run %v is not done: at step %v", id, c.State["step"]))
		case !slices.Equal(h, want):
			v.problems = append(v.problems, fmt.Sprintf("run %v ran steps %v, want each of 1..%d once in order", id, h, len(demoSteps)))
		case asInt(c.State["total"]) != expectedTotal(id):
			v.problems = append(v.problems, fmt.Sprintf("run %v: total %v, want %d", id, c.State["total"], expectedTotal(id)))
		}
	}
	return v, nil
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return -1
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// percentiles formats p50, p90 and p99 of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  (%d calls)", round(p(0.5)), round(p(0.9)), round(p(0.99)), len(s))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// where says in words where a store URL keeps its data.
func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return bucket.RedactURL(raw)
	}
	switch u.Scheme {
	case "file":
		return "the directory " + u.Path + " (" + bucket.RedactURL(raw) + ")"
	case "s3":
		at := "AWS S3"
		if ep := u.Query().Get("endpoint"); ep != "" {
			at = bucket.RedactURL(ep)
		}
		return fmt.Sprintf("bucket %s, prefix %q, at %s", u.Host, strings.Trim(u.Path, "/"), at)
	}
	return bucket.RedactURL(raw)
}
