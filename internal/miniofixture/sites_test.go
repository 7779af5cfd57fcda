package miniofixture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestFirstDifference(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []listed
		want string
	}{
		{name: "both empty"},
		{name: "equal, listed in different orders",
			a: []listed{{"k1", "e1"}, {"k2", "e2"}}, b: []listed{{"k2", "e2"}, {"k1", "e1"}}},
		{name: "missing on b", a: []listed{{"k1", "e1"}, {"k2", "e2"}}, b: []listed{{"k2", "e2"}},
			want: `"k1" (ETag e1) is on site a only`},
		{name: "missing on a", a: []listed{{"k1", "e1"}}, b: []listed{{"k1", "e1"}, {"k2", "e2"}},
			want: `"k2" (ETag e2) is on site b only`},
		{name: "ETags differ", a: []listed{{"k1", "e1"}, {"k2", "x"}}, b: []listed{{"k1", "e1"}, {"k2", "y"}},
			want: `"k2" has ETag x on site a, y on site b`},
		{name: "first difference wins", a: []listed{{"k1", "x"}}, b: []listed{{"k1", "y"}, {"k0", "z"}},
			want: `"k0" (ETag z) is on site b only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstDifference(tc.a, tc.b); got != tc.want {
				t.Errorf("firstDifference = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStartSitesExternalEndpoint runs this test binary with CAIRN_S3_ENDPOINT set and checks
// that StartSites skips loudly, or fails when CAIRN_REQUIRE_S3=1: one endpoint cannot be two
// sites, and a CI that requires S3 must not pass without having run them.
func TestStartSitesExternalEndpoint(t *testing.T) {
	if os.Getenv("MINIOFIXTURE_CHILD") == "1" {
		StartSites(context.Background(), t)
		t.Fatal("StartSites returned with an external endpoint")
	}
	for _, tc := range []struct {
		require  string
		wantOut  string
		wantFail bool
	}{
		{require: "", wantOut: "--- SKIP: TestStartSitesExternalEndpoint"},
		{require: "1", wantOut: "--- FAIL: TestStartSitesExternalEndpoint", wantFail: true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStartSitesExternalEndpoint$", "-test.v")
		cmd.Env = append(os.Environ(), "MINIOFIXTURE_CHILD=1", EnvRequire+"="+tc.require,
			EnvEndpoint+"=http://s3.example:9000")
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("%s=%q: exit error %v, want failure %v\n%s", EnvRequire, tc.require, err, tc.wantFail, out)
		}
		if !bytes.Contains(out, []byte(tc.wantOut)) || !bytes.Contains(out, []byte("http://s3.example:9000")) {
			t.Errorf("%s=%q: output lacks %q or the endpoint:\n%s", EnvRequire, tc.require, tc.wantOut, out)
		}
	}
}

// TestSitesReplicate: a write on either site reaches the other with the same ETag, and so does
// a delete.
func TestSitesReplicate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := StartSites(ctx, t)
	a, b := siteClients(t, s)

	for _, w := range []struct {
		from, to *s3.Client
		name     string
		key      string
	}{
		{a, b, "a to b", "from-a"},
		{b, a, "b to a", "from-b"},
	} {
		etag := putETag(ctx, t, w.from, s.Bucket, w.key, "body of "+w.key, nil)
		start := time.Now()
		eventually(t, 5*time.Second, func() error {
			got, err := headETag(ctx, w.to, s.Bucket, w.key)
			if err != nil {
				return err
			}
			if got != etag {
				return fmt.Errorf("ETag %s, want %s", got, etag)
			}
			return nil
		})
		t.Logf("%s: replicated in %s", w.name, time.Since(start).Round(time.Millisecond))
	}

	if _, err := a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("from-b")}); err != nil {
		t.Fatalf("DeleteObject on a: %v", err)
	}
	start := time.Now()
	eventually(t, 5*time.Second, func() error {
		if _, err := headETag(ctx, b, s.Bucket, "from-b"); !isNotFound(err) {
			return fmt.Errorf("HeadObject on b: %v, want not found", err)
		}
		return nil
	})
	t.Logf("delete a to b: replicated in %s", time.Since(start).Round(time.Millisecond))
	if err := s.WaitConverged(ctx, "", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSitesCut: during a cut both sites serve the host but nothing replicates; after Heal the
// writes made during the cut arrive.
func TestSitesCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := StartSites(ctx, t)
	a, b := siteClients(t, s)

	if err := s.Cut(ctx); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	etag := putETag(ctx, t, a, s.Bucket, "cut/a", "written on a during the cut", nil)
	putETag(ctx, t, b, s.Bucket, "cut/b", "written on b during the cut", nil)
	time.Sleep(time.Second)
	if _, err := headETag(ctx, b, s.Bucket, "cut/a"); !isNotFound(err) {
		t.Fatalf("HeadObject on b a second after a write on a during the cut: %v, want not found", err)
	}
	if _, err := headETag(ctx, a, s.Bucket, "cut/b"); !isNotFound(err) {
		t.Fatalf("HeadObject on a a second after a write on b during the cut: %v, want not found", err)
	}
	if ok, diff, err := s.Converged(ctx, "cut/"); err != nil || ok {
		t.Fatalf("Converged during the cut = %v, %q, %v; want false", ok, diff, err)
	} else {
		t.Logf("during the cut: %s", diff)
	}

	if err := s.Heal(ctx); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	start := time.Now()
	if err := s.WaitConverged(ctx, "cut/", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("writes made during the cut replicated %s after Heal", time.Since(start).Round(time.Millisecond))
	if got, err := headETag(ctx, b, s.Bucket, "cut/a"); err != nil || got != etag {
		t.Fatalf("HeadObject on b after Heal: %s, %v; want ETag %s", got, err, etag)
	}
}

// TestSitesConditionalWriteDuringCut records what code on two sites must live with: during a
// cut each site checks If-None-Match: * against its own objects only, so both accept a create
// of the same key. After Heal both sites agree on the write with the later modification time;
// the other survives only as an older version.
func TestSitesConditionalWriteDuringCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := StartSites(ctx, t)
	clients := [2]*s3.Client{}
	clients[0], clients[1] = siteClients(t, s)

	if err := s.Cut(ctx); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	createOnly := aws.String("*")
	var etags [2]string
	for i, c := range clients {
		if i == 1 {
			// MinIO keeps modification times in nanoseconds; the pause makes the order certain.
			time.Sleep(10 * time.Millisecond)
		}
		etags[i] = putETag(ctx, t, c, s.Bucket, "claim", "claimed on site "+siteNames[i], createOnly)
	}
	// Each site does enforce the condition on its own objects.
	_, err := clients[0].PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String("claim"), Body: strings.NewReader("again"), IfNoneMatch: createOnly,
	})
	if code := errorCode(err); code != "PreconditionFailed" {
		t.Fatalf("a second If-None-Match: * create on a: %v (code %q), want PreconditionFailed", err, code)
	}

	if err := s.Heal(ctx); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if err := s.WaitConverged(ctx, "claim", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if got := get(ctx, t, c, s.Bucket, "claim"); got != "claimed on site b" {
			t.Errorf("site %s after Heal holds %q, want the later write, %q", siteNames[i], got, "claimed on site b")
		}
		// The earlier write may still be on its way when the latest versions agree.
		eventually(t, 15*time.Second, func() error {
			if n := countVersions(ctx, t, c, s.Bucket, "claim"); n != 2 {
				return fmt.Errorf("site %s has %d versions of the key, want both writes", siteNames[i], n)
			}
			return nil
		})
	}
}

func siteClients(t *testing.T, s *Sites) (a, b *s3.Client) {
	// One attempt per request: a site that does not answer should fail the test, not be retried.
	one := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	return s.Site[0].NewClient(t, one), s.Site[1].NewClient(t, one)
}

func putETag(ctx context.Context, t *testing.T, c *s3.Client, bucket, key, body string, ifNoneMatch *string) string {
	t.Helper()
	out, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body), IfNoneMatch: ifNoneMatch,
	})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	return aws.ToString(out.ETag)
}

func headETag(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func countVersions(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) int {
	t.Helper()
	out, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatalf("ListObjectVersions %s: %v", key, err)
	}
	return len(out.Versions)
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports a HeadObject 404, which has no error body and so the code "NotFound".
func isNotFound(err error) bool { return errorCode(err) == "NotFound" }

// eventually calls f every 20 ms until it returns nil, and fails t with its last error after
// timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
