package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

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
