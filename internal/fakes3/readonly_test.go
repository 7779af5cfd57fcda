package fakes3_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/fakes3"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// A store opened read-only on S3 (tiered.Open of an s3:// URL with
// ReadOnly, as the CLI's read commands open it) sends nothing but GET and
// HEAD requests, whatever it is asked: no probe, no index creation, no
// compaction, and its writes are refused before any request.
func TestReadOnlyS3(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	methods := map[string]int{}
	url := fakes3.Server(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			methods[r.Method]++
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	t.Setenv("AWS_ACCESS_KEY_ID", "fake")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	storeURL := "s3://" + fakes3.Bucket + "/t?endpoint=" + url + "&region=us-east-1"
	// gofakes3 keeps old metadata on overwrite, so it fails the probe:
	// the writer skips it (it writes each run once).
	w, err := tiered.Open(ctx, storeURL, &tiered.Options{Durable: durable.Options{UnsafeSkipProbe: true}})
	if err != nil {
		t.Fatal(err)
	}
	var runs []uuid.UUID
	for i := range 10 {
		c := cp(uuid.New(), i)
		if err := w.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, c.RunID)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clear(methods)
	mu.Unlock()

	s, err := tiered.Open(ctx, storeURL, &tiered.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if page, err := s.List(ctx, nil); err != nil || len(page.Runs) != len(runs) {
		t.Errorf("List: %v, %v; want %d runs", page, err, len(runs))
	}
	for _, run := range runs {
		if _, err := s.Load(ctx, run); err != nil {
			t.Errorf("Load(%v): %v", run, err)
		}
	}
	if rep, err := s.Durable().Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	if err := s.Save(ctx, cp(uuid.New(), 1)); !errors.Is(err, cairn.ErrReadOnly) {
		t.Errorf("Save: %v, want cairn.ErrReadOnly", err)
	}
	if err := s.Delete(ctx, runs[0]); !errors.Is(err, cairn.ErrReadOnly) {
		t.Errorf("Delete: %v, want cairn.ErrReadOnly", err)
	}
	if err := s.Durable().CheckServer(ctx); !errors.Is(err, cairn.ErrReadOnly) {
		t.Errorf("CheckServer (the probe): %v, want cairn.ErrReadOnly", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for m, n := range methods {
		if m != http.MethodGet && m != http.MethodHead {
			t.Errorf("a read-only store sent %d %s requests (all: %v)", n, m, methods)
		}
	}
	if methods[http.MethodGet] == 0 {
		t.Errorf("requests: %v, want GETs", methods)
	}
}
