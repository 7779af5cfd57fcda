package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// words is the vocabulary of the generated text: enough variety that zstd
// compresses it about as much as real agent transcripts (3-5x), not 100x.
var words = strings.Fields(`the order customer invoice shipment was checked approved rejected pending
inventory warehouse payment refund tool call result retry step agent model assistant user said
please confirm address total amount currency euro dollar item items quantity price discount code
valid invalid expired region north south east west priority high low normal escalate ticket support
summary context window tokens budget plan execute observe reflect answer question because therefore
however meanwhile after before during schedule delivery tracking number carrier status update note`)

// sample is one checkpoint of the workload with its stored forms.
type sample struct {
	typed *cairn.TypedCheckpoint[AgentState] // what the typed contender saves
	cp    *cairn.Checkpoint                  // the same, JSON-like: what the others encode
	blob  []byte                             // Cairn's stored bytes (zstd around MessagePack): what the raw contender PUTs
}

// generator makes checkpoints of a target record size whose state looks
// like a workflow engine's: nested structs, lists, strings, integers,
// floats.
type generator struct {
	rng   *rand.Rand
	codec *cairn.Codec
	t0    time.Time
	n     int
}

func newGenerator(seed uint64, codec *cairn.Codec) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, 7)), codec: codec, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (g *generator) text(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.rng.IntN(len(words))])
	}
	return b.String()
}

func (g *generator) message(i int) Message {
	m := Message{
		Role:    []string{"user", "assistant", "tool"}[g.rng.IntN(3)],
		Content: g.text(12 + g.rng.IntN(20)),
		Tokens:  int64(20 + g.rng.IntN(400)),
		Score:   g.rng.Float64(),
		Index:   int64(i),
	}
	if g.rng.IntN(3) == 0 {
		m.ToolCalls = []ToolCall{{
			Name: "lookup_" + words[g.rng.IntN(len(words))],
			Args: Args{ID: int64(g.rng.IntN(1e6)), Query: g.text(4), Strict: g.rng.IntN(2) == 0},
		}}
	}
	return m
}

// typed returns a typed checkpoint with msgs messages in its state.
func (g *generator) typed(msgs int) *cairn.TypedCheckpoint[AgentState] {
	g.n++
	var id uuid.UUID
	for i := range id {
		id[i] = byte(g.rng.Uint32())
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	history := make([]Message, msgs)
	for i := range history {
		history[i] = g.message(i)
	}
	return &cairn.TypedCheckpoint[AgentState]{
		WorkflowName: fmt.Sprintf("order-flow-%d", g.rng.IntN(8)),
		RunID:        id,
		Timestamp:    g.t0.Add(time.Duration(g.n)*time.Second + time.Duration(g.rng.IntN(1e9))),
		State: AgentState{
			Step:     int64(msgs),
			Status:   "running",
			Customer: Customer{ID: int64(g.rng.IntN(1e7)), Name: g.text(2), Tier: "gold", Credit: 1234.5},
			Cart:     []int64{3, 14, 15},
			Messages: history,
			Vars:     Vars{Retries: int64(g.rng.IntN(4)), Deadline: "2026-02-01T00:00:00Z", Flags: []bool{true, false}},
		},
		PendingEvents: []cairn.TypedEvent{&StepDone{Step: int64(msgs), OK: true}},
		Metadata:      map[string]any{"engine": "blazen", "attempt": int64(1)},
	}
}

// checkpoint returns a checkpoint with msgs messages in its state, in the
// JSON-like form.
func (g *generator) checkpoint(msgs int) (*cairn.Checkpoint, error) {
	return plain(g.typed(msgs))
}

// plain returns tc in the JSON-like form of the map path, converted with
// cairn.ToValue: Save writes the record for it that Typed.Save writes for
// tc.
func plain(tc *cairn.TypedCheckpoint[AgentState]) (*cairn.Checkpoint, error) {
	state, err := cairn.ToValue(&tc.State)
	if err != nil {
		return nil, err
	}
	cp := &cairn.Checkpoint{WorkflowName: tc.WorkflowName, RunID: tc.RunID, Timestamp: tc.Timestamp,
		State: state.(map[string]any), Metadata: tc.Metadata}
	for _, e := range tc.PendingEvents {
		done, ok := e.(*StepDone) // the workload's one event type
		if !ok {
			return nil, fmt.Errorf("bench: pending event of type %T", e)
		}
		data, err := cairn.ToValue(done)
		if err != nil {
			return nil, err
		}
		cp.PendingEvents = append(cp.PendingEvents, cairn.Event{EventType: stepDoneName, Data: data})
	}
	return cp, nil
}

// messagesFor returns the number of messages that makes a record of about
// target bytes, measured on this generator's output.
func (g *generator) messagesFor(target int) (int, error) {
	size := func(n int) (int, error) {
		cp, err := g.checkpoint(n)
		if err != nil {
			return 0, err
		}
		rec, err := g.codec.EncodeRecord(nil, cp)
		return len(rec), err
	}
	base, err := size(0)
	if err != nil {
		return 0, err
	}
	const probe = 50
	full, err := size(probe)
	if err != nil {
		return 0, err
	}
	per := float64(full-base) / probe
	return max(0, int(float64(target-base)/per+0.5)), nil
}

// samples returns n checkpoints of about size bytes (MessagePack record)
// in both forms, with their stored bytes.
func (g *generator) samples(n, size int) ([]sample, error) {
	msgs, err := g.messagesFor(size)
	if err != nil {
		return nil, err
	}
	out := make([]sample, n)
	for i := range out {
		typed := g.typed(msgs)
		cp, err := plain(typed)
		if err != nil {
			return nil, err
		}
		blob, err := g.codec.Marshal(cp)
		if err != nil {
			return nil, err
		}
		out[i] = sample{typed: typed, cp: cp, blob: blob}
	}
	return out, nil
}

// Latency summarizes the latencies a caller saw.
type Latency struct {
	P50, P99 time.Duration
}

func summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return Latency{P50: at(0.50), P99: at(0.99)}
}

// driveResult is what drive measured.
type driveResult struct {
	Done    int           // operations completed
	Elapsed time.Duration // from the first start to the last end
	Lat     Latency       // of each operation, in the caller
}

// drive runs op(i) for i in [0, n) on conc goroutines, stopping early, at an
// operation boundary, once budget has passed. The first error stops
// everything and is returned.
func drive(ctx context.Context, conc, n int, budget time.Duration, op func(ctx context.Context, i int) error) (driveResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	start := time.Now()
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n || (budget > 0 && time.Since(start) > budget) {
					return
				}
				t := time.Now()
				if err := op(ctx, i); err != nil {
					cancel(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return driveResult{}, err
	}
	all := slices.Concat(lats...)
	return driveResult{Done: len(all), Elapsed: elapsed, Lat: summarize(all)}, nil
}
