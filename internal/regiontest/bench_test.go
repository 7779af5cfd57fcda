package regiontest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// The RPO/RTO benchmark's settings.
const (
	benchRuns   = 1000
	benchSteady = 15 * time.Second // of Saves before the cut
	benchLease  = cairn.DefaultLease
	benchPool   = 32 // b's resumers, and a's writers in write-through mode
)

// BenchmarkRegions measures, on two MinIO sites that replicate one bucket
// both ways, what a failover of region a to region b loses and how long
// it takes. Region a saves rate checkpoints a second across benchRuns
// runs (round robin, labelled status=running) for benchSteady; then the
// link is cut. The rates are CAIRN_BENCH_RATES' (Saves a second,
// comma-separated), 100 by default: what the two sites sustain on a busy
// 2-core machine, where each site takes about 140 PUTs a second and
// replicates each one (at 300 a second the write-back store falls behind:
// most Saves are not yet acknowledged at the cut). Reported:
//
//   - rpo_saves: Saves acknowledged in a before the cut ended
//     (write-through: Save returned; write-back: a Flush begun after the
//     Save returned), whose state b did not have (b's Load, after the
//     cut, returns an older step of the run); rpo_s: the same as seconds
//     of a's writes (rpo_saves / the Save rate); rpo_window_s: how long
//     before the cut ended the oldest of them was acknowledged;
//   - unacked_at_cut: Saves that had returned but were not acknowledged
//     yet (write-back: still in a's cache);
//   - rto_s: the wall time for b to list the runs (by label, a page of
//     200 at a time), claim each and save it once (write-through);
//   - lag_p50_ms, lag_max_ms: replication visibility lag during the
//     steady phase, sampled: from a Save's acknowledgement to the first
//     Load in b (every 5 ms) that returns it.
//
// Write-back flushes with the default window (100 ms) and Flush is called
// every window for the acknowledgements; the sites run with
// MINIO_SCANNER_SPEED=fastest (miniofixture.StartSites).
//
//	go test -run '^$' -bench Regions -benchtime 1x -timeout 30m ./internal/regiontest/
func BenchmarkRegions(b *testing.B) {
	ctx := context.Background()
	r := newRig(ctx, b)
	for _, rate := range benchRates(b) {
		for _, sc := range []struct {
			mode      string
			writeBack bool
		}{{"write-back", true}, {"write-through", false}} {
			b.Run(fmt.Sprintf("%s/rate=%d", sc.mode, rate), func(b *testing.B) { benchFailover(b, r, sc.mode, sc.writeBack, rate) })
		}
	}
}

// benchRates returns the Save rates of CAIRN_BENCH_RATES (Saves a second,
// comma-separated), 100 by default.
func benchRates(b *testing.B) []int {
	v := os.Getenv("CAIRN_BENCH_RATES")
	if v == "" {
		return []int{100}
	}
	var rates []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("CAIRN_BENCH_RATES=%q: want Saves a second, comma-separated", v)
		}
		rates = append(rates, n)
	}
	return rates
}

// benchFailover runs b.N failovers (one: each takes a minute) and reports
// the last one's numbers.
func benchFailover(b *testing.B, r *rig, mode string, writeBack bool, rate int) {
	var res failoverResult
	for i := range b.N {
		res = runFailover(b, r, fmt.Sprintf("bench-%s-%d-%d", mode, rate, i), writeBack, rate)
	}
	b.ReportMetric(float64(res.rpoSaves), "rpo_saves")
	b.ReportMetric(float64(res.rpoSaves)/res.rate, "rpo_s")
	b.ReportMetric(res.rpoWindow.Seconds(), "rpo_window_s")
	b.ReportMetric(float64(res.unacked), "unacked_at_cut")
	b.ReportMetric(res.rto.Seconds(), "rto_s")
	b.ReportMetric(float64(percentile(res.lags, 0.5).Microseconds())/1000, "lag_p50_ms")
	b.ReportMetric(float64(percentile(res.lags, 1).Microseconds())/1000, "lag_max_ms")
	b.ReportMetric(res.rate, "saves/s")
	b.ReportMetric(0, "ns/op") // one failover per op, a minute long: ns/op says nothing
}

type failoverResult struct {
	rate     float64 // Saves a second achieved
	rpoSaves int
	// rpoWindow is how long before the cut the oldest acknowledged Save
	// b lacked was acknowledged.
	rpoWindow time.Duration
	// rpoBeforeCut are the Saves of rpoSaves acknowledged before Cut
	// began.
	rpoBeforeCut int
	unacked      int
	rto          time.Duration
	lags         []time.Duration
}

// saveRec is one Save in region a.
type saveRec struct {
	run       int
	step      int
	returned  time.Time
	acked     time.Time // zero until acknowledged
	ackedNano atomic.Int64
}

// openBench opens site i's store at prefix with a connection pool large
// enough for its parallel requests, checksums only where S3 needs them.
func openBench(b *testing.B, r *rig, i int, prefix string, writeBack bool) *tiered.Store {
	srv := r.sites.Site[i]
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Concurrency: 2 * benchPool, ChecksumWhenRequired: true})
	if err != nil {
		b.Fatal(err)
	}
	o := &tiered.Options{Durable: durable.Options{Prefix: prefix, Region: regionOf[i]}}
	if writeBack {
		o.Mode = tiered.WriteBack
	}
	s, err := tiered.New(s3store.NewS3(client, r.sites.Bucket), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// runFailover runs one failover of a to b at prefix and measures it.
func runFailover(b *testing.B, r *rig, prefix string, writeBack bool, rate int) failoverResult {
	ctx := context.Background()
	must(b, r.sites.Heal(ctx))
	a, bs := openBench(b, r, siteA, prefix, writeBack), openBench(b, r, siteB, prefix, false)
	runs := make([]uuid.UUID, benchRuns)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(benchPool)
	for i := range runs {
		runs[i] = uuid.New()
		g.Go(func() error { return a.Save(gctx, Checkpoint("bench", runs[i], 0, 1000, "a", "a")) })
	}
	must(b, g.Wait())
	must(b, a.Flush(ctx))
	must(b, r.sites.WaitConverged(ctx, prefix+"/", 2*time.Minute))
	st0, ix0 := a.Stats(), a.Durable().Stats().Index
	b.ResetTimer()

	w := &benchWriter{s: a, runs: runs, writeBack: writeBack, rate: rate}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.run(wctx) }()
	lags := sampleLags(wctx, w, bs.Durable(), runs)

	time.Sleep(benchSteady)
	// The link goes down somewhere inside Cut (a Docker network
	// disconnect of each site): a Save acknowledged before Cut returned
	// counts as before the cut, so that the RPO is an upper bound.
	cutStart := time.Now()
	must(b, r.sites.Cut(ctx))
	cutAt := time.Now()
	stop()
	if err := <-done; err != nil {
		b.Fatalf("region a's writer: %v", err)
	}
	res := failoverResult{lags: <-lags}
	recs := w.records()
	st, ix := a.Stats(), a.Durable().Stats().Index
	res.rate = float64(len(recs)) / cutAt.Sub(start).Seconds()

	inB := loadSteps(b, bs.Durable(), runs)
	for _, rec := range recs {
		switch {
		case rec.returned.After(cutAt):
		case rec.acked.IsZero() || rec.acked.After(cutAt):
			res.unacked++
		case rec.step > inB[rec.run]:
			res.rpoSaves++
			res.rpoWindow = max(res.rpoWindow, cutAt.Sub(rec.acked))
			if rec.acked.Before(cutStart) {
				res.rpoBeforeCut++
			}
		}
	}
	res.rto = resume(b, bs, runs)
	b.StopTimer()
	must(b, r.sites.Heal(ctx))
	b.Logf("%s: %d runs, %d Saves in %v (%.0f/s, target %d/s); the cut took %v; b lacked %d Saves acknowledged before it ended (%.2f s of writes, the oldest acknowledged %v before; %d acknowledged before it began), %d more were not acknowledged yet; "+
		"b resumed every run in %v; replication lag p50 %v, max %v (%d samples); a wrote %d run objects, %d index logs and %d compactions meanwhile; "+
		"flush window 100 ms (write-back), lease %v, MINIO_SCANNER_SPEED=fastest",
		prefix, benchRuns, len(recs), cutAt.Sub(start).Round(time.Millisecond), res.rate, rate, cutAt.Sub(cutStart).Round(time.Millisecond), res.rpoSaves, float64(res.rpoSaves)/res.rate, res.rpoWindow.Round(time.Millisecond), res.rpoBeforeCut, res.unacked,
		res.rto.Round(time.Millisecond), percentile(res.lags, 0.5).Round(time.Millisecond), percentile(res.lags, 1).Round(time.Millisecond), len(res.lags), st.PUTs-st0.PUTs, st.IndexCommits-st0.IndexCommits, ix.Compactions-ix0.Compactions, benchLease)
	return res
}

// benchWriter saves rate checkpoints a second in region a, the
// runs in turn, each the next step of its run, and records when each was
// acknowledged.
type benchWriter struct {
	s         *tiered.Store
	runs      []uuid.UUID
	writeBack bool
	rate      int // Saves a second

	mu struct {
		sync.Mutex
		recs    []*saveRec
		pending []*saveRec // write-back: returned, not yet flushed
	}
}

func (w *benchWriter) run(ctx context.Context) error {
	tokens := make(chan int)
	go func() {
		defer close(tokens)
		tick := time.NewTicker(time.Second / time.Duration(w.rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case <-ctx.Done():
				return
			case tokens <- n:
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	writers := 4
	if !w.writeBack {
		writers = benchPool
	}
	for range writers {
		g.Go(func() error {
			for n := range tokens {
				if err := w.save(gctx, n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if w.writeBack {
		g.Go(func() error { return w.flushes(gctx) })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		err = nil // stopped
	}
	return err
}

// save makes the n-th Save: run n mod runs, at step n/runs+1.
func (w *benchWriter) save(ctx context.Context, n int) error {
	rec := &saveRec{run: n % len(w.runs), step: n/len(w.runs) + 1}
	err := w.s.Save(ctx, Checkpoint("bench", w.runs[rec.run], rec.step, 1000, "a", "a"))
	if err != nil {
		if ctx.Err() != nil {
			return nil // the cut: unknown, not acknowledged
		}
		return err
	}
	rec.returned = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.recs = append(w.mu.recs, rec)
	if w.writeBack {
		w.mu.pending = append(w.mu.pending, rec)
	} else {
		rec.acked = rec.returned
		rec.ackedNano.Store(rec.acked.UnixNano())
	}
	return nil
}

// flushes calls Flush every flush window: the Saves that returned before
// it began are acknowledged when it returns.
func (w *benchWriter) flushes(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		w.mu.Lock()
		batch := w.mu.pending
		w.mu.pending = nil
		w.mu.Unlock()
		if err := w.s.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		w.mu.Lock()
		for _, rec := range batch {
			rec.acked = now
			rec.ackedNano.Store(now.UnixNano())
		}
		w.mu.Unlock()
	}
}

// records returns the Saves made.
func (w *benchWriter) records() []*saveRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.recs
}

// latestAcked returns the last Save acknowledged, if any.
func (w *benchWriter) latestAcked() (*saveRec, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.mu.recs) - 1; i >= 0 && i >= len(w.mu.recs)-2000; i-- {
		if rec := w.mu.recs[i]; !rec.acked.IsZero() {
			return rec, true
		}
	}
	return nil, false
}

// sampleLags measures, every 200 ms until ctx ends, how long the latest
// acknowledged Save takes to be visible in b, reading it there every
// 5 ms; the channel gets the lags when ctx ends.
func sampleLags(ctx context.Context, w *benchWriter, d *durable.Store, runs []uuid.UUID) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	go func() {
		var lags []time.Duration
		defer func() { out <- lags }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			rec, ok := w.latestAcked()
			if !ok {
				continue
			}
			acked := time.Unix(0, rec.ackedNano.Load())
			for ctx.Err() == nil {
				st, err := load(ctx, d, runs[rec.run])
				if err == nil && st.step >= rec.step {
					lags = append(lags, max(0, time.Since(acked)))
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	return out
}

// loadSteps loads every run in b's copy, returning each one's step.
func loadSteps(b *testing.B, d *durable.Store, runs []uuid.UUID) []int {
	steps := make([]int, len(runs))
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(benchPool)
	for i, run := range runs {
		g.Go(func() error {
			st, err := load(ctx, d, run)
			steps[i] = st.step
			return err
		})
	}
	must(b, g.Wait())
	return steps
}

// resume lists in b the runs labelled status=running, claims each and
// saves it once, benchPool at a time, and returns how long it took.
func resume(b *testing.B, s *tiered.Store, runs []uuid.UUID) time.Duration {
	ctx := context.Background()
	start := time.Now()
	listed := make(chan uuid.UUID, 1000)
	var nListed, resumed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(listed)
		opts := &cairn.ListOptions{WorkflowName: "bench", Labels: map[string]string{"status": "running"}, Limit: 200}
		for {
			page, err := s.List(gctx, opts)
			if err != nil {
				return err
			}
			for _, sum := range page.Runs {
				nListed.Add(1)
				listed <- sum.RunID
			}
			if page.Next == "" {
				return nil
			}
			opts.Cursor = page.Next
		}
	})
	for range benchPool {
		g.Go(func() error {
			for run := range listed {
				l, err := s.Claim(gctx, run, &cairn.ClaimOptions{Owner: "b", Lease: benchLease})
				if errors.Is(err, cairn.ErrClaimed) {
					continue // resumed already: listed again after its Save
				}
				if err != nil {
					return err
				}
				c := Checkpoint("bench", run, StepOf(l.Checkpoint)+1, 1000, "b", "b")
				if err := s.SaveLeased(gctx, l, c); err != nil {
					return err
				}
				resumed.Add(1)
			}
			return nil
		})
	}
	must(b, g.Wait())
	rto := time.Since(start)
	if n := resumed.Load(); n != int64(len(runs)) {
		b.Errorf("b resumed %d runs of %d (%d listed)", n, len(runs), nListed.Load())
	}
	return rto
}
