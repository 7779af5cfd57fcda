package claimtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// ev builds an event of run 1 at [start, end] (milliseconds; end 0: it
// never ended).
func ev(worker, op string, epoch uint64, step int64, start, end int64, result string) Event {
	e := Event{Worker: worker, Op: op, Run: uuid.UUID{1}, Epoch: epoch, Step: step, Start: start * 1e6, Result: result}
	if end > 0 {
		e.End = end * 1e6
	}
	return e
}

// The checker accepts the histories a lease register allows and refuses
// each kind of violation, with the lease 100 ms.
func TestCheck(t *testing.T) {
	const ok, conflict, claimed, unknown = ResultOK, ResultConflict, ResultClaimed, ResultUnknown
	claimA := ev("A", OpClaim, 1, 0, 0, 10, ok)
	tests := []struct {
		name   string
		events []Event
		legal  bool
	}{
		{"a run's life, released, claimed again", []Event{claimA, ev("A", OpSave, 1, 1, 20, 30, ok), ev("A", OpSave, 1, 2, 40, 50, ok),
			ev("A", OpRelease, 1, 0, 60, 70, ok), ev("B", OpClaim, 2, 2, 80, 90, ok)}, true},
		{"a claim while the holder's lease is live", []Event{claimA, ev("B", OpClaim, 2, 0, 50, 60, ok)}, false},
		{"a claim refused while the lease is live", []Event{claimA, ev("B", OpClaim, 0, 0, 50, 60, claimed)}, true},
		{"a claim once the lease ran out", []Event{claimA, ev("B", OpClaim, 2, 0, 150, 160, ok)}, true},
		{"a renewal keeps the lease live", []Event{claimA, ev("A", OpRenew, 1, 0, 60, 70, ok), ev("B", OpClaim, 2, 0, 140, 150, ok)}, false},
		{"a claim after the renewed lease ran out", []Event{claimA, ev("A", OpRenew, 1, 0, 60, 70, ok), ev("B", OpClaim, 2, 0, 170, 180, ok)}, true},
		{"a stale holder's save succeeds", []Event{claimA, ev("B", OpClaim, 2, 0, 150, 160, ok), ev("A", OpSave, 1, 1, 170, 180, ok)}, false},
		{"a stale holder's save conflicts", []Event{claimA, ev("B", OpClaim, 2, 0, 150, 160, ok), ev("A", OpSave, 1, 1, 170, 180, conflict),
			ev("A", OpRenew, 1, 0, 190, 200, conflict), ev("A", OpRelease, 1, 0, 210, 220, conflict)}, true},
		{"a stale holder's renewal succeeds", []Event{claimA, ev("B", OpClaim, 2, 0, 150, 160, ok), ev("A", OpRenew, 1, 0, 170, 180, ok)}, false},
		{"a conflict with no takeover", []Event{claimA, ev("A", OpSave, 1, 1, 20, 30, conflict)}, false},
		{"a save after the release", []Event{claimA, ev("A", OpRelease, 1, 0, 20, 30, ok), ev("A", OpSave, 1, 1, 40, 50, ok)}, false},
		{"epochs going back", []Event{ev("A", OpClaim, 2, 0, 0, 10, ok), ev("A", OpRelease, 2, 0, 20, 30, ok),
			ev("B", OpClaim, 1, 0, 40, 50, ok)}, false},
		{"a claim reading a stale step", []Event{claimA, ev("A", OpSave, 1, 1, 20, 30, ok), ev("A", OpRelease, 1, 0, 40, 50, ok),
			ev("B", OpClaim, 2, 0, 60, 70, ok)}, false},
		{"a save the claim read, concurrent with it", []Event{claimA, ev("A", OpSave, 1, 1, 20, 160, ok), ev("B", OpClaim, 2, 1, 150, 170, ok)}, true},
		{"a save the claim did not read, concurrent with it", []Event{claimA, ev("A", OpSave, 1, 1, 20, 160, ok), ev("B", OpClaim, 2, 0, 150, 170, ok)}, false},
		{"a killed holder's save may have landed", []Event{claimA, ev("A", OpSave, 1, 1, 20, 0, ""), ev("B", OpClaim, 2, 1, 150, 160, ok)}, true},
		{"or not", []Event{claimA, ev("A", OpSave, 1, 1, 20, 0, ""), ev("B", OpClaim, 2, 0, 150, 160, ok)}, true},
		{"but nothing else", []Event{claimA, ev("A", OpSave, 1, 1, 20, 0, ""), ev("B", OpClaim, 2, 2, 150, 160, ok)}, false},
		{"a failed save may have landed", []Event{claimA, ev("A", OpSave, 1, 1, 20, 30, unknown), ev("B", OpClaim, 2, 1, 150, 160, ok)}, true},
		{"a killed claimer's claim may have taken the run", []Event{ev("A", OpClaim, 0, 0, 0, 0, ""), ev("B", OpClaim, 2, 0, 50, 60, ok)}, true},
		{"two claims succeed at once", []Event{ev("A", OpClaim, 1, 0, 0, 10, ok), ev("B", OpClaim, 2, 0, 0, 10, ok)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.events, 100*time.Millisecond)
			if (err == nil) != tt.legal {
				t.Errorf("Check: %v; want legal %v", err, tt.legal)
			}
		})
	}
}

// A Recorder's file reads back as the events recorded: starts joined with
// their ends, an operation never ended left open, a torn last line
// ignored; a torn line before others is an error.
func TestRecorder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events")
	r, err := NewRecorder(path, "w1")
	if err != nil {
		t.Fatal(err)
	}
	run := uuid.New()
	r.Begin(Event{Op: OpClaim, Run: run})(ResultOK, nil, 7, 2)
	r.Begin(Event{Op: OpSave, Run: run, Epoch: 7, Step: 3})(ResultConflict, errors.New("taken"), 0, 0)
	r.Begin(Event{Op: OpRenew, Run: run, Epoch: 7}) // never ends
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":9,"wor`)
	f.Close()
	events, err := ReadEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("%d events, want 3: %+v", len(events), events)
	}
	c, s, n := events[0], events[1], events[2]
	switch {
	case c.Op != OpClaim || c.Result != ResultOK || c.Epoch != 7 || c.Step != 2 || c.End < c.Start || c.Worker != "w1":
		t.Errorf("claim: %+v", c)
	case s.Op != OpSave || s.Result != ResultConflict || s.Epoch != 7 || s.Step != 3 || s.Err != "taken":
		t.Errorf("save: %+v", s)
	case n.Op != OpRenew || n.End != 0 || n.Result != "":
		t.Errorf("renewal never ended: %+v", n)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte(`{"id":1,"wor`+"\n"), data...), 0o644)
	if _, err := ReadEvents(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("a torn first line: %v, want an error naming line 1", err)
	}
}

// Recorded from real stores, the history of a stale holder that writes
// after a takeover passes Check when the write is fenced (SaveLeased gets
// ErrConflict) and fails it when it is not (a plain Save succeeds): the
// check catches a store that lets a stale holder write.
func TestCheckCatchesUnfencedWrites(t *testing.T) {
	for _, fenced := range []bool{true, false} {
		t.Run(fmt.Sprintf("fenced=%v", fenced), func(t *testing.T) {
			ctx := context.Background()
			b := bucket.NewMem()
			a, err := tiered.New(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			other, err := tiered.New(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "events")
			rec, err := NewRecorder(path, "a")
			if err != nil {
				t.Fatal(err)
			}
			w := &worker{s: a, rec: rec, cfg: Config{Name: "a", Steps: 2}}
			run := uuid.New()
			if err := a.Save(ctx, Submit("w", run)); err != nil {
				t.Fatal(err)
			}
			const lease = 50 * time.Millisecond
			end := rec.Begin(Event{Op: OpClaim, Run: run})
			l, err := a.Claim(ctx, run, &cairn.ClaimOptions{Owner: "a", Lease: lease})
			if err != nil {
				t.Fatal(err)
			}
			end(ResultOK, nil, l.Epoch, StepOf(l.Checkpoint))
			time.Sleep(2 * lease)
			theirs, err := other.Claim(ctx, run, &cairn.ClaimOptions{Owner: "b", Lease: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			brec, err := NewRecorder(path+".b", "b")
			if err != nil {
				t.Fatal(err)
			}
			brec.Begin(Event{Op: OpClaim, Run: run})(ResultOK, nil, theirs.Epoch, StepOf(theirs.Checkpoint))
			next := after(l.Checkpoint, 1, 2, "a")
			save := func() error { return a.SaveLeased(ctx, l, next) }
			if !fenced {
				save = func() error { return a.Save(ctx, next) }
			}
			if _, err := w.leased(ctx, OpSave, l, 1, save); err != nil {
				t.Fatal(err)
			}
			rec.Close()
			brec.Close()
			mine, _ := ReadEvents(path)
			theirEvents, _ := ReadEvents(path + ".b")
			err = Check(append(mine, theirEvents...), lease)
			if (err == nil) != fenced {
				t.Errorf("Check: %v; want it to pass only when the stale write is fenced", err)
			}
		})
	}
}
