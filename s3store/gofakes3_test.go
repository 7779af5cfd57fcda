package s3store_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/s3store/bucket"
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
	backend := s3mem.New()
	var h http.Handler = gofakes3.New(backend).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	const name = "cairn"
	if err := backend.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint:    srv.URL,
		Region:      "us-east-1",
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider("fake", "fake", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3store.NewS3(client, name)
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
