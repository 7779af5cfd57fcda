package s3store_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/internal/s3check"
	"github.com/cairnstore/cairn/s3store"
)

// The object options on MinIO, through a durable store whose probe runs:
// every object it wrote has the storage class and the tags (read back
// with HeadObject and GetObjectTagging), and reads need nothing more.
// MinIO knows two storage classes, STANDARD and REDUCED_REDUNDANCY, and
// refuses tags with letters beyond ASCII (InvalidTag), which S3 allows.
func s3TestObjectOptions(t *testing.T, srv s3Server) {
	tags := map[string]string{"team": "ml ops", "path": "a/b+c=d@e:f_g.h-i", "empty": ""}
	name := srv.NewBucket(t)
	b, tr := srv.openBucket(t, name, func(o *s3store.S3Options) {
		o.StorageClass, o.Tags = s3types.StorageClassReducedRedundancy, tags
	})
	ctx := s3Ctx(t)
	store, _ := s3check.WriteAll(t, ctx, b, false)
	if page, err := store.List(ctx, nil); err != nil || len(page.Runs) != 3 {
		t.Fatalf("List: %v, %v; want 3 runs", page, err)
	}
	if tr.Sent("PUT") == 0 {
		t.Fatal("no PUT sent")
	}

	c := s3ClientOf(t, srv)
	keys := s3Keys(t, c, name, "p/")
	for _, key := range keys {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &name, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if h.StorageClass != s3types.StorageClassReducedRedundancy {
			t.Errorf("%s: storage class %q; want REDUCED_REDUNDANCY", key, h.StorageClass)
		}
		tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &name, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, x := range tg.TagSet {
			got[aws.ToString(x.Key)] = aws.ToString(x.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(tags) {
			t.Errorf("%s: tags %q; want %q", key, got, tags)
		}
	}
	s3check.CheckKinds(t, keys, "p/cairn-probe/verdict")
}

// s3Keys lists the keys under prefix.
func s3Keys(t *testing.T, c *s3.Client, name, prefix string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(s3Ctx(t), &s3.ListObjectsV2Input{Bucket: &name, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// SSE-S3 and SSE-KMS on a MinIO started with a KMS key (MinIO encrypts
// only with a KMS configured, which the shared test server has not): every
// object a durable store writes is encrypted as asked, a client without
// the options reads it, and a key the KMS does not have fails the write
// with the KMS's error, not a sentinel. MinIO does not support dual-layer
// SSE-KMS (aws:kms:dsse), which is checked only against gofakes3
// (TestS3ObjectOptionsReachPut).
func TestS3EncryptionMinIO(t *testing.T) {
	const keyName = "cairn-test-key"
	s := minioWithKMS(t, keyName)
	for _, tc := range []struct {
		name string
		mod  func(*s3store.S3Options)
		sse  s3types.ServerSideEncryption
	}{
		{"SSE-S3", func(o *s3store.S3Options) { o.SSE = "AES256" }, "AES256"},
		{"SSE-KMS", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "aws:kms", keyName }, "aws:kms"},
		{"SSE-KMS-BucketKey", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID, o.SSEBucketKey = "aws:kms", keyName, true }, "aws:kms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := s.NewBucket(t)
			b, _ := s.openBucket(t, name, tc.mod)
			ctx := s3Ctx(t)
			_, id := s3check.WriteAll(t, ctx, b, false)

			c := s3ClientOf(t, s)
			keys := s3Keys(t, c, name, "p/")
			for _, key := range keys {
				h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &name, Key: &key})
				if err != nil {
					t.Fatal(err)
				}
				if h.ServerSideEncryption != tc.sse || tc.sse == "aws:kms" && !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), keyName) {
					t.Errorf("%s: encryption %q, key %q; want %q with %s", key, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId), tc.sse, keyName)
				}
			}
			s3check.CheckKinds(t, keys, "p/cairn-probe/verdict")

			// A store over a client without the options reads the runs.
			plain, _ := s.openBucket(t, name, nil)
			reader, err := durable.New(plain, &durable.Options{Prefix: "p"})
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close(ctx)
			if got, err := reader.Load(ctx, id); err != nil || got.WorkflowName != "wf" {
				t.Fatalf("Load through a client without SSE options: %v, %v", got, err)
			}
		})
	}
	t.Run("MissingKey", func(t *testing.T) {
		b, _ := s.open(t, func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "aws:kms", "no-such-key" })
		ctx := s3Ctx(t)
		for _, po := range []*bucket.PutOptions{nil, {IfNoneMatch: "*"}} {
			_, err := b.Put(ctx, "k", []byte("v"), po)
			if err == nil || s3Sentinel(err) != nil || !strings.HasPrefix(s3Code(err), "kms:") {
				t.Errorf("Put %+v with a key the KMS lacks: %v (code %q); want the KMS's error, no sentinel", po, err, s3Code(err))
			}
		}
	})
}

func miniofixtureRequired() bool { return os.Getenv(miniofixture.EnvRequire) == "1" }

// minioWithKMS starts a MinIO of t's own whose KMS has the key keyName
// (MinIO encrypts only with a KMS configured, which the shared test server
// has not), stopped when t ends. Without Docker it skips loudly, or fails
// where CI requires MinIO; with an external server it skips, since it
// cannot know that server's keys.
func minioWithKMS(t *testing.T, keyName string) s3Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	srv, stop, err := miniofixture.Launch(ctx, t.Logf, &miniofixture.LaunchOptions{
		Env: map[string]string{"MINIO_KMS_SECRET_KEY": keyName + ":" + secret},
	})
	if err != nil {
		// As miniofixture.Start: a loud skip, a failure where CI requires MinIO.
		msg := fmt.Sprintf("no MinIO with a KMS: %v", err)
		if miniofixtureRequired() {
			t.Fatal(msg)
		}
		t.Skip(msg + "\n\tSKIPPING. Set " + miniofixture.EnvRequire + "=1 to make this a failure.")
	}
	t.Cleanup(func() {
		if err := stop(context.Background()); err != nil {
			t.Logf("stop MinIO: %v", err)
		}
	})
	if !srv.Managed() {
		t.Skipf("SKIPPING: %s names an external server, whose KMS keys this test cannot know; it needs a MinIO it starts itself", miniofixture.EnvEndpoint)
	}
	return s3Server{srv}
}
