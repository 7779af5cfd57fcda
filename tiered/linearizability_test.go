package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The linearizability model of one run: a register holding the run's
// current step, or absent. Histories are partitioned by run, so a state
// is just the register's value.

type linKind int

const (
	linSave linKind = iota
	linLoad
	linDelete
)

const linAbsent int64 = -1 // the register of a run with no checkpoint

// linInput is what a client asked of a run.
type linInput struct {
	Run  int // index of the run, for partitioning
	Kind linKind
	Step int64 // Save: the step saved (unique in the history)
}

// linOutput is what the store answered.
type linOutput struct {
	Conflict bool  // Save: failed with ErrConflict
	Step     int64 // Load: the step loaded, or linAbsent for ErrNotFound
}

// linStep is the sequential specification of a run:
//   - a successful Save sets the register to its step;
//   - a Save that failed with ErrConflict had no effect (a fenced write
//     that found another ETag wrote nothing), and is legal in any state:
//     whether it should conflict depends on which ETag the store last saw,
//     which this model does not track;
//   - a Load returns the register (linAbsent for ErrNotFound);
//   - a Delete makes the run absent.
func linStep(state, input, output any) (bool, any) {
	st, in, out := state.(int64), input.(linInput), output.(linOutput)
	switch in.Kind {
	case linSave:
		if out.Conflict {
			return true, st
		}
		return true, in.Step
	case linLoad:
		return out.Step == st, st
	case linDelete:
		return true, linAbsent
	}
	return false, st
}

var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byRun := map[int][]porcupine.Operation{}
		var runs []int
		for _, op := range history {
			r := op.Input.(linInput).Run
			if _, ok := byRun[r]; !ok {
				runs = append(runs, r)
			}
			byRun[r] = append(byRun[r], op)
		}
		out := make([][]porcupine.Operation, 0, len(runs))
		for _, r := range runs {
			out = append(out, byRun[r])
		}
		return out
	},
	Init: func() any { return linAbsent },
	Step: linStep,
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.Kind {
		case linSave:
			if out.Conflict {
				return fmt.Sprintf("run%d Save(%d) -> conflict", in.Run, in.Step)
			}
			return fmt.Sprintf("run%d Save(%d) -> ok", in.Run, in.Step)
		case linLoad:
			if out.Step == linAbsent {
				return fmt.Sprintf("run%d Load() -> not found", in.Run)
			}
			return fmt.Sprintf("run%d Load() -> %d", in.Run, out.Step)
		default:
			return fmt.Sprintf("run%d Delete() -> ok", in.Run)
		}
	},
	DescribeState: func(state any) string {
		if state.(int64) == linAbsent {
			return "absent"
		}
		return fmt.Sprint(state.(int64))
	},
}

// linCheck checks history against linModel and, when it is not
// linearizable (or the check timed out), writes porcupine's visualization
// to a file it names in the failure.
func linCheck(t *testing.T, history []porcupine.Operation, timeout time.Duration) porcupine.CheckResult {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(linModel, history, timeout)
	if res == porcupine.Ok {
		return res
	}
	f, err := os.CreateTemp("", "cairn-linearizability-*.html")
	if err != nil {
		t.Logf("no visualization: %v", err)
		return res
	}
	defer f.Close()
	if err := porcupine.Visualize(linModel, info, f); err != nil {
		t.Logf("no visualization: %v", err)
		return res
	}
	t.Logf("visualization of the history: %s", f.Name())
	return res
}

// Per-run Save/Load/Delete through two tiered stores sharing one MinIO
// bucket, in write-through mode with fencing and revalidation, is
// linearizable: 8 clients (4 per store) hammer 3 runs for a few seconds,
// every operation is recorded with its real-time call and return, and
// porcupine checks the history against a register per run. A Save that
// failed with ErrConflict counts as having had no effect; any other error
// fails the test.
func TestMinIOLinearizable(t *testing.T) {
	srv := startMinIO(t)
	bucketName := srv.NewBucket(t)
	opts := &tiered.Options{Mode: tiered.WriteThrough, Fencing: true, Revalidate: true}
	stores := []*tiered.Store{minioStore(t, srv, bucketName, opts), minioStore(t, srv, bucketName, opts)}
	defer func() {
		for _, s := range stores {
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	}()

	runs := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	const clientsPerStore = 4
	duration := 3 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	// The history must be worth checking: Saves that won, Saves that lost
	// to the other store, Loads that found a checkpoint, Deletes. On a
	// slow machine the clients go on past duration until it is, for at
	// most limit.
	const minSaves, minConflicts, minFound, minDeletes = 20, 5, 20, 5
	limit := duration + 20*time.Second
	var nSaves, nConflicts, nFound, nDeletes, stop atomic.Int64
	enough := func() bool {
		return nSaves.Load() >= minSaves && nConflicts.Load() >= minConflicts &&
			nFound.Load() >= minFound && nDeletes.Load() >= minDeletes
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	var (
		mu       sync.Mutex
		history  []porcupine.Operation
		nextStep int64 // unique step of each Save; under mu
		failures []string
	)
	start := time.Now() // time.Since reads the monotonic clock
	now := func() int64 { return time.Since(start).Nanoseconds() }
	ctx, cancel := context.WithTimeout(context.Background(), limit+time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	for si, s := range stores {
		for c := range clientsPerStore {
			client := si*clientsPerStore + c
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(client)))
				var ops []porcupine.Operation
				defer func() {
					mu.Lock()
					history = append(history, ops...)
					mu.Unlock()
				}()
				for stop.Load() == 0 {
					if d := time.Since(start); d >= limit || d >= duration && enough() {
						break
					}
					r := rng.IntN(len(runs))
					in := linInput{Run: r}
					switch p := rng.IntN(100); {
					case p < 45:
						in.Kind = linSave
						mu.Lock()
						nextStep++
						in.Step = nextStep
						mu.Unlock()
					case p < 85:
						in.Kind = linLoad
					default:
						in.Kind = linDelete
					}
					var out linOutput
					var err error
					call := now()
					switch in.Kind {
					case linSave:
						err = s.Save(ctx, cp(runs[r], int(in.Step)))
						if errors.Is(err, cairn.ErrConflict) {
							out.Conflict, err = true, nil
						}
					case linLoad:
						var got *cairn.Checkpoint
						got, err = s.Load(ctx, runs[r])
						switch {
						case errors.Is(err, cairn.ErrNotFound):
							out.Step, err = linAbsent, nil
						case err == nil:
							step, ok := got.State["step"].(int64)
							if !ok || got.RunID != runs[r] {
								err = fmt.Errorf("loaded run %v with step %#v", got.RunID, got.State["step"])
							}
							out.Step = step
						}
					case linDelete:
						err = s.Delete(ctx, runs[r])
					}
					ret := now()
					if err != nil {
						// An operation of unknown outcome cannot be
						// placed in the history: stop this client.
						stop.Store(1)
						mu.Lock()
						failures = append(failures, fmt.Sprintf("client %d (store %d): %s: %v",
							client, si, linModel.DescribeOperation(in, out), err))
						mu.Unlock()
						return
					}
					ops = append(ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
					switch {
					case in.Kind == linSave && out.Conflict:
						nConflicts.Add(1)
					case in.Kind == linSave:
						nSaves.Add(1)
					case in.Kind == linLoad && out.Step != linAbsent:
						nFound.Add(1)
					case in.Kind == linDelete:
						nDeletes.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Errorf("unexpected error: %s", f)
	}

	var saves, conflicts, loads, found, deletes int
	var took [3]struct {
		n        int
		sum, max time.Duration
	}
	for _, op := range history {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		d := time.Duration(op.Return - op.Call)
		took[in.Kind].n++
		took[in.Kind].sum += d
		took[in.Kind].max = max(took[in.Kind].max, d)
		switch in.Kind {
		case linSave:
			if out.Conflict {
				conflicts++
			} else {
				saves++
			}
		case linLoad:
			loads++
			if out.Step != linAbsent {
				found++
			}
		case linDelete:
			deletes++
		}
	}
	t.Logf("%d operations in %v on %d runs from %d clients: %d Saves ok, %d Saves in conflict, %d Loads (%d found a checkpoint), %d Deletes",
		len(history), time.Since(start).Round(time.Millisecond), len(runs), len(stores)*clientsPerStore, saves, conflicts, loads, found, deletes)
	for k, name := range []string{"Save", "Load", "Delete"} {
		if tk := took[k]; tk.n > 0 {
			t.Logf("%s: mean %v, max %v", name, (tk.sum / time.Duration(tk.n)).Round(time.Microsecond), tk.max.Round(time.Microsecond))
		}
	}
	for i, s := range stores {
		st := s.Stats()
		t.Logf("store %d: %d PUTs, %d GETs, %d revalidated (304), %d cache hits, %d misses",
			i, st.PUTs, st.GETs, st.Revalidated, st.Cache.Hits, st.Cache.Misses)
	}
	if saves < minSaves || conflicts < minConflicts || found < minFound || deletes < minDeletes {
		t.Errorf("history too thin to say much: %d Saves ok, %d conflicts, %d Loads found, %d Deletes", saves, conflicts, found, deletes)
	}

	began := time.Now()
	res := linCheck(t, history, 30*time.Second)
	t.Logf("porcupine: %s in %v", res, time.Since(began).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		t.Fatal("the history of Save/Load/Delete is not linearizable")
	case porcupine.Unknown:
		t.Fatal("porcupine could not decide within 30 s")
	}
}

// The checker of TestMinIOLinearizable can fail: porcupine, with its
// model, rejects histories that no store may produce and accepts one
// where concurrency allows either answer.
func TestLinearizableModelRejects(t *testing.T) {
	op := func(client int, in linInput, out linOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	save := func(run int, step int64) linInput { return linInput{Run: run, Kind: linSave, Step: step} }
	load := linInput{Kind: linLoad}
	del := linInput{Kind: linDelete}
	ok := linOutput{}
	loaded := func(step int64) linOutput { return linOutput{Step: step} }

	for _, c := range []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"load of a step never saved", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, load, loaded(2), 20, 30),
		}, porcupine.Illegal},
		{"stale load after a later save returned", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(0, save(0, 2), ok, 20, 30),
			op(1, load, loaded(1), 40, 50),
		}, porcupine.Illegal},
		{"load of a conflicting save", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, save(0, 2), linOutput{Conflict: true}, 20, 30),
			op(1, load, loaded(2), 40, 50),
		}, porcupine.Illegal},
		{"load of a deleted run", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, del, ok, 20, 30),
			op(0, load, loaded(1), 40, 50),
		}, porcupine.Illegal},
		{"a save seen by one run only", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, linInput{Run: 1, Kind: linLoad}, loaded(1), 20, 30),
		}, porcupine.Illegal},
		{"a load older than an earlier load, during a save", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, save(0, 2), ok, 20, 60),
			op(2, load, loaded(2), 25, 35),
			op(3, load, loaded(1), 36, 40), // called after a load saw the save
		}, porcupine.Illegal},
		{"concurrent operations in either order", []porcupine.Operation{
			op(0, save(0, 1), ok, 0, 10),
			op(1, save(0, 2), ok, 20, 60),
			op(2, load, loaded(1), 25, 35),
			op(3, load, loaded(2), 30, 40),
			op(1, save(0, 3), linOutput{Conflict: true}, 61, 65),
			op(0, del, ok, 70, 80),
			op(2, load, loaded(2), 75, 90),
			op(3, load, loaded(linAbsent), 75, 90),
			op(3, load, loaded(linAbsent), 91, 95),
		}, porcupine.Ok},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(linModel, c.history, 10*time.Second); got != c.want {
				t.Fatalf("porcupine says %s, want %s", got, c.want)
			}
		})
	}
}
