package index

import (
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

//go:generate go run ../tools/cairngen -type Entry,Op,Batch,Page,OpPage,PageRef,Level,Manifest,Head -output model_gen.go

// Entry is one live run as the index knows it: what List returns without
// reading the run's object.
type Entry struct {
	RunID     uuid.UUID `msgpack:"run"`
	Timestamp time.Time `msgpack:"ts"`
	Workflow  string    `msgpack:"wf"`
	// Size is the length of the run's MessagePack record.
	Size int64 `msgpack:"size"`
	// Expires is when the run stops being visible; zero means never.
	Expires time.Time `msgpack:"exp,optional"`
	// ETag is the run object's ETag: for a save, of the object it wrote
	// (Reindex and Verify match it against a listing without a HEAD); for a
	// delete, of the object it deleted, "" when there was none. Empty in
	// by-time pages, which List reads and which do not need it, and in
	// entries written before it existed.
	ETag string `msgpack:"etag,optional"`
}

// Key returns e's position in List order.
func (e *Entry) Key() cairn.Key { return cairn.Key{Timestamp: e.Timestamp, RunID: e.RunID} }

// Expired reports whether e has expired at now.
func (e *Entry) Expired(now time.Time) bool { return !e.Expires.IsZero() && !now.Before(e.Expires) }

// Op is one change in a log batch: a run saved (Entry is its new state) or
// deleted. A delete is a tombstone: Entry.RunID, Entry.Timestamp (when it
// was committed, by the deleter's clock; zero in tombstones written before
// it was recorded) and Entry.ETag (the object it deleted). It is the
// positive evidence that GC needs to remove a run object: an object whose
// ETag is the tombstone's is dead; any other object of the run is a later
// Save whose commit was lost, and Reindex lists it.
type Op struct {
	Entry  Entry `msgpack:"e"`
	Delete bool  `msgpack:"del"`
}

// Batch is the body of one log object: the ops of one commit. ID tells a
// writer whether a log it finds at the number it tried is its own (a PUT
// whose answer was lost may have landed).
type Batch struct {
	ID  uuid.UUID `msgpack:"id"`
	Ops []Op      `msgpack:"ops"`
}

// Page is an immutable sorted run of entries: by List order in the by-time
// set, by run ID in the by-run set.
type Page struct {
	Entries []Entry `msgpack:"entries"`
}

// OpPage is an immutable run of ops sorted by run ID: a page of one level
// of the by-run set, where a delete is kept as a tombstone for
// Options.KeepTombstones after it was committed (see pushLevel).
type OpPage struct {
	Ops []Op `msgpack:"ops"`
}

// PageRef names a page of a snapshot and the keys it covers.
type PageRef struct {
	ID    string `msgpack:"id"`
	Count int    `msgpack:"n"`
	// First is the first entry's key fields: in the by-time set its
	// timestamp and run; in the by-run set only its run counts.
	First Entry `msgpack:"first"`
}

// Level is one sorted run of the by-run set: pages of ops in run order.
type Level struct {
	Count int       `msgpack:"n"`
	Pages []PageRef `msgpack:"pages"`
}

// Manifest is a compacted snapshot: every live run as of log Seq. ByTime
// holds the entries in List order, for List. RunLevels, newest first, map
// run IDs to their entries, so that compaction finds the entry a run had
// before without reading every page: a log-structured merge of levels of
// geometrically growing size, where a newer level's op for a run overrides
// an older one's.
type Manifest struct {
	Seq       uint64    `msgpack:"seq"`
	Created   time.Time `msgpack:"created"`
	Count     int64     `msgpack:"count"`
	ByTime    []PageRef `msgpack:"by_time"`
	RunLevels []Level   `msgpack:"run_levels"`
	// Base is the snapshot a compaction built this one on (its logs after
	// Base applied to it); a Rebuild's names itself. Two snapshots of one
	// Seq hold the same runs only if their Base is the same. Zero in
	// manifests written before it was recorded.
	Base uint64 `msgpack:"base,optional"`
}

// Head names the newest snapshot a writer knew of. Readers trust it only
// as "a snapshot at least this new exists".
type Head struct {
	Seq uint64 `msgpack:"seq"`
}
