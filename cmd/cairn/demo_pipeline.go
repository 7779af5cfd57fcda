package main

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// The demo's pipeline: every run goes through these steps in order and
// checkpoints after each.
var demoSteps = []string{"fetch", "validate", "enrich", "price", "reserve", "ship"}

// stepValue is what step k of run i computes; a run's final total is the
// sum over its steps, so the demo knows what every run must end with.
func stepValue(id uuid.UUID, k int) int64 {
	return int64(binary.BigEndian.Uint16(id[k%16:]))%1000 + int64(k)
}

var demoWords = strings.Fields(`order customer item warehouse stock price discount tax invoice
shipment carrier label address payment card refund approved checked reserved pending delayed
the a of to for with from and was is at in on by rule limit score model review`)

// demoText is a step's log: words chosen from the run and step, as a
// model's or a service's output would be, so that compression sees text.
func demoText(id uuid.UUID, k, n int) string {
	h := uint32(id[k]) | uint32(id[15-k])<<8
	words := make([]string, n)
	for i := range words {
		h = h*1664525 + 1013904223
		words[i] = demoWords[int(h>>16)%len(demoWords)]
	}
	return strings.Join(words, " ")
}

func expectedTotal(id uuid.UUID) int64 {
	var t int64
	for k := 1; k <= len(demoSteps); k++ {
		t += stepValue(id, k)
	}
	return t
}

// demoSubmit returns run id's first checkpoint, before any step: the
// order as submitted, labelled status=running. A run exists (and can be
// claimed) from this checkpoint on.
func demoSubmit(cfg *demoConfig, id uuid.UUID) *cairn.Checkpoint {
	state := map[string]any{"order": map[string]any{"id": id.String()[:8], "customer": fmt.Sprintf("c-%d", id[0]),
		"items": []any{map[string]any{"sku": "A-1", "qty": int64(1 + id[1]%4)}, map[string]any{"sku": "B-7", "qty": int64(1 + id[2]%3)}}},
		"history": []any{}, "total": int64(0), "outputs": map[string]any{}, "step": int64(0), "stage": "submitted", "done": false}
	c := &cairn.Checkpoint{WorkflowName: cfg.workflow, RunID: id, Timestamp: time.Now(), State: state,
		Metadata:      map[string]any{"by": "submit"},
		PendingEvents: []cairn.Event{{EventType: "demo::Step", Data: map[string]any{"next": demoSteps[0]}}}}
	c.SetLabel("status", "running")
	return c
}

// demoStep returns the checkpoint after step k of run id, from the one
// after step k-1 (demoSubmit's for k = 1), which it takes over: steps
// before k are carried over, not recomputed, so a run resumed from a
// checkpoint continues from what was durable. receipt is the ledger's key
// of the step's effect. The last step labels the run status=done.
func demoStep(prev *cairn.Checkpoint, cfg *demoConfig, id uuid.UUID, k int, by, receipt string) *cairn.Checkpoint {
	state := prev.State
	state["history"] = append(state["history"].([]any), int64(k))
	outputs, _ := state["outputs"].(map[string]any)
	if outputs == nil {
		outputs = map[string]any{}
		state["outputs"] = outputs
	}
	outputs[demoSteps[k-1]] = map[string]any{"log": demoText(id, k, 60), "value": stepValue(id, k), "receipt": receipt,
		"checks": []any{map[string]any{"name": "schema", "ok": true}, map[string]any{"name": "limits", "ok": true, "score": float64(id[k]) / 255}}}
	state["total"] = state["total"].(int64) + stepValue(id, k)
	state["step"], state["stage"] = int64(k), demoSteps[k-1]
	state["done"] = k == len(demoSteps)
	c := &cairn.Checkpoint{WorkflowName: cfg.workflow, RunID: id, Timestamp: time.Now(), State: state,
		Metadata: map[string]any{"by": by}}
	status := "running"
	if k < len(demoSteps) {
		c.PendingEvents = []cairn.Event{{EventType: "demo::Step", Data: map[string]any{"next": demoSteps[k]}}}
	} else {
		status = "done"
	}
	c.SetLabel("status", status)
	return c
}
