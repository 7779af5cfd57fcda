package tiered_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// failingRuns fails the Puts of run objects while fail is set, as a
// server that refuses writes for a while does.
type failingRuns struct {
	bucket.Bucket
	fail atomic.Bool
}

var errRefused = errors.New("refused by the test")

func (b *failingRuns) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if b.fail.Load() && strings.Contains(key, "/runs/") {
		return "", errRefused
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// secret is in the checkpoints of these tests, in every field a user
// fills: no log record may repeat it.
const secret = "sekret-state-7f3a"

func secretCheckpoint(run uuid.UUID, step int) *cairn.Checkpoint {
	c := cp(run, step)
	c.WorkflowName = "wf-" + secret
	c.State["note"] = secret
	c.Metadata["m"] = secret
	return c
}

// noSecret fails t if a record repeats the checkpoints' content.
func noSecret(t *testing.T, rec *obs.Recorder) {
	t.Helper()
	for _, r := range rec.Containing(secret) {
		t.Errorf("a log record repeats checkpoint content: %s", r)
	}
}

// waitFor waits for a record whose message holds msg.
func waitFor(t *testing.T, rec *obs.Recorder, msg string) obs.Record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, ok := rec.Find(msg); ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q; got %v", msg, rec.Records())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A background flush that fails is a warning once, debug records while
// it keeps failing, and an info record when a flush succeeds again; a
// Close that cannot flush is an error. No record holds checkpoint content.
func TestLogFlushFailures(t *testing.T) {
	b := &failingRuns{Bucket: bucket.NewMem()}
	rec := obs.NewRecorder()
	s := open(t, b, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Millisecond, Logger: slog.New(rec)})
	ctx := context.Background()
	run := uuid.New()
	if err := s.Save(ctx, secretCheckpoint(run, 1)); err != nil { // the probe, then a good flush
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.fail.Store(true)
	if err := s.Save(ctx, secretCheckpoint(run, 2)); err != nil {
		t.Fatal(err)
	}
	warn := waitFor(t, rec, "background flush failed;")
	if warn.Level != slog.LevelWarn || !strings.Contains(warn.Attrs["error"], errRefused.Error()) || warn.Attrs["dirty_bytes"] == "0" {
		t.Errorf("first failure: %s; want a warning with the error and the dirty bytes", warn)
	}
	again := waitFor(t, rec, "background flush failed again")
	if again.Level != slog.LevelDebug {
		t.Errorf("later failure: %s; want a debug record", again)
	}
	for _, r := range rec.Records() {
		if strings.Contains(r.Message, "flush failed") && r.Level == slog.LevelWarn && r.Message != warn.Message {
			t.Errorf("another warning while failing: %s", r)
		}
	}
	b.fail.Store(false)
	ok := waitFor(t, rec, "background flush succeeded after failures")
	if ok.Level != slog.LevelInfo || ok.Attrs["failures"] == "" {
		t.Errorf("recovery: %s; want an info record with the failures", ok)
	}

	b.fail.Store(true)
	if err := s.Save(ctx, secretCheckpoint(run, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); !errors.Is(err, errRefused) {
		t.Fatalf("Close: %v; want the refused write", err)
	}
	closed := waitFor(t, rec, "close failed")
	if closed.Level != slog.LevelError || !strings.Contains(closed.Attrs["error"], errRefused.Error()) {
		t.Errorf("close: %s; want an error record with the error", closed)
	}
	noSecret(t, rec)
}

// A run another worker took over (fencing) is an info record naming the
// run, when the flush that meets it drops its Saves.
func TestLogTakenOver(t *testing.T) {
	mem := bucket.NewMem()
	rec := obs.NewRecorder()
	ctx := context.Background()
	w1 := open(t, mem, &tiered.Options{Fencing: true, Mode: tiered.WriteBack, FlushWindow: time.Hour, Logger: slog.New(rec)})
	w2 := open(t, mem, &tiered.Options{Fencing: true})
	defer w1.Close(ctx)
	defer w2.Close(ctx)
	run := uuid.New()
	if err := w1.Save(ctx, secretCheckpoint(run, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Load(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := w2.Save(ctx, secretCheckpoint(run, 2)); err != nil {
		t.Fatal(err)
	}
	if err := w1.Save(ctx, secretCheckpoint(run, 3)); err != nil {
		t.Fatal(err)
	}
	if err := w1.Flush(ctx); !errors.Is(err, cairn.ErrConflict) {
		t.Fatalf("Flush: %v; want ErrConflict", err)
	}
	r, ok := rec.Find("taken over")
	if !ok || r.Level != slog.LevelInfo || r.Attrs["run_id"] != run.String() {
		t.Fatalf("got %v; want an info record naming run %v", rec.Records(), run)
	}
	noSecret(t, rec)
}

// The durable store below the cache logs to the tiered store's Logger
// unless its own options name another: the probe's verdict reaches it.
func TestLoggerInherited(t *testing.T) {
	rec, own := obs.NewRecorder(), obs.NewRecorder()
	ctx := context.Background()
	s := open(t, bucket.NewMem(), &tiered.Options{Logger: slog.New(rec)})
	defer s.Close(ctx)
	if err := s.Save(ctx, secretCheckpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	if r, ok := rec.Find("server probe passed"); !ok || r.Level != slog.LevelInfo {
		t.Errorf("records %v; want the probe's verdict at info", rec.Records())
	}

	o := tiered.Options{Logger: slog.New(rec)}
	o.Durable = testDurable()
	o.Durable.Logger = slog.New(own)
	s2, err := tiered.New(bucket.NewMem(), &o)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	if err := s2.Save(ctx, secretCheckpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	if _, ok := own.Find("server probe passed"); !ok {
		t.Errorf("the durable store's own Logger got %v; want the probe's verdict", own.Records())
	}
	noSecret(t, rec)
	noSecret(t, own)
}

// Open passes Logger and Debug to the store URL's bucket: with Debug an
// s3:// store logs its requests at debug level, credentials redacted;
// without it, not at all.
func TestOpenDebug(t *testing.T) {
	offlineAWS(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	for _, debug := range []bool{true, false} {
		rec := obs.NewRecorder()
		s, err := tiered.Open(context.Background(), "s3://bkt/p?endpoint="+srv.URL, &tiered.Options{Logger: slog.New(rec), Debug: debug})
		if err != nil {
			t.Fatal(err)
		}
		run := uuid.New()
		if _, err := s.Load(context.Background(), run); !errors.Is(err, cairn.ErrNotFound) {
			t.Fatalf("Load: %v; want ErrNotFound", err)
		}
		_ = s.Close(context.Background())
		logged := rec.Containing("GET /bkt/p/runs/" + run.String())
		switch {
		case debug && (len(logged) == 0 || logged[0].Level != slog.LevelDebug || !strings.Contains(logged[0].Attrs["text"], "Authorization: REDACTED")):
			t.Errorf("Debug: records %v; want the GET at debug level, its Authorization redacted", rec.Records())
		case !debug && len(logged) > 0:
			t.Errorf("without Debug: %v", logged)
		}
		for _, secret := range []string{canary, "AKIAEXAMPLE"} {
			if r := rec.Containing(secret); len(r) > 0 {
				t.Errorf("a record shows a credential: %v", r)
			}
		}
	}
}
