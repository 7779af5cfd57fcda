package tiered_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// memoryPresets are the configurations the README's memory table
// documents: the defaults, and the presets for small functions.
var memoryPresets = []struct {
	name string
	o    tiered.Options
}{
	{"default", tiered.Options{}},
	{"preset-512MiB", tiered.MemoryPreset(512 << 20)},
	{"preset-256MiB", tiered.MemoryPreset(256 << 20)},
	{"preset-128MiB", tiered.MemoryPreset(128 << 20)},
}

// BenchmarkMemory measures the peak Go heap of a write-back store under a
// burst: 16 workers each save 60 runs of a 64 KB state twice (1,920
// Saves, 960 runs, about 60 MiB of records, 20 MiB compressed) to a
// directory store as fast as it takes them, then Flush, then Load every
// run once (misses past the cache). peak-heap-MiB is the highest heap in
// use sampled every millisecond, baseline included (base-heap-MiB: the
// heap before the store opens). Run with -benchtime 1x.
func BenchmarkMemory(b *testing.B) {
	for _, p := range memoryPresets {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				memoryBurst(b, p.o)
			}
		})
	}
}

func memoryBurst(b *testing.B, o tiered.Options) {
	ctx := context.Background()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	d, err := bucket.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	o.Mode = tiered.WriteBack
	s := open(b, d, &o)
	const workers, runsEach, saves = 16, 60, 2
	ids := make([][]uuid.UUID, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		ids[w] = make([]uuid.UUID, runsEach)
		for i := range ids[w] {
			ids[w][i] = uuid.New()
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for step := range saves {
				for _, id := range ids[w] {
					if err := s.Save(ctx, state64KB(rng, id, step)); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	saveTime := time.Since(start)
	savePeak := peak.Load()
	for w := range ids {
		for _, id := range ids[w] {
			if _, err := s.Load(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	close(stop)
	<-sampled
	b.ReportMetric(float64(savePeak)/(1<<20), "save-peak-heap-MiB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(base)/(1<<20), "base-heap-MiB")
	b.ReportMetric(float64(workers*runsEach*saves)/saveTime.Seconds(), "saves/s")
}

// state64KB is a checkpoint of about 64 KB of state: 160 fields of
// 400-byte texts drawn from a small vocabulary (compresses about 3x, as
// agent transcripts do).
func state64KB(rng *rand.Rand, id uuid.UUID, step int) *cairn.Checkpoint {
	words := []string{"order", "approved", "shipped", "customer", "refund", "invoice", "tool", "call", "result", "the", "a", "was"}
	st := map[string]any{"step": int64(step)}
	for f := range 160 {
		buf := make([]byte, 0, 400)
		for len(buf) < 400 {
			buf = append(buf, words[rng.IntN(len(words))]...)
			buf = append(buf, ' ')
			buf = fmt.Appendf(buf, "%d ", rng.IntN(1000))
		}
		st[fmt.Sprint("f", f)] = string(buf)
	}
	return &cairn.Checkpoint{WorkflowName: "agent", RunID: id, Timestamp: time.Now(), State: st,
		PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
}
