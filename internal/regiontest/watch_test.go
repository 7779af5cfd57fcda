package regiontest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/claimtest"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// watcher reads, in the other region, the runs that the recorded
// histories acknowledge writes of, until it sees each acknowledged
// write: it measures how long each takes to become visible there.
type watcher struct {
	d     *durable.Store // of the other region
	files []string       // the recorders' of the writers
	every time.Duration

	mu struct {
		sync.Mutex
		seen map[uuid.UUID][]sighting // each run's reads, in order
		err  error
	}
	stop, done chan struct{}
}

// sighting is one read of a run in the other region: when it returned
// and what it found.
type sighting struct {
	at    int64 // Unix nanoseconds, when the read returned
	state loadState
}

// watch starts a watcher of the writes recorded in files, reading with
// d every poll.
func watch(d *durable.Store, poll time.Duration, files ...string) *watcher {
	w := &watcher{d: d, files: files, every: poll, stop: make(chan struct{}), done: make(chan struct{})}
	w.mu.seen = map[uuid.UUID][]sighting{}
	go w.loop()
	return w
}

// halt stops the watcher and returns the first error of its reads.
func (w *watcher) halt() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.err
}

func (w *watcher) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(w.every):
		}
		events := w.events()
		if err := w.round(events); err != nil {
			w.mu.Lock()
			if w.mu.err == nil {
				w.mu.err = err
			}
			w.mu.Unlock()
		}
	}
}

func (w *watcher) events() []claimtest.Event {
	var all []claimtest.Event
	for _, f := range w.files {
		events, _ := claimtest.ReadEvents(f) // missing until its writer starts
		all = append(all, events...)
	}
	return all
}

// round reads every run with an acknowledged write not seen yet.
func (w *watcher) round(events []claimtest.Event) error {
	var pending []uuid.UUID
	w.mu.Lock()
	for run, a := range LastAcked(events, 0) {
		if !visible(a, w.mu.seen[run]) {
			pending = append(pending, run)
		}
	}
	w.mu.Unlock()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for _, run := range pending {
		g.Go(func() error {
			st, err := load(ctx, w.d, run)
			if err != nil {
				return fmt.Errorf("watcher: load %v: %w", run, err)
			}
			at := time.Now().UnixNano()
			w.mu.Lock()
			w.mu.seen[run] = append(w.mu.seen[run], sighting{at: at, state: st})
			w.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// visible reports whether the sightings show a (the state or a later one).
func visible(a Acked, seen []sighting) bool {
	_, ok := visibleAt(a, seen)
	return ok
}

// shows reports whether a read found write a or a later one of the run.
func shows(a Acked, st loadState) bool {
	if a.Deleted {
		return !st.found
	}
	return st.found && (st.epoch > a.Epoch || st.epoch == a.Epoch && st.step >= a.Step)
}

// visibleAt returns when the first read that showed a (or a later state)
// returned, if one did. A read that shows a write counts whenever it
// returned: it cannot show a write not made yet (but for a delete, which
// a read made before the run replicated seems to show).
func visibleAt(a Acked, seen []sighting) (int64, bool) {
	for _, s := range seen {
		if shows(a, s.state) && (!a.Deleted || s.at > a.At) {
			return s.at, true
		}
	}
	return 0, false
}

// lags returns, for every acknowledged write in events, how long after
// its acknowledgement the watcher first saw it (0 when it saw it before
// the acknowledgement returned), and the writes it never saw.
func (w *watcher) lags(events []claimtest.Event) (lags []time.Duration, unseen []claimtest.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := map[uuid.UUID]Acked{}
	for _, e := range sortedByEnd(events) {
		if e.Result != claimtest.ResultOK {
			continue
		}
		a, ok := acked(prev[e.Run], e)
		if !ok {
			continue
		}
		prev[e.Run] = a
		at, ok := visibleAt(a, w.mu.seen[e.Run])
		if !ok {
			unseen = append(unseen, e)
			continue
		}
		lags = append(lags, time.Duration(max(0, at-e.End)))
	}
	return lags, unseen
}

// acked returns the run's acknowledged state after e, given the one
// before; false for events that write nothing (renew, release).
func acked(before Acked, e claimtest.Event) (Acked, bool) {
	one := LastAcked([]claimtest.Event{e}, 0)[e.Run]
	switch e.Op {
	case OpCreate, claimtest.OpClaim, claimtest.OpSave:
		return one, true
	case OpDelete:
		before.Deleted, before.At = true, e.End
		return before, true
	}
	return Acked{}, false
}

// regressions returns the runs whose reads went back to an earlier state
// (a lower epoch or step, or gone without a delete).
func (w *watcher) regressions(deleted map[uuid.UUID]bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for run, seen := range w.mu.seen {
		for i := 1; i < len(seen); i++ {
			p, c := seen[i-1].state, seen[i].state
			if !p.found || deleted[run] {
				continue
			}
			if !c.found || c.epoch < p.epoch || c.epoch == p.epoch && c.step < p.step {
				out = append(out, fmt.Sprintf("%v: read %s, then %s", run, p, c))
			}
		}
	}
	return out
}

// last returns the last sighting of run, and whether there is one.
func (w *watcher) last(run uuid.UUID) (loadState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.mu.seen[run]
	if len(s) == 0 {
		return loadState{}, false
	}
	return s[len(s)-1].state, true
}

// settled waits until every write acknowledged in the histories is seen,
// for at most timeout.
func (w *watcher) settled(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		events := w.events()
		var pending []uuid.UUID
		w.mu.Lock()
		for run, a := range LastAcked(events, 0) {
			if !visible(a, w.mu.seen[run]) {
				pending = append(pending, run)
			}
		}
		w.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d runs with acknowledged writes not seen in the other region after %v, %v among them", len(pending), timeout, pending[0])
		}
		time.Sleep(w.every)
	}
}
