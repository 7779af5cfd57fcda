package cairn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairnstore/cairn/internal/miniofixture"
)

// These tests prove that the S3 server the MinIO suites run against honours the conditional
// requests the store depends on: create-if-absent (If-None-Match: *), compare-and-swap
// (If-Match: etag), both under a lost race, and revalidation (GET If-None-Match → 304).

// minio starts a server for t and returns it with a client and a fresh bucket.
func minio(t *testing.T) (*miniofixture.Server, *s3.Client, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // first run builds the image
	defer cancel()
	srv := miniofixture.Start(ctx, t)
	return srv, srv.NewClient(t), srv.NewBucket(t)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// httpStatus returns the HTTP status of an SDK error, or 0 if err carries none.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// conflictStatus reports whether status is how srv reports a failed precondition. MinIO answers
// 412; AWS S3 may also answer 409 ConditionalRequestConflict to a write that races another
// conditional write still in flight, so an external endpoint may use either.
func conflictStatus(srv *miniofixture.Server, status int) bool {
	return status == http.StatusPreconditionFailed ||
		(!srv.Managed() && status == http.StatusConflict)
}

func putIfAbsent(ctx context.Context, c *s3.Client, bucket, key string, body []byte) (*s3.PutObjectOutput, error) {
	return c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		IfNoneMatch: aws.String("*"),
	})
}

func putIfMatch(ctx context.Context, c *s3.Client, bucket, key, etag string, body []byte) (*s3.PutObjectOutput, error) {
	return c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:  aws.String(bucket),
		Key:     aws.String(key),
		Body:    bytes.NewReader(body),
		IfMatch: aws.String(etag),
	})
}

// getObject returns the object's body and ETag.
func getObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) ([]byte, string) {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: read body: %v", key, err)
	}
	return b, aws.ToString(out.ETag)
}

func TestMinIOCreateIfAbsent(t *testing.T) {
	_, c, bucket := minio(t)
	ctx := testCtx(t)

	first, err := putIfAbsent(ctx, c, bucket, "runs/a", []byte("first"))
	if err != nil {
		t.Fatalf("PutObject If-None-Match:* on a new key: %v", err)
	}
	if aws.ToString(first.ETag) == "" {
		t.Fatal("PutObject returned no ETag")
	}

	_, err = putIfAbsent(ctx, c, bucket, "runs/a", []byte("second"))
	if err == nil {
		t.Fatal("second PutObject If-None-Match:* on an existing key succeeded; want 412")
	}
	if got := httpStatus(err); got != http.StatusPreconditionFailed {
		t.Fatalf("second PutObject If-None-Match:*: status %d (%v); want 412", got, err)
	}

	body, etag := getObject(ctx, t, c, bucket, "runs/a")
	if string(body) != "first" || etag != aws.ToString(first.ETag) {
		t.Fatalf("after the refused overwrite: body %q etag %s; want %q etag %s",
			body, etag, "first", aws.ToString(first.ETag))
	}
}

func TestMinIOReplaceIfMatch(t *testing.T) {
	_, c, bucket := minio(t)
	ctx := testCtx(t)

	v1, err := putIfAbsent(ctx, c, bucket, "runs/b", []byte("v1"))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	etag1 := aws.ToString(v1.ETag)

	v2, err := putIfMatch(ctx, c, bucket, "runs/b", etag1, []byte("v2"))
	if err != nil {
		t.Fatalf("PutObject If-Match: current ETag: %v", err)
	}
	etag2 := aws.ToString(v2.ETag)
	if etag2 == "" || etag2 == etag1 {
		t.Fatalf("PutObject If-Match returned ETag %q; want a new one (old %s)", etag2, etag1)
	}

	_, err = putIfMatch(ctx, c, bucket, "runs/b", etag1, []byte("v3 from a stale reader"))
	if err == nil {
		t.Fatal("PutObject If-Match: stale ETag succeeded; want 412")
	}
	if got := httpStatus(err); got != http.StatusPreconditionFailed {
		t.Fatalf("PutObject If-Match: stale ETag: status %d (%v); want 412", got, err)
	}

	body, etag := getObject(ctx, t, c, bucket, "runs/b")
	if string(body) != "v2" || etag != etag2 {
		t.Fatalf("after the refused stale write: body %q etag %s; want %q etag %s", body, etag, "v2", etag2)
	}

	// If-Match on a key that does not exist cannot match anything.
	_, err = putIfMatch(ctx, c, bucket, "runs/missing", etag2, []byte("x"))
	if got := httpStatus(err); err == nil || (got != http.StatusPreconditionFailed && got != http.StatusNotFound) {
		t.Fatalf("PutObject If-Match on a missing key: status %d (%v); want 412 or 404", got, err)
	}
}

// race runs n writers that start together and returns, per writer, the ETag it got or its
// error. Each writer sends a different 1 MiB body so that the uploads overlap on the server.
func race(n int, write func(i int, body []byte) (*s3.PutObjectOutput, error)) (bodies [][]byte, etags []string, errs []error) {
	bodies = make([][]byte, n)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte(fmt.Sprintf("writer %02d|", i)), (1<<20)/10)
	}
	etags, errs = make([]string, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out, err := write(i, bodies[i])
			errs[i] = err
			if err == nil {
				etags[i] = aws.ToString(out.ETag)
			}
		})
	}
	close(start)
	wg.Wait()
	return bodies, etags, errs
}

// checkOneWinner asserts that exactly one writer succeeded, that every other writer got a
// precondition failure, and that the stored object is the winner's.
func checkOneWinner(ctx context.Context, t *testing.T, srv *miniofixture.Server, c *s3.Client, bucket, key string,
	bodies [][]byte, etags []string, errs []error) {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case !conflictStatus(srv, httpStatus(err)):
			t.Errorf("writer %d: status %d (%v); want 412", i, httpStatus(err), err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer succeeded: %v", errs)
	}
	body, etag := getObject(ctx, t, c, bucket, key)
	if !bytes.Equal(body, bodies[winner]) || etag != etags[winner] {
		t.Fatalf("stored object (%d bytes, %.12q..., etag %s) is not the winner's (writer %d, etag %s)",
			len(body), body, etag, winner, etags[winner])
	}
}

func TestMinIOCreateRace(t *testing.T) {
	srv, c, bucket := minio(t)
	ctx := testCtx(t)
	const writers, rounds = 8, 3
	for r := range rounds {
		key := fmt.Sprintf("runs/create-race-%d", r)
		bodies, etags, errs := race(writers, func(i int, body []byte) (*s3.PutObjectOutput, error) {
			return putIfAbsent(ctx, c, bucket, key, body)
		})
		checkOneWinner(ctx, t, srv, c, bucket, key, bodies, etags, errs)
	}
}

func TestMinIOReplaceRace(t *testing.T) {
	srv, c, bucket := minio(t)
	ctx := testCtx(t)
	const writers, rounds = 8, 3
	for r := range rounds {
		key := fmt.Sprintf("runs/replace-race-%d", r)
		base, err := putIfAbsent(ctx, c, bucket, key, []byte("base"))
		if err != nil {
			t.Fatalf("create %s: %v", key, err)
		}
		bodies, etags, errs := race(writers, func(i int, body []byte) (*s3.PutObjectOutput, error) {
			return putIfMatch(ctx, c, bucket, key, aws.ToString(base.ETag), body)
		})
		checkOneWinner(ctx, t, srv, c, bucket, key, bodies, etags, errs)
	}
}

func TestMinIORevalidate(t *testing.T) {
	_, c, bucket := minio(t)
	ctx := testCtx(t)

	v1, err := putIfAbsent(ctx, c, bucket, "runs/c", []byte("cached"))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	etag1 := aws.ToString(v1.ETag)

	_, err = c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("runs/c"), IfNoneMatch: aws.String(etag1),
	})
	if got := httpStatus(err); got != http.StatusNotModified {
		t.Fatalf("GetObject If-None-Match: current ETag: status %d (%v); want 304", got, err)
	}

	v2, err := putIfMatch(ctx, c, bucket, "runs/c", etag1, []byte("changed"))
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("runs/c"), IfNoneMatch: aws.String(etag1),
	})
	if err != nil {
		t.Fatalf("GetObject If-None-Match: stale ETag: %v; want the new object", err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "changed" || aws.ToString(out.ETag) != aws.ToString(v2.ETag) {
		t.Fatalf("GetObject If-None-Match: stale ETag: body %q etag %s; want %q etag %s",
			body, aws.ToString(out.ETag), "changed", aws.ToString(v2.ETag))
	}
}

// The fixture's client sends checksums only where S3 requires them, for the sake of other
// S3-compatible servers. The SDK's defaults (a CRC32 on every upload, validated on download)
// must work against MinIO too, since that is what a user's client has.
func TestMinIOSDKDefaultChecksums(t *testing.T) {
	srv, _, bucket := minio(t)
	ctx := testCtx(t)
	c := srv.NewClient(t, func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	})

	put, err := putIfAbsent(ctx, c, bucket, "runs/d", []byte("checksummed"))
	if err != nil {
		t.Fatalf("PutObject If-None-Match:* with SDK default checksums: %v", err)
	}
	if aws.ToString(put.ChecksumCRC32) == "" {
		t.Error("PutObject response has no CRC32: the server ignored the SDK's checksum")
	}
	_, err = putIfAbsent(ctx, c, bucket, "runs/d", []byte("again"))
	if got := httpStatus(err); got != http.StatusPreconditionFailed {
		t.Fatalf("second PutObject If-None-Match:*: status %d (%v); want 412", got, err)
	}

	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("runs/d")})
	if err != nil {
		t.Fatalf("GetObject with checksum validation: %v", err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body) // the SDK validates the CRC32 at EOF
	if err != nil {
		t.Fatalf("GetObject body with checksum validation: %v", err)
	}
	if string(body) != "checksummed" || aws.ToString(out.ChecksumCRC32) != aws.ToString(put.ChecksumCRC32) {
		t.Fatalf("GetObject: body %q CRC32 %s; want %q CRC32 %s",
			body, aws.ToString(out.ChecksumCRC32), "checksummed", aws.ToString(put.ChecksumCRC32))
	}
}
