package miniofixture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/testcontainers/testcontainers-go"
)

func TestBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{
		"TestX",
		"TestMinIOCreateRace/Sub_Test#01",
		"",
		"---",
		strings.Repeat("TestAVeryLongName/", 10),
		"Test_" + strings.Repeat("x", 80) + "-",
	} {
		a, b := bucketName(name), bucketName(name)
		if !valid.MatchString(a) || strings.Contains(a, "--") {
			t.Errorf("bucketName(%q) = %q: not a valid bucket name", name, a)
		}
		if a == b {
			t.Errorf("bucketName(%q) returned %q twice", name, a)
		}
	}
}

func TestCleanGoEnv(t *testing.T) {
	got := cleanGoEnv([]string{"PATH=/bin", "GOFLAGS=-race", "CGO_ENABLED=1", "GOOS=darwin", "GOPROXY=x", "GOBIN=/b"})
	if want := []string{"PATH=/bin", "GOPROXY=x"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("cleanGoEnv = %q, want %q", got, want)
	}
}

// TestStopStart checks what tests of failures depend on: while stopped the server refuses
// requests, and after Start it is back at the same Endpoint with its data.
func TestStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := Start(ctx, t)
	if !s.Managed() {
		t.Skip("external endpoint: nothing to stop")
	}
	bucket := s.NewBucket(t)
	c := s.NewClient(t, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	put(ctx, t, c, bucket, "k", "kept")
	endpoint := s.Endpoint

	if err := s.Stop(ctx, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := c.HeadObject(rctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	rcancel()
	if err == nil {
		t.Fatal("HeadObject succeeded while the server was stopped")
	}

	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if s.Endpoint != endpoint {
		t.Fatalf("Endpoint changed across restart: %s, then %s", endpoint, s.Endpoint)
	}
	if got := get(ctx, t, c, bucket, "k"); got != "kept" {
		t.Fatalf("after restart: %q, want %q", got, "kept")
	}
}

// TestPause checks that a paused server hangs (requests time out) and answers again after
// Unpause.
func TestPause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := Start(ctx, t)
	if !s.Managed() {
		t.Skip("external endpoint: nothing to pause")
	}
	bucket := s.NewBucket(t)
	c := s.NewClient(t, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	put(ctx, t, c, bucket, "k", "v")

	if err := s.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := c.HeadObject(rctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	rcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HeadObject on a paused server: %v; want a deadline exceeded", err)
	}
	if err := s.Unpause(ctx); err != nil {
		t.Fatalf("Unpause: %v", err)
	}
	if got := get(ctx, t, c, bucket, "k"); got != "v" {
		t.Fatalf("after Unpause: %q, want %q", got, "v")
	}
}

func TestExternalEndpoint(t *testing.T) {
	t.Setenv(EnvEndpoint, "http://s3.example:9000/")
	t.Setenv(EnvAccessKey, "ak")
	t.Setenv(EnvSecretKey, "sk")
	t.Setenv(EnvRegion, "eu-west-3")
	s := Start(context.Background(), t)
	if s.Managed() || s.Endpoint != "http://s3.example:9000" || s.AccessKey != "ak" || s.SecretKey != "sk" || s.Region != "eu-west-3" {
		t.Fatalf("Start with %s = %+v", EnvEndpoint, s)
	}
	if err := s.Stop(context.Background(), 0); !errors.Is(err, ErrExternal) {
		t.Fatalf("Stop on an external endpoint: %v, want ErrExternal", err)
	}
}

// TestNoServer runs this test binary without Docker or endpoint and checks that Start skips
// loudly, or fails when CAIRN_REQUIRE_S3=1.
func TestNoServer(t *testing.T) {
	if os.Getenv("MINIOFIXTURE_CHILD") == "1" {
		connectDocker = func(context.Context) (*testcontainers.DockerClient, error) {
			return nil, errors.New("simulated: no Docker engine")
		}
		Start(context.Background(), t)
		t.Fatal("Start returned without Docker or endpoint")
	}
	for _, tc := range []struct {
		require  string
		wantOut  string
		wantFail bool
	}{
		{require: "", wantOut: "--- SKIP: TestNoServer"},
		{require: "1", wantOut: "--- FAIL: TestNoServer", wantFail: true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoServer$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); k != EnvEndpoint && k != EnvRequire {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "MINIOFIXTURE_CHILD=1", EnvRequire+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("%s=%q: exit error %v, want failure %v\n%s", EnvRequire, tc.require, err, tc.wantFail, out)
		}
		if !bytes.Contains(out, []byte(tc.wantOut)) || !bytes.Contains(out, []byte("NO S3 SERVER")) ||
			!bytes.Contains(out, []byte(EnvEndpoint)) {
			t.Errorf("%s=%q: output lacks %q, the NO S3 SERVER message or %s:\n%s",
				EnvRequire, tc.require, tc.wantOut, EnvEndpoint, out)
		}
	}
}

func put(ctx context.Context, t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func get(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	return string(b)
}

// TestLaunch: the non-test entry point starts a server (here with its data on a tmpfs) that
// answers, and stop removes it.
func TestLaunch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	Start(ctx, t) // skips or fails as every MinIO test does when there is no server
	s, stop, err := Launch(ctx, t.Logf, &LaunchOptions{Tmpfs: true})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	bucket := s.NewBucket(t)
	c := s.NewClient(t)
	put(ctx, t, c, bucket, "k", "v")
	if got := get(ctx, t, c, bucket, "k"); got != "v" {
		t.Fatalf("got %q, want %q", got, "v")
	}
	if err := stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if s.Managed() {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		c := s.NewClient(t, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		if _, err := c.HeadBucket(rctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
			t.Fatal("the server still answers after stop")
		}
	}
}
