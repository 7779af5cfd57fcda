package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/s3store/bucket"
	"github.com/cairnstore/cairn/storetest"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// gofakes3 (v1.2.0) runs in-process as an S3-compatible server without
// Docker. As it is, it honours If-None-Match and If-Match on PUT but keeps
// the old user metadata on overwrite (it merges the new keys into the
// old ones). Behind stripConditions it also overwrites whatever the
// conditions say, as servers without conditional-write support do.

// fakeS3 starts gofakes3 behind an httptest.Server, with wrap (if not nil)
// around its handler, and returns a fresh bucket on it.
func fakeS3(t testing.TB, wrap func(http.Handler) http.Handler) *s3store.S3 {
	t.Helper()
	return fakeS3Client(t, fakeS3Server(t, wrap))
}

// fakeS3Server starts gofakes3 with a bucket "cairn" and returns its URL.
func fakeS3Server(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	backend := s3mem.New()
	var h http.Handler = gofakes3.New(backend).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket("cairn"); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// fakeS3Client returns the bucket "cairn" at url, through a client of its
// own, as another process would have.
func fakeS3Client(t testing.TB, url string) *s3store.S3 {
	t.Helper()
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint:    url,
		Region:      "us-east-1",
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider("fake", "fake", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3store.NewS3(client, "cairn")
}

// stripConditions drops If-None-Match and If-Match from PUTs before
// they reach h.
func stripConditions(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			r.Header.Del("If-None-Match")
			r.Header.Del("If-Match")
		}
		h.ServeHTTP(w, r)
	})
}

// What gofakes3 does, observed through the bucket: the probe's findings
// rest on these.
func TestGofakes3Behaviour(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		wrap       func(http.Handler) http.Handler
		conditions bool // If-None-Match and If-Match honoured
	}{{"AsIs", nil, true}, {"Stripped", stripConditions, false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := fakeS3(t, tc.wrap)
			etag, err := b.Put(ctx, "k", []byte("1"), &bucket.PutOptions{Metadata: map[string]string{"a": "1"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Put(ctx, "k", []byte("2"), &bucket.PutOptions{IfNoneMatch: "*"})
			if got := errors.Is(err, bucket.ErrPrecondition); got != tc.conditions {
				t.Errorf("If-None-Match: * over an existing key: %v; want 412: %v", err, tc.conditions)
			}
			_, err = b.Put(ctx, "k", []byte("3"), &bucket.PutOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`})
			if got := errors.Is(err, bucket.ErrPrecondition); got != tc.conditions {
				t.Errorf("If-Match with a wrong ETag: %v; want 412: %v", err, tc.conditions)
			}
			if tc.conditions {
				if _, err := b.Put(ctx, "k", []byte("4"), &bucket.PutOptions{IfMatch: etag, Metadata: map[string]string{"b": "2"}}); err != nil {
					t.Errorf("If-Match with the right ETag: %v", err)
				}
			} else if _, err := b.Put(ctx, "k", []byte("4"), &bucket.PutOptions{Metadata: map[string]string{"b": "2"}}); err != nil {
				t.Fatal(err)
			}
			info, err := b.Head(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if info.Metadata["a"] != "1" || info.Metadata["b"] != "2" {
				t.Errorf("after PUTs with metadata {a:1} then {b:2}: %v; gofakes3 v1.2.0 keeps a", info.Metadata)
			}
		})
	}
}

// The probe refuses gofakes3 as it is (it keeps old metadata on
// overwrite) and behind stripConditions (it also ignores conditional
// writes), naming the checks that fail, at the first write.
func TestProbeGofakes3(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		wrap   func(http.Handler) http.Handler
		failed []s3store.ProbeCheck
	}{
		{"AsIs", nil, []s3store.ProbeCheck{s3store.ProbeMetadataReplaced}},
		{"Stripped", stripConditions, []s3store.ProbeCheck{s3store.ProbeIfNoneMatch, s3store.ProbeIfMatchWrong,
			s3store.ProbeIfMatchMissing, s3store.ProbeMetadataReplaced}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, fakeS3(t, tc.wrap), &s3store.Options{Prefix: "p"})
			err := s.Save(ctx, cp(1, t0))
			var pe *s3store.ProbeError
			if !errors.Is(err, s3store.ErrUnsafeServer) || !errors.As(err, &pe) {
				t.Fatalf("Save on gofakes3 %s: %v, want a *ProbeError (ErrUnsafeServer)", tc.name, err)
			}
			var got []s3store.ProbeCheck
			for _, f := range pe.Failures {
				got = append(got, f.Check)
			}
			if !slicesEqual(got, tc.failed) {
				t.Errorf("failed checks %v, want %v", got, tc.failed)
			}
			if !strings.HasPrefix(pe.Server, "S3 bucket cairn at 127.0.0.1:") {
				t.Errorf("server %q, want the bucket and endpoint host", pe.Server)
			}
			t.Logf("gofakes3 %s: %v", tc.name, err)
		})
	}
}

// sharedStrippedEnv selects, in a re-executed test binary, the run of the
// multi-store suite on gofakes3 with conditions stripped.
const sharedStrippedEnv = "CAIRN_TEST_SHARED_STRIPPED"

// The multi-store suite fails, loudly, on a server that ignores
// conditional writes (gofakes3 behind stripConditions, with the probe
// skipped, since otherwise every write is refused). The suite runs in a
// re-executed test binary (bounded in time) that must fail and name a
// multi-store subtest.
func TestGofakes3StrippedSharedFails(t *testing.T) {
	if os.Getenv(sharedStrippedEnv) == "1" {
		storetest.RunShared(t, func(t *testing.T) storetest.Shared {
			url := fakeS3Server(t, stripConditions)
			return sharedOn(func(t *testing.T) bucket.Bucket { return fakeS3Client(t, url) },
				&s3store.Options{Prefix: "cairn", Index: smallIndex, UnsafeSkipProbe: true})
		})
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
	failed := regexp.MustCompile(`--- FAIL: TestGofakes3StrippedSharedFails/(\w+)`).FindAllSubmatch(out, -1)
	if len(failed) == 0 || bytes.Contains(out, []byte("panic: ")) {
		t.Fatalf("the suite failed, but not in a multi-store subtest:\n%s", out)
	}
	var names []string
	for _, m := range failed {
		names = append(names, string(m[1]))
	}
	t.Logf("the multi-store suite fails on gofakes3 with conditions stripped, in %v", names)
}
