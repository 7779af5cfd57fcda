package obs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/google/uuid"
)

// Without providers an operation costs no allocation, with or without a
// logger: the hot paths of the stores do not pay for telemetry nobody
// reads.
func TestOffAllocatesNothing(t *testing.T) {
	for name, o := range map[string]obs.Options{
		"nothing":     {},
		"logger only": {Logger: slog.New(obs.NewRecorder())},
	} {
		t.Run(name, func(t *testing.T) {
			tel, err := obs.New("tiered", o)
			if err != nil {
				t.Fatal(err)
			}
			ctx, run, failure := context.Background(), uuid.New(), fmt.Errorf("x: %w", cairn.ErrNotFound)
			allocs := testing.AllocsPerRun(1000, func() {
				c, sp := tel.Start(ctx, obs.Load, run)
				if sp.Recording() || c != ctx {
					t.Fatal("a span without a TracerProvider")
				}
				sp.End(failure)
			})
			if allocs != 0 {
				t.Errorf("Start and End allocate %v times per operation; want 0", allocs)
			}
		})
	}
	var nilT *obs.T
	_, sp := nilT.Start(context.Background(), obs.Save, uuid.Nil)
	sp.End(errors.New("x")) // a nil T records nothing, and does not panic
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{cairn.WrapOp("load", uuid.New(), cairn.ErrNotFound), "not_found"},
		{fmt.Errorf("flush: %w", cairn.ErrConflict), "conflict"},
		{cairn.ErrClaimed, "conflict"},
		{cairn.ErrInvalid, "invalid"},
		{cairn.ErrTooLarge, "too_large"},
		{cairn.ErrCorrupt, "corrupt"},
		{cairn.ErrClosed, "closed"},
		{fmt.Errorf("get: %w", context.Canceled), "canceled"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("connection reset"), "error"},
	} {
		if got := obs.OutcomeOf(tc.err).String(); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %s; want %s", tc.err, got, tc.want)
		}
	}
}
