package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/s3store"
)

// The review's tests of S3Options.Debug with the credential sources a
// developer or a service really uses: the SDK's default chain resolves
// them with clients built from the same aws.Config, so with Debug their
// requests are logged too, and the headers that carry those sources'
// secrets must be redacted like the Authorization header.

// debugLog is a text log at debug level that tests read.
type debugLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *debugLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *debugLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// clearAWSEnv unsets every variable that would give the default chain
// credentials, a profile or an endpoint, so that only the test's source
// is used.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	for _, v := range os.Environ() {
		name, _, _ := strings.Cut(v, "=")
		if strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
}

// putWithDebug opens an S3 client with Debug on the default chain and
// writes one object to a minimal S3, returning the log.
func putWithDebug(t *testing.T) string {
	t.Helper()
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e1"`)
	}))
	t.Cleanup(s3.Close)
	log := &debugLog{}
	c, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: s3.URL, Region: "us-east-1", PathStyle: true, Debug: true,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3store.NewS3(c, "logs").Put(context.Background(), "runs/a", []byte("body"), nil); err != nil {
		t.Fatalf("Put: %v\nlog:\n%s", err, log)
	}
	return log.String()
}

// An EC2 instance role (the SDK asks the instance metadata service, with
// an IMDSv2 session token in the X-Aws-Ec2-Metadata-Token header): with
// Debug, the log must not show that token.
func TestS3DebugLogHidesIMDSToken(t *testing.T) {
	clearAWSEnv(t)
	const token = "imds-session-token-review2-Q7"
	var asked sync.Map
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.Method+" "+r.URL.Path, true)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			fmt.Fprint(w, token)
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != token:
			http.Error(w, "no token", http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/":
			fmt.Fprint(w, "review2-role")
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/review2-role":
			fmt.Fprintf(w, `{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"AKIDIMDSREVIEW2",`+
				`"SecretAccessKey":"imdsSecretReview2","Token":"imdsRoleSessionReview2","Expiration":"%s"}`,
				time.Now().Add(6*time.Hour).UTC().Format(time.RFC3339))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(imds.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	log := putWithDebug(t)
	if _, ok := asked.Load("PUT /latest/api/token"); !ok {
		t.Fatal("the SDK never asked the metadata service: the test did not exercise an instance role")
	}
	if !strings.Contains(log, "X-Aws-Ec2-Metadata-Token") {
		t.Logf("the metadata requests are not logged at all")
	}
	for _, secret := range []string{token, "imdsSecretReview2", "imdsRoleSessionReview2"} {
		if strings.Contains(log, secret) {
			t.Errorf("with Debug, the log shows the instance metadata secret %q:\n%s", secret, excerpt(log, secret))
		}
	}
}

// An IAM Identity Center (SSO) profile, as developers use with
// AWS_PROFILE: the SDK trades the cached SSO access token, sent in the
// X-Amz-Sso_bearer_token header, for role credentials. That token is a
// bearer credential (anyone holding it gets the role's credentials):
// with Debug, the log must not show it.
func TestS3DebugLogHidesSSOBearerToken(t *testing.T) {
	clearAWSEnv(t)
	const (
		token    = "sso-bearer-token-review2-K3"
		startURL = "https://review2.example.awsapps.com/start"
	)
	var asked sync.Map
	sso := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path, true)
		if r.URL.Path != "/federation/credentials" || r.Header.Get("X-Amz-Sso_bearer_token") != token {
			http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"roleCredentials":{"accessKeyId":"AKIDSSOREVIEW2","secretAccessKey":"ssoSecretReview2",`+
			`"sessionToken":"ssoRoleSessionReview2","expiration":%d}}`, time.Now().Add(time.Hour).UnixMilli())
	}))
	t.Cleanup(sso.Close)

	home := os.Getenv("HOME")
	config := "[profile review2]\nsso_start_url = " + startURL + "\nsso_region = us-east-1\n" +
		"sso_account_id = 123456789012\nsso_role_name = Review2\nregion = us-east-1\n"
	if err := os.WriteFile(os.Getenv("AWS_CONFIG_FILE"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(startURL))
	cache := filepath.Join(home, ".aws", "sso", "cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	cached := fmt.Sprintf(`{"accessToken":%q,"expiresAt":%q,"region":"us-east-1","startUrl":%q}`,
		token, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), startURL)
	if err := os.WriteFile(filepath.Join(cache, hex.EncodeToString(sum[:])+".json"), []byte(cached), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROFILE", "review2")
	t.Setenv("AWS_ENDPOINT_URL_SSO", sso.URL)

	log := putWithDebug(t)
	if _, ok := asked.Load("/federation/credentials"); !ok {
		t.Fatal("the SDK never asked the SSO service: the test did not exercise an SSO profile")
	}
	for _, secret := range []string{token, "ssoSecretReview2", "ssoRoleSessionReview2"} {
		if strings.Contains(log, secret) {
			t.Errorf("with Debug, the log shows the SSO secret %q:\n%s", secret, excerpt(log, secret))
		}
	}
}

// excerpt returns the log line that shows s.
func excerpt(log, s string) string {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// MinIO answers a request signed with a session token it does not know
// (a malformed or revoked STS token) with 403 InvalidTokenId, its own
// code for AWS's InvalidToken. Cairn classifies InvalidToken as
// bucket.ErrAccessDenied, so the CLI says "access denied: check the AWS
// credentials"; InvalidTokenId falls through, and the CLI prints the
// SDK's raw error (seen with cairn import --debug against MinIO and a
// bad AWS_SESSION_TOKEN).
func TestS3InvalidTokenIdIsAccessDenied(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidTokenId</Code>`+
			`<Message>The security token included in the request is invalid</Message><Resource>/b/runs/a</Resource>`+
			`<RequestId>1</RequestId><HostId>h</HostId></Error>`)
	}))
	t.Cleanup(srv.Close)
	c, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: srv.URL, Region: "us-east-1", PathStyle: true, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDREVIEW2", "secret", "bad-token"),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s3store.NewS3(c, "b").Get(context.Background(), "runs/a", nil)
	if !errors.Is(err, bucket.ErrAccessDenied) {
		t.Errorf("Get refused with InvalidTokenId: %v; want bucket.ErrAccessDenied", err)
	}
}
