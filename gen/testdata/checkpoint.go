package cairn

import (
	"time"

	"github.com/google/uuid"
)

//go:generate go run ../../tools/cairngen -type Checkpoint,Event -msgpack-shims -output checkpoint_gen.go

// Checkpoint is the state of one workflow run, as blazen-persist's
// WorkflowCheckpoint holds it. Saving a checkpoint replaces the previous one
// of the same RunID.
//
// State, Metadata and Event.Data hold JSON-like values: nil, bool, string,
// any Go integer or float, json.Number, and slices and string-keyed maps of
// those (the package doc says exactly what is accepted and what comes
// back). A checkpoint read from a store always has non-nil State, Metadata
// and PendingEvents, with integers as int64 (uint64 above math.MaxInt64) and
// floats as float64, so 42 never comes back as 42.0.
type Checkpoint struct {
	// WorkflowName names the workflow definition the run executes.
	WorkflowName string `msgpack:"workflow_name,required" json:"workflow_name"`
	// RunID identifies the run; it is the key of the store. It must not
	// be uuid.Nil.
	RunID uuid.UUID `msgpack:"run_id,required" json:"run_id"`
	// Timestamp is when the checkpoint was taken; List orders by it. It
	// is stored in UTC to the nanosecond and must not be the zero time.
	Timestamp time.Time `msgpack:"timestamp,required" json:"timestamp"`
	// State is the workflow's context state, keyed by name.
	State map[string]any `msgpack:"state,required" json:"state"`
	// PendingEvents are the events that were queued but not yet
	// processed when the checkpoint was taken.
	PendingEvents []Event `msgpack:"pending_events,required" json:"pending_events"`
	// Metadata holds whatever the engine records beside the state.
	Metadata map[string]any `msgpack:"metadata,required" json:"metadata"`
}

// Event is a queued workflow event, as blazen-persist's SerializedEvent
// holds it: a type name such as "blazen::StartEvent" and its JSON-like data.
type Event struct {
	EventType string `msgpack:"event_type,required" json:"event_type"`
	Data      any    `msgpack:"data,required" json:"data"`
}
