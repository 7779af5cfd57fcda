package s3store_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/s3store"
)

// Credentials no log line may show.
const (
	s3LogKeyID  = "AKIDLOGTEST7XQ2"
	s3LogSecret = "secretLogTestKey/9f8e7d6c5b4a"
	s3LogToken  = "sessionTokenLogTest+Zz01"
	s3LogBody   = "checkpoint-body-never-logged"
)

// s3LogServer is a minimal S3: it answers the first request with 503 (so
// the SDK retries), then Puts with an ETag and Gets with the body last
// put. It keeps the Authorization headers it saw, to look for their
// signatures in the log.
type s3LogServer struct {
	mu    sync.Mutex
	auths []string
	body  []byte
	n     int
}

func (s *s3LogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	s.n++
	if s.n == 1 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodPut:
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		s.body = b.Bytes()
		w.Header().Set("ETag", `"e1"`)
	case http.MethodGet:
		w.Header().Set("ETag", `"e1"`)
		w.Write(s.body)
	}
}

var signature = regexp.MustCompile(`Signature=([0-9a-f]+)`)

// With Debug, the SDK's request log reaches the Logger at debug level:
// requests, responses and retries, with the Authorization header and the
// session token redacted; no line shows the access key ID, the secret
// key, the token, a signature, or a body.
func TestS3DebugLogRedacted(t *testing.T) {
	srv := &s3LogServer{}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	var out bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &out, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: hs.URL, Region: "us-east-1", PathStyle: true, Debug: true, Logger: logger,
		Credentials: credentials.NewStaticCredentialsProvider(s3LogKeyID, s3LogSecret, s3LogToken),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := s3store.NewS3(c, "logs")
	ctx := context.Background()
	if _, err := b.Put(ctx, "runs/a", []byte(s3LogBody), &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
	if obj, err := b.Get(ctx, "runs/a", nil); err != nil || string(obj.Body) != s3LogBody {
		t.Fatalf("Get: %v", err)
	}

	mu.Lock()
	log := out.String()
	mu.Unlock()
	for _, want := range []string{"level=DEBUG", "PUT /logs/runs/a", "GET /logs/runs/a", "Authorization: REDACTED",
		"X-Amz-Security-Token: REDACTED", "HTTP/1.1 200 OK", "retrying request"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	secrets := []string{s3LogKeyID, s3LogSecret, s3LogToken, s3LogBody}
	srv.mu.Lock()
	for _, a := range srv.auths {
		m := signature.FindStringSubmatch(a)
		if m == nil {
			t.Fatalf("request without a signature: %q", a)
		}
		secrets = append(secrets, m[1])
	}
	srv.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log shows the secret %q:\n%s", s, log)
		}
	}
	for line := range strings.SplitSeq(log, "\n") {
		if line != "" && !strings.HasPrefix(strings.SplitN(line, " ", 2)[1], "level=DEBUG") {
			t.Errorf("a record not at debug level: %s", line)
		}
	}
}

// Without Debug the SDK logs nothing, even with a Logger.
func TestS3NoDebugNoLog(t *testing.T) {
	hs := httptest.NewServer(&s3LogServer{})
	t.Cleanup(hs.Close)
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: hs.URL, Region: "us-east-1", PathStyle: true, Logger: logger,
		Credentials: credentials.NewStaticCredentialsProvider(s3LogKeyID, s3LogSecret, s3LogToken),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3store.NewS3(c, "logs").Put(context.Background(), "runs/a", []byte(s3LogBody), nil); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 0 {
		t.Errorf("logged without Debug:\n%s", out.String())
	}
}

// An s3:// store URL opened with bucket.OpenOptions{Debug} logs through
// the options' Logger.
func TestS3URLDebug(t *testing.T) {
	hs := httptest.NewServer(&s3LogServer{})
	t.Cleanup(hs.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", s3LogKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3LogSecret)
	t.Setenv("AWS_SESSION_TOKEN", s3LogToken)
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ob, err := bucket.OpenURL(context.Background(), "s3://logs/p?region=us-east-1&endpoint="+hs.URL,
		&bucket.OpenOptions{Logger: logger, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Bucket.Put(context.Background(), "p/runs/a", []byte(s3LogBody), nil); err != nil {
		t.Fatal(err)
	}
	log := out.String()
	if !strings.Contains(log, "PUT /logs/p/runs/a") || !strings.Contains(log, "Authorization: REDACTED") {
		t.Errorf("the URL's bucket did not log its request:\n%s", log)
	}
	for _, s := range []string{s3LogKeyID, s3LogSecret, s3LogToken, s3LogBody} {
		if strings.Contains(log, s) {
			t.Errorf("the log shows the secret %q", s)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
