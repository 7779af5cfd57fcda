package fakes3_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/fakes3"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/storetest"
)

// fakeS3 starts gofakes3 (see internal/fakes3), with wrap (if not nil)
// around its handler, and returns a fresh bucket on it.
func fakeS3(t testing.TB, wrap func(http.Handler) http.Handler) *s3store.S3 {
	t.Helper()
	return fakes3.Client(t, fakes3.Server(t, wrap))
}

// What gofakes3 does, observed through the bucket: the probe's findings
// rest on these.
func TestGofakes3Behaviour(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		wrap       func(http.Handler) http.Handler
		conditions bool // If-None-Match and If-Match honoured
	}{{"AsIs", nil, true}, {"Stripped", fakes3.StripConditions, false}} {
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
// overwrite) and behind fakes3.StripConditions (it also ignores conditional
// writes), naming the checks that fail, at the first write.
func TestDurableProbeGofakes3(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		wrap   func(http.Handler) http.Handler
		failed []durable.ProbeCheck
	}{
		{"AsIs", nil, []durable.ProbeCheck{durable.ProbeMetadataReplaced}},
		{"Stripped", fakes3.StripConditions, []durable.ProbeCheck{durable.ProbeIfNoneMatch, durable.ProbeIfMatchWrong,
			durable.ProbeIfMatchMissing, durable.ProbeMetadataReplaced}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newDurable(t, fakeS3(t, tc.wrap), &durable.Options{Prefix: "p"})
			err := s.Save(ctx, numberedCP(1, t0))
			var pe *durable.ProbeError
			if !errors.Is(err, durable.ErrUnsafeServer) || !errors.As(err, &pe) {
				t.Fatalf("Save on gofakes3 %s: %v, want a *ProbeError (ErrUnsafeServer)", tc.name, err)
			}
			var got []durable.ProbeCheck
			for _, f := range pe.Failures {
				got = append(got, f.Check)
			}
			if !slices.Equal(got, tc.failed) {
				t.Errorf("failed checks %v, want %v", got, tc.failed)
			}
			if !strings.HasPrefix(pe.Server, "S3 bucket cairn at 127.0.0.1:") {
				t.Errorf("server %q, want the bucket and endpoint host", pe.Server)
			}
			t.Logf("gofakes3 %s: %v", tc.name, err)
		})
	}
}

// durableSharedStrippedEnv selects, in a re-executed test binary, the run of the
// multi-store suite on gofakes3 with conditions stripped.
const durableSharedStrippedEnv = "CAIRN_TEST_DURABLE_SHARED_STRIPPED"

// The multi-store suite fails, loudly, on a server that ignores
// conditional writes (gofakes3 behind fakes3.StripConditions, with the probe
// skipped, since otherwise every write is refused). The suite runs in a
// re-executed test binary (bounded in time) that must fail and name a
// multi-store subtest.
func TestDurableGofakes3StrippedSharedFails(t *testing.T) {
	if os.Getenv(durableSharedStrippedEnv) == "1" {
		storetest.RunShared(t, func(t *testing.T) storetest.Shared {
			url := fakes3.Server(t, fakes3.StripConditions)
			return durableSharedOn(func(t *testing.T) bucket.Bucket { return fakes3.Client(t, url) },
				&durable.Options{Prefix: "cairn", Index: smallIndex, UnsafeSkipProbe: true})
		})
		return
	}
	out := fakes3.Failing(t, durableSharedStrippedEnv, "TestDurableGofakes3StrippedSharedFails")
	failed := regexp.MustCompile(`--- FAIL: TestDurableGofakes3StrippedSharedFails/(\w+)`).FindAllSubmatch(out, -1)
	if len(failed) == 0 {
		t.Fatalf("the suite failed, but not in a multi-store subtest:\n%s", out)
	}
	var names []string
	for _, m := range failed {
		names = append(names, string(m[1]))
	}
	t.Logf("the multi-store suite fails on gofakes3 with conditions stripped, in %v", names)
}
