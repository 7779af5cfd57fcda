package cairn

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/cairnstore/cairn/gen/wire"
	"github.com/google/uuid"
)

// The keys of a checkpoint record and of an event, with their str
// headers, as the generated codec of Checkpoint writes them.
const (
	keyWorkflow  = "\xadworkflow_name"
	keyRunID     = "\xa6run_id"
	keyTimestamp = "\xa9timestamp"
	keyState     = "\xa5state"
	keyEvents    = "\xaepending_events"
	keyMetadata  = "\xa8metadata"
	keyEventType = "\xaaevent_type"
	keyData      = "\xa4data"
)

// typedParts is a typed checkpoint without its type parameter: what the
// record encoder and decoder below work on.
type typedParts struct {
	workflow string
	runID    uuid.UUID
	ts       time.Time
	events   []TypedEvent
	metadata map[string]any
}

// encodeTyped validates a typed checkpoint as EncodeRecord validates a
// Checkpoint and encodes it with state written by its generated value
// encoder: the bytes EncodeRecord writes for the Checkpoint whose State
// is ToValue(state). The record is a new slice, of capacity sizeHint
// (the size of an earlier record, usually) plus some slack: one
// allocation, written once.
func (c *Codec) encodeTyped(p *typedParts, state wire.ValueMarshaler, reg *EventRegistry, sizeHint int) (Record, error) {
	switch {
	case p.runID == uuid.Nil:
		return Record{}, fmt.Errorf("%w: nil run ID", ErrInvalid)
	case p.ts.IsZero():
		return Record{}, fmt.Errorf("%w: zero timestamp", ErrInvalid)
	case !utf8.ValidString(p.workflow):
		return Record{}, fmt.Errorf("%w: Checkpoint.workflow_name: invalid UTF-8", ErrInvalid)
	}
	labels, err := LabelsOf(p.metadata)
	if err != nil {
		return Record{}, err
	}
	if err := checkLeaseStamp(p.metadata); err != nil {
		return Record{}, err
	}
	b := make([]byte, 0, min(sizeHint+sizeHint/16+256, c.maxSize+1))
	b = append(b, 0x86)
	b = append(b, keyWorkflow...)
	b = wire.AppendString(b, p.workflow)
	b = append(b, keyRunID...)
	b = wire.AppendUUID(b, p.runID)
	b = append(b, keyTimestamp...)
	if b, err = wire.AppendTime(b, p.ts); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, wire.FieldError("Checkpoint", "timestamp", err))
	}
	b = append(b, keyState...)
	if b, err = state.AppendMsgpackValue(b); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, wire.FieldError("Checkpoint", "state", err))
	}
	b = append(b, keyEvents...)
	b = wire.AppendArrayHeader(b, len(p.events))
	for i, e := range p.events {
		if b, err = appendEvent(b, e, reg); err != nil {
			return Record{}, fmt.Errorf("%w: %w", ErrInvalid, wire.FieldError("Checkpoint", "pending_events", wire.AtIndex(i, err)))
		}
	}
	b = append(b, keyMetadata...)
	if b, err = wire.AppendValueMap(b, p.metadata); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalid, wire.FieldError("Checkpoint", "metadata", err))
	}
	if len(b) > c.maxSize {
		return Record{}, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrTooLarge, len(b), c.maxSize)
	}
	return Record{data: fit(b), runID: p.runID, workflow: p.workflow, ts: p.ts.UTC(), labels: labels,
		epoch: LeaseEpoch(p.metadata)}, nil
}

// appendEvent appends one pending event: an *Event as the map path
// writes it, any other as its registered name and its value encoding.
func appendEvent(b []byte, e TypedEvent, reg *EventRegistry) ([]byte, error) {
	if isNil(e) {
		return b, errors.New("nil event")
	}
	if ev, ok := e.(*Event); ok {
		if !utf8.ValidString(ev.EventType) {
			return b, wire.FieldError("Event", "event_type", errors.New("invalid UTF-8"))
		}
		b = append(b, 0x82)
		b = append(b, keyEventType...)
		b = wire.AppendString(b, ev.EventType)
		b = append(b, keyData...)
		b, err := wire.AppendValue(b, ev.Data)
		if err != nil {
			return b, wire.FieldError("Event", "data", err)
		}
		return b, nil
	}
	name, err := reg.name(e)
	if err != nil {
		return b, err
	}
	b = append(b, 0x82)
	b = append(b, keyEventType...)
	b = wire.AppendString(b, name)
	b = append(b, keyData...)
	return e.AppendMsgpackValue(b)
}

// decodeTyped decodes a record into p and, through its generated
// decoder, state; what does not decode is ErrCorrupt. It accepts what
// DecodeRecord accepts: a map or a positional array, or Blazen's legacy
// JSON (through the JSON-like form, as that has to be parsed anyway).
func (c *Codec) decodeTyped(rec []byte, p *typedParts, state wire.Unmarshaler, reg *EventRegistry) error {
	if len(rec) > c.maxSize {
		return fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrCorrupt, len(rec), c.maxSize)
	}
	if len(rec) == 0 {
		return fmt.Errorf("%w: empty object", ErrCorrupt)
	}
	if b := rec[0]; !(b&0xe0 == 0x80 || b >= 0xdc && b <= 0xdf) {
		cp, err := c.DecodeRecord(rec) // legacy JSON, or an error
		if err != nil {
			return err
		}
		return fromCheckpoint(cp, p, state, reg)
	}
	// LoadRecord's bytes never change (a cache's, or the caller's own):
	// strings may alias them.
	r := wire.NewValueReader(rec)
	r.Share()
	if err := readTyped(&r, p, state, reg); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, r.Len())
	}
	return nil
}

var typedFields = []string{"workflow_name", "run_id", "timestamp", "state", "pending_events", "metadata"}

func readTyped(r *wire.Reader, p *typedParts, state wire.Unmarshaler, reg *EventRegistry) error {
	seen, err := eachField(r, func(i int) error { return readTypedField(r, i, p, state, reg) })
	if err == nil && seen != 1<<len(typedFields)-1 {
		err = wire.MissingFields("Checkpoint", typedFields, seen)
	}
	return err
}

// eachField reads the header of a checkpoint record (a map, or a
// positional array of at least the six fields) and calls read for each of
// its fields with the field's index in typedFields (-1 for a key it does
// not know, six and more for elements past them), which read must consume.
// It returns the bits of the fields it saw; errors name the field.
func eachField(r *wire.Reader, read func(i int) error) (seen uint64, err error) {
	n, isMap, err := r.ReadContainerHeader()
	if err != nil {
		return 0, wire.FieldError("Checkpoint", "", err)
	}
	if !isMap && n < len(typedFields) {
		return 0, wire.ShortArray("Checkpoint", n, len(typedFields))
	}
	for j := range n {
		i := j
		if isMap {
			key, err := r.ReadStr()
			if err != nil {
				return 0, wire.FieldError("Checkpoint", "", err)
			}
			i = slices.Index(typedFields, string(key))
		}
		if err := read(i); err != nil {
			field := ""
			if i >= 0 && i < len(typedFields) {
				field = typedFields[i]
			}
			return 0, wire.FieldError("Checkpoint", field, err)
		}
		if i >= 0 && i < len(typedFields) {
			seen |= 1 << i
		}
	}
	return seen, nil
}

// readTypedField reads field i of a record; one it does not know is
// skipped.
func readTypedField(r *wire.Reader, i int, p *typedParts, state wire.Unmarshaler, reg *EventRegistry) (err error) {
	switch i {
	case 0:
		if p.workflow, err = r.ReadString(); err == nil && !utf8.ValidString(p.workflow) {
			err = errors.New("invalid UTF-8")
		}
	case 1:
		p.runID, err = r.ReadUUID()
	case 2:
		p.ts, err = r.ReadTime()
	case 3:
		if r.TryNil() {
			// A nil state reads as an empty one, as the map path reads
			// it: every field at its default.
			return wire.Unmarshal([]byte{0x80}, state)
		}
		err = state.ReadMsgpack(r)
	case 4:
		p.events, err = readEvents(r, reg)
	case 5:
		p.metadata, err = r.ReadValueMap()
	default:
		err = r.Skip()
	}
	return err
}

// readEvents reads pending events: those of a type registered in reg
// into a value of that type, the others into an *Event.
func readEvents(r *wire.Reader, reg *EventRegistry) ([]TypedEvent, error) {
	if r.TryNil() {
		return []TypedEvent{}, nil
	}
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, err
	}
	events := make([]TypedEvent, 0, wire.CapHint(n))
	for i := range n {
		e, err := readEvent(r, reg)
		if err != nil {
			return nil, wire.AtIndex(i, err)
		}
		events = append(events, e)
	}
	return events, nil
}

func readEvent(r *wire.Reader, reg *EventRegistry) (TypedEvent, error) {
	n, isMap, err := r.ReadContainerHeader()
	if err != nil {
		return nil, wire.FieldError("Event", "", err)
	}
	if !isMap && n < 2 {
		return nil, wire.ShortArray("Event", n, 2)
	}
	var (
		name    string
		data    []byte // the data's encoding, read once the type is known
		hasName bool
	)
	for j := range n {
		i := j
		if isMap {
			key, err := r.ReadStr()
			if err != nil {
				return nil, wire.FieldError("Event", "", err)
			}
			switch string(key) {
			case "event_type":
				i = 0
			case "data":
				i = 1
			default:
				i = -1
			}
		}
		switch i {
		case 0:
			name, err = r.ReadString()
			if err == nil && !utf8.ValidString(name) {
				err = errors.New("invalid UTF-8")
			}
			if err != nil {
				return nil, wire.FieldError("Event", "event_type", err)
			}
			hasName = true
		case 1:
			rest := r.Rest()
			if err := r.Skip(); err != nil {
				return nil, wire.FieldError("Event", "data", err)
			}
			data = rest[:len(rest)-r.Len()]
		default:
			if err := r.Skip(); err != nil {
				return nil, wire.FieldError("Event", "", err)
			}
		}
	}
	if !hasName || data == nil {
		var seen uint64
		if hasName {
			seen |= 1
		}
		if data != nil {
			seen |= 2
		}
		return nil, wire.MissingFields("Event", []string{"event_type", "data"}, seen)
	}
	d := wire.NewValueReader(data) // a part of the record: shared too
	d.Share()
	e := reg.decoder(name)
	if e == nil {
		v, err := d.ReadValue()
		if err != nil {
			return nil, wire.FieldError("Event", "data", err)
		}
		return &Event{EventType: name, Data: v}, nil
	}
	if err := e.ReadMsgpack(&d); err != nil {
		return nil, wire.FieldError("Event", "data", err)
	}
	return e, nil
}

// fromCheckpoint fills p and state from a decoded Checkpoint (of legacy
// JSON), through the JSON-like form.
func fromCheckpoint(cp *Checkpoint, p *typedParts, state wire.Unmarshaler, reg *EventRegistry) error {
	p.workflow, p.runID, p.ts, p.metadata = cp.WorkflowName, cp.RunID, cp.Timestamp, cp.Metadata
	if err := fromValue(cp.State, state); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, wire.FieldError("Checkpoint", "state", err))
	}
	p.events = make([]TypedEvent, 0, len(cp.PendingEvents))
	for i, ev := range cp.PendingEvents {
		e := reg.decoder(ev.EventType)
		if e == nil {
			p.events = append(p.events, &Event{EventType: ev.EventType, Data: ev.Data})
			continue
		}
		if err := fromValue(ev.Data, e); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, wire.FieldError("Checkpoint", "pending_events", wire.AtIndex(i, wire.FieldError("Event", "data", err))))
		}
		p.events = append(p.events, e)
	}
	return nil
}

// RecordHeader is what a record says of its run besides the checkpoint's
// body.
type RecordHeader struct {
	WorkflowName string
	RunID        uuid.UUID
	Timestamp    time.Time
}

// ReadHeader reads the workflow name, run ID and timestamp of rec, which
// must not change afterwards (the name may alias it), without decoding
// its state, events or metadata: what a cache needs to index a record it
// read. A record it cannot read is ErrCorrupt; the parts it skips are
// checked only for their framing, as a Load decodes them.
func (c *Codec) ReadHeader(rec []byte) (RecordHeader, error) {
	var h RecordHeader
	if len(rec) > c.maxSize {
		return h, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrCorrupt, len(rec), c.maxSize)
	}
	if len(rec) == 0 || !(rec[0]&0xe0 == 0x80 || rec[0] >= 0xdc && rec[0] <= 0xdf) {
		cp, err := c.DecodeRecord(rec) // legacy JSON, or an error
		if err != nil {
			return h, err
		}
		return RecordHeader{WorkflowName: cp.WorkflowName, RunID: cp.RunID, Timestamp: cp.Timestamp}, nil
	}
	r := wire.NewReader(rec)
	r.Share()
	seen, err := eachField(&r, func(i int) (err error) {
		switch i {
		case 0:
			h.WorkflowName, err = r.ReadString()
		case 1:
			h.RunID, err = r.ReadUUID()
		case 2:
			h.Timestamp, err = r.ReadTime()
		default:
			err = r.Skip()
		}
		return err
	})
	if err == nil && seen&7 != 7 {
		err = wire.MissingFields("Checkpoint", typedFields[:3], seen)
	}
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return h, nil
}
