package s3store_test

// Review (review1) of the object options against MinIO with a KMS: what
// Cairn does with an object's ETag (conditional GETs of the cache's
// revalidation, If-Match of fencing) must hold for encrypted objects.

import (
	"errors"
	"testing"
	"time"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// On encrypted objects, the ETag a PUT returns is the one HEAD and GET
// return, If-None-Match with it is 304 (so a tiered store that
// revalidates pays no body for an unchanged run), and If-Match with it
// replaces the object (fencing).
func TestR1EncryptedETagsMinIO(t *testing.T) {
	const keyName = "cairn-review-key"
	s := minioWithKMS(t, keyName)
	for _, tc := range []struct {
		name string
		mod  func(*s3store.S3Options)
	}{
		{"SSE-S3", func(o *s3store.S3Options) { o.SSE = s3types.ServerSideEncryptionAes256 }},
		{"SSE-KMS", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = s3types.ServerSideEncryptionAwsKms, keyName }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := s.open(t, tc.mod)
			ctx := s3Ctx(t)
			etag, err := b.Put(ctx, "k", []byte("v1"), &bucket.PutOptions{IfNoneMatch: "*"})
			if err != nil {
				t.Fatal(err)
			}
			h, err := b.Head(ctx, "k")
			if err != nil || h.ETag != etag {
				t.Errorf("HEAD: %v, ETag %q; the PUT returned %q", err, h.ETag, etag)
			}
			if obj, err := b.Get(ctx, "k", nil); err != nil || obj.ETag != etag || string(obj.Body) != "v1" {
				t.Errorf("GET: %v; want ETag %q and v1", err, etag)
			}
			if _, err := b.Get(ctx, "k", &bucket.GetOptions{IfNoneMatch: etag}); !errors.Is(err, bucket.ErrNotModified) {
				t.Errorf("GET If-None-Match the PUT's ETag: %v; want ErrNotModified", err)
			}
			if _, err := b.Put(ctx, "k", []byte("v2"), &bucket.PutOptions{IfMatch: etag}); err != nil {
				t.Errorf("PUT If-Match the PUT's ETag: %v", err)
			}

			store, err := tiered.New(b, &tiered.Options{Revalidate: true, Fencing: true, Durable: durable.Options{Prefix: "p"}})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close(ctx)
			id := uuid.New()
			for i := range 2 {
				cp := &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: time.Unix(int64(1e9+i), 0).UTC(), State: map[string]any{"i": int64(i)}}
				if err := store.Save(ctx, cp); err != nil {
					t.Fatalf("fenced Save %d: %v", i, err)
				}
			}
			for range 3 {
				if _, err := store.Load(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			if st := store.Stats(); st.Revalidated != 3 {
				t.Errorf("%d of 3 Loads of an unchanged run revalidated without a body (GETs %d)", st.Revalidated, st.GETs)
			}
		})
	}
}
