package main

import (
	"context"
	"encoding/json"
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
	p := newPipeline(cfg, s, e.stdout)
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

// pipeline is the worker process's run of the demo: its workers Save
// every step of every run, and its reports say which Saves a Flush made
// durable.
type pipeline struct {
	cfg   *demoConfig
	s     *tiered.Store
	out   *json.Encoder
	total float64 // steps of all runs
	limit int64   // Saves after which the workers stop
	// frozen: a report showed the crash point reached. The workers stop
	// saving and no more reports are made: the demo is about to kill the
	// process.
	frozen atomic.Bool

	mu struct {
		sync.Mutex
		saved map[int]int // run index → last step saved
		lat   []int64     // Save latencies (µs) since the last report
		saves int64
	}
}

func newPipeline(cfg *demoConfig, s *tiered.Store, out io.Writer) *pipeline {
	p := &pipeline{cfg: cfg, s: s, out: json.NewEncoder(out), total: float64(cfg.runs * len(demoSteps))}
	p.limit = int64(min(cfg.crashAt+0.1, 1) * p.total)
	p.mu.saved = map[int]int{}
	return p
}

// report flushes the store and writes a workerReport of what the Flush
// made durable: the steps saved before it began. done marks the last one.
func (p *pipeline) report(ctx context.Context, done bool) error {
	p.mu.Lock()
	acked := maps.Clone(p.mu.saved)
	r := workerReport{Acked: acked, SaveMicros: p.mu.lat, Saves: p.mu.saves, Done: done}
	p.mu.lat = nil
	p.mu.Unlock()
	if err := p.s.Flush(ctx); err != nil {
		return err
	}
	st := p.s.Stats()
	r.PUTs, r.IndexCommits, r.BytesEncoded, r.BytesStored = st.PUTs, st.IndexCommits, st.BytesEncoded, st.BytesStored
	if float64(sum(acked)) >= p.cfg.crashAt*p.total {
		p.frozen.Store(true)
	}
	return p.out.Encode(r)
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

// run runs the steps of run i, saving after each. Past the crash point it
// saves no more and waits for ctx to end (the SIGKILL comes first).
func (p *pipeline) run(ctx context.Context, i int) error {
	id := p.cfg.runID(i)
	var c *cairn.Checkpoint
	for k := 1; k <= len(demoSteps); k++ {
		c = demoStep(c, p.cfg, id, k, "worker")
		time.Sleep(p.cfg.work)
		p.mu.Lock()
		stop := p.mu.saves >= p.limit
		p.mu.Unlock()
		if stop || p.frozen.Load() {
			<-ctx.Done() // past the crash point: wait for the SIGKILL
			return ctx.Err()
		}
		t0 := time.Now()
		if err := p.s.Save(ctx, c); err != nil {
			return err
		}
		d := time.Since(t0)
		p.mu.Lock()
		p.mu.saved[i], p.mu.lat, p.mu.saves = k, append(p.mu.lat, d.Microseconds()), p.mu.saves+1
		p.mu.Unlock()
	}
	return nil
}
