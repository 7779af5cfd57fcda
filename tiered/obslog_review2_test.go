package tiered_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// A store with nothing unflushed (write-through, or write-back after a
// Flush), closed with a context that has already ended, as a handler's
// deferred Close does once its request is cancelled: nothing is lost, so
// no record may say so at Error level ("close failed; runs not flushed by
// then are lost", dirty_bytes=0), and Close, whose doc returns ctx's
// error only when "Saves or a flush [are] still in progress", has no
// reason to fail. Today Close checks ctx.Done before (or races it
// against) its own completion, so it fails and logs an Error: 20 times
// out of 20 here.
func TestReview2CloseWithNothingToFlushOnEndedContext(t *testing.T) {
	for _, mode := range []struct {
		name string
		o    tiered.Options
	}{
		{"write-through", tiered.Options{}},
		{"write-back", tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			failed, errorRecords := 0, 0
			const tries = 20
			for range tries {
				rec := obs.NewRecorder()
				o := mode.o
				o.Logger = slog.New(rec)
				s := open(t, bucket.NewMem(), &o)
				ctx := context.Background()
				if err := s.Save(ctx, secretCheckpoint(uuid.New(), 1)); err != nil {
					t.Fatal(err)
				}
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				ended, cancel := context.WithCancel(ctx)
				cancel()
				if err := s.Close(ended); err != nil {
					failed++
				}
				for _, r := range rec.Records() {
					if r.Level >= slog.LevelError {
						errorRecords++
						if errorRecords == 1 {
							t.Logf("for example: %s", r)
						}
					}
				}
				noSecret(t, rec)
			}
			if failed > 0 || errorRecords > 0 {
				t.Errorf("of %d Closes of a store with nothing unflushed, on an ended context: %d failed, %d Error records; want none",
					tries, failed, errorRecords)
			}
		})
	}
}
