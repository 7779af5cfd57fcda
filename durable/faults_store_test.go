package durable_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/s3store/faults"
	"github.com/cairnstore/cairn/storetest"
)

// faultyStore returns a store on a fresh bucket of srv whose S3 client
// sends every request through a fault transport.
func faultyStore(t *testing.T, srv *miniofixture.Server) (*durable.Store, *faults.Transport, *s3store.S3) {
	t.Helper()
	tr := faults.New(nil)
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials:    srv.Credentials(),
		Transport:      tr,
		RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := s3store.NewS3(client, srv.NewBucket(t))
	s, err := durable.New(b, &durable.Options{Prefix: "f", Index: &index.Options{RetryFor: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return s, tr, b
}

// Each fault a user of S3 meets, injected between the store and a real
// MinIO, with the outcome the user would see.
func TestMinIOFaults(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()

	t.Run("LostAnswerToLogPut", func(t *testing.T) {
		// The log PUT lands but its answer is lost; the retry gets 412,
		// reads the log, finds its own batch ID: one log, one entry.
		s, tr, b := faultyStore(t, srv)
		f := tr.Add(faults.Rule{Method: "PUT", KeyContains: "/index/log/", Times: 1, Action: faults.ResetAfterSend()})
		c := cp(1, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if f.Hits() != 1 {
			t.Fatal("the fault did not fire")
		}
		logs, _, err := b.List(ctx, "f/index/log/", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) != 1 {
			t.Fatalf("%d log objects for one commit, want 1", len(logs))
		}
		if ids := listIDs(t, s); len(ids) != 1 || ids[0] != c.RunID {
			t.Fatalf("List = %v", ids)
		}
	})

	t.Run("ServerErrorsRetried", func(t *testing.T) {
		s, tr, _ := faultyStore(t, srv)
		tr.Add(faults.Rule{Method: "PUT", KeyContains: "/runs/", Times: 1, Action: faults.Respond(http.StatusServiceUnavailable)})
		tr.Add(faults.Rule{Method: "PUT", KeyContains: "/runs/", Times: 1, Action: faults.Respond(http.StatusInternalServerError)})
		c := cp(2, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatalf("Save through a 503 and a 500: %v", err)
		}
		got, err := s.Load(ctx, c.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if d := storetest.Diff(got, c); d != "" {
			t.Fatal(d)
		}
	})

	t.Run("ConflictOnLogRetried", func(t *testing.T) {
		s, tr, _ := faultyStore(t, srv)
		f := tr.Add(faults.Rule{Method: "PUT", KeyContains: "/index/log/", Times: 6,
			Action: faults.RespondCode(http.StatusConflict, "ConditionalRequestConflict")})
		c := cp(3, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatalf("Save through 409s on its commit: %v", err)
		}
		if f.Hits() == 0 {
			t.Fatal("the fault did not fire")
		}
		if ids := listIDs(t, s); len(ids) != 1 {
			t.Fatalf("List = %v", ids)
		}
	})

	t.Run("PreconditionOnLogRetried", func(t *testing.T) {
		// A 412 for a log number nobody holds must not leave a gap.
		s, tr, _ := faultyStore(t, srv)
		tr.Add(faults.Rule{Method: "PUT", KeyContains: "/index/log/", Times: 1, Action: faults.Respond(http.StatusPreconditionFailed)})
		for i := range 3 {
			if err := s.Save(ctx, cp(10+i, t0)); err != nil {
				t.Fatal(err)
			}
		}
		if ids := listIDs(t, s); len(ids) != 3 {
			t.Fatalf("List = %v", ids)
		}
	})

	t.Run("TruncatedBody", func(t *testing.T) {
		s, tr, _ := faultyStore(t, srv)
		c := cp(4, t0)
		c.State["blob"] = string(make([]byte, 64<<10))
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		tr.Add(faults.Rule{Method: "GET", KeyContains: "/runs/", Action: faults.Truncate(100)})
		if _, err := s.Load(ctx, c.RunID); !errors.Is(err, cairn.ErrCorrupt) {
			t.Fatalf("Load of a truncated body: %v, want ErrCorrupt", err)
		}
		tr.Clear()
		if _, err := s.Load(ctx, c.RunID); err != nil {
			t.Fatalf("Load once the network is fine: %v", err)
		}
	})

	t.Run("CorruptedBody", func(t *testing.T) {
		s, tr, _ := faultyStore(t, srv)
		c := cp(5, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 10, 30} {
			f := tr.Add(faults.Rule{Method: "GET", KeyContains: "/runs/", Action: faults.Corrupt(off)})
			if got, err := s.Load(ctx, c.RunID); !errors.Is(err, cairn.ErrCorrupt) {
				t.Fatalf("Load of a body corrupted at %d: %v (%v), want ErrCorrupt", off, err, got)
			}
			f.Remove()
		}
	})

	t.Run("Latency", func(t *testing.T) {
		// Slow requests make Save slow, not wrong; a caller's deadline
		// shorter than the latency fails the Save and leaves no entry.
		s, tr, _ := faultyStore(t, srv)
		tr.Add(faults.Rule{Action: faults.Latency(300 * time.Millisecond)})
		c := cp(7, t0)
		if err := s.Save(ctx, c); err != nil {
			t.Fatalf("Save with 300 ms per request: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		late := cp(8, t0)
		if err := s.Save(short, late); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Save past its deadline: %v, want context.DeadlineExceeded", err)
		}
		tr.Clear()
		if ids := listIDs(t, s); len(ids) != 1 || ids[0] != c.RunID {
			t.Fatalf("List = %v, want only the Save that returned nil", ids)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		s, tr, _ := faultyStore(t, srv)
		tr.Add(faults.Rule{Action: faults.ResetBeforeSend()})
		start := time.Now()
		err := s.Save(ctx, cp(6, t0))
		if err == nil {
			t.Fatal("Save succeeded with every request reset")
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("Save took %v to fail", time.Since(start))
		}
		if _, err := s.Load(ctx, cp(6, t0).RunID); err == nil || errors.Is(err, cairn.ErrNotFound) {
			t.Fatalf("Load with every request reset: %v, want a network error (not ErrNotFound)", err)
		}
	})
}
