package cairn

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Record is a checkpoint encoded for storing: its MessagePack record (the
// bytes a Store keeps, before compression) and what a Store indexes of
// it. Records are made by [Codec.NewRecord] and by [Typed], which validate
// what they encode, so a Store may take one as it is. A Record is
// immutable and small; it is passed by value.
type Record struct {
	data     []byte
	runID    uuid.UUID
	workflow string
	ts       time.Time
	labels   map[string]string
	epoch    uint64
}

// Valid reports whether r was made by NewRecord or Typed: the zero Record
// is not, and a Store refuses it with ErrInvalid.
func (r Record) Valid() bool { return len(r.data) > 0 && r.runID != uuid.Nil && !r.ts.IsZero() }

// CheckRecord returns what a RecordStore's SaveRecord checks first, as an
// [*Error] for a save: ErrInvalid when r is not Valid, ErrTooLarge when
// its record is over c's MaxSize (it was made by a codec of a larger one).
func (c *Codec) CheckRecord(r Record) error {
	switch {
	case !r.Valid():
		return WrapOp("save", r.runID, fmt.Errorf("%w: a Record not made by NewRecord or Typed", ErrInvalid))
	case len(r.data) > c.maxSize:
		return WrapOp("save", r.runID, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrTooLarge, len(r.data), c.maxSize))
	}
	return nil
}

// Bytes returns the MessagePack record. The caller must not change it: a
// Store keeps it as it is (in its cache, say).
func (r Record) Bytes() []byte { return r.data }

// RunID returns the run the record is a checkpoint of.
func (r Record) RunID() uuid.UUID { return r.runID }

// WorkflowName returns the checkpoint's workflow name.
func (r Record) WorkflowName() string { return r.workflow }

// Timestamp returns the checkpoint's timestamp, in UTC.
func (r Record) Timestamp() time.Time { return r.ts }

// Labels returns the checkpoint's labels (nil when it has none). The
// map is the record's: a Store may keep it, nobody may change it.
func (r Record) Labels() map[string]string { return r.labels }

// Epoch returns the lease epoch recorded in the checkpoint's metadata (see
// [LeaseEpoch]), 0 when there is none.
func (r Record) Epoch() uint64 { return r.epoch }

// NewRecord encodes cp as [Codec.EncodeRecord] does, appending to dst, and
// returns the record with what a Store indexes of it. The record's bytes
// are the appended ones (copied out when dst had much more room than they
// needed, so that a kept record keeps no slack): dst must not be reused
// while the record is. cp
// is encoded as it is; a plain Save encodes [Unleased](cp).
func (c *Codec) NewRecord(dst []byte, cp *Checkpoint) (Record, error) {
	start := len(dst)
	rec, err := c.EncodeRecord(dst, cp)
	if err != nil {
		return Record{}, err
	}
	labels, err := cp.Labels() // a copy, which the store may keep
	if err != nil {
		return Record{}, err
	}
	return Record{data: fit(rec[start:]), runID: cp.RunID, workflow: cp.WorkflowName, ts: cp.Timestamp.UTC(),
		labels: labels, epoch: LeaseEpoch(cp.Metadata)}, nil
}

// RecordStore is a Store that also saves and loads encoded records: how
// [Typed] moves typed checkpoints between the caller's types and the
// stored bytes without a Checkpoint of JSON-like values in between. The
// tiered, durable and memstore stores implement it.
type RecordStore interface {
	Store
	// Codec returns the codec of the store's records, whose MaxSize
	// bounds what SaveRecord takes.
	Codec() *Codec
	// SaveRecord stores r as Save stores the checkpoint r encodes, with
	// the same guarantees and errors: a record that is not Valid, or over
	// the store's MaxSize, is refused before anything is written (see
	// Codec.CheckRecord). The store keeps r's bytes as they are.
	SaveRecord(ctx context.Context, r Record) error
	// LoadRecord returns the MessagePack record of runID's latest
	// checkpoint, decompressed, or ErrNotFound, as Load finds it. The
	// bytes may be shared (with a cache): the caller must not change
	// them, and the store never changes them afterwards either (nor
	// reuses their memory), so that what the caller decodes may alias
	// them, as Typed's strings do. They are not decoded: the caller
	// decodes them, checks that they hold runID, and reports what does
	// not decode as ErrCorrupt.
	LoadRecord(ctx context.Context, runID uuid.UUID, opts *LoadRecordOptions) ([]byte, error)
}

// LoadRecordOptions tune a LoadRecord. Nil means the zero options.
type LoadRecordOptions struct {
	// Listed is the timestamp that List gave for the run, when the load
	// fills a page: a cached copy of another timestamp (a write by
	// another process since) is not used. Zero: any copy will do.
	Listed time.Time
	// ListedSize is the Size that List gave: a cached copy of another
	// size is not used either. Zero: any size. (A rewrite by another
	// process with the same timestamp and the same size goes unseen.)
	ListedSize int64
}
