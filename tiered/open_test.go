package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/s3store/faults"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// canary stands for a secret: it must never be printed.
const canary = "CANARYSECRET-7f3a"

// offlineAWS gives the test process credentials and a region, and keeps
// the SDK from asking an instance-metadata service for others.
func offlineAWS(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", canary)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
}

// Mistakes in a store URL are refused with ErrInvalid and a message that
// says what is wrong, never with a fallback, and never repeating a value.
func TestOpenURLMistakes(t *testing.T) {
	offlineAWS(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct{ url, want string }{
		{"s3://b/p?regoin=us-east-1", `unknown parameter "regoin" (did you mean region?)`},
		{"s3://b/p?region=us-east-1&endpont=http://127.0.0.1:9000", `unknown parameter "endpont" (did you mean endpoint?)`},
		{"s3://b/p?pathstyle=true", `unknown parameter "pathstyle" (did you mean path_style?)`},
		{"s3://b/p?token=" + canary, `unknown parameter "token"; known: attempt_timeout, checksum, endpoint, max_attempts, max_backoff, path_style, region, sse, sse_bucket_key, sse_kms_key_id, storage_class, tags, timeout`},
		{"s3://b/p?endpoint=%zz", `the query does not parse`},
		{"s3://b/p?endpoint=127.0.0.1:9000", `parameter endpoint: s3store: invalid endpoint: not a URL (want http:// or https://`},
		{"s3://b/p?endpoint=localhost:9000", `parameter endpoint: s3store: invalid endpoint: want http:// or https://`},
		{"s3://b/p?endpoint=http://127.0.0.1:9000/bucket", `parameter endpoint: s3store: invalid endpoint: must not have a path`},
		{"s3://b/p?endpoint=", `parameter endpoint is empty`},
		{"s3://b/p?region=a&region=b", `parameter region given 2 times`},
		{"s3://b/p?region=" + canary, `parameter region: not a region name`},
		{"s3://b/p?timeout=soon", `parameter timeout: want a positive Go duration`},
		{"s3://b/p?attempt_timeout=-1s", `parameter attempt_timeout: want a positive Go duration`},
		{"s3://b/p?path_style=maybe", `parameter path_style: want true or false`},
		{"s3://b/p?checksum=sometimes", `parameter checksum: want when_required or default`},
		{"file://" + dir + "?region=us-east-1", `file URLs take no parameters (got region)`},
		{"mem://?timeout=1s", `mem URLs take no parameters (got timeout)`},
		{"s3://AKID:" + canary + "@b/p", `credentials in a store URL`},
		{"s3://" + canary + "@b/p", `credentials in a store URL`},
		{"s3://b/p?endpoint=http://AKID:" + canary + "@127.0.0.1:9000", `parameter endpoint: s3store: invalid endpoint: holds user info`},
	} {
		_, err := tiered.Open(ctx, tc.url, nil)
		if !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("Open(%q): %v; want ErrInvalid", tc.url, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): %v; want it to say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("Open(%q) repeats the secret: %v", tc.url, err)
		}
		if strings.HasPrefix(tc.want, "credentials") && !errors.Is(err, bucket.ErrUserInfo) {
			t.Errorf("Open(%q): %v; want ErrUserInfo", tc.url, err)
		}
	}
	// Every problem at once.
	_, err := tiered.Open(ctx, "s3://b/p?regoin=x&timeout=no", nil)
	if err == nil || !strings.Contains(err.Error(), "regoin") || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("two mistakes: %v; want both named", err)
	}
}

// RedactURL shows known parameters with valid values, and nothing else.
func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b/p?region=us-east-1&endpoint=http://127.0.0.1:9000": "s3://b/p?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1",
		"s3://u:" + canary + "@b/p?token=" + canary:                "s3://b/p?token=REDACTED",
		"s3://b/p?region=" + canary + "&timeout=5s":                "s3://b/p?region=REDACTED&timeout=5s",
		"s3://b/p?endpoint=http://AKID:" + canary + "@h":           "s3://b/p?endpoint=REDACTED",
		"s3://b/p?endpoint=%zz" + canary:                           "s3://b/p?REDACTED",
		"file:///var/lib/cairn":                                    "file:///var/lib/cairn",
	} {
		if got := bucket.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q; want %q", in, got, want)
		}
	}
}

// With an endpoint and no path_style, requests address the bucket in the
// path (as MinIO and most S3-compatible servers need); path_style=false
// asks for virtual-hosted addressing (bkt.localhost), whether or not such
// a request reaches the server.
func TestOpenPathStyleDefault(t *testing.T) {
	offlineAWS(t)
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Host+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		param    string
		pathHits bool
	}{{"", true}, {"&path_style=true", true}, {"&path_style=false", false}} {
		mu.Lock()
		paths = nil
		mu.Unlock()
		s, err := tiered.Open(context.Background(), "s3://bkt/p?endpoint="+strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"&attempt_timeout=1s&timeout=2s"+tc.param, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Load(context.Background(), uuid.New())
		mu.Lock()
		hit := len(paths) > 0 && strings.HasPrefix(paths[0], "localhost:") && strings.Contains(paths[0], "/bkt/")
		mu.Unlock()
		if hit != tc.pathHits {
			t.Errorf("endpoint%s: request paths %q; want path-style %v", tc.param, paths, tc.pathHits)
		}
	}
}

// Flush and Close with a context that has no deadline return an error
// within the bounds the URL gives, when the server never answers.
func TestFlushServerNeverAnswers(t *testing.T) {
	offlineAWS(t)
	url := "s3://b/p?endpoint=" + faults.SilentServer(t) + "&timeout=300ms&attempt_timeout=100ms"
	for _, mode := range []tiered.Mode{tiered.WriteBack, tiered.WriteThrough} {
		s, err := tiered.Open(context.Background(), url, &tiered.Options{Mode: mode, FlushWindow: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = s.Save(context.Background(), cp(uuid.New(), 1))
		if mode == tiered.WriteBack {
			if err != nil {
				t.Fatal(err)
			}
			err = s.Flush(context.Background())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("mode %v: write to a server that never answers: %v; want a deadline error", mode, err)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("mode %v: the write took %s with timeout=300ms", mode, took)
		}
		start = time.Now()
		_ = s.Close(context.Background())
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("mode %v: Close took %s with timeout=300ms", mode, took)
		}
	}
}

// stallingBucket blocks every Put, once stall is set, until the caller's
// context ends, and counts the Puts that gave up.
type stallingBucket struct {
	bucket.Bucket
	stall  atomic.Bool
	gaveUp atomic.Int64
}

func (b *stallingBucket) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if b.stall.Load() {
		<-ctx.Done()
		b.gaveUp.Add(1)
		return "", ctx.Err()
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// The background flusher gives up after FlushTimeout and tries again,
// instead of waiting a fixed minute on a server that does not answer.
func TestFlushTimeoutBoundsBackgroundFlush(t *testing.T) {
	b := &stallingBucket{Bucket: bucket.NewMem()}
	s := open(t, b, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond, FlushTimeout: 100 * time.Millisecond})
	b.stall.Store(true)
	if err := s.Save(context.Background(), cp(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for b.gaveUp.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.gaveUp.Load(); n < 3 {
		t.Errorf("%d background flushes gave up within 20 s with FlushTimeout 100ms; want 3 or more", n)
	}
	b.stall.Store(false)
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close once the bucket answers: %v", err)
	}
	if _, err := tiered.New(bucket.NewMem(), &tiered.Options{FlushTimeout: -time.Second}); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("negative FlushTimeout: %v; want ErrInvalid", err)
	}
}

// A secret pushed through every input of Open (the URL's user info, the
// endpoint's, an unknown parameter, a known one, the environment) appears
// in no error and no log line, whether Open refuses the URL or a request
// fails later.
func TestCanarySecretNeverPrinted(t *testing.T) {
	offlineAWS(t) // AWS_SECRET_ACCESS_KEY is the canary
	var logged bytes.Buffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	ctx := context.Background()
	var errs []error
	for _, url := range []string{
		"s3://AKID:" + canary + "@b/p?endpoint=http://127.0.0.1:1",
		"s3://b/p?endpoint=http://AKID:" + canary + "@127.0.0.1:1",
		"s3://b/p?endpoint=http://127.0.0.1:1&secret_key=" + canary,
		"s3://b/p?endpoint=http://127.0.0.1:1&region=" + canary,
		"s3://b/p?endpoint=http://127.0.0.1:1&timeout=2s", // the environment's secret alone
		// Opaque forms (no user info as url.Parse sees it), a fragment,
		// a secret as a parameter's name.
		"s3:AKID:" + canary + "@b/p",
		"s3:///AKID:" + canary + "@b/p",
		"s3:/AKID:" + canary + "@b/p",
		"mem:/AKID:" + canary + "@x",
		"file:AKID:" + canary + "@x",
		"AKID:" + canary + "@b",
		"mem:" + canary,
		"s3://b/p?endpoint=http://127.0.0.1:1#" + canary,
		"s3://b/p?endpoint=http://127.0.0.1:1&" + canary,
	} {
		errs = append(errs, errors.New(bucket.RedactURL(url)))
		s, err := tiered.Open(ctx, url, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.Contains(url, "AKID") || strings.Contains(url, "#") || strings.HasPrefix(url, "mem:") || strings.HasSuffix(url, canary) {
			t.Errorf("Open accepted %s", bucket.RedactURL(url))
		}
		errs = append(errs, s.Save(ctx, cp(uuid.New(), 1)))
		_, err = s.List(ctx, nil)
		errs = append(errs, err, s.Close(ctx))
	}
	for _, err := range errs {
		if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(canary)) {
			t.Errorf("the secret is in an error: %v", err)
		}
	}
	if strings.Contains(strings.ToLower(logged.String()), strings.ToLower(canary)) {
		t.Errorf("the secret is in the log: %s", logged.String())
	}
}
