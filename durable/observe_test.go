package durable_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/google/uuid"
)

// obsSecret is in the checkpoints of these tests, in every field a user
// fills: no log record may repeat it.
const obsSecret = "sekret-state-91c2"

func obsCheckpoint(run uuid.UUID, step int) *cairn.Checkpoint {
	return &cairn.Checkpoint{WorkflowName: "wf-" + obsSecret, RunID: run,
		Timestamp: time.Date(2024, 1, 1, 0, 0, step, 0, time.UTC),
		State:     map[string]any{"note": obsSecret, "step": int64(step)}, Metadata: map[string]any{"m": obsSecret}}
}

func loggedStore(t *testing.T, b bucket.Bucket, rec *obs.Recorder, io *index.Options) *durable.Store {
	t.Helper()
	return newStore(t, b, &durable.Options{Prefix: "cairn", Index: io, Logger: slog.New(rec)})
}

// logRecord returns the one record whose message holds msg, failing t when
// there is none.
func logRecord(t *testing.T, rec *obs.Recorder, msg string) obs.Record {
	t.Helper()
	r, ok := rec.Find(msg)
	if !ok {
		t.Fatalf("no log record %q; got %v", msg, rec.Records())
	}
	return r
}

func noObsSecret(t *testing.T, rec *obs.Recorder) {
	t.Helper()
	for _, r := range rec.Containing(obsSecret) {
		t.Errorf("a log record repeats checkpoint content: %s", r)
	}
}

// The probe's outcome is logged: a probe passed at info, a recorded
// verdict at debug, a server that fails at error with the failed checks,
// a probe that could not finish at warn.
func TestLogProbe(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	rec := obs.NewRecorder()
	if err := loggedStore(t, mem, rec, nil).Save(ctx, obsCheckpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	if r := logRecord(t, rec, "server probe passed"); r.Level != slog.LevelInfo || r.Attrs["server"] == "" {
		t.Errorf("passed: %s; want info naming the server", r)
	}
	again := obs.NewRecorder()
	if err := loggedStore(t, mem, again, nil).Save(ctx, obsCheckpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	if r := logRecord(t, again, "recorded verdict accepted"); r.Level != slog.LevelDebug {
		t.Errorf("recorded verdict: %s; want debug", r)
	}

	unsafe := obs.NewRecorder()
	err := loggedStore(t, ignoresConditions{bucket.NewMem()}, unsafe, nil).Save(ctx, obsCheckpoint(uuid.New(), 1))
	if !errors.Is(err, durable.ErrUnsafeServer) {
		t.Fatalf("Save on an unsafe server: %v", err)
	}
	r := logRecord(t, unsafe, "failed the conditional-write probe")
	if r.Level != slog.LevelError || !strings.Contains(r.Attrs["failed_checks"], string(durable.ProbeIfNoneMatch)) {
		t.Errorf("refused: %s; want error listing %s", r, durable.ProbeIfNoneMatch)
	}

	broken := obs.NewRecorder()
	if err := loggedStore(t, readOnly{bucket.NewMem()}, broken, nil).Save(ctx, obsCheckpoint(uuid.New(), 1)); err == nil {
		t.Fatal("Save on a read-only bucket succeeded")
	}
	if r := logRecord(t, broken, "probe could not finish"); r.Level != slog.LevelWarn || !strings.Contains(r.Attrs["error"], errDenied.Error()) {
		t.Errorf("unfinished: %s; want warn with the error", r)
	}
	for _, rec := range []*obs.Recorder{rec, again, unsafe, broken} {
		noObsSecret(t, rec)
	}
}

// busyOnce answers the first Put of an index log with ErrBusy (a 409),
// as S3 does to a conditional write racing another.
type busyOnce struct {
	bucket.Bucket
	done atomic.Bool
}

func (b *busyOnce) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if strings.Contains(key, "/index/log/") && b.done.CompareAndSwap(false, true) {
		return "", fmt.Errorf("put %s: %w", key, bucket.ErrBusy)
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// The index logs a commit retried after an error at debug, a log number
// lost to another writer at info, and a compaction at info.
func TestLogIndex(t *testing.T) {
	ctx := context.Background()
	mem := &busyOnce{Bucket: bucket.NewMem()}
	rec := obs.NewRecorder()
	a := loggedStore(t, mem, rec, &index.Options{CompactAfter: 1000})
	if err := a.Save(ctx, obsCheckpoint(uuid.New(), 1)); err != nil {
		t.Fatal(err)
	}
	if r := logRecord(t, rec, "index commit attempt failed"); r.Level != slog.LevelDebug || !strings.Contains(r.Attrs["error"], "busy") {
		t.Errorf("retry: %s; want debug with the error", r)
	}

	// Another process commits: a's knowledge of the log tail is behind,
	// so its next commit loses that number and takes the next.
	b := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: &index.Options{CompactAfter: 1000}})
	if err := b.Save(ctx, obsCheckpoint(uuid.New(), 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, obsCheckpoint(uuid.New(), 3)); err != nil {
		t.Fatal(err)
	}
	r := logRecord(t, rec, "index commit conflict")
	if r.Level != slog.LevelInfo || r.Attrs["seq"] == "" || r.Attrs["next"] == "" || r.Attrs["seq"] == r.Attrs["next"] {
		t.Errorf("conflict: %s; want info with the number lost and the next", r)
	}
	if st := a.Stats().Index; st.Conflicts != 1 {
		t.Errorf("conflicts counted: %d; want 1", st.Conflicts)
	}

	crec := obs.NewRecorder()
	c := loggedStore(t, bucket.NewMem(), crec, &index.Options{CompactAfter: 2})
	for i := range 3 {
		if err := c.Save(ctx, obsCheckpoint(uuid.New(), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil { // waits for the compaction
		t.Fatal(err)
	}
	if r := logRecord(t, crec, "index compacted"); r.Level != slog.LevelInfo || r.Attrs["snapshot"] == "0" {
		t.Errorf("compaction: %s; want info with the snapshot", r)
	}
	noObsSecret(t, rec)
	noObsSecret(t, crec)
}
