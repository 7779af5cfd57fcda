package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// repairAfterCrash runs Verify and, when the crash cut a flush between
// its PUTs and its index commit, Reindex: a run that was listed and then
// finished in that flush has an object newer than its index entry (Load
// returns the last step, List the time of an earlier one). Runs the index
// did not list were started over by resume, so any other finding —
// unindexed objects included — is a failure.
func repairAfterCrash(ctx context.Context, e *env, cfg *demoConfig) (err error) {
	s, err := openStore(ctx, e, cfg.store, false, nil)
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

// resumeResult is the resume workers' reports, combined.
type resumeResult struct {
	workers                                   []*resumeReport
	finished, resumed, fromStart, steps, lost int
	takeovers, replays, done                  int
	from                                      map[int]int // run index → the lowest step a claim resumed from
	saves, puts, commits, encoded, stored     int64
	saveLat                                   []time.Duration
	took                                      time.Duration
}

// combine adds up the resume workers' reports.
func combine(reps []*resumeReport) *resumeResult {
	r := &resumeResult{workers: reps, from: map[int]int{}}
	for _, w := range reps {
		r.steps += w.Steps
		r.lost += w.Lost
		r.takeovers += w.Takeovers
		r.done += w.Done
		r.replays += w.Replays
		r.saves, r.puts, r.commits = r.saves+w.Saves, r.puts+w.PUTs, r.commits+w.Commits
		r.encoded, r.stored = r.encoded+w.Encoded, r.stored+w.Stored
		for _, us := range w.SaveUS {
			r.saveLat = append(r.saveLat, time.Duration(us)*time.Microsecond)
		}
		for i, from := range w.From {
			if old, ok := r.from[i]; !ok || from < old {
				r.from[i] = from
			}
		}
	}
	for _, from := range r.from {
		switch from {
		case len(demoSteps):
			r.finished++
		case 0:
			r.fromStart++
		default:
			r.resumed++
		}
	}
	return r
}

type verification struct {
	problems        []string
	effects         int   // effects the ledger performed
	encoded, stored int64 // bytes of the final checkpoints
	missLat, hitLat []time.Duration
}

func (v *verification) failf(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// verifyDemo checks the runs of the demo from a cold store and the
// ledger: every run listed once and none left status=running; each run
// done, with every step once and in order and the total it must have; and
// in the ledger, every step's effect performed exactly once, under epochs
// that never go back, with the receipt the run's checkpoint kept.
func verifyDemo(ctx context.Context, s *tiered.Store, lg *ledger, cfg *demoConfig) (*verification, error) {
	v := &verification{}
	listed, err := countListed(ctx, s, &cairn.ListOptions{WorkflowName: cfg.workflow})
	if err != nil {
		return nil, err
	}
	if len(listed) != cfg.runs {
		v.failf("List found %d runs of %s, want %d", len(listed), cfg.workflow, cfg.runs)
	}
	running, err := countListed(ctx, s, &cairn.ListOptions{WorkflowName: cfg.workflow, Labels: map[string]string{"status": "running"}})
	if err != nil {
		return nil, err
	}
	if len(running) > 0 {
		v.failf("%d runs are still listed as status=running", len(running))
	}
	effects := lg.all()
	for i := range cfg.runs {
		id := cfg.runID(i)
		if n := listed[id]; n != 1 {
			v.failf("run %v listed %d times", id, n)
		}
		c, err := v.load(ctx, s, id)
		if err != nil {
			return nil, err
		}
		v.checkRun(c)
		v.checkEffects(c, effects[id])
		delete(effects, id)
	}
	for id := range effects {
		v.failf("the ledger holds effects of run %v, which is not a run of the demo", id)
	}
	return v, nil
}

// countListed lists every run o selects and counts how often each comes.
func countListed(ctx context.Context, s cairn.Store, o *cairn.ListOptions) (map[uuid.UUID]int, error) {
	listed := map[uuid.UUID]int{}
	for sum, err := range cairn.All(ctx, s, o) {
		if err != nil {
			return nil, err
		}
		listed[sum.RunID]++
	}
	return listed, nil
}

// load loads run id twice, from storage and then from the cache, timing
// both, and adds up its sizes.
func (v *verification) load(ctx context.Context, s *tiered.Store, id uuid.UUID) (*cairn.Checkpoint, error) {
	var c *cairn.Checkpoint
	for pass := range 2 {
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
	return c, nil
}

// checkRun checks a run's final checkpoint: done and labelled so, every
// step once and in order, the total it must have.
func (v *verification) checkRun(c *cairn.Checkpoint) {
	want := make([]any, len(demoSteps))
	for k := range want {
		want[k] = int64(k + 1)
	}
	h, _ := c.State["history"].([]any)
	labels, _ := c.Labels()
	switch {
	case c.State["done"] != true:
		v.failf("run %v is not done: at step %v", c.RunID, c.State["step"])
	case !slices.Equal(h, want):
		v.failf("run %v ran steps %v, want each of 1..%d once in order", c.RunID, h, len(demoSteps))
	case asInt(c.State["total"]) != expectedTotal(c.RunID):
		v.failf("run %v: total %v, want %d", c.RunID, c.State["total"], expectedTotal(c.RunID))
	case labels["status"] != "done":
		v.failf("run %v is done but labelled %v", c.RunID, labels)
	}
}

// checkEffects checks the ledger of a run against its final checkpoint c:
// each step's effect performed once, of the step's value, under the
// lease's key; epochs that never go back from one step to the next; and
// the receipt c kept for each step is the ledger's.
func (v *verification) checkEffects(c *cairn.Checkpoint, doc *ledgerDoc) {
	if doc == nil {
		v.failf("run %v: no effect of it in the ledger", c.RunID)
		return
	}
	v.effects += len(doc.Steps)
	outputs, _ := c.State["outputs"].(map[string]any)
	var last uint64
	for k := 1; k <= len(demoSteps); k++ {
		var done []effect
		for _, e := range doc.Steps {
			if e.Step == k {
				done = append(done, e)
			}
		}
		if len(done) != 1 {
			v.failf("run %v: the ledger performed step %d %d times, want once", c.RunID, k, len(done))
			continue
		}
		e := done[0]
		out, _ := outputs[demoSteps[k-1]].(map[string]any)
		switch {
		case e.Value != stepValue(c.RunID, k) || e.Key != fmt.Sprintf("%s/%s/%d", c.RunID, demoSteps[k-1], e.Epoch):
			v.failf("run %v: the ledger performed step %d as %+v", c.RunID, k, e)
		case e.Epoch < last || e.Epoch > doc.Epoch:
			v.failf("run %v: step %d performed under epoch %d, after a step under epoch %d (the ledger saw up to %d)", c.RunID, k, e.Epoch, last, doc.Epoch)
		case out["receipt"] != e.Key:
			v.failf("run %v: step %d kept receipt %v, the ledger performed it as %s", c.RunID, k, out["receipt"], e.Key)
		}
		last = max(last, e.Epoch)
	}
	if len(doc.Steps) != len(demoSteps) {
		v.failf("run %v: the ledger performed %d effects, want %d", c.RunID, len(doc.Steps), len(demoSteps))
	}
}
