package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/memstore"
	"github.com/google/uuid"
)

// payments stands for a service with side effects (charging a card). It
// takes the key of an attempt, Lease.Key(step) = "<run>/<step>/<epoch>",
// performs each run and step once, and refuses an epoch lower than the
// highest it has seen for them: a fencing token, so a worker that lost
// its lease cannot act after the run's new owner did.
type payments struct {
	mu      sync.Mutex
	highest map[string]uint64 // "<run>/<step>" → highest epoch seen
	done    map[string]bool   // "<run>/<step>" → charged
	charges int
}

func (p *payments) charge(key string) error {
	i := strings.LastIndexByte(key, '/')
	step, epochText := key[:i], key[i+1:]
	epoch, err := strconv.ParseUint(epochText, 10, 64)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if epoch < p.highest[step] {
		return fmt.Errorf("stale epoch %d for %s", epoch, step)
	}
	p.highest[step] = epoch
	if !p.done[step] {
		p.done[step] = true
		p.charges++
	}
	return nil
}

// resume runs the remaining steps of a claimed run: each step's side
// effect under the lease's key, then a SaveLeased. It stops at the first
// refusal: the run was taken over, and the new owner finishes it.
func resume(ctx context.Context, store cairn.Claimer, pay *payments, l *cairn.Lease, steps int64) error {
	cp := l.Checkpoint
	for step := cp.State["step"].(int64); step < steps; step++ {
		if err := pay.charge(l.Key(strconv.FormatInt(step, 10))); err != nil {
			return err
		}
		cp.State["step"] = step + 1
		cp.Timestamp = cp.Timestamp.Add(time.Second)
		if step+1 == steps {
			cp.SetLabel("status", "done")
		}
		if err := store.SaveLeased(ctx, l, cp); err != nil {
			return err
		}
	}
	return store.Release(ctx, l)
}

// A pool of workers resumes unfinished runs: each lists the runs labelled
// status=running that no live lease holds, claims one, and resumes it
// from the lease's checkpoint. A worker that pauses past its lease is
// taken over; its next side effect and its next save are refused, and
// every step is charged exactly once.
func ExampleClaimer() {
	ctx := context.Background()
	store := memstore.New(nil)
	pay := &payments{highest: map[string]uint64{}, done: map[string]bool{}}
	run := uuid.MustParse("6f1c2b9e-0d4a-4e8b-9a37-2c5d8e1f4a60")
	cp := &cairn.Checkpoint{WorkflowName: "orders", RunID: run, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		State: map[string]any{"step": int64(1)}}
	cp.SetLabel("status", "running") // left unfinished by a crashed worker
	if err := store.Save(ctx, cp); err != nil {
		panic(err)
	}

	unfinished := &cairn.ListOptions{Labels: map[string]string{"status": "running"}, Claimable: true}
	page, _ := store.List(ctx, unfinished)
	fmt.Println("claimable:", len(page.Runs))

	// Worker A claims the run, charges step 1, and pauses past its lease.
	a, _ := store.Claim(ctx, run, &cairn.ClaimOptions{Owner: "worker-a", Lease: 20 * time.Millisecond})
	fmt.Println("A charges step 1:", pay.charge(a.Key("1")))
	time.Sleep(40 * time.Millisecond)

	// Worker B finds the run claimable again, claims it with a higher
	// epoch and finishes it.
	page, _ = store.List(ctx, unfinished)
	b, _ := store.Claim(ctx, page.Runs[0].RunID, &cairn.ClaimOptions{Owner: "worker-b", Lease: time.Minute})
	fmt.Println("B's epoch is higher:", b.Epoch > a.Epoch)
	fmt.Println("B finishes:", resume(ctx, store, pay, b, 4))

	// A wakes up: the service refuses its stale epoch, and so does the
	// store.
	fmt.Println("A charges step 2:", pay.charge(a.Key("2")))
	err := store.SaveLeased(ctx, a, a.Checkpoint)
	fmt.Println("A saves:", errors.Is(err, cairn.ErrConflict))

	page, _ = store.List(ctx, unfinished)
	final, _ := store.Load(ctx, run)
	fmt.Println("charges:", pay.charges, "step:", final.State["step"], "unfinished:", len(page.Runs))
	// Output:
	// claimable: 1
	// A charges step 1: <nil>
	// B's epoch is higher: true
	// B finishes: <nil>
	// A charges step 2: stale epoch 1 for 6f1c2b9e-0d4a-4e8b-9a37-2c5d8e1f4a60/2
	// A saves: true
	// charges: 3 step: 4 unfinished: 0
}
