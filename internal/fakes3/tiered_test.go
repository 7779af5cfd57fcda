package fakes3_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/fakes3"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// fakeS3Store opens a tiered store on the gofakes3 server at url, with a
// client of its own.
func fakeS3Store(t testing.TB, url string, so *durable.Options, o *tiered.Options) *tiered.Store {
	t.Helper()
	var to tiered.Options
	if o != nil {
		to = *o
	}
	if so != nil {
		to.Durable = *so
	}
	s, err := tiered.New(fakes3.Client(t, url), &to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The tiered store writes through durable's Write (objects, then one index commit),
// so the probe guards it too: a write-through Save, a write-back flush
// and a Delete are refused on gofakes3, as it is and with conditions
// stripped, and nothing is written.
func TestTieredProbeGofakes3(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		strip bool
	}{{"AsIs", false}, {"Stripped", true}} {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeServer(t, tc.strip)
			so := &durable.Options{Prefix: "t"}
			wt := fakeS3Store(t, url, so, nil)
			if err := wt.Save(ctx, cp(uuid.New(), 1)); !errors.Is(err, durable.ErrUnsafeServer) {
				t.Errorf("write-through Save: %v, want ErrUnsafeServer", err)
			}
			if err := wt.Delete(ctx, uuid.New()); !errors.Is(err, durable.ErrUnsafeServer) {
				t.Errorf("Delete: %v, want ErrUnsafeServer", err)
			}
			wb := fakeS3Store(t, url, so, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
			r := uuid.New()
			if err := wb.Save(ctx, cp(r, 1)); err != nil {
				t.Fatalf("write-back Save (into the cache): %v", err)
			}
			err := wb.Flush(ctx)
			var pe *durable.ProbeError
			if !errors.As(err, &pe) || !pe.Failed(durable.ProbeMetadataReplaced) ||
				pe.Failed(durable.ProbeIfNoneMatch) == !tc.strip {
				t.Errorf("write-back Flush: %v, want a *ProbeError naming metadata-replaced, and if-none-match when stripped", err)
			}
			if err := wb.Close(ctx); !errors.Is(err, durable.ErrUnsafeServer) {
				t.Errorf("Close with unflushed Saves: %v, want ErrUnsafeServer", err)
			}
			fresh := fakeS3Store(t, url, &durable.Options{Prefix: "t"}, nil)
			if _, err := fresh.Load(ctx, r); !errors.Is(err, cairn.ErrNotFound) {
				t.Errorf("a refused flush wrote the run: Load = %v", err)
			}
		})
	}
}

// tieredSharedStrippedEnv selects, in a re-executed test binary, the run of the
// multi-store suite on gofakes3 with conditions stripped.
const tieredSharedStrippedEnv = "CAIRN_TEST_TIERED_SHARED_STRIPPED"

// The multi-store suite fails, loudly, for the tiered store (both modes,
// fencing on for the fencing subtests) on a server that ignores
// conditional writes (gofakes3 with conditions stripped, the probe
// skipped). It runs in a re-executed test binary, bounded in time, that
// must fail in multi-store subtests, the fencing ones among them.
func TestTieredGofakes3StrippedSharedFails(t *testing.T) {
	if os.Getenv(tieredSharedStrippedEnv) == "1" {
		for _, m := range tieredSharedModes {
			t.Run(m.name, func(t *testing.T) {
				storetest.RunShared(t, func(t *testing.T) storetest.Shared {
					url := fakeServer(t, true)
					so := &durable.Options{Prefix: "t", Index: &index.Options{PageSize: 4, CompactAfter: 4}, UnsafeSkipProbe: true}
					fenced := m.o
					fenced.Fencing = true
					return storetest.Shared{
						Open:       func(t *testing.T) cairn.Store { return fakeS3Store(t, url, so, &m.o) },
						OpenFenced: func(t *testing.T) cairn.Store { return fakeS3Store(t, url, so, &fenced) },
					}
				})
			})
		}
		return
	}
	out := fakes3.Failing(t, tieredSharedStrippedEnv, "TestTieredGofakes3StrippedSharedFails")
	failed := map[string]bool{}
	for _, m := range regexp.MustCompile(`--- FAIL: TestTieredGofakes3StrippedSharedFails/\w+/(\w+)`).FindAllSubmatch(out, -1) {
		failed[string(m[1])] = true
	}
	if !failed["FencedCreate"] || len(failed) < 2 {
		t.Fatalf("the suite failed in %v; want multi-store subtests, FencedCreate among them:\n%s", failed, out)
	}
	t.Logf("the multi-store suite fails on gofakes3 with conditions stripped, in %v", failed)
}

// fakeServer starts gofakes3 (see internal/fakes3), with its conditional
// headers stripped when strip is set, and returns its URL.
func fakeServer(t testing.TB, strip bool) string {
	if strip {
		return fakes3.Server(t, fakes3.StripConditions)
	}
	return fakes3.Server(t, nil)
}
