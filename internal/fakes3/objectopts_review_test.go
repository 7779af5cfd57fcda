package fakes3_test

// Review (review1) of the object options of s3store on the paths the
// other tests leave out: PUTs the SDK retries, and the PUTs of a tiered
// store's write-back flush and of a Reindex. These properties held.

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/fakes3"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

var r1Want = map[string]string{hSSE: "aws:kms", hKMSKey: s3KeyARN, hBucketKey: "true", hClass: "STANDARD_IA", hTagging: s3Tagging}

func r1Options(o *s3store.S3Options) {
	o.SSE, o.SSEKMSKeyID, o.SSEBucketKey, o.StorageClass, o.Tags = "aws:kms", s3KeyARN, true, "STANDARD_IA", s3Tags
	o.MaxBackoff = time.Millisecond
}

// Every attempt of a retried PUT carries the options, the conditional
// headers too: the first attempts fail with 503 and the last lands.
func TestR1ObjectOptionsOnEveryAttempt(t *testing.T) {
	c, rec := s3Recorded(t, r1Options)
	b := s3store.NewS3(c, fakes3.Bucket)
	ctx := s3Ctx(t)
	for _, po := range []*bucket.PutOptions{nil, {IfNoneMatch: "*"}} {
		rec.fail(2)
		key := "k" + uuid.NewString()
		if _, err := b.Put(ctx, key, []byte("v"), po); err != nil {
			t.Fatalf("Put %+v after two 503s: %v", po, err)
		}
		puts := rec.take()
		if len(puts) != 3 {
			t.Fatalf("Put %+v: %d attempts reached the server; want 3", po, len(puts))
		}
		checkObjectHeaders(t, puts, r1Want)
		for i, p := range puts {
			if po != nil && p.header.Get("If-None-Match") != "*" {
				t.Errorf("attempt %d lost If-None-Match: %v", i+1, p.header)
			}
		}
	}
}

// A tiered write-back store's flushes (run objects in parallel, then the
// index commit), with a 503 before each, and a Reindex of what they
// wrote: every PUT carries the options.
func TestR1ObjectOptionsOnFlushAndReindex(t *testing.T) {
	c, rec := s3Recorded(t, r1Options)
	b := s3store.NewS3(c, fakes3.Bucket)
	ctx := s3Ctx(t)
	s, err := tiered.New(b, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour,
		Durable: durable.Options{Prefix: "p", UnsafeSkipProbe: true, Index: smallIndex}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for step := range 3 {
		for range 4 {
			cp := &cairn.Checkpoint{WorkflowName: "wf", RunID: uuid.New(), Timestamp: time.Unix(int64(1e9+step), 0).UTC(),
				State: map[string]any{"step": int64(step)}}
			if err := s.Save(ctx, cp); err != nil {
				t.Fatal(err)
			}
		}
		rec.fail(1)
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush after a 503: %v", err)
		}
	}
	if _, err := s.Durable().Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	puts := rec.take()
	if len(puts) < 12+3 {
		t.Fatalf("%d PUTs; want at least the 12 runs and 3 commits", len(puts))
	}
	checkObjectHeaders(t, puts, r1Want)
	var runs, index int
	for _, p := range puts {
		switch {
		case strings.HasPrefix(p.key, "p/runs/"):
			runs++
		case strings.HasPrefix(p.key, "p/index/"):
			index++
		}
	}
	if runs < 12 || index < 4 {
		t.Errorf("%d run PUTs and %d index PUTs; want at least 12 and 4 (commits and the Reindex's snapshot)", runs, index)
	}
	if _, err := s.Load(ctx, uuid.New()); !errors.Is(err, cairn.ErrNotFound) {
		t.Errorf("Load of a missing run: %v", err)
	}
}
