// Package claimtest checks claims (cairn.Claimer) across worker
// processes: the workers (Run) claim runs, save their steps under the
// lease and release them, recording every claim, renewal, save and
// release with its wall-clock start and end (Recorder); Check then
// decides with porcupine whether the combined history of all the
// processes is one a lease register allows:
//
//   - a claim that succeeds takes an epoch higher than every claim
//     linearized before it, and reads the step the last successful save
//     wrote (the new owner resumes from exactly the latest durable state);
//   - a claim that succeeds never comes while another holder's lease is
//     certainly live: it cannot return before that holder's last
//     successful claim or renewal began plus the lease;
//   - a renewal, save or release succeeds only for the lease of the
//     run's latest claim (fencing); a save after its release fails;
//   - an ErrConflict comes only to a lease that is no longer the run's
//     latest claim, or was released (no false conflicts);
//   - an operation whose outcome is unknown (its process was killed, or
//     it failed otherwise) may have taken effect or not.
//
// All the processes run on one machine, so their clocks are one clock.
package claimtest

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"
)

// The operations of a history.
const (
	OpClaim   = "claim"
	OpRenew   = "renew"
	OpRelease = "release"
	OpSave    = "save"
)

// The results of an operation.
const (
	ResultOK       = "ok"
	ResultConflict = "conflict" // ErrConflict
	ResultClaimed  = "claimed"  // ErrClaimed (a claim only)
	ResultUnknown  = "unknown"  // another error, or none recorded: it may have taken effect or not
)

// Event is one operation of a worker on a run, as recorded.
type Event struct {
	ID     uint64    `json:"id"` // pairs a start with its end, per worker
	Worker string    `json:"worker"`
	Op     string    `json:"op"`
	Run    uuid.UUID `json:"run"`
	// Epoch is the lease's; for a claim, the epoch it got.
	Epoch uint64 `json:"epoch,omitempty"`
	// Step is, for a save, the step written; for a claim, the step of
	// the checkpoint it got.
	Step  int64 `json:"step"`
	Start int64 `json:"start"`         // Unix nanoseconds
	End   int64 `json:"end,omitempty"` // 0: it never ended (its process died)
	// Result is one of the Result constants; empty until it ended.
	Result string `json:"result,omitempty"`
	Err    string `json:"err,omitempty"`
}

// Recorder appends a worker's events to a file as JSON lines: a line
// when an operation starts, another when it ends, each with one write,
// so that a process killed at any moment leaves every line it wrote
// whole (but for the last) and the operations it had in flight open.
// It is safe for concurrent use.
type Recorder struct {
	worker string
	mu     sync.Mutex
	f      *os.File
	next   uint64
	err    error
}

// NewRecorder creates (or truncates) path for worker's events.
func NewRecorder(path, worker string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Recorder{worker: worker, f: f}, nil
}

// Begin records the start of e (its ID, Worker and Start are filled in)
// and returns the function that records its end with the result and the
// epoch and step learnt (for a claim).
func (r *Recorder) Begin(e Event) (end func(result string, err error, epoch uint64, step int64)) {
	r.mu.Lock()
	r.next++
	e.ID, e.Worker, e.Start = r.next, r.worker, time.Now().UnixNano()
	r.writeLocked(&e)
	r.mu.Unlock()
	return func(result string, err error, epoch uint64, step int64) {
		done := Event{ID: e.ID, Worker: r.worker, End: time.Now().UnixNano(), Result: result, Epoch: epoch, Step: step}
		if err != nil {
			done.Err = err.Error()
		}
		r.mu.Lock()
		r.writeLocked(&done)
		r.mu.Unlock()
	}
}

func (r *Recorder) writeLocked(e *Event) {
	b, err := json.Marshal(e)
	if err == nil {
		_, err = r.f.Write(append(b, '\n'))
	}
	if err != nil && r.err == nil {
		r.err = err
	}
}

// Close closes the file and returns the first error of any write.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.err, r.f.Close())
}

// ReadEvents reads the events a Recorder wrote to path, each start joined
// with its end. An operation whose end is missing keeps End 0. A torn
// last line (the process killed while writing it) is ignored.
func ReadEvents(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []Event
	byID := map[uint64]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if sc.Scan() {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			break // the torn last line
		}
		i, ok := byID[e.ID]
		if !ok {
			byID[e.ID] = len(events)
			events = append(events, e)
			continue
		}
		events[i].End, events[i].Result, events[i].Err = e.End, e.Result, e.Err
		if events[i].Op == OpClaim {
			events[i].Epoch, events[i].Step = e.Epoch, e.Step
		}
	}
	return events, sc.Err()
}

// input and output are a porcupine operation's.
type input struct {
	op     string
	worker string
	epoch  uint64 // renew, release, save: the lease's
	step   int64  // save: the step written
	call   int64
	ret    int64
}

type output struct {
	result string
	epoch  uint64 // claim, ok: the epoch got
	step   int64  // claim, ok: the step read
}

// state is a run's lease register.
type state struct {
	epoch    uint64 // the latest claim's (a lower bound if unknownEpoch)
	holder   string // its worker; "" before any claim
	expires  int64  // a lower bound of the end of its lease
	released bool
	step     int64 // the last step saved
	// unknownEpoch: the latest claim's outcome is unknown, and so is its
	// epoch beyond being above the one before.
	unknownEpoch bool
}

// model returns the lease register with lease as every claim's lease.
func model(lease time.Duration) porcupine.Model {
	nm := &porcupine.NondeterministicModel{
		Init: func() []any { return []any{state{}} },
		Step: func(st, in, out any) []any {
			return step(st.(state), in.(input), out.(output), int64(lease))
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(input), out.(output)
			return fmt.Sprintf("%s %s e%d s%d → %s e%d s%d", i.worker, i.op, i.epoch, i.step, o.result, o.epoch, o.step)
		},
		DescribeState: func(st any) string { return fmt.Sprintf("%+v", st.(state)) },
	}
	return nm.ToModel()
}

// step is the lease register's specification: the states the register
// may be in after in returned out in st (none: not allowed).
func step(st state, in input, out output, lease int64) []any {
	switch in.op {
	case OpClaim:
		return stepClaim(st, in, out, lease)
	case OpRenew, OpRelease, OpSave:
		return stepLeased(st, in, out, lease)
	}
	return nil
}

func stepClaim(st state, in input, out output, lease int64) []any {
	taken := state{epoch: out.epoch, holder: in.worker, expires: in.call + lease, step: st.step}
	switch out.result {
	case ResultOK:
		live := st.holder != "" && !st.released && in.ret < st.expires
		if out.epoch <= st.epoch || out.step != st.step || live {
			return nil
		}
		return []any{taken}
	case ResultUnknown:
		taken.epoch, taken.unknownEpoch = st.epoch+1, true
		return []any{st, taken}
	}
	return []any{st} // ErrClaimed, or a conflict: no effect
}

func stepLeased(st state, in input, out output, lease int64) []any {
	current := st.holder == in.worker && st.epoch == in.epoch && !st.unknownEpoch
	next := st
	switch in.op {
	case OpRenew:
		current = current && !st.released
		next.expires = max(st.expires, in.call+lease)
	case OpRelease:
		next.released = true
	case OpSave:
		current = current && !st.released
		next.step = in.step
	}
	switch {
	case out.result == ResultUnknown && current:
		return []any{st, next}
	case out.result == ResultUnknown:
		return []any{st}
	case out.result == ResultOK && current, out.result == ResultConflict && !current:
		if out.result == ResultConflict {
			return []any{st}
		}
		return []any{next}
	}
	return nil
}

// Check checks events (of every worker, in any order) against the lease
// register, run by run, with lease as every claim's lease. It returns an
// error describing the first run whose history is not allowed, or the
// operations whose record is damaged. An operation with no end is taken
// as unknown, still in flight forever.
func Check(events []Event, lease time.Duration) error {
	byRun := map[uuid.UUID][]porcupine.Operation{}
	clients := map[string]int{}
	for _, e := range events {
		op, err := operation(e)
		if err != nil {
			return err
		}
		if _, ok := clients[e.Worker]; !ok {
			clients[e.Worker] = len(clients)
		}
		op.ClientId = clients[e.Worker]
		byRun[e.Run] = append(byRun[e.Run], op)
	}
	m := model(lease)
	runs := make([]uuid.UUID, 0, len(byRun))
	for run := range byRun {
		runs = append(runs, run)
	}
	slices.SortFunc(runs, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	for _, run := range runs {
		switch porcupine.CheckOperationsTimeout(m, byRun[run], time.Minute) {
		case porcupine.Illegal:
			return fmt.Errorf("run %v: its history is not one of a lease register:\n%s", run, describe(byRun[run]))
		case porcupine.Unknown:
			return fmt.Errorf("run %v: the check of its %d operations timed out", run, len(byRun[run]))
		}
	}
	return nil
}

// operation turns a recorded event into a porcupine operation.
func operation(e Event) (porcupine.Operation, error) {
	if e.Op != OpClaim && e.Op != OpRenew && e.Op != OpRelease && e.Op != OpSave {
		return porcupine.Operation{}, fmt.Errorf("event %+v: unknown operation", e)
	}
	in := input{op: e.Op, worker: e.Worker, call: e.Start, ret: e.End}
	out := output{result: e.Result}
	if e.Op == OpClaim {
		out.epoch, out.step = e.Epoch, e.Step
	} else {
		in.epoch, in.step = e.Epoch, e.Step
	}
	switch {
	case e.End == 0:
		in.ret, out.result = math.MaxInt64, ResultUnknown
	case e.End < e.Start:
		return porcupine.Operation{}, fmt.Errorf("event %+v ends before it starts", e)
	case e.Result != ResultOK && e.Result != ResultConflict && e.Result != ResultClaimed && e.Result != ResultUnknown:
		return porcupine.Operation{}, fmt.Errorf("event %+v: unknown result", e)
	}
	if out.result == ResultUnknown {
		in.ret = math.MaxInt64 // a request in flight may still land
	}
	return porcupine.Operation{Input: in, Call: in.call, Output: out, Return: in.ret}, nil
}

// describe lists a run's operations in the order they began.
func describe(ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	t0 := ops[0].Call
	var s string
	for _, op := range ops {
		i, o := op.Input.(input), op.Output.(output)
		end := "∞"
		if op.Return != math.MaxInt64 {
			end = time.Duration(op.Return - t0).String()
		}
		s += fmt.Sprintf("  [%v, %s] %s %s epoch %d step %d → %s (epoch %d, step %d)\n",
			time.Duration(op.Call-t0), end, i.worker, i.op, i.epoch, i.step, o.result, o.epoch, o.step)
	}
	return s
}
