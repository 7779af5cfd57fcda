// Package regiontest checks Cairn in two regions: two MinIO sites that
// replicate one versioned bucket both ways (miniofixture.StartSites), a
// store of region "a" on one and of region "b" on the other, as a user
// would run them with asynchronous cross-region replication.
//
// Its workers (Create, Resume) run the same way in the test process and
// in worker processes (the test binary started again, which a test kills
// with SIGKILL), recording every operation with the claimtest Recorder:
// a start line and an end line, so that a killed process leaves the
// operations it had in flight open.
package regiontest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/internal/claimtest"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Store is what a worker needs of a store: Flush as well, for the
// write-back stores whose acknowledgement is a Flush.
type Store interface {
	cairn.Store
	cairn.Claimer
	Flush(ctx context.Context) error
}

// The operations a worker records besides claimtest's claim, renew,
// release and save.
const (
	OpCreate = "create" // a plain Save of a run's step 0
	OpDelete = "delete"
)

// Config configures a worker.
type Config struct {
	Name     string        // the owner of its leases, the worker of its events
	Region   string        // recorded in every checkpoint it writes
	Workflow string        // of its runs
	Steps    int           // of every run: the last one labels it status=done
	Lease    time.Duration // of every claim; renewed every third of it
	Parallel int           // runs worked on at once
	Work     time.Duration // before each step
	// Flush makes every write a Save, a SaveLeased then a Flush: the
	// acknowledgement of a write-back store. (Claims, Renew and Release
	// need none.)
	Flush bool
}

// Checkpoint returns the checkpoint of run at step k of steps, written
// by worker in region: its state holds the step and every step so far
// (history), so that a resumed run shows which steps it kept; it is
// labelled status=running, and status=done at the last step.
func Checkpoint(workflow string, run uuid.UUID, k, steps int, worker, region string) *cairn.Checkpoint {
	history := make([]any, k)
	for i := range history {
		history[i] = int64(i + 1)
	}
	c := &cairn.Checkpoint{WorkflowName: workflow, RunID: run, Timestamp: time.Now(),
		State:    map[string]any{"step": int64(k), "history": history},
		Metadata: map[string]any{"by": worker, "region": region}}
	status := "running"
	if k >= steps {
		status = "done"
	}
	c.SetLabel("status", status)
	return c
}

// StepOf returns the step a checkpoint of these runs holds, -1 for none.
func StepOf(c *cairn.Checkpoint) int { return int(claimtest.StepOf(c)) }

// Create works until ctx ends (or its process is killed) with
// cfg.Parallel goroutines that each create a run (OpCreate, step 0),
// claim it, save its steps under the lease (renewing it meanwhile),
// release it, and start another. Every operation is recorded in rec. It
// returns ctx's error, or the first failure.
func Create(ctx context.Context, s Store, rec *claimtest.Recorder, cfg Config) error {
	w := &worker{s: s, rec: rec, cfg: cfg}
	g, gctx := errgroup.WithContext(ctx)
	for range max(cfg.Parallel, 1) {
		g.Go(func() error {
			for gctx.Err() == nil {
				if err := w.create(gctx); err != nil {
					return err
				}
			}
			return gctx.Err()
		})
	}
	return g.Wait()
}

// Resume works until no run of cfg.Workflow is labelled status=running,
// with cfg.Parallel goroutines that each list the claimable running runs,
// claim one (trying the next on ErrClaimed, and waiting poll when all are
// held), save the steps after the one its claimed checkpoint holds, and
// release it. A run whose claim finds no checkpoint (ErrNotFound: its
// index entry arrived, its object not yet) is left out from then on.
// Every operation is recorded in rec.
func Resume(ctx context.Context, s Store, rec *claimtest.Recorder, cfg Config, poll time.Duration) error {
	w := &worker{s: s, rec: rec, cfg: cfg}
	w.mu.missing = map[uuid.UUID]bool{}
	g, gctx := errgroup.WithContext(ctx)
	for range max(cfg.Parallel, 1) {
		g.Go(func() error {
			for {
				l, left, err := w.claimListed(gctx)
				switch {
				case err != nil || !left:
					return err
				case l == nil:
					select {
					case <-gctx.Done():
						return gctx.Err()
					case <-time.After(poll):
					}
				default:
					if err := w.work(gctx, l); err != nil {
						return err
					}
				}
			}
		})
	}
	return g.Wait()
}

type worker struct {
	s   Store
	rec *claimtest.Recorder
	cfg Config

	mu struct {
		sync.Mutex
		// missing are the runs listed whose claim found no checkpoint:
		// listed by an index entry whose object has not arrived.
		missing map[uuid.UUID]bool
	}
}

// ResultNotFound is the result of a claim that found no checkpoint.
const ResultNotFound = "notfound"

// create creates a run, claims it and works on it.
func (w *worker) create(ctx context.Context) error {
	run := uuid.New()
	c := Checkpoint(w.cfg.Workflow, run, 0, w.cfg.Steps, w.cfg.Name, w.cfg.Region)
	end := w.rec.Begin(claimtest.Event{Op: OpCreate, Run: run})
	err := w.s.Save(ctx, c)
	if err == nil && w.cfg.Flush {
		err = w.s.Flush(ctx)
	}
	if err != nil {
		end(claimtest.ResultUnknown, err, 0, 0)
		return w.failed(ctx, "create", run, err)
	}
	end(claimtest.ResultOK, nil, 0, 0)
	l, err := w.claim(ctx, run)
	if err != nil || l == nil {
		return err
	}
	return w.work(ctx, l)
}

// claim claims run: nil when another holds it.
func (w *worker) claim(ctx context.Context, run uuid.UUID) (*cairn.Lease, error) {
	end := w.rec.Begin(claimtest.Event{Op: claimtest.OpClaim, Run: run})
	l, err := w.s.Claim(ctx, run, &cairn.ClaimOptions{Owner: w.cfg.Name, Lease: w.cfg.Lease})
	switch {
	case err == nil:
		end(claimtest.ResultOK, nil, l.Epoch, int64(StepOf(l.Checkpoint)))
		return l, nil
	case errors.Is(err, cairn.ErrClaimed):
		end(claimtest.ResultClaimed, err, 0, 0)
		return nil, nil
	case errors.Is(err, cairn.ErrNotFound) && w.mu.missing != nil:
		end(ResultNotFound, err, 0, 0)
		w.mu.Lock()
		w.mu.missing[run] = true
		w.mu.Unlock()
		return nil, nil
	}
	end(claimtest.ResultUnknown, err, 0, 0)
	return nil, w.failed(ctx, "claim", run, err)
}

// claimListed claims one of the claimable runs labelled status=running,
// in random order: nil when every one was held; left is false when no run
// is labelled status=running but those whose claim found no checkpoint.
func (w *worker) claimListed(ctx context.Context) (l *cairn.Lease, left bool, err error) {
	running := map[string]string{"status": "running"}
	w.mu.Lock()
	skip := len(w.mu.missing)
	w.mu.Unlock()
	page, err := w.s.List(ctx, &cairn.ListOptions{WorkflowName: w.cfg.Workflow, Labels: running, Claimable: true, Limit: 16 + skip})
	if err != nil {
		return nil, false, w.failed(ctx, "list", uuid.Nil, err)
	}
	runs := w.present(page.Runs)
	if len(runs) == 0 {
		page, err = w.s.List(ctx, &cairn.ListOptions{WorkflowName: w.cfg.Workflow, Labels: running, Limit: 1 + skip})
		if err != nil {
			return nil, false, w.failed(ctx, "list", uuid.Nil, err)
		}
		return nil, len(w.present(page.Runs)) > 0, nil
	}
	for _, i := range rand.Perm(len(runs)) {
		l, err := w.claim(ctx, runs[i])
		if err != nil || l != nil {
			return l, true, err
		}
	}
	return nil, true, nil
}

// present returns the runs of listed but those whose claim found no
// checkpoint.
func (w *worker) present(listed []cairn.Summary) []uuid.UUID {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []uuid.UUID
	for _, sum := range listed {
		if !w.mu.missing[sum.RunID] {
			out = append(out, sum.RunID)
		}
	}
	return out
}

// work saves l's steps after the one its checkpoint holds and releases
// it, renewing it meanwhile. A takeover ends the work quietly.
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
	_, err = w.leased(ctx, claimtest.OpRelease, l, 0, func() error { return w.s.Release(ctx, l) })
	return err
}

// steps saves the steps of l's run after the one its checkpoint holds,
// and reports whether the run was taken over meanwhile.
func (w *worker) steps(ctx context.Context, l *cairn.Lease) (lost bool, err error) {
	for k := StepOf(l.Checkpoint) + 1; k <= w.cfg.Steps; k++ {
		select {
		case <-ctx.Done():
			return true, nil // the renewal found the lease taken over
		case <-time.After(w.cfg.Work):
		}
		c := Checkpoint(w.cfg.Workflow, l.RunID, k, w.cfg.Steps, w.cfg.Name, w.cfg.Region)
		lost, err := w.leased(ctx, claimtest.OpSave, l, int64(k), func() error {
			err := w.s.SaveLeased(ctx, l, c)
			if err == nil && w.cfg.Flush {
				err = w.s.Flush(ctx)
			}
			return err
		})
		if lost || err != nil {
			return lost, err
		}
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
		lost, err := w.leased(ctx, claimtest.OpRenew, l, 0, func() error { return w.s.Renew(ctx, l) })
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
// it found the lease taken over (ErrConflict).
func (w *worker) leased(ctx context.Context, op string, l *cairn.Lease, step int64, f func() error) (lost bool, err error) {
	end := w.rec.Begin(claimtest.Event{Op: op, Run: l.RunID, Epoch: l.Epoch, Step: step})
	err = f()
	switch {
	case err == nil:
		end(claimtest.ResultOK, nil, 0, 0)
		return false, nil
	case errors.Is(err, cairn.ErrConflict):
		end(claimtest.ResultConflict, err, 0, 0)
		return true, nil
	}
	end(claimtest.ResultUnknown, err, 0, 0)
	return false, w.failed(ctx, op, l.RunID, err)
}

// failed returns err as a worker's failure, or ctx's error when ctx ended.
func (w *worker) failed(ctx context.Context, op string, run uuid.UUID, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %s %v: %w", w.cfg.Name, op, run, err)
}

// Acked is a run's last acknowledged write in a history: its step and
// epoch (0 before a claim), when it ended, and whether it was a delete.
type Acked struct {
	Step    int
	Epoch   uint64
	At      int64 // Unix nanoseconds
	Deleted bool
	Worker  string
}

// LastAcked returns, for each run of events, its last acknowledged write
// that ended before until (Unix nanoseconds; 0 means no bound): a
// create, a claim (which rewrites the run), a save or a delete.
func LastAcked(events []claimtest.Event, until int64) map[uuid.UUID]Acked {
	out := map[uuid.UUID]Acked{}
	for _, e := range sortedByEnd(events) {
		if e.Result != claimtest.ResultOK || until != 0 && e.End >= until {
			continue
		}
		a := out[e.Run]
		switch e.Op {
		case OpCreate:
			a = Acked{Step: 0}
		case claimtest.OpClaim:
			a = Acked{Step: int(e.Step), Epoch: e.Epoch}
		case claimtest.OpSave:
			a = Acked{Step: int(e.Step), Epoch: e.Epoch}
		case OpDelete:
			a = Acked{Step: a.Step, Epoch: a.Epoch, Deleted: true}
		default:
			continue
		}
		a.At, a.Worker = e.End, e.Worker
		out[e.Run] = a
	}
	return out
}

// sortedByEnd returns the events that ended, in the order they ended.
func sortedByEnd(events []claimtest.Event) []claimtest.Event {
	var out []claimtest.Event
	for _, e := range events {
		if e.End != 0 {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b claimtest.Event) int { return cmp.Compare(a.End, b.End) })
	return out
}
