package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// refusingIndex refuses, once refuse is set, every Put of an index log
// with err: a server whose answer will not change however often it is
// asked (a policy without s3:PutObject on the index's keys, a KMS key
// that does not exist, a bucket deleted under the store).
type refusingIndex struct {
	bucket.Bucket
	err    error
	refuse atomic.Bool
	puts   atomic.Int64
}

func (b *refusingIndex) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if b.refuse.Load() && strings.Contains(key, "/index/log/") {
		b.puts.Add(1)
		return "", &bucket.Error{Op: "put", Key: key, Err: b.err}
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// An index commit the server refuses for good (access denied, no such
// bucket, an invalid request) fails at once with that error. The commit
// retries whatever it does not recognise until its deadline (RetryFor,
// 30 s by default), then reports context.DeadlineExceeded: a Save waits
// 30 s for an answer it had at the first attempt, and the CLI, seeing
// DeadlineExceeded first, says "no answer from the store in time" to a
// user whose policy refuses the write. This test gives the Save 10 s:
// a caller's deadline that ends first leaves it only "context deadline
// exceeded", the refusal lost.
func TestReview2CommitRefusedForGoodFailsFast(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"access denied", fmt.Errorf("%w: AccessDenied: not allowed on index/", bucket.ErrAccessDenied)},
		{"no such bucket", fmt.Errorf("%w: NoSuchBucket", bucket.ErrNoBucket)},
		{"invalid", fmt.Errorf("%w: refused by the client", bucket.ErrInvalid)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := &refusingIndex{Bucket: bucket.NewMem(), err: c.err}
			s := newStore(t, b, &durable.Options{Prefix: "p"})
			ctx := context.Background()
			if err := s.Save(ctx, cp(1, t0)); err != nil { // the probe and a first commit
				t.Fatal(err)
			}
			b.refuse.Store(true)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			err := s.Save(ctx, cp(2, t0))
			took := time.Since(start)
			if !errors.Is(err, c.err) {
				t.Errorf("Save: %v (after %s, %d index Puts); want the server's refusal", err, took.Round(time.Millisecond), b.puts.Load())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Save: %v: reads as a timeout (after %s, %d attempts); the server refused at the first", err, took.Round(time.Millisecond), b.puts.Load())
			}
			if took > 2*time.Second {
				t.Errorf("Save took %s (%d index Puts) to report a refusal the first attempt had", took.Round(time.Millisecond), b.puts.Load())
			}
		})
	}
}
