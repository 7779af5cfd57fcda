package claimtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Store is what a worker needs of a store.
type Store interface {
	cairn.Store
	cairn.Claimer
}

// Config configures a worker.
type Config struct {
	Name     string        // the owner of its leases, the worker of its events
	Workflow string        // the runs it works on
	Steps    int           // the steps of every run
	Lease    time.Duration // of every claim; renewed every third of it
	Parallel int           // runs worked on at once
	Work     time.Duration // before each step
	Poll     time.Duration // between listings that find nothing to claim
}

// Submit returns run's first checkpoint, before any step: step 0,
// labelled status=running.
func Submit(workflow string, run uuid.UUID) *cairn.Checkpoint {
	c := &cairn.Checkpoint{WorkflowName: workflow, RunID: run, Timestamp: time.Now(),
		State: map[string]any{"step": int64(0), "history": []any{}}, Metadata: map[string]any{"by": "submit"}}
	c.SetLabel("status", "running")
	return c
}

// after returns the checkpoint after step k of a run of steps, from the
// one before (prev, which it takes over), saved by worker: its history
// gets k, and the last step labels it status=done.
func after(prev *cairn.Checkpoint, k, steps int, worker string) *cairn.Checkpoint {
	state := prev.State
	h, _ := state["history"].([]any)
	state["history"], state["step"] = append(h, int64(k)), int64(k)
	c := &cairn.Checkpoint{WorkflowName: prev.WorkflowName, RunID: prev.RunID, Timestamp: time.Now(), State: state,
		Metadata: map[string]any{"by": worker}}
	status := "running"
	if k == steps {
		status = "done"
	}
	c.SetLabel("status", status)
	return c
}

// StepOf returns the step a checkpoint of these runs holds (-1 for none).
func StepOf(c *cairn.Checkpoint) int64 {
	switch v := c.State["step"].(type) {
	case int64:
		return v
	case uint64:
		return int64(v)
	}
	return -1
}

// Run works on the runs of cfg.Workflow until none is labelled
// status=running, with cfg.Parallel goroutines that each take runs from
// a shared listing of those labelled status=running (next), claim one
// (trying the next on ErrClaimed), run its steps after the one its
// claimed checkpoint holds with SaveLeased, renewing the lease meanwhile,
// and release it. A run taken over meanwhile (ErrConflict) is left to its
// new holder. Every claim, renewal, save and release is recorded in rec.
// It returns the first error that is not a lost race or a takeover.
func Run(ctx context.Context, s Store, rec *Recorder, cfg Config) error {
	w := &worker{s: s, rec: rec, cfg: cfg}
	w.mu.held = map[uuid.UUID]time.Time{}
	g, gctx := errgroup.WithContext(ctx)
	for range max(cfg.Parallel, 1) {
		g.Go(func() error { return w.loop(gctx) })
	}
	return g.Wait()
}

type worker struct {
	s   Store
	rec *Recorder
	cfg Config

	// list is held by the goroutine that lists for all of them (next).
	list sync.Mutex
	mu   struct {
		sync.Mutex
		held     map[uuid.UUID]time.Time // runs found held, until when to leave them
		queue    []uuid.UUID             // listed, not yet handed out
		listedAt time.Time
	}
}

// next returns up to 2 runs to try to claim (none when every run listed
// is held), from a listing shared by the worker's goroutines and used for
// cfg.Poll at most: every listing reads the index head and lists the
// index log, whatever it finds, and one per claim would be most of a
// worker's requests. left is false when no run is labelled status=running
// at all.
func (w *worker) next(ctx context.Context) (runs []uuid.UUID, left bool, err error) {
	w.list.Lock()
	defer w.list.Unlock()
	w.mu.Lock()
	fresh := len(w.mu.queue) > 0 && time.Since(w.mu.listedAt) < w.cfg.Poll
	w.mu.Unlock()
	if !fresh {
		listed, left, err := w.candidates(ctx)
		if err != nil || !left {
			return nil, left, err
		}
		w.mu.Lock()
		w.mu.queue, w.mu.listedAt = listed, time.Now()
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.mu.queue), 2)
	runs, w.mu.queue = w.mu.queue[:n:n], w.mu.queue[n:]
	return runs, true, nil
}

// loop claims and works on runs until none is left status=running.
func (w *worker) loop(ctx context.Context) error {
	for {
		runs, left, err := w.next(ctx)
		if err != nil || !left {
			return err
		}
		l, err := w.claimOne(ctx, runs)
		if err != nil {
			return err
		}
		if l == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(w.cfg.Poll):
			}
			continue
		}
		if err := w.work(ctx, l); err != nil {
			return err
		}
	}
}

// candidates lists up to 32 of the runs labelled status=running that
// nobody saved in the last half lease, leaves out those a claim of this
// worker found held lately, and shuffles them. left is false when no run
// is labelled status=running at all.
//
// List is newest first, and the runs being worked on are the newest (each
// step saves them): leaving out the runs saved lately skips most of them.
// A run whose holder died is listed half a lease after its last save,
// about when its lease runs out. Runs just claimed keep their time until
// their first step: the worker remembers those its claims found held, for
// half a lease, rather than race for them again and again.
func (w *worker) candidates(ctx context.Context) (runs []uuid.UUID, left bool, err error) {
	running := map[string]string{"status": "running"}
	page, err := w.s.List(ctx, &cairn.ListOptions{WorkflowName: w.cfg.Workflow, Labels: running, Limit: 32,
		Until: time.Now().Add(-w.cfg.Lease / 2)})
	if err != nil {
		return nil, false, err
	}
	now := time.Now()
	w.mu.Lock()
	for _, sum := range page.Runs {
		if now.After(w.mu.held[sum.RunID]) {
			delete(w.mu.held, sum.RunID)
			runs = append(runs, sum.RunID)
		}
	}
	w.mu.Unlock()
	if len(page.Runs) > 0 {
		rand.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
		return runs, true, nil
	}
	page, err = w.s.List(ctx, &cairn.ListOptions{WorkflowName: w.cfg.Workflow, Labels: running, Limit: 1})
	if err != nil {
		return nil, false, err
	}
	return nil, len(page.Runs) > 0, nil
}

// claimOne claims the first of runs it can; nil when it could claim none.
func (w *worker) claimOne(ctx context.Context, runs []uuid.UUID) (*cairn.Lease, error) {
	for _, run := range runs {
		end := w.rec.Begin(Event{Op: OpClaim, Run: run})
		l, err := w.s.Claim(ctx, run, &cairn.ClaimOptions{Owner: w.cfg.Name, Lease: w.cfg.Lease})
		switch {
		case err == nil:
			end(ResultOK, nil, l.Epoch, StepOf(l.Checkpoint))
			return l, nil
		case errors.Is(err, cairn.ErrClaimed):
			end(ResultClaimed, err, 0, 0)
			w.mu.Lock()
			w.mu.held[run] = time.Now().Add(w.cfg.Lease / 2)
			w.mu.Unlock()
		case ctx.Err() != nil:
			end(ResultUnknown, err, 0, 0)
			return nil, ctx.Err()
		default:
			end(ResultUnknown, err, 0, 0)
			return nil, fmt.Errorf("%s: claim %v: %w", w.cfg.Name, run, err)
		}
	}
	return nil, nil
}

// work runs l's steps after the one its checkpoint holds and releases it,
// renewing it meanwhile. A takeover ends the work quietly.
func (w *worker) work(ctx context.Context, l *cairn.Lease) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { w.renew(runCtx, l, stop, cancel) })
	lost, err := w.steps(runCtx, l)
	close(stop)
	wg.Wait()
	if cause := context.Cause(runCtx); err == nil && cause != nil && !errors.Is(cause, cairn.ErrConflict) {
		err = cause // the renewal failed, or ctx ended
	}
	if err != nil || lost || runCtx.Err() != nil {
		return err
	}
	_, err = w.leased(ctx, OpRelease, l, 0, func() error { return w.s.Release(ctx, l) })
	return err
}

// steps saves the steps of l's run after the one its checkpoint holds,
// and reports whether the run was taken over meanwhile.
func (w *worker) steps(ctx context.Context, l *cairn.Lease) (lost bool, err error) {
	c := l.Checkpoint
	for k := StepOf(c) + 1; k <= int64(w.cfg.Steps); k++ {
		select {
		case <-ctx.Done():
			return true, nil // the renewal found the lease taken over
		case <-time.After(w.cfg.Work):
		}
		next := after(c, int(k), w.cfg.Steps, w.cfg.Name)
		lost, err := w.leased(ctx, OpSave, l, k, func() error { return w.s.SaveLeased(ctx, l, next) })
		if lost || err != nil {
			return lost, err
		}
		c = next
	}
	return false, nil
}

// renew renews l every third of its duration until stop is closed, and
// cancels the work when the lease was taken over.
func (w *worker) renew(ctx context.Context, l *cairn.Lease, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	t := time.NewTicker(l.Duration / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lost, err := w.leased(ctx, OpRenew, l, 0, func() error { return w.s.Renew(ctx, l) })
		if lost {
			cancel(cairn.ErrConflict)
			return
		}
		if err != nil {
			cancel(err)
			return
		}
	}
}

// leased runs and records f, an operation under l, and reports whether
// it found the lease taken over (ErrConflict). A failure that is neither
// that nor the end of ctx is returned.
func (w *worker) leased(ctx context.Context, op string, l *cairn.Lease, step int64, f func() error) (lost bool, err error) {
	end := w.rec.Begin(Event{Op: op, Run: l.RunID, Epoch: l.Epoch, Step: step})
	err = f()
	switch {
	case err == nil:
		end(ResultOK, nil, 0, 0)
		return false, nil
	case errors.Is(err, cairn.ErrConflict):
		end(ResultConflict, err, 0, 0)
		return true, nil
	case ctx.Err() != nil:
		end(ResultUnknown, err, 0, 0)
		return false, nil
	}
	end(ResultUnknown, err, 0, 0)
	return false, fmt.Errorf("%s: %s %v (epoch %d): %w", w.cfg.Name, op, l.RunID, l.Epoch, err)
}
