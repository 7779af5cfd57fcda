package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// stepper works on claimed runs for one worker: the steps after the one
// the claim's checkpoint holds, each one's effect through the ledger
// before its SaveLeased, with the lease renewed in the background.
type stepper struct {
	cfg    *demoConfig
	s      *tiered.Store
	ledger effects
	name   string // the worker's: its leases' owner, its effects' "by"
}

// stepHooks let the killed worker watch and stop its steps. Either may be
// nil.
type stepHooks struct {
	// proceed is asked after the effect of step k of run i, before its
	// Save: false holds the step there (effect performed, checkpoint not
	// saved) until ctx ends.
	proceed func(i, k int) bool
	// saved is told of each SaveLeased and how long it took.
	saved func(i, k int, d time.Duration)
}

// worked is what work did with a run.
type worked struct {
	from    int  // the step the claim's checkpoint held
	steps   int  // steps run after it
	replays int  // effects the ledger had performed before (asked again)
	lost    bool // the run was taken over (or the ledger refused the epoch)
	saveLat []time.Duration
}

// work runs the steps of l's run (run i of the demo) after the one its
// checkpoint holds. It does not release l; the caller renews it (hold)
// with ctx from hold. A takeover noticed on the way — by the ledger, a
// SaveLeased or a Renew — ends it with lost set and a nil error.
func (w *stepper) work(ctx context.Context, l *cairn.Lease, i int, h *stepHooks) (*worked, error) {
	c := l.Checkpoint
	r := &worked{from: int(asInt(c.State["step"]))}
	if r.from < 0 || r.from > len(demoSteps) {
		return nil, fmt.Errorf("run %v holds no step of this demo: %v", l.RunID, c.State["step"])
	}
	err := w.steps(ctx, l, i, c, r, h)
	if lostLease(err) || lostLease(context.Cause(ctx)) {
		r.lost = true
		return r, nil
	}
	return r, err
}

// steps is work's loop.
func (w *stepper) steps(ctx context.Context, l *cairn.Lease, i int, c *cairn.Checkpoint, r *worked, h *stepHooks) error {
	for k := r.from + 1; k <= len(demoSteps); k++ {
		rc, err := w.ledger.perform(ctx, l, w.name, k, stepValue(l.RunID, k))
		if err != nil {
			return err
		}
		if rc.Replay {
			r.replays++
		}
		c = demoStep(c, w.cfg, l.RunID, k, w.name, rc.Key)
		time.Sleep(w.cfg.work)
		if h != nil && h.proceed != nil && !h.proceed(i, k) {
			<-ctx.Done() // the crash point: effect done, checkpoint not saved
			return ctx.Err()
		}
		t0 := time.Now()
		if err := w.s.SaveLeased(ctx, l, c); err != nil {
			return err
		}
		d := time.Since(t0)
		r.steps++
		r.saveLat = append(r.saveLat, d)
		if h != nil && h.saved != nil {
			h.saved(i, k, d)
		}
	}
	return nil
}

// lostLease reports whether err says that the lease was taken over.
func lostLease(err error) bool {
	return errors.Is(err, cairn.ErrConflict) || errors.Is(err, errStaleEpoch)
}

// onlyLostLeases reports whether every error a Flush's err joins is a
// lost lease (the run was taken over by a resumer whose claim came after
// this worker's lease ran out; the new owner replays what this worker
// could not write, and the ledger keeps its effects once).
func onlyLostLeases(err error) bool {
	var e *cairn.Error
	for errors.As(err, &e) && e.RunID == uuid.Nil {
		err = e.Err // the Flush's own wrapper
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, x := range j.Unwrap() {
			if x != nil && !onlyLostLeases(x) {
				return false
			}
		}
		return true
	}
	return lostLease(err)
}

// keeper renews a lease in the background.
type keeper struct {
	stop     chan struct{}
	done     chan struct{}
	cancel   context.CancelCauseFunc
	renewals int // read after done
}

// hold renews l every third of its duration until end is called, and
// returns a context, under ctx, for the work done under l: a Renew that
// finds the lease taken over (ErrConflict) cancels it with that cause.
// Other failures are tried again at the next tick: the lease's fencing,
// not its renewal, keeps the run safe. Nothing else may touch l.Expires
// meanwhile. Hold a lease until it is released, not just while working
// (a lease left to run out before its Release is taken over), and end
// the keeper just before the Release: a Renew racing the Release can make
// it fail.
func hold(ctx context.Context, c cairn.Claimer, l *cairn.Lease) (context.Context, *keeper) {
	runCtx, cancel := context.WithCancelCause(ctx)
	k := &keeper{stop: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(k.done)
		t := time.NewTicker(l.Duration / 3)
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			err := c.Renew(runCtx, l)
			if err == nil {
				k.renewals++
			} else if errors.Is(err, cairn.ErrConflict) {
				cancel(err)
				return
			}
		}
	}()
	return runCtx, k
}

// end stops the renewals, ends the context hold returned, and returns how
// many renewals were made.
func (k *keeper) end() int {
	close(k.stop)
	<-k.done
	k.cancel(nil)
	return k.renewals
}
