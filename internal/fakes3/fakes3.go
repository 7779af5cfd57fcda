// Package fakes3 runs github.com/johannesboyne/gofakes3 (v1.2.0) in
// process, an S3-compatible server without Docker, for the project's
// tests of servers that do not behave: as it is, it honours If-None-Match
// and If-Match on PUT but keeps the old user metadata on overwrite (it
// merges the new keys into the old ones); with its conditions stripped it
// also overwrites whatever they say, as servers without conditional-write
// support do. It also re-runs a test in a subprocess that must fail, for
// suites that must catch such a server.
package fakes3

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/cairnstore/cairn/s3store"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Bucket is the bucket every server holds.
const Bucket = "cairn"

// Server starts gofakes3 with an empty bucket named Bucket behind an
// httptest.Server, with wrap (if not nil) around its handler, and returns
// its URL. It stops when the test ends.
func Server(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	backend := s3mem.New()
	var h http.Handler = gofakes3.New(backend).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// StripConditions drops If-None-Match and If-Match from PUTs before they
// reach h.
func StripConditions(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			r.Header.Del("If-None-Match")
			r.Header.Del("If-Match")
		}
		h.ServeHTTP(w, r)
	})
}

// Client returns the bucket Bucket of the server at url, through a client
// of its own, as another process would have.
func Client(t testing.TB, url string) *s3store.S3 {
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
	return s3store.NewS3(client, Bucket)
}

// Failing runs the test named test again in a subprocess of the test
// binary, with env=1 in its environment (the test runs its failing case
// then), bounded to a few minutes, and returns its output. The subprocess
// must fail, and not by a panic or a timeout; else t fails.
func Failing(t *testing.T, env, test string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("%s in a subprocess: %v (want a failure)\n%s", test, err, out)
	}
	if bytes.Contains(out, []byte("panic: ")) {
		t.Fatalf("%s in a subprocess panicked instead of failing:\n%s", test, out)
	}
	return out
}
