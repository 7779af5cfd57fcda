package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"golang.org/x/sync/errgroup"
)

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

// demoWorker is the process that gets killed. It submits every run of
// the demo (a checkpoint labelled status=running, before any step) and
// flushes; then its workers claim the runs one by one with cfg.lease
// leases, renewed while they work, and run every step: the effect through
// the ledger, then SaveLeased in write-back mode. It flushes every 50 ms,
// reports on stdout what each Flush made durable, and then releases the
// leases of the runs that Flush finished. Its workers stop a tenth of the
// steps past the crash point, or once a report shows the crash point
// reached, each holding a step whose effect is performed and whose
// checkpoint is not saved; the Saves made since the last Flush began may
// still be unflushed then. It never closes the store: it waits to be
// killed, its leases live until then.
func demoWorker(ctx context.Context, e *env, cfg *demoConfig) error {
	s, err := openStore(ctx, e, cfg.store, false, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		return err
	}
	lg, err := ledgerFromEnv(e.getenv)
	if err != nil {
		return err
	}
	p := newPipeline(cfg, s, lg, e.stdout)
	if err := p.submit(ctx); err != nil {
		return err
	}
	// A failed flush ends the workers too (those past the crash point wait
	// on gctx), so that the worker exits with the flush's error.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	p.start(gctx, g)
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		err := p.reportEvery(ctx, 50*time.Millisecond, stop)
		flushed <- err
		if err != nil {
			cancel()
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
	if err := p.report(ctx, true); err != nil {
		return err
	}
	<-ctx.Done() // the demo kills this process; it does not Close
	return ctx.Err()
}

// crashOwner is the owner name of the killed worker's leases and effects.
const crashOwner = "killed"

// pipeline is the worker process's run of the demo: its workers claim
// and run every run, and its reports say which Saves a Flush made
// durable.
type pipeline struct {
	cfg   *demoConfig
	s     *tiered.Store
	step  *stepper
	out   *json.Encoder
	total float64 // steps of all runs
	limit int64   // Saves after which the workers stop
	// frozen: a report showed the crash point reached. The workers stop
	// saving and no more reports are made: the demo is about to kill the
	// process.
	frozen atomic.Bool

	mu struct {
		sync.Mutex
		saved    map[int]int // run index → last step saved
		lat      []int64     // Save latencies (µs) since the last report
		saves    int64       // SaveLeased calls
		finished []heldRun   // runs whose last step is saved, to release
	}
}

func newPipeline(cfg *demoConfig, s *tiered.Store, lg effects, out io.Writer) *pipeline {
	p := &pipeline{cfg: cfg, s: s, out: json.NewEncoder(out), total: float64(cfg.runs * len(demoSteps)),
		step: &stepper{cfg: cfg, s: s, ledger: lg, name: crashOwner}}
	p.limit = int64(min(cfg.crashAt+0.1, 1) * p.total)
	p.mu.saved = map[int]int{}
	return p
}

// submit saves every run's first checkpoint (status=running) and flushes:
// from then on every run is listed and can be claimed.
func (p *pipeline) submit(ctx context.Context) error {
	for i := range p.cfg.runs {
		if err := p.s.Save(ctx, demoSubmit(p.cfg, p.cfg.runID(i))); err != nil {
			return err
		}
	}
	return p.s.Flush(ctx)
}

// report flushes the store and writes a workerReport of what the Flush
// made durable: the steps saved before it began. It then releases the
// leases of the runs whose last step that Flush wrote. done marks the last
// report.
func (p *pipeline) report(ctx context.Context, done bool) error {
	p.mu.Lock()
	acked := maps.Clone(p.mu.saved)
	r := workerReport{Acked: acked, SaveMicros: p.mu.lat, Saves: p.mu.saves + int64(p.cfg.runs), Done: done}
	finished := p.mu.finished
	p.mu.lat, p.mu.finished = nil, nil
	p.mu.Unlock()
	if err := p.s.Flush(ctx); err != nil {
		return err
	}
	st := p.s.Stats()
	r.PUTs, r.IndexCommits, r.BytesEncoded, r.BytesStored = st.PUTs, st.IndexCommits, st.BytesEncoded, st.BytesStored
	if float64(sum(acked)) >= p.cfg.crashAt*p.total {
		p.frozen.Store(true)
	}
	if err := p.out.Encode(r); err != nil {
		return err
	}
	for _, h := range finished {
		h.k.end() // no Renew may race the Release: both replace the claim
		if err := p.s.Release(ctx, h.l); err != nil {
			return err
		}
	}
	return nil
}

// heldRun is a run the worker finished, and the keeper that holds its
// lease until it is released.
type heldRun struct {
	l *cairn.Lease
	k *keeper
}

// reportEvery reports every period until stop is closed, and returns the
// error of the first report that fails.
func (p *pipeline) reportEvery(ctx context.Context, period time.Duration, stop <-chan struct{}) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-t.C:
			if p.frozen.Load() {
				continue // reported; the demo is about to kill this process
			}
			if err := p.report(ctx, false); err != nil {
				return err
			}
		}
	}
}

// start runs the pipeline in g: one goroutine hands out the runs in
// order, cfg.workers goroutines run them.
func (p *pipeline) start(gctx context.Context, g *errgroup.Group) {
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for i := range p.cfg.runs {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range p.cfg.workers {
		g.Go(func() error {
			for i := range next {
				if err := p.run(gctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// run claims run i and runs its steps. Past the crash point it saves no
// more and waits for ctx to end (the SIGKILL comes first).
func (p *pipeline) run(ctx context.Context, i int) error {
	l, err := p.s.Claim(ctx, p.cfg.runID(i), &cairn.ClaimOptions{Owner: crashOwner, Lease: p.cfg.lease})
	if err != nil {
		return err
	}
	runCtx, k := hold(ctx, p.s, l)
	w, err := p.step.work(runCtx, l, i, &stepHooks{proceed: p.proceed, saved: p.saved})
	switch {
	case err != nil:
		k.end()
		return err
	case w.lost:
		k.end()
		return fmt.Errorf("run %v: the lease was taken over, and nobody else works on this demo's runs yet", l.RunID)
	}
	p.mu.Lock()
	p.mu.finished = append(p.mu.finished, heldRun{l: l, k: k})
	p.mu.Unlock()
	return nil
}

// proceed is false past the crash point.
func (p *pipeline) proceed(int, int) bool {
	p.mu.Lock()
	stop := p.mu.saves >= p.limit
	p.mu.Unlock()
	return !stop && !p.frozen.Load()
}

// saved records a SaveLeased.
func (p *pipeline) saved(i, k int, d time.Duration) {
	p.mu.Lock()
	p.mu.saved[i], p.mu.lat, p.mu.saves = k, append(p.mu.lat, d.Microseconds()), p.mu.saves+1
	p.mu.Unlock()
}
