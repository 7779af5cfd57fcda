package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3Server starts gofakes3 (v1.2.0: it honours conditional writes
// but keeps old metadata on overwrite) behind an httptest.Server, with a
// bucket "cairn", and returns its URL. With strip, If-None-Match and
// If-Match are dropped from PUTs before gofakes3 sees them, as servers
// without conditional-write support ignore them.
func fakeS3Server(t testing.TB, strip bool) string {
	t.Helper()
	backend := s3mem.New()
	h := gofakes3.New(backend).Server()
	if strip {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				r.Header.Del("If-None-Match")
				r.Header.Del("If-Match")
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket("cairn"); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// fakeS3Store opens a tiered store on the gofakes3 server at url, with a
// client of its own.
func fakeS3Store(t testing.TB, url string, so *s3store.Options, o *tiered.Options) *tiered.Store {
	t.Helper()
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: url, Region: "us-east-1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("fake", "fake", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s3store.New(s3store.NewS3(client, "cairn"), so)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tiered.New(d, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The tiered store writes through s3store's PutRecord and index commit,
// so the probe guards it too: a write-through Save, a write-back flush
// and a Delete are refused on gofakes3, as it is and with conditions
// stripped, and nothing is written.
func TestProbeGofakes3(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		strip bool
	}{{"AsIs", false}, {"Stripped", true}} {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeS3Server(t, tc.strip)
			so := &s3store.Options{Prefix: "t"}
			wt := fakeS3Store(t, url, so, nil)
			if err := wt.Save(ctx, cp(uuid.New(), 1)); !errors.Is(err, s3store.ErrUnsafeServer) {
				t.Errorf("write-through Save: %v, want ErrUnsafeServer", err)
			}
			if err := wt.Delete(ctx, uuid.New()); !errors.Is(err, s3store.ErrUnsafeServer) {
				t.Errorf("Delete: %v, want ErrUnsafeServer", err)
			}
			wb := fakeS3Store(t, url, so, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
			r := uuid.New()
			if err := wb.Save(ctx, cp(r, 1)); err != nil {
				t.Fatalf("write-back Save (into the cache): %v", err)
			}
			err := wb.Flush(ctx)
			var pe *s3store.ProbeError
			if !errors.As(err, &pe) || !pe.Failed(s3store.ProbeMetadataReplaced) ||
				pe.Failed(s3store.ProbeIfNoneMatch) == !tc.strip {
				t.Errorf("write-back Flush: %v, want a *ProbeError naming metadata-replaced, and if-none-match when stripped", err)
			}
			if err := wb.Close(ctx); !errors.Is(err, s3store.ErrUnsafeServer) {
				t.Errorf("Close with unflushed Saves: %v, want ErrUnsafeServer", err)
			}
			fresh := fakeS3Store(t, url, &s3store.Options{Prefix: "t"}, nil)
			if _, err := fresh.Load(ctx, r); !errors.Is(err, cairn.ErrNotFound) {
				t.Errorf("a refused flush wrote the run: Load = %v", err)
			}
		})
	}
}

// sharedStrippedEnv selects, in a re-executed test binary, the run of the
// multi-store suite on gofakes3 with conditions stripped.
const sharedStrippedEnv = "CAIRN_TEST_SHARED_STRIPPED"

// The multi-store suite fails, loudly, for the tiered store (both modes,
// fencing on for the fencing subtests) on a server that ignores
// conditional writes (gofakes3 with conditions stripped, the probe
// skipped). It runs in a re-executed test binary, bounded in time, that
// must fail in multi-store subtests, the fencing ones among them.
func TestGofakes3StrippedSharedFails(t *testing.T) {
	if os.Getenv(sharedStrippedEnv) == "1" {
		for _, m := range sharedModes {
			t.Run(m.name, func(t *testing.T) {
				storetest.RunShared(t, func(t *testing.T) storetest.Shared {
					url := fakeS3Server(t, true)
					so := &s3store.Options{Prefix: "t", Index: &index.Options{PageSize: 4, CompactAfter: 4}, UnsafeSkipProbe: true}
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGofakes3StrippedSharedFails$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), sharedStrippedEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("the suite on a server that ignores conditions: %v (want a failure)\n%s", err, out)
	}
	if bytes.Contains(out, []byte("panic: ")) {
		t.Fatalf("the suite panicked instead of failing:\n%s", out)
	}
	failed := map[string]bool{}
	for _, m := range regexp.MustCompile(`--- FAIL: TestGofakes3StrippedSharedFails/\w+/(\w+)`).FindAllSubmatch(out, -1) {
		failed[string(m[1])] = true
	}
	if !failed["FencedCreate"] || len(failed) < 2 {
		t.Fatalf("the suite failed in %v; want multi-store subtests, FencedCreate among them:\n%s", failed, out)
	}
	t.Logf("the multi-store suite fails on gofakes3 with conditions stripped, in %v", failed)
}
