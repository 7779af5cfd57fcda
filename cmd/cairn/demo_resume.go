package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// resumeReport is what a resume worker process writes on stdout when it
// is done: one JSON line.
type resumeReport struct {
	Name      string      `json:"name"`
	Resumed   int         `json:"resumed"`   // runs it claimed and brought to their end
	Takeovers int         `json:"takeovers"` // of them, runs an earlier holder had claimed and not finished
	Done      int         `json:"done"`      // claims that found the run already done (the listing is only a hint)
	Steps     int         `json:"steps"`     // steps it ran
	Replays   int         `json:"replays"`   // effects the ledger had performed before (asked again)
	Lost      int         `json:"lost"`      // runs taken over from it
	Renewals  int         `json:"renewals"`
	Conflicts int         `json:"conflicts"` // claims lost to another worker (ErrClaimed)
	From      map[int]int `json:"from"`      // run index → the lowest step a claim of it resumed from
	Saves     int64       `json:"saves"`
	PUTs      int64       `json:"puts"`
	Commits   int64       `json:"index_commits"`
	Encoded   int64       `json:"bytes_encoded"`
	Stored    int64       `json:"bytes_stored"`
	SaveUS    []int64     `json:"save_us"`
}

// resumeWorker is a resume worker process: it resumes runs of the demo
// until none is left status=running, and writes its resumeReport.
func resumeWorker(ctx context.Context, e *env, cfg *demoConfig, name string) (err error) {
	s, err := openStore(ctx, e, cfg.store, false, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		return err
	}
	defer closeStore(ctx, s, &err)
	lg, err := ledgerFromEnv(e.getenv)
	if err != nil {
		return err
	}
	r, err := newResumer(cfg, s, lg, name).resume(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(r)
}

// resumer is one resume worker: a pool of goroutines (its share of
// cfg.workers) that list the runs labelled status=running that no live
// lease holds, claim one, resume it from the claim's checkpoint and
// release it once its last step is durable.
type resumer struct {
	cfg   *demoConfig
	s     *tiered.Store
	step  *stepper
	index map[uuid.UUID]int // run ID → run index
	poll  time.Duration     // between listings that find nothing claimable
	stall time.Duration     // giving up after finding nothing claimable this long

	mu struct {
		sync.Mutex
		r resumeReport
	}
}

func newResumer(cfg *demoConfig, s *tiered.Store, lg effects, name string) *resumer {
	r := &resumer{cfg: cfg, s: s, step: &stepper{cfg: cfg, s: s, ledger: lg, name: name}, index: map[uuid.UUID]int{},
		poll: min(max(cfg.lease/20, 20*time.Millisecond), 200*time.Millisecond), stall: 5*cfg.lease + 10*time.Second}
	for i := range cfg.runs {
		r.index[cfg.runID(i)] = i
	}
	r.mu.r = resumeReport{Name: name, From: map[int]int{}}
	return r
}

// resume runs the pool until no run of the demo is left status=running,
// flushes, and returns the report. One more goroutine releases the runs
// the pool finished, one after the other: the Release of a run flushes
// whatever is dirty, so the runs finished meanwhile need no flush of
// their own.
func (r *resumer) resume(ctx context.Context) (*resumeReport, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	finished := make(chan finishedRun, 64)
	released := make(chan struct{})
	go func() {
		defer close(released)
		r.releaseAll(ctx, finished, cancel)
	}()
	g, gctx := errgroup.WithContext(ctx)
	for range max(1, r.cfg.workers/r.cfg.resumers) {
		g.Go(func() error { return r.loop(gctx, finished) })
	}
	err := g.Wait()
	close(finished)
	<-released
	if cause := context.Cause(ctx); cause != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = cause
	}
	if err == nil {
		// A background flush may have found a run taken over from a
		// worker of this process that ran past its lease: that is a
		// lost lease, not a failure.
		if err = r.s.Flush(ctx); onlyLostLeases(err) {
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	st := r.s.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.mu.r
	rep.PUTs, rep.Commits, rep.Encoded, rep.Stored = st.PUTs, st.IndexCommits, st.BytesEncoded, st.BytesStored
	return &rep, nil
}

// loop claims and resumes runs until none is left status=running, and
// hands the runs it finished to the releaser. A stretch of r.stall in
// which runs are running but none can be claimed (a holder renewing
// without finishing) is an error.
func (r *resumer) loop(ctx context.Context, finished chan<- finishedRun) error {
	idle := time.Now()
	for {
		runs, left, err := r.candidates(ctx)
		if err != nil || !left {
			return err
		}
		l, err := r.claimOne(ctx, runs)
		if err != nil {
			return err
		}
		if l == nil {
			if time.Since(idle) > r.stall {
				return fmt.Errorf("runs of %s are still status=running, and none could be claimed for %v", r.cfg.workflow, r.stall)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.poll):
			}
			continue
		}
		idle = time.Now()
		f, err := r.finish(ctx, l)
		if err != nil {
			return err
		}
		select {
		case finished <- f:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// claimOne claims the first of runs that it can, trying 2 at most (the
// listing ages), and returns nil when another worker holds them (or they
// are gone). The listing is only a hint: the claim is what gives the run,
// and the claimed checkpoint, not the listing, says where it stands.
func (r *resumer) claimOne(ctx context.Context, runs []uuid.UUID) (*cairn.Lease, error) {
	for _, run := range runs[:min(len(runs), 2)] {
		l, err := r.s.Claim(ctx, run, &cairn.ClaimOptions{Owner: r.step.name, Lease: r.cfg.lease})
		switch {
		case errors.Is(err, cairn.ErrClaimed):
			r.count(func(rep *resumeReport) { rep.Conflicts++ })
		case errors.Is(err, cairn.ErrNotFound): // deleted since the listing
		default:
			return l, err
		}
	}
	return nil, nil
}

// candidates lists up to 8 of the runs labelled status=running that no
// live lease holds and that nobody saved in the last half lease, shuffled
// so that the workers rarely race for the same. left is false when no run
// of the demo is labelled status=running at all: the resume is over.
//
// List is newest first, and the runs being worked on are the newest (each
// flush of their steps moves them up): leaving out the runs saved lately
// spares the claimable listing reading the claims of all of them before it
// reaches a run it can list. A run whose holder died is listed half a
// lease after its last durable save, about when its lease runs out.
func (r *resumer) candidates(ctx context.Context) (runs []uuid.UUID, left bool, err error) {
	running := map[string]string{"status": "running"}
	page, err := r.s.List(ctx, &cairn.ListOptions{WorkflowName: r.cfg.workflow, Labels: running, Claimable: true, Limit: 8,
		Until: time.Now().Add(-r.cfg.lease / 2)})
	if err != nil {
		return nil, false, err
	}
	if len(page.Runs) > 0 {
		for _, sum := range page.Runs {
			runs = append(runs, sum.RunID)
		}
		rand.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
		return runs, true, nil
	}
	page, err = r.s.List(ctx, &cairn.ListOptions{WorkflowName: r.cfg.workflow, Labels: running, Limit: 1})
	if err != nil {
		return nil, false, err
	}
	return nil, len(page.Runs) > 0, nil
}

// finishedRun is a run a worker brought to its end (or lost), for the
// releaser, with the keeper that holds its lease until then.
type finishedRun struct {
	l *cairn.Lease
	k *keeper
	i int // run index
	w *worked
}

// finish resumes the claimed run from l's checkpoint to its end, holding
// l. A run taken over meanwhile is left to its new holder.
func (r *resumer) finish(ctx context.Context, l *cairn.Lease) (finishedRun, error) {
	i, ok := r.index[l.RunID]
	if !ok {
		return finishedRun{}, fmt.Errorf("claimed run %v, which is not a run of the demo", l.RunID)
	}
	runCtx, k := hold(ctx, r.s, l)
	w, err := r.step.work(runCtx, l, i, nil)
	if err != nil {
		k.end()
	}
	return finishedRun{l: l, k: k, i: i, w: w}, err
}

// releaseAll releases the finished runs as they come (a tiered Release
// flushes the run first; a lease found taken over then counts as lost)
// and counts them. Its first other failure cancels the workers with that
// cause; it drains finished all the same.
func (r *resumer) releaseAll(ctx context.Context, finished <-chan finishedRun, cancel context.CancelCauseFunc) {
	failed := false
	for f := range finished {
		if failed {
			f.k.end()
			continue
		}
		renewals := f.k.end() // no Renew may race the Release: both replace the claim
		var err error
		if !f.w.lost {
			err = r.s.Release(ctx, f.l)
		}
		if err != nil && !lostLease(err) {
			failed = true
			cancel(err)
			continue
		}
		f.w.lost = f.w.lost || err != nil
		r.count(func(rep *resumeReport) {
			rep.Renewals += renewals
			rep.add(f.l, f.i, f.w)
		})
	}
}

// add counts w, the work on run i under l.
func (rep *resumeReport) add(l *cairn.Lease, i int, w *worked) {
	if from, ok := rep.From[i]; !ok || w.from < from {
		rep.From[i] = w.from
	}
	rep.Replays += w.replays
	rep.Saves += int64(w.steps)
	for _, d := range w.saveLat {
		rep.SaveUS = append(rep.SaveUS, d.Microseconds())
	}
	switch {
	case w.lost:
		rep.Lost++
	case w.from == len(demoSteps):
		rep.Done++
	default:
		rep.Resumed++
		rep.Steps += w.steps
		if l.Epoch > 1 { // an earlier claim of the run did not finish it
			rep.Takeovers++
		}
	}
}

func (r *resumer) count(f func(*resumeReport)) {
	r.mu.Lock()
	f(&r.mu.r)
	r.mu.Unlock()
}
