package fakes3_test

import (
	"context"
	"errors"
	"testing"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// These tests run the durable and tiered stores on gofakes3. They live in
// this module, not beside the stores, so that gofakes3 never enters the
// library module's requirements.

// smallIndex makes index pages and compactions frequent.
var smallIndex = &index.Options{PageSize: 4, CompactAfter: 3}

// tieredSharedModes are the tiered configurations the multi-store suite
// runs: each store revalidates its cache, and the fenced opener adds
// fencing.
var tieredSharedModes = []struct {
	name string
	o    tiered.Options
}{
	{"WriteThrough", tiered.Options{Revalidate: true}},
	{"WriteBack", tiered.Options{Revalidate: true, Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond}},
}

// newDurable opens a durable store on b, closed when t ends.
func newDurable(t testing.TB, b bucket.Bucket, o *durable.Options) *durable.Store {
	t.Helper()
	s, err := durable.New(b, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// durableSharedOn returns the multi-store harness over the buckets
// newBucket returns: each store gets its own, as a separate process would.
func durableSharedOn(newBucket func(t *testing.T) bucket.Bucket, o *durable.Options) storetest.Shared {
	return storetest.Shared{
		Open: func(t *testing.T) cairn.Store { return newDurable(t, newBucket(t), o) },
		Reindex: func(ctx context.Context, s cairn.Store) error {
			_, err := s.(*durable.Store).Reindex(ctx, nil)
			return err
		},
	}
}

// t0 is the timestamp of the first checkpoint of a test.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// numberedCP returns a small checkpoint numbered n, saved at ts.
func numberedCP(n int, ts time.Time) *cairn.Checkpoint {
	var id uuid.UUID
	id[0], id[1] = byte(n>>8), byte(n)
	id[6], id[8], id[15] = 0x40, 0x80, 7
	return &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: ts, State: map[string]any{"n": int64(n)},
		PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
}

// cp returns a small checkpoint of run id at step (a second per step).
func cp(id uuid.UUID, step int) *cairn.Checkpoint {
	return &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: t0.Add(time.Duration(step) * time.Second),
		State: map[string]any{"step": int64(step)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
}

// s3Static are the credentials of a client of gofakes3, which checks none.
var s3Static = credentials.NewStaticCredentialsProvider("key", "secret", "")

// s3Ctx bounds a test's calls to gofakes3.
func s3Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// s3Status returns the HTTP status in err's chain, or 0.
func s3Status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
