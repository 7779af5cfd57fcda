package durable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/seal"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// runObject is a run's object as a bucket listing shows it.
type runObject struct {
	id   uuid.UUID
	info bucket.Info
}

// listRuns lists every run object. Keys under runs/ that are not run IDs
// are reported through bad.
func (s *Store) listRuns(ctx context.Context, bad func(key string)) ([]runObject, error) {
	var out []runObject
	for start := ""; ; {
		infos, more, err := s.b.List(ctx, s.runs, start, 1000)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			id, err := uuid.Parse(strings.TrimPrefix(in.Key, s.runs))
			if err != nil || s.runKey(id) != in.Key {
				bad(in.Key)
				continue
			}
			out = append(out, runObject{id: id, info: in})
		}
		if !more || len(infos) == 0 {
			return out, nil
		}
		start = infos[len(infos)-1].Key
	}
}

// summary reads a run's index entry from its object: from the metadata
// when it is complete and well-formed, else from the decoded body
// (workflow, time, size and labels alike); with the object's ETag.
// An expired run has its entry too (GC, not Reindex, removes it).
func (s *Store) summary(ctx context.Context, id uuid.UUID) (index.Entry, error) {
	info, err := s.b.Head(ctx, s.runKey(id))
	if err != nil {
		return index.Entry{}, classify(err)
	}
	if err := s.sealedWithoutKeyring(s.runKey(id), info.Metadata); err != nil {
		return index.Entry{}, err
	}
	e, ok := entryFromMetadata(id, info.Metadata)
	e.ETag = info.ETag
	if ok {
		return e, nil
	}
	obj, err := s.b.Get(ctx, s.runKey(id), &bucket.GetOptions{MaxSize: s.maxObject()})
	if err != nil {
		if errors.Is(err, bucket.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", cairn.ErrCorrupt, err)
		}
		return index.Entry{}, classify(err)
	}
	cp, size, err := s.summaryOf(obj)
	if err == nil && cp.RunID != id {
		err = fmt.Errorf("%w: holds run %v", cairn.ErrCorrupt, cp.RunID)
	}
	if err != nil {
		return index.Entry{}, err
	}
	return index.Entry{RunID: id, Timestamp: cp.Timestamp, Workflow: cp.WorkflowName, Size: int64(size),
		Labels: recordLabels(cp), Expires: e.Expires, ETag: obj.ETag, Epoch: cairn.LeaseEpoch(cp.Metadata), Region: e.Region}, nil
}

// summaryOf decodes a run object for its summary, and returns the size of
// its record. It reads no blob: the values offloaded decode as nils, and
// the size is the record's as written, from the references' lengths.
func (s *Store) summaryOf(obj *bucket.Object) (*cairn.Checkpoint, int, error) {
	if err := s.sealedWithoutKeyring(obj.Key, obj.Metadata); err != nil {
		return nil, 0, err
	}
	rec, err := s.codec.Decompress(obj.Body)
	if err != nil {
		return nil, 0, err
	}
	spans, err := s.blobRefs(obj.Key, obj.Metadata, rec)
	if err != nil {
		return nil, 0, err
	}
	if len(spans) > 0 {
		cp, err := s.codec.DecodeRecord(stub(rec, spans))
		return cp, splicedSize(rec, spans), err
	}
	cp, err := s.codec.Unmarshal(obj.Body)
	if err != nil {
		return nil, 0, err
	}
	// The size of the record as Cairn writes it; not EncodeRecord, which
	// refuses labels breaking the rules that another program may write.
	b, err := cp.AppendMsgpack(nil)
	return cp, len(b), err
}

// verifyObject decodes a run object of run for Verify, with its blobs read
// from the bucket and checked: it returns the checkpoint (with nils for
// the values of broken blobs), the number of distinct blobs referenced,
// and blobErr when one is missing or damaged. err is a decoding error
// (ErrCorrupt), or one reading a blob that is not the blob's fault.
func (s *Store) verifyObject(ctx context.Context, run uuid.UUID, obj *bucket.Object) (cp *cairn.Checkpoint, blobs int, blobErr, err error) {
	if err := s.sealedWithoutKeyring(obj.Key, obj.Metadata); err != nil {
		return nil, 0, nil, err
	}
	rec, err := s.codec.Decompress(obj.Body)
	if err != nil {
		return nil, 0, nil, err
	}
	spans, err := s.blobRefs(obj.Key, obj.Metadata, rec)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(spans) == 0 {
		cp, err := s.codec.Unmarshal(obj.Body)
		return cp, 0, nil, err
	}
	names := map[[32]byte]bool{}
	for _, sp := range spans {
		for _, c := range sp.ref.chunks {
			names[c.name] = true
		}
	}
	full, err := s.assemble(ctx, run, rec, spans, true)
	switch {
	case err == nil:
		cp, err = s.codec.DecodeRecord(full)
		return cp, len(names), nil, err
	case !errors.Is(err, cairn.ErrCorrupt):
		return nil, 0, nil, err
	}
	cp, derr := s.codec.DecodeRecord(stub(rec, spans))
	return cp, len(names), err, derr
}

// recordLabels returns the labels of a decoded record in their stored
// form. A record whose labels entry breaks the rules (written by another
// program: Cairn refuses to save one) has none: it still loads, and is
// still a run, but it cannot be selected by label.
func recordLabels(cp *cairn.Checkpoint) string {
	labels, err := cp.Labels()
	if err != nil {
		return ""
	}
	return cairn.EncodeLabels(labels)
}

// dead reports whether the listed object info is the one op's tombstone
// deleted: op is a tombstone still kept, naming info's ETag, and the object
// was not written after it. (A Save of the same bytes after the Delete
// writes an object with the same ETag, later: alive.) The times are the
// server's for the object and the deleter's for the tombstone; a server
// clock ahead of the deleter's makes a dead object look alive, which
// errs on the side of keeping it.
func (s *Store) dead(op index.Op, info bucket.Info) bool {
	keep := s.ix.Options().KeepTombstones
	return op.Delete && op.Entry.ETag != "" && op.Entry.ETag == info.ETag &&
		!info.LastModified.After(op.Entry.Timestamp) && op.Entry.Timestamp.After(s.o.Now().Add(-keep))
}

// deadIn is dead, for a run that several regions wrote (ops, each
// region's last op) too: the object is a region's write that lost to
// another region's delete (the index names it as that write, and the
// delete outranks it).
//
// The losing write must be of a lower epoch than the delete, or older
// than it: a save at the delete's epoch made after it (another region
// saving the run again after it saw the delete, with a checkpoint
// timestamp earlier than the deletion, which the tie rules then rank
// lower) is a write someone acknowledged, never collected.
func (s *Store) deadIn(op index.Op, ops []index.Op, info bucket.Info) bool {
	if s.dead(op, info) {
		return true
	}
	if !op.Delete {
		return false
	}
	for _, o := range ops {
		if !o.Delete && o.Entry.ETag == info.ETag &&
			(o.Entry.Epoch < op.Entry.Epoch || !info.LastModified.After(op.Entry.Timestamp)) {
			return true
		}
	}
	return false
}

// unreadable reports whether err says a run object itself is damaged, so
// that reading it again will not help: recovery reports it and goes on.
func unreadable(err error) bool {
	return errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, bucket.ErrUnreadable) || errors.Is(err, bucket.ErrTooLarge)
}

// entryFromMetadata reads a run's index entry from its object's metadata
// (see objectMetadata). It reports false when the metadata lacks a field
// or holds one malformed (the workflow left out, a bad timestamp, labels
// that do not parse): the body then has to be read.
func entryFromMetadata(id uuid.UUID, meta map[string]string) (index.Entry, bool) {
	e := index.Entry{RunID: id, Epoch: metaEpoch(meta)}
	if r := meta[metaRegion]; index.CheckRegion(r) == nil {
		e.Region = r
	}
	if exp, ok := meta[metaExpires]; ok {
		if t, err := cairn.ParseTimestamp(exp); err == nil {
			e.Expires = t
		}
	}
	ts, err1 := cairn.ParseTimestamp(meta[metaTimestamp])
	size, err2 := strconv.ParseInt(meta[metaSize], 10, 64)
	wf, ok := meta[metaWorkflow]
	if !ok || err1 != nil || err2 != nil {
		return e, false
	}
	wf, err := url.PathUnescape(wf)
	if err != nil {
		return e, false
	}
	labels, err := cairn.ParseLabels(meta[metaLabels])
	if err != nil {
		return e, false
	}
	// Re-encoded, so that the entry holds the canonical form the index's
	// label matching relies on, whatever the metadata's spelling.
	e.Timestamp, e.Size, e.Workflow, e.Labels = ts, size, wf, cairn.EncodeLabels(labels)
	return e, true
}

// ReindexOptions configure Reindex. Nil means defaults.
type ReindexOptions struct {
	// Progress, if set, is called as run objects are looked at, with the
	// number done and the number listed; calls are serialized.
	Progress func(done, total int)
	// Full reads every run object's summary (a HEAD each) instead of
	// taking an index entry that names the same object as it is: it also
	// repairs entries damaged while naming the same object (labels or
	// workflow that disagree with the object, which Verify reports as
	// Mismatched). Without it, Reindex still re-reads the entries without
	// labels of an index an older binary compacted (which may have
	// dropped them).
	Full bool
}

// ReindexReport says what Reindex found and did. Each list is sorted.
type ReindexReport struct {
	Runs    int // run objects listed
	Indexed int // runs in the rebuilt index
	// Dead are objects of deleted runs (a tombstone names their ETag: a
	// Delete cut short). They stay out of the index; GC deletes them.
	Dead []uuid.UUID
	// Corrupt maps the run objects whose summary could not be read to the
	// reason. They stay out of the index, and in the bucket.
	Corrupt map[uuid.UUID]error
	// Strays are keys under runs/ that name no run.
	Strays []string
	// IndexDamage lists what could not be read of the old index. A run
	// deleted shortly before, whose tombstone only a damaged object held,
	// is listed again: nothing is ever left out for want of evidence.
	IndexDamage []error
}

// Reindex rebuilds the index from the run objects, whatever state the old
// index is in: missing, empty, logs or snapshots lost, a head naming
// nothing, corrupt pages. Every run object is indexed, labels included,
// from its metadata (its body when the metadata is incomplete or
// malformed), including objects whose
// Save lost its index commit and the runs of an import cut short: they are
// the newest state a writer wrote. Left out are only the objects a
// tombstone names (Dead: a Delete cut short) and those that cannot be read
// (Corrupt); nothing is deleted. Runs whose object the old index already
// describes (same ETag) cost no request beyond the listing.
//
// Saves and Deletes that commit during Reindex apply on top of the rebuilt
// snapshot; if a compaction moves the head meanwhile, Reindex starts
// again. Interrupted, it leaves the old index as it was (and pages for GC
// to collect); running it again is safe. opts may be nil.
func (s *Store) Reindex(ctx context.Context, opts *ReindexOptions) (*ReindexReport, error) {
	if err := s.checkWritable(ctx); err != nil {
		return nil, cairn.WrapOp("reindex", uuid.Nil, err)
	}
	if err := s.CheckServer(ctx); err != nil {
		return nil, cairn.WrapOp("reindex", uuid.Nil, err)
	}
	var o ReindexOptions
	if opts != nil {
		o = *opts
	}
	for attempt := 0; ; attempt++ {
		rep, err := s.reindex(ctx, &o)
		if errors.Is(err, bucket.ErrPrecondition) && attempt < 3 {
			continue // a compaction took that number or moved the head: again
		}
		if err != nil {
			return nil, cairn.WrapOp("reindex", uuid.Nil, err)
		}
		s.indexMu.Lock()
		s.indexOK = true
		s.indexMu.Unlock()
		return rep, nil
	}
}

// wrongKeyring returns an error naming the runs of corrupt whose objects
// are sealed with a key the keyring lacks, or sealed when the store has no
// keyring; nil if none are. (An unsealed object in a sealed store is not
// counted: checkKeyring found that the keyring opens the index, so such
// an object is damage, or planted, and Reindex leaves it out as corrupt.)
func wrongKeyring(corrupt map[uuid.UUID]error) error {
	var first error
	n := 0
	ids := slices.Collect(maps.Keys(corrupt))
	sortIDs(ids)
	for _, id := range ids {
		if err := corrupt[id]; errors.Is(err, seal.ErrUnknownKey) || errors.Is(err, seal.ErrNeedsKeyring) {
			if n++; first == nil {
				first = fmt.Errorf("run %v: %w", id, err)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("reindex refused, the index left as it was: %d of the run objects are sealed with a key this store's keyring does not hold (%w); reindex with a keyring that holds it", n, first)
}

func (s *Store) reindex(ctx context.Context, o *ReindexOptions) (*ReindexReport, error) {
	if err := s.checkKeyring(ctx); err != nil {
		return nil, err
	}
	seq, err := s.ix.Barrier(ctx)
	if err != nil {
		return nil, err
	}
	rep := &ReindexReport{Corrupt: map[uuid.UUID]error{}}
	last, err := s.lastOps(ctx, &rep.IndexDamage)
	if err != nil {
		return nil, err
	}
	// With other regions, the objects are made to hold the states the
	// index chose before they are read as the truth (an index that does
	// not read has no choice to restore).
	contested, err := s.contestedOps(ctx, last)
	if err == nil && len(contested) > 0 {
		_, err = s.reconcile(ctx, contested, false)
	}
	if err != nil && !errors.Is(err, index.ErrDamaged) {
		return nil, err
	}
	objs, err := s.listRuns(ctx, func(k string) { rep.Strays = append(rep.Strays, k) })
	if err != nil {
		return nil, err
	}
	rep.Runs = len(objs)
	// An index an older binary compacted may have dropped labels: its
	// entries without labels are then read again (a HEAD each), once,
	// until this Rebuild clears the mark. A damaged index is read again
	// the same way.
	unsure, err := s.ix.LabelsUnsure(ctx)
	if err != nil {
		unsure = true
	}
	entries, err := s.summaries(ctx, objs, last, rep, &summaryOptions{progress: o.Progress, unsure: unsure, full: o.Full, contested: contested})
	if err != nil {
		return nil, err
	}
	// Objects that do not open for want of the right keyring are not
	// damaged: an index rebuilt without them (and sealed with this
	// store's keyring, or none) would hide every one of them from the
	// processes that hold the right keyring. Refuse, writing nothing.
	if err := wrongKeyring(rep.Corrupt); err != nil {
		return rep, err
	}
	kept, tombs := rebuildOps(entries, last)
	if err := s.ix.Rebuild(ctx, seq, kept, tombs, s.otherOps(kept, tombs, contested, last)...); err != nil {
		return nil, err
	}
	rep.Indexed = len(kept)
	sortIDs(rep.Dead)
	return rep, nil
}

// summaryOptions configure summaries: progress, if set, is called after
// each object; with unsure, an index entry without labels is not trusted
// (an older binary's compaction may have dropped them); with full, none
// is.
type summaryOptions struct {
	progress     func(done, total int)
	unsure, full bool
	contested    map[uuid.UUID][]index.Op // each region's last ops of the runs several wrote
}

// summaries returns the index entry of each listed run object, in order:
// the index's own when it describes the object already, else one read
// from the object (a HEAD, in parallel). Dead objects, runs deleted since
// the listing and unreadable objects get none; rep says which were dead
// or unreadable.
func (s *Store) summaries(ctx context.Context, objs []runObject, last map[uuid.UUID]index.Op, rep *ReindexReport, so *summaryOptions) ([]index.Entry, error) {
	progress := so.progress
	entries := make([]index.Entry, len(objs))
	var (
		mu   sync.Mutex
		done int
	)
	step := func() { // mu held
		done++
		if progress != nil {
			progress(done, len(objs))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	for i, obj := range objs {
		op := last[obj.id]
		// Dead, or described by the index already (same ETag, labels
		// in canonical form; with a TTL the metadata may have been refreshed
		// over the same bytes, so only without one): no request.
		if known := !op.Delete && op.Entry.ETag != "" && op.Entry.ETag == obj.info.ETag && op.Entry.Expires.IsZero() &&
			validLabels(op.Entry.Labels) && (op.Entry.Labels != "" || !so.unsure) && !so.full; known || s.deadIn(op, so.contested[obj.id], obj.info) {
			mu.Lock()
			if known {
				entries[i] = op.Entry
			} else {
				rep.Dead = append(rep.Dead, obj.id)
			}
			step()
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			e, err := s.summary(gctx, obj.id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				entries[i] = e
			case errors.Is(err, cairn.ErrNotFound):
				// Deleted since the listing: its tombstone is after the
				// barrier and applies on top.
			case unreadable(err):
				rep.Corrupt[obj.id] = err
			default:
				return fmt.Errorf("run %v: %w", obj.id, err)
			}
			step()
			return nil
		})
	}
	return entries, g.Wait()
}

// validLabels reports whether stored, an index entry's labels, is in the
// canonical stored form (what cairn.EncodeLabels writes), the only form
// the index matches selectors against.
func validLabels(stored string) bool {
	labels, err := cairn.ParseLabels(stored)
	return err == nil && cairn.EncodeLabels(labels) == stored
}

// rebuildOps returns what a rebuilt index holds: the entries found, and
// the tombstones of runs without one. Tombstones stay: the evidence that
// lets GC delete a Dead object, and the next Reindex leave it out.
func rebuildOps(entries []index.Entry, last map[uuid.UUID]index.Op) ([]index.Entry, []index.Op) {
	kept := make([]index.Entry, 0, len(entries))
	indexed := map[uuid.UUID]bool{}
	for _, e := range entries {
		if e.RunID != uuid.Nil {
			kept = append(kept, e)
			indexed[e.RunID] = true
		}
	}
	var tombs []index.Op
	for id, op := range last {
		if op.Delete && !indexed[id] {
			tombs = append(tombs, op)
		}
	}
	return kept, tombs
}

// otherOps returns what a Rebuild keeps of other regions' ops beside the
// entries and tombstones it was given: for the runs of contested (each
// region's last op of the runs several regions wrote) that it keeps an
// entry or a tombstone of, the ops of the other regions, so that the
// rebuilt index still decides between them as the other regions' indexes
// do; and for the runs it keeps nothing of, the ops of regions other than
// this one (last holds the winners), whose objects may still be on their
// way: replication delivers a small log before a large object.
func (s *Store) otherOps(kept []index.Entry, tombs []index.Op, contested map[uuid.UUID][]index.Op, last map[uuid.UUID]index.Op) []index.Op {
	chosen := map[uuid.UUID]string{}
	for _, e := range kept {
		chosen[e.RunID] = e.Region
	}
	for _, op := range tombs {
		chosen[op.Entry.RunID] = op.Entry.Region
	}
	var others []index.Op
	for run, ops := range contested {
		r, ok := chosen[run]
		for _, op := range ops {
			if ok && op.Entry.Region != r || !ok && op.Entry.Region != s.o.Region {
				others = append(others, op)
			}
		}
	}
	for run, op := range last {
		if _, ok := chosen[run]; !ok && contested[run] == nil && !op.Delete && op.Entry.Region != s.o.Region {
			others = append(others, op)
		}
	}
	return others
}

// indexedOps returns the last op of every run the index holds: none in a
// new store (no index, no runs), ErrIndexLost in a bucket whose runs have
// no index, index.ErrDamaged when it cannot be read. The index is then
// checked as List needs it, without falling back (index.Check): ops read
// through a fallback come with its ErrDamaged, for Verify to report and GC
// to refuse.
func (s *Store) indexedOps(ctx context.Context) (map[uuid.UUID]index.Op, error) {
	last, err := s.ix.LastOps(ctx)
	if errors.Is(err, index.ErrNoIndex) {
		if err = s.noIndex(ctx); errors.Is(err, errIndexCreated) {
			last, err = s.ix.LastOps(ctx)
		}
	}
	if err == nil && last != nil { // nil: a new store, nothing to check
		err = s.ix.Check(ctx)
	}
	return last, err
}

// lastOps returns the last op of every run the index holds. When the index
// is damaged or lost, it salvages what can be read and appends what could
// not be to damage.
func (s *Store) lastOps(ctx context.Context, damage *[]error) (map[uuid.UUID]index.Op, error) {
	last, err := s.ix.LastOps(ctx)
	if err == nil || !errors.Is(err, index.ErrDamaged) && !errors.Is(err, index.ErrNoIndex) {
		return last, err
	}
	*damage = append(*damage, err)
	last, skipped, err := s.ix.Salvage(ctx)
	*damage = append(*damage, skipped...)
	return last, err
}

// Report is what Verify found. Each list is sorted by run ID.
type Report struct {
	Runs int // run objects found
	// Index is why the index cannot be read (index.ErrDamaged,
	// ErrIndexLost), nil when it reads. Then every object is Unindexed:
	// Reindex rebuilds the index from them.
	Index error
	// Missing are index entries whose object does not exist.
	Missing []uuid.UUID
	// Unindexed are objects the index does not list: a Save whose commit
	// was lost, an import cut short, a lost index. They are runs, never
	// garbage: Reindex adds them, GC never deletes them.
	Unindexed []uuid.UUID
	// Dead are objects of deleted runs, named by their tombstone (a Delete
	// cut short): GC deletes them.
	Dead []uuid.UUID
	// Mismatched are runs whose index entry disagrees with the object on
	// time, workflow, labels or expiry (two writers raced without fencing,
	// or a later Save lost its commit): Reindex repairs them (with
	// ReindexOptions.Full when the entry names the same object).
	Mismatched []uuid.UUID
	// Corrupt maps runs whose object cannot be decoded to the reason.
	Corrupt map[uuid.UUID]error
	// Strays are keys under runs/ that name no run.
	Strays []string
	// SplitBrain are runs that more than one region wrote at the same
	// lease epoch, with no claim between them (both regions wrote the run
	// during a partition, or plain Saves went to two regions): the
	// index's tie rules chose the winner (a delete, else the later
	// checkpoint timestamp, else the greater region name), the same in
	// every region. Check that it is the state wanted; claiming the run
	// and saving it ends the split (its epoch is then the highest).
	SplitBrain []uuid.UUID
	// Stale are runs whose object is not the state the index chose:
	// another region's write that lost by epoch, or by the tie rules, was
	// kept by replication's last-writer-wins. Reconcile restores the
	// chosen state from the bucket's versions.
	Stale []uuid.UUID
	// Blobs is the number of blobs the run objects reference (counted
	// once per object), each read and checked.
	Blobs int
	// BrokenBlobs maps runs whose record references a blob that is
	// missing or damaged to the reason: Load of those runs is ErrCorrupt.
	// The rest of such an object is still checked.
	BrokenBlobs map[uuid.UUID]error
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool {
	return r.Index == nil && len(r.Missing)+len(r.Unindexed)+len(r.Dead)+len(r.Mismatched)+len(r.Corrupt)+len(r.Strays)+
		len(r.SplitBrain)+len(r.Stale)+len(r.BrokenBlobs) == 0
}

// Verify compares the index with the run objects and decodes every
// object, reading every blob a record references from the bucket (not the
// cache) and checking it. Neither a bad object nor a damaged index stops it: problems are
// collected in the report; the error is for failures to list or read the
// bucket. Expired runs count as indexed until GC removes them.
func (s *Store) Verify(ctx context.Context) (*Report, error) {
	return s.VerifyWith(ctx, nil)
}

// VerifyOptions configure VerifyWith. Nil means defaults.
type VerifyOptions struct {
	// Progress, if set, is called as run objects are read and decoded,
	// with the number done and the number listed; calls are serialized.
	Progress func(done, total int)
}

// VerifyWith is Verify with options: the same checks and report.
func (s *Store) VerifyWith(ctx context.Context, opts *VerifyOptions) (*Report, error) {
	var vo VerifyOptions
	if opts != nil {
		vo = *opts
	}
	if err := s.check(ctx); err != nil {
		return nil, cairn.WrapOp("verify", uuid.Nil, err)
	}
	rep := &Report{Corrupt: map[uuid.UUID]error{}, BrokenBlobs: map[uuid.UUID]error{}}
	last, err := s.indexedOps(ctx)
	if errors.Is(err, index.ErrDamaged) { // ErrIndexLost too
		rep.Index, err = err, nil
	}
	if err != nil {
		return nil, cairn.WrapOp("verify", uuid.Nil, err)
	}
	var contested map[uuid.UUID][]index.Op
	if rep.Index == nil {
		if contested, err = s.contestedOps(ctx, last); err != nil {
			return nil, cairn.WrapOp("verify", uuid.Nil, err)
		}
	}
	for id, ops := range contested {
		if index.SplitBrain(ops) {
			rep.SplitBrain = append(rep.SplitBrain, id)
		}
	}
	objs, err := s.listRuns(ctx, func(k string) { rep.Strays = append(rep.Strays, k) })
	if err != nil {
		return nil, cairn.WrapOp("verify", uuid.Nil, err)
	}
	rep.Runs = len(objs)
	listed := map[uuid.UUID]bool{}
	var mu sync.Mutex // guards rep and done
	done := 0
	progress := func() { // with mu held
		done++
		if vo.Progress != nil {
			vo.Progress(done, len(objs))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	for _, o := range objs {
		listed[o.id] = true
		op, ok := last[o.id]
		switch {
		case s.deadIn(op, contested[o.id], o.info):
			rep.Dead = append(rep.Dead, o.id)
			ok = false
		case !ok || op.Delete:
			rep.Unindexed = append(rep.Unindexed, o.id)
			ok = false
		}
		g.Go(func() error {
			obj, err := s.b.Get(gctx, s.runKey(o.id), &bucket.GetOptions{MaxSize: s.maxObject()})
			if errors.Is(err, bucket.ErrNotFound) {
				mu.Lock()
				defer mu.Unlock()
				progress()
				return nil // deleted meanwhile
			}
			if err != nil && !unreadable(err) {
				return err
			}
			var (
				cp      *cairn.Checkpoint
				nblobs  int
				blobErr error
			)
			if err == nil {
				cp, nblobs, blobErr, err = s.verifyObject(gctx, o.id, obj)
				if err != nil && !unreadable(err) {
					return err
				}
			}
			if err == nil && cp.RunID != o.id {
				err = fmt.Errorf("%w: holds run %v", cairn.ErrCorrupt, cp.RunID)
			}
			mu.Lock()
			defer mu.Unlock()
			progress()
			rep.Blobs += nblobs
			if blobErr != nil {
				rep.BrokenBlobs[o.id] = blobErr
			}
			e := op.Entry
			switch {
			case err != nil:
				rep.Corrupt[o.id] = err
			case ok && e.ETag != obj.ETag && lostTo(contested[o.id], obj.ETag):
				rep.Stale = append(rep.Stale, o.id)
			case ok && (e.ETag != "" && e.ETag != obj.ETag || !cp.Timestamp.Equal(e.Timestamp) || cp.WorkflowName != e.Workflow ||
				recordLabels(cp) != e.Labels || !sameExpiry(e, obj.Metadata)):
				rep.Mismatched = append(rep.Mismatched, o.id)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, cairn.WrapOp("verify", uuid.Nil, err)
	}
	for id, op := range last {
		if !op.Delete && !listed[id] {
			rep.Missing = append(rep.Missing, id)
		}
	}
	// An unreadable object is reported as corrupt only: Reindex cannot
	// add it, so calling it unindexed too would advise what cannot be done.
	rep.Unindexed = slices.DeleteFunc(rep.Unindexed, func(id uuid.UUID) bool { return rep.Corrupt[id] != nil })
	for _, l := range [][]uuid.UUID{rep.Missing, rep.Unindexed, rep.Dead, rep.Mismatched, rep.SplitBrain, rep.Stale} {
		sortIDs(l)
	}
	return rep, nil
}

// lostTo reports whether the object with ETag etag is what one of ops, a
// run's last op of each region, wrote: a region's write that lost.
func lostTo(ops []index.Op, etag string) bool {
	return slices.ContainsFunc(ops, func(op index.Op) bool { return !op.Delete && op.Entry.ETag == etag })
}

// sameExpiry reports whether the index entry e and the object metadata
// meta agree on when the run expires.
func sameExpiry(e index.Entry, meta map[string]string) bool {
	exp, ok := meta[metaExpires]
	if !ok {
		return e.Expires.IsZero()
	}
	t, err := cairn.ParseTimestamp(exp)
	return err == nil && t.Equal(e.Expires)
}

// sortIDs sorts run IDs by their bytes (the order of their strings too).
func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

// GCOptions configure GC. Nil means defaults.
type GCOptions struct {
	// Grace is how old an unreferenced index page or an index log, or the
	// object of a deleted run, must be before GC deletes it, so that a
	// compaction, a List or a Save of the same run in progress never
	// loses an object under it. Default 15 minutes; never less than
	// index.MinGCGrace (one minute), whatever is given.
	Grace time.Duration
	// DryRun reports what would be deleted without deleting anything.
	DryRun bool
	// Versions also deletes, in a versioned bucket, the noncurrent
	// versions and delete markers of the store's keys that are older than
	// Grace, but for the versions of run objects that an index op still
	// names. Every Save leaves the run's previous version behind, every
	// claim its claim's, every compaction the head's and every GC the
	// index objects it deleted, as noncurrent versions that cost storage
	// until removed; this removes them with one LIST per 1,000 versions
	// and one DELETE each. A lifecycle rule expiring noncurrent versions
	// does the same without requests (see the README).
	//
	// In a store other regions write to, it removes only the index's old
	// versions and markers: a noncurrent version of a run or claim object
	// there may be the winning state of another region's write whose log
	// has not arrived yet (which Reconcile restores from), and
	// replication may carry the delete to every region (MinIO does with
	// delete replication on; S3 CRR does not). Reclaim those with a
	// lifecycle rule that keeps noncurrent versions longer than a
	// partition can last.
	Versions bool
	// BlobGrace is how long before GC starts a blob's epoch must have
	// ended for GC to delete it, unreferenced (see "Blobs" in the package
	// doc). Default DefaultBlobGrace (6 hours); never less than
	// MinBlobGrace (4 hours), whatever is given.
	BlobGrace time.Duration
}

// GCReport says what GC deleted (or would have). Each list is sorted.
type GCReport struct {
	// Expired are runs past a TTL this store wrote, in the index and in
	// the object's own metadata alike: deleted.
	Expired []uuid.UUID
	// Dead are objects a tombstone names (a Delete cut short): deleted.
	Dead []uuid.UUID
	// Unindexed are objects the index does not list. GC never deletes
	// them: they are runs whose commit was lost; Reindex adds them.
	Unindexed []uuid.UUID
	Index     index.GCReport
	// Versions is the number of noncurrent versions and delete markers
	// deleted (GCOptions.Versions).
	Versions int
	// Blobs are the keys of the blobs deleted: old enough, and referenced
	// by no run object (see "Blobs" in the package doc).
	Blobs []string
}

// GC deletes only what it can prove dead: the objects of runs whose
// tombstone names them (by ETag), runs expired by a TTL that both the
// index and the object's metadata record, and index objects no snapshot
// needs (see index.GC). An object the index does not list is never
// deleted: it is reported (Unindexed) for Reindex. GC needs a readable
// index: on a damaged or lost one it fails (run Reindex first) and deletes
// nothing.
//
// Each deletion re-reads the object first and leaves it if it changed
// since the listing; a Save in another process between that read and the
// delete is a window only a conditional DeleteObject could close (MinIO
// ignores the condition), so run GC when such a race does not matter, or
// with fencing. A read-only store (Options.ReadOnly) makes only dry runs.
//
// Last, it deletes the blobs of epochs that ended BlobGrace before it
// started that no run object references, read from the run objects
// themselves (see "Blobs"); a run object it cannot read stops that phase
// before any blob is deleted.
func (s *Store) GC(ctx context.Context, opts *GCOptions) (*GCReport, error) {
	t0 := s.o.Now() // before anything is listed: see "Blobs"
	if err := s.check(ctx); err != nil {
		return nil, cairn.WrapOp("gc", uuid.Nil, err)
	}
	var o GCOptions
	if opts != nil {
		o = *opts
	}
	if !o.DryRun { // a dry run writes nothing, so needs no probe, and a read-only store makes one
		if err := s.checkWritable(ctx); err != nil {
			return nil, cairn.WrapOp("gc", uuid.Nil, err)
		}
		if err := s.CheckServer(ctx); err != nil {
			return nil, cairn.WrapOp("gc", uuid.Nil, err)
		}
	}
	if o.Grace == 0 {
		o.Grace = 15 * time.Minute
	}
	rep := &GCReport{}
	last, err := s.indexedOps(ctx) // no evidence is taken from a damaged index
	if err != nil {
		return nil, cairn.WrapOp("gc", uuid.Nil, err)
	}
	contested, err := s.contestedOps(ctx, last)
	if err != nil {
		return nil, cairn.WrapOp("gc", uuid.Nil, err)
	}
	objs, err := s.listRuns(ctx, func(string) {})
	if err != nil {
		return nil, cairn.WrapOp("gc", uuid.Nil, err)
	}
	now := s.o.Now()
	listed := map[uuid.UUID]bucket.Info{}
	for _, obj := range objs {
		op, ok := last[obj.id]
		same := op.Entry.ETag == "" || op.Entry.ETag == obj.info.ETag
		switch {
		case !ok:
			rep.Unindexed = append(rep.Unindexed, obj.id)
		case s.deadIn(op, contested[obj.id], obj.info):
			// Only once older than the grace, and never less than
			// index.MinGCGrace whatever Grace says: a Save of the same
			// bytes in progress has committed by then (a server's
			// LastModified may have only whole seconds).
			if obj.info.LastModified.Before(now.Add(-max(o.Grace, index.MinGCGrace))) {
				rep.Dead = append(rep.Dead, obj.id)
			}
		case op.Delete:
			rep.Unindexed = append(rep.Unindexed, obj.id)
		case same && op.Entry.Expired(now):
			rep.Expired = append(rep.Expired, obj.id)
		}
		listed[obj.id] = obj.info
	}
	sortIDs(rep.Expired)
	sortIDs(rep.Dead)
	sortIDs(rep.Unindexed)
	if !o.DryRun {
		for _, id := range rep.Dead {
			if err := s.collect(ctx, id, listed[id], false, contested[id] != nil); err != nil {
				return rep, cairn.WrapOp("gc", id, err)
			}
		}
		for _, id := range rep.Expired {
			if err := s.collect(ctx, id, listed[id], true, false); err != nil {
				return rep, cairn.WrapOp("gc", id, err)
			}
		}
	}
	ir, err := s.ix.GC(ctx, o.Grace, o.DryRun)
	if ir != nil {
		rep.Index = *ir
	}
	if err == nil && o.Versions {
		if !o.DryRun {
			// The newest claim of a run two regions claimed may be a
			// noncurrent version (see Regions): restore it before old
			// versions go.
			for run, ops := range contested {
				if _, err = s.reconcileClaim(ctx, run, ops, false); err != nil {
					return rep, cairn.WrapOp("gc", run, err)
				}
			}
		}
		rep.Versions, err = s.gcVersions(ctx, max(o.Grace, index.MinGCGrace), o.DryRun, last, contested)
	}
	if err == nil {
		rep.Blobs, err = s.gcBlobs(ctx, t0, o.BlobGrace, o.DryRun)
	}
	return rep, cairn.WrapOp("gc", uuid.Nil, err)
}

// contestedOps returns the last ops per region of the runs that more than
// one region wrote, when other regions write to the store (nil
// otherwise). last is the index's winners: nil for a new store.
func (s *Store) contestedOps(ctx context.Context, last map[uuid.UUID]index.Op) (map[uuid.UUID][]index.Op, error) {
	if last == nil {
		return nil, nil
	}
	regional, err := s.ix.Regional(ctx)
	if err != nil || !regional {
		return nil, err
	}
	return s.ix.Contested(ctx)
}

// gcVersions deletes the noncurrent versions and delete markers of the
// store's keys older than grace, but those of run objects that last (the
// index's winners) or contested (each region's last ops) name, and
// returns how many it deleted (would delete, when dry). A bucket that
// keeps no versions has none.
func (s *Store) gcVersions(ctx context.Context, grace time.Duration, dry bool, last map[uuid.UUID]index.Op, contested map[uuid.UUID][]index.Op) (int, error) {
	vb, ok := s.b.(bucket.Versioned)
	if !ok {
		return 0, nil
	}
	if on, err := vb.Versioning(ctx); err != nil || !on {
		return 0, classify(err)
	}
	regional, err := s.ix.Regional(ctx)
	if err != nil {
		return 0, err
	}
	named := func(key, etag string) bool {
		id, err := uuid.Parse(strings.TrimPrefix(key, s.runs))
		if !strings.HasPrefix(key, s.runs) || err != nil {
			return false
		}
		op := last[id]
		return !op.Delete && op.Entry.ETag == etag || lostTo(contested[id], etag)
	}
	cutoff := s.o.Now().Add(-grace)
	n := 0
	// collect decides for the versions of one key, newest first: the
	// current version stays, noncurrent ones go when old enough and not
	// named, and a current delete marker goes too once nothing is left
	// behind it (S3's "expired object delete marker").
	collect := func(vs []bucket.Version) error {
		if regional && (strings.HasPrefix(vs[0].Key, s.runs) || strings.HasPrefix(vs[0].Key, s.claims)) {
			// With other regions, a noncurrent version of a run or claim
			// may be the winning state of a write whose log has not
			// arrived here yet: only the index's own are collected (see
			// GCOptions.Versions).
			return nil
		}
		var doomed []bucket.Version
		for _, v := range vs[1:] {
			if v.LastModified.Before(cutoff) && (v.DeleteMarker || !named(v.Key, v.ETag)) {
				doomed = append(doomed, v)
			}
		}
		if cur := vs[0]; cur.Latest && cur.DeleteMarker && cur.LastModified.Before(cutoff) && len(doomed) == len(vs)-1 {
			doomed = append(doomed, cur)
		}
		n += len(doomed)
		if dry {
			return nil
		}
		for _, v := range doomed {
			if err := vb.DeleteVersion(ctx, v.Key, v.VersionID); err != nil {
				return classify(err)
			}
		}
		return nil
	}
	var group []bucket.Version
	prefix := strings.TrimSuffix(s.runs, "runs/")
	for keyMarker, versionMarker := "", ""; ; {
		vs, nk, nv, more, err := vb.ListVersions(ctx, prefix, keyMarker, versionMarker, 1000)
		if err != nil {
			return n, classify(err)
		}
		for _, v := range vs {
			if len(group) > 0 && group[0].Key != v.Key {
				if err := collect(group); err != nil {
					return n, err
				}
				group = nil
			}
			group = append(group, v)
		}
		if !more {
			break
		}
		keyMarker, versionMarker = nk, nv
	}
	if len(group) > 0 {
		if err := collect(group); err != nil {
			return n, err
		}
	}
	return n, nil
}

// collect deletes the object of run if it is still the one listed (info)
// and the index's last op for the run still proves it dead, both read again
// under the run's lock: its tombstone, or for an expired run its entry,
// expired, when the object's own metadata says it expired too (a Save
// since refreshed neither), and then with a tombstone, as a Delete.
func (s *Store) collect(ctx context.Context, id uuid.UUID, listed bucket.Info, expired, regional bool) error {
	unlock, err := s.lockRun(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	op, found, err := s.ix.LastOp(ctx, id)
	if err != nil || !found {
		return err
	}
	var ops []index.Op
	if regional {
		all, err := s.ix.RunOps(ctx, id)
		if err != nil {
			return err
		}
		ops = all[id]
	}
	if expired && (op.Delete || !op.Entry.Expired(s.o.Now())) || !expired && !s.deadIn(op, ops, listed) {
		return nil // saved or deleted again since the scan
	}
	info, err := s.b.Head(ctx, s.runKey(id))
	if errors.Is(err, bucket.ErrNotFound) {
		return nil
	}
	if err != nil || info.ETag != listed.ETag {
		return classify(err) // changed since the listing: not proven dead
	}
	if !expired {
		return classify(s.b.Delete(ctx, s.runKey(id)))
	}
	exp, ok := info.Metadata[metaExpires]
	t, perr := cairn.ParseTimestamp(exp)
	if !ok || perr != nil || s.o.Now().Before(t) {
		return nil
	}
	return s.deleteRun(ctx, id, nil)
}
