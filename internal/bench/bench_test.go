package bench_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/bench"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/tiered"
)

// TestTypedSameBytes checks that the typed contender stores exactly the
// record the map contenders store, so that the two write-back rows differ
// only in how the state is converted: samples of every size, saved through
// Typed into one tiered store and as their map checkpoint into another,
// load back as the same bytes, and are about the targeted size.
func TestTypedSameBytes(t *testing.T) {
	ctx := context.Background()
	for _, size := range bench.Quick().Sizes {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			typed, plain, err := bench.Samples(5, size)
			if err != nil {
				t.Fatal(err)
			}
			ts, ms := openMem(t), openMem(t)
			tt := bench.NewTyped(ts)
			total := 0
			for i := range typed {
				id := typed[i].RunID
				if err := tt.Save(ctx, typed[i]); err != nil {
					t.Fatal(err)
				}
				if err := ms.Save(ctx, plain[i]); err != nil {
					t.Fatal(err)
				}
				got, err := ts.LoadRecord(ctx, id, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ms.LoadRecord(ctx, id, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("sample %d: typed record of %d bytes, map record of %d; first difference at byte %d",
						i, len(got), len(want), firstDiff(got, want))
				}
				total += len(want)
			}
			if mean := total / len(typed); mean < size*8/10 || mean > size*12/10 {
				t.Errorf("mean record of %d bytes, want about %d", mean, size)
			}
		})
	}
}

// openMem opens a write-back tiered store over an in-memory bucket, closed
// at the end of the test.
func openMem(t *testing.T) *tiered.Store {
	t.Helper()
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestQuick runs the harness in quick mode against MinIO and checks that the
// report holds every contender with numbers that can be true: the raw
// contender makes exactly one PUT per Save and one GET per Load (so the
// counting transport counts), every Save of every contender costs requests,
// Cairn's List stays a few requests while the hand-written one GETs every run.
func TestQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv := miniofixture.Start(ctx, t)
	cfg := bench.Quick()
	cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey = srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey
	cfg.Server = "MinIO (test)"
	cfg.Logf = t.Logf
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	if got, want := len(r.Throughput), len(cfg.Sizes)*len(bench.Contenders); got != want {
		t.Fatalf("%d throughput rows, want %d", got, want)
	}
	for _, row := range r.Throughput {
		name := row.Contender
		if row.Saves == 0 || row.Loads != row.Saves || row.SavesPerSec() <= 0 || row.LoadsPerSec() <= 0 {
			t.Errorf("%s %d B: %d saves, %d loads, %.0f saves/s, %.0f loads/s", name, row.Size, row.Saves, row.Loads, row.SavesPerSec(), row.LoadsPerSec())
		}
		if row.SaveReq.PUT < int64(row.Saves) {
			t.Errorf("%s %d B: %d PUTs for %d saves", name, row.Size, row.SaveReq.PUT, row.Saves)
		}
		if row.LoadReq.GET < int64(row.Loads) {
			t.Errorf("%s %d B: %d GETs for %d loads", name, row.Size, row.LoadReq.GET, row.Loads)
		}
		if row.BytesStored < int64(row.Saves)*int64(row.BlobBytes)/2 {
			t.Errorf("%s %d B: %d bytes stored for %d saves of %.0f B", name, row.Size, row.BytesStored, row.Saves, row.BlobBytes)
		}
		if row.SaveLat.P50 <= 0 || row.SaveLat.P99 < row.SaveLat.P50 || row.LoadLat.P50 <= 0 {
			t.Errorf("%s %d B: latencies %+v %+v", name, row.Size, row.SaveLat, row.LoadLat)
		}
		if name == bench.Raw && (row.SaveReq.Total() != int64(row.Saves) || row.LoadReq.Total() != int64(row.Loads)) {
			t.Errorf("raw %d B: %+v for %d saves, %+v for %d loads: want one PUT and one GET each", row.Size, row.SaveReq, row.Saves, row.LoadReq, row.Loads)
		}
		if name == bench.SingleIndex && row.SaveReq.GET < int64(row.Saves) {
			t.Errorf("single index %d B: %d GETs for %d saves: the index read is missing", row.Size, row.SaveReq.GET, row.Saves)
		}
	}
	for _, size := range cfg.Sizes {
		var wt, wb, wbt bench.Throughput
		for _, row := range r.Throughput {
			switch {
			case row.Size == size && row.Contender == bench.WriteThrough:
				wt = row
			case row.Size == size && row.Contender == bench.WriteBack:
				wb = row
			case row.Size == size && row.Contender == bench.WriteBackTyped:
				wbt = row
			}
		}
		for _, back := range []bench.Throughput{wb, wbt} {
			if back.SaveLat.P50 >= wt.SaveLat.P50 {
				t.Errorf("%d B: %s Save p50 %v, write-through %v: write-back should not wait for S3", size, back.Contender, back.SaveLat.P50, wt.SaveLat.P50)
			}
		}
	}
	for _, n := range cfg.Scales {
		seen := map[string]bool{}
		for _, l := range r.Lists {
			if l.Runs != n {
				continue
			}
			seen[l.Contender] = true
			switch l.Contender {
			case bench.HandWritten:
				if l.AllReq.GET != int64(n) {
					t.Errorf("hand-written List at %d runs: %+v, want %d GETs", n, l.AllReq, n)
				}
			case bench.Cairn:
				if l.FirstReq.Total() == 0 || l.FirstReq.Total() > 8 || l.FirstLat <= 0 {
					t.Errorf("Cairn List at %d runs: %+v in %v", n, l.FirstReq, l.FirstLat)
				}
			}
			if l.Contender != bench.Cairn && l.BurstSaves == 0 {
				t.Errorf("%s at %d runs: no saves", l.Contender, n)
			}
		}
		for _, name := range append([]string{bench.Cairn}, bench.Contenders...) {
			if !seen[name] {
				t.Errorf("no List point for %s at %d runs", name, n)
			}
		}
	}
	if hm := r.HitMiss; hm.Hit.P50 <= 0 || hm.TypedHit.P50 <= 0 || hm.Miss.P50 <= hm.Hit.P50 || hm.RawGet.P50 <= 0 || hm.TypedSaveBack.P50 <= 0 {
		t.Errorf("hit/miss: %+v", hm)
	}

	var md, png bytes.Buffer
	if err := r.WriteMarkdown(&md, "test"); err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{"S3 Standard", "S3 Express One Zone", "DESIGN.md §8", "BENCHMARKS.png"}, bench.Contenders...) {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md.String(), "NaN") || strings.Contains(md.String(), "n/a") {
		t.Errorf("report has a missing number:\n%s", md.String())
	}
	if err := r.WritePlot(&png); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG")) || png.Len() < 10_000 {
		t.Errorf("plot: %d bytes, not a PNG", png.Len())
	}
}
