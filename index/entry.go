package index

import "github.com/cairnstore/cairn/index/internal/format"

// Entry is one live run as the index knows it: what List returns without
// reading the run's object. Its fields:
//
//   - RunID, Timestamp and Workflow: the run's identity, its List order
//     (Key) and the workflow List filters on.
//   - Size: the length of the run's MessagePack record.
//   - Expires: when the run stops being visible (Expired); zero means never.
//   - ETag: the run object's ETag. For a save, of the object it wrote, so
//     that Reindex and Verify match it against a listing without a HEAD; for
//     a delete, of the object it deleted, "" when there was none. Empty in
//     the by-time pages, which List reads and which do not need it (so an
//     entry List returns may lack it), and in entries written before it
//     was recorded.
//
// Key returns its position in List order; Expired(now) reports whether it
// has expired at now. Entries are values: those the index returns are
// copies, which the caller owns.
type Entry = format.Entry

// Op is one change that Commit makes durable: a run saved (Entry is its
// new state) or, with Delete set, deleted. A delete is a tombstone holding
// Entry.RunID, Entry.Timestamp (when it was committed, by the deleter's
// clock; zero in tombstones written before it was recorded) and Entry.ETag
// (the object it deleted). It is the positive evidence that GC needs to
// remove a run object: an object whose ETag is the tombstone's is dead; any
// other object of the run is a later Save whose commit was lost, and
// Reindex lists it. The index keeps a tombstone for
// Options.KeepTombstones.
type Op = format.Op
