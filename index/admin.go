package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
)

// Barrier commits an empty log and returns its number: every commit that
// returned before Barrier was called has a smaller number.
//
// It learns the highest log and snapshot numbers from listings (and the
// head, if it reads), not from the index's state, so that it works on a
// damaged or lost index and never reuses a number GC has freed.
func (ix *Index) Barrier(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, ix.o.RetryFor)
	defer cancel()
	if err := ix.learnTail(ctx); err != nil {
		return 0, err
	}
	return ix.commitBatch(ctx, []Op{})
}

// learnTail sets the tail from listings of the logs and snapshots and from
// the head, for when the state cannot be read: no number at or below it
// is free, whatever the damage.
func (ix *Index) learnTail(ctx context.Context) error {
	var highest uint64
	for _, dir := range []string{"log/", "snap/"} {
		seqs, err := ix.listSeqs(ctx, ix.root+dir, 0)
		if err != nil {
			return err
		}
		if len(seqs) > 0 {
			highest = max(highest, seqs[len(seqs)-1])
		}
	}
	var h format.Head
	if _, err := ix.get(ctx, ix.headKey(), &h); err == nil {
		highest = max(highest, h.Seq)
	}
	ix.mu.Lock()
	ix.tail = max(ix.tail, highest)
	ix.tailAt = ix.o.Now()
	ix.mu.Unlock()
	return nil
}

// Rebuild replaces the index with a snapshot holding exactly entries, and
// the tombstones given (delete ops, kept as evidence for GC and later
// rebuilds), as of log seq (from Barrier, taken before entries were
// gathered): logs after seq still apply on top. The head is moved to it
// whatever it named, so a damaged index is replaced. If a snapshot
// numbered seq exists already, Rebuild fails with bucket.ErrPrecondition:
// take a new Barrier and try again.
//
// others are, for runs that several regions wrote, the last ops of the
// regions other than the one of the run's entry or tombstone (each op's
// Entry.Region says whose): the snapshot keeps them, so that the regions
// still decide between the same ops (see the rules in region.go), and a
// run is listed when its winner is a save.
func (ix *Index) Rebuild(ctx context.Context, seq uint64, entries []Entry, tombstones []Op, others ...Op) error {
	ix.compacting.Lock()
	defer ix.compacting.Unlock()
	ops, err := rebuildOps(entries, tombstones, others)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		entries = winningEntries(ops)
	}
	m := &format.Manifest{Seq: seq, Created: ix.o.Now(), Count: int64(len(entries)), Base: seq, Labeled: true, Region: ix.region}
	// The other regions' streams apply on top from where the index's
	// snapshot covers them: the runs their later logs wrote may not have
	// arrived as objects yet. (An index that does not read covers none;
	// reads then jump to those regions' snapshots, see foreignLogs.)
	cov := map[string]uint64{}
	if st, err := ix.load(ctx); err == nil {
		cov = coverage(st.m)
	} else if ctx.Err() != nil {
		return err
	}
	m.Streams, m.Sources = ix.streamsOf(cov), withSources([]string{}, ops)
	if err := ix.writeFull(ctx, m, entries, ops); err != nil {
		return err
	}
	if _, err := ix.put(ctx, ix.snapKey(seq), m, &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
		return err
	}
	if err := ix.replaceHead(ctx, seq); err != nil {
		return err
	}
	ix.mu.Lock()
	ix.manifest, ix.logs = m, map[logID]*format.Batch{}
	ix.mu.Unlock()
	return nil
}

// rebuildOps returns the by-run ops of a snapshot holding exactly entries
// and tombstones, and the ops of other regions others, sorted by run, then
// region. A tombstone that is not a delete, a run given twice in entries
// and tombstones, or a run and region given twice, is an error.
func rebuildOps(entries []Entry, tombstones []Op, others []Op) ([]Op, error) {
	ops := make([]Op, 0, len(entries)+len(tombstones)+len(others))
	for _, e := range entries {
		ops = append(ops, Op{Entry: e})
	}
	for _, op := range tombstones {
		if !op.Delete {
			return nil, fmt.Errorf("index rebuild: tombstone of run %v is not a delete", op.Entry.RunID)
		}
		ops = append(ops, op)
	}
	seen := map[uuid.UUID]bool{}
	for _, op := range ops {
		if seen[op.Entry.RunID] {
			return nil, fmt.Errorf("index rebuild: run %v given twice", op.Entry.RunID)
		}
		seen[op.Entry.RunID] = true
	}
	type runRegion struct {
		run    uuid.UUID
		region string
	}
	pairs := map[runRegion]bool{}
	for _, op := range ops {
		pairs[runRegion{op.Entry.RunID, op.Entry.Region}] = true
	}
	for _, op := range others {
		k := runRegion{op.Entry.RunID, op.Entry.Region}
		if pairs[k] {
			return nil, fmt.Errorf("index rebuild: run %v given twice for region %q", op.Entry.RunID, op.Entry.Region)
		}
		pairs[k] = true
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b Op) int { return opLess(&a, &b) })
	return ops, nil
}

// winningEntries returns, of ops sorted by run, the entry of each run
// whose winning op is a save.
func winningEntries(ops []Op) []Entry {
	var out []Entry
	for i := 0; i < len(ops); {
		j := i + 1
		for j < len(ops) && ops[j].Entry.RunID == ops[i].Entry.RunID {
			j++
		}
		if w := winner(ops[i:j]); !w.Delete {
			out = append(out, w.Entry)
		}
		i = j
	}
	return out
}

// replaceHead moves the head to Rebuild's snapshot seq, whatever it named
// before (a damaged head is replaced), but never back from a snapshot
// newer than seq: that fails with bucket.ErrPrecondition. The head is
// replaced with If-Match on the ETag read (If-None-Match when there is
// none), and re-read when another writer moved it first.
func (ix *Index) replaceHead(ctx context.Context, seq uint64) error {
	for attempt := 0; ; attempt++ {
		opts := &bucket.PutOptions{IfNoneMatch: "*"}
		var h format.Head
		obj, err := ix.get(ctx, ix.headKey(), &h)
		switch {
		case err == nil && h.Seq > seq:
			// A compaction since the barrier built on the old snapshot;
			// moving the head back would hide it and be undone by the
			// next one. Take a new barrier and rebuild again.
			return fmt.Errorf("%w: index head moved to %d past rebuild %d", bucket.ErrPrecondition, h.Seq, seq)
		case err == nil, errors.Is(err, cairn.ErrCorrupt) && obj != nil:
			opts = &bucket.PutOptions{IfMatch: obj.ETag}
		case errors.Is(err, bucket.ErrUnreadable):
			opts = nil // a damaged file of a directory bucket: replaced as it is
		case !errors.Is(err, bucket.ErrNotFound):
			return err
		}
		_, err = ix.put(ctx, ix.headKey(), &format.Head{Seq: seq}, opts)
		if err == nil {
			return nil
		}
		if !errors.Is(err, bucket.ErrPrecondition) && !errors.Is(err, bucket.ErrBusy) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// MinGCGrace is the least grace period GC uses: a longer one given is
// used as is, a shorter one is raised to it. Writers re-read the head
// when their knowledge of the log tail is older than half of it.
const MinGCGrace = time.Minute

// GCReport says what GC removed (or, dry, would remove).
type GCReport struct {
	Logs, Snapshots, Pages int
	Keys                   []string // the keys removed
}

// GC deletes the index objects no reader can need any more: the logs and
// snapshots older than the newest snapshot that has been the head for
// longer than grace, and the pages that no snapshot from that one on
// refers to and that are older than grace (a compaction may be writing
// them). A List that began before the head moved and is still reading
// after grace may find an object gone; it starts again from the head.
// With dry set nothing is deleted.
func (ix *Index) GC(ctx context.Context, grace time.Duration, dry bool) (*GCReport, error) {
	grace = max(grace, MinGCGrace)
	rep := &GCReport{}
	keep, cutoff, err := ix.settledHead(ctx, grace)
	if err != nil {
		return nil, err
	}
	if keep == 0 {
		return rep, nil // no snapshot, or the head moved within grace: readers may use older ones
	}
	// Logs <= keep and snapshots < keep are not needed.
	snaps, err := ix.listSeqs(ctx, ix.root+"snap/", 0)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(snaps, keep) {
		// Readers fall back to an older snapshot and the logs after it:
		// those are all that is left of the index.
		return nil, damaged("the head names snapshot %d, which is gone; GC deletes nothing until a Reindex", keep)
	}
	referenced, err := ix.referencedPages(ctx, snaps, keep)
	if err != nil {
		return nil, err
	}
	var doomed []string
	for _, seq := range snaps {
		if seq < keep {
			doomed = append(doomed, ix.snapKey(seq))
			rep.Snapshots++
		}
	}
	logs, err := ix.listSeqs(ctx, ix.root+"log/", 0)
	if err != nil {
		return nil, err
	}
	upto, err := ix.coveredByAll(ctx, keep)
	if err != nil {
		return nil, err
	}
	for _, seq := range logs {
		if seq <= upto {
			doomed = append(doomed, ix.logKey(seq))
			rep.Logs++
		}
	}
	pages, err := ix.unreferencedPages(ctx, referenced, cutoff)
	if err != nil {
		return nil, err
	}
	rep.Pages = len(pages)
	rep.Keys = append(doomed, pages...)
	if dry {
		return rep, nil
	}
	for _, key := range rep.Keys {
		if err := ix.b.Delete(ctx, key); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// coveredByAll returns how far this region's logs may be deleted: up to
// keep, and no further than any other region's head snapshot covers them
// (as this region's copy of the bucket shows it, which may be late: it
// only errs towards keeping logs). A region that has a stream but no
// snapshot covers none.
func (ix *Index) coveredByAll(ctx context.Context, keep uint64) (uint64, error) {
	others, err := ix.discover(ctx, true)
	if err != nil {
		return 0, err
	}
	upto := keep
	for _, r := range others {
		if r == "" {
			if ok, err := ix.exists(ctx, r); err != nil {
				return 0, err
			} else if !ok {
				continue
			}
		}
		c, err := ix.coveredBy(ctx, r, others)
		if err != nil {
			return 0, err
		}
		upto = min(upto, c)
	}
	return upto, nil
}

// settledHead returns the snapshot the head names, if the head has named
// it for longer than grace, and the cutoff (now less grace, now being when
// the head was read). keep is 0 when there is no head, it names no
// snapshot, or it moved within grace.
func (ix *Index) settledHead(ctx context.Context, grace time.Duration) (keep uint64, cutoff time.Time, err error) {
	head, err := ix.b.Head(ctx, ix.headKey())
	if errors.Is(err, bucket.ErrNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	var h format.Head
	if _, err := ix.get(ctx, ix.headKey(), &h); err != nil {
		return 0, time.Time{}, err
	}
	cutoff = ix.o.Now().Add(-grace)
	if head.LastModified.After(cutoff) {
		return 0, cutoff, nil
	}
	return h.Seq, cutoff, nil
}

// referencedPages returns the IDs of the pages that the snapshots of snaps
// from keep on refer to, reading their manifests in order.
func (ix *Index) referencedPages(ctx context.Context, snaps []uint64, keep uint64) (map[string]bool, error) {
	referenced := map[string]bool{}
	for _, seq := range snaps {
		if seq < keep {
			continue
		}
		var m format.Manifest
		if _, err := ix.get(ctx, ix.snapKey(seq), &m); err != nil {
			return nil, err
		}
		for _, r := range pageRefs(&m) {
			referenced[r.ID] = true
		}
	}
	return referenced, nil
}

// pageRefs returns every page m refers to: its by-time, by-label and
// by-run pages.
func pageRefs(m *format.Manifest) []format.PageRef {
	refs := slices.Concat(m.ByTime, m.ByLabel)
	for _, l := range m.RunLevels {
		refs = append(refs, l.Pages...)
	}
	return refs
}

// eachKey calls f with every object listed under dir, in key order.
func (ix *Index) eachKey(ctx context.Context, dir string, f func(in bucket.Info)) error {
	for start := ""; ; {
		infos, more, err := ix.b.List(ctx, dir, start, 1000)
		if err != nil {
			return err
		}
		for _, in := range infos {
			f(in)
		}
		if !more || len(infos) == 0 {
			return nil
		}
		start = infos[len(infos)-1].Key
	}
}

// unreferencedPages lists the pages (of every page directory) and returns
// the keys of those that are not referenced and were written before
// cutoff (a compaction may still be writing the newer ones).
func (ix *Index) unreferencedPages(ctx context.Context, referenced map[string]bool, cutoff time.Time) ([]string, error) {
	var keys []string
	for _, d := range pageDirs {
		dir := ix.root + d
		err := ix.eachKey(ctx, dir, func(in bucket.Info) {
			if !referenced[in.Key[len(dir):]] && in.LastModified.Before(cutoff) {
				keys = append(keys, in.Key)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// LastOps returns the last op of every run the index holds: its entry
// (with the ETag of the object it wrote) for a run saved, its tombstone for
// a run deleted within Options.KeepTombstones. It reads every page of the
// by-run levels: it is for Reindex, Verify and GC, not for serving
// requests. On a damaged index it fails with ErrDamaged; see Salvage.
func (ix *Index) LastOps(ctx context.Context) (map[uuid.UUID]Op, error) {
	all, err := ix.allOps(ctx)
	if err != nil {
		return nil, err
	}
	return winners(all), nil
}

// winners returns the op that wins for each run of all.
func winners(all map[uuid.UUID][]Op) map[uuid.UUID]Op {
	out := make(map[uuid.UUID]Op, len(all))
	for run, ops := range all {
		out[run] = winner(ops)
	}
	return out
}

// Salvage is LastOps for an index that may be damaged or gone: the ops of
// the newest snapshot whose manifest and by-run pages all read, then those
// of every log after it that reads, in order. What it could not read is
// returned in skipped (one error each); ops that only an unreadable object
// held are missing from the result. err is for failures to list the
// bucket.
func (ix *Index) Salvage(ctx context.Context) (ops map[uuid.UUID]Op, skipped []error, err error) {
	snaps, err := ix.listSeqs(ctx, ix.root+"snap/", 0)
	if err != nil {
		return nil, nil, err
	}
	others, err := ix.discover(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	all := map[uuid.UUID][]Op{}
	base := &format.Manifest{Region: ix.region}
	found := false
	for i := len(snaps) - 1; i >= 0 && !found; i-- {
		var m format.Manifest
		_, err := ix.get(ctx, ix.snapKey(snaps[i]), &m)
		m.Region = ix.region
		if err == nil && orphaned(&m, snaps) {
			continue // left behind by a compaction: not the state of the index
		}
		if err == nil {
			var lo map[uuid.UUID][]Op
			if lo, err = ix.levelStreams(ctx, &m); err == nil {
				all, base, found = lo, &m, true
				continue
			}
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		skipped = append(skipped, fmt.Errorf("snapshot %d: %w", snaps[i], err))
	}
	if !found {
		// No snapshot of its own reads: the one it starts from, as a load
		// would.
		if fm, err := ix.foreignBase(ctx, others); err != nil {
			return nil, nil, err
		} else if fm != nil {
			lo, err := ix.levelStreams(ctx, fm)
			if err != nil {
				return nil, nil, err
			}
			all, base = lo, fm
		}
	}
	cov := coverage(base)
	for _, r := range append([]string{ix.region}, others...) {
		logs, err := ix.listSeqs(ctx, ix.rootOf(r)+"log/", cov[r])
		if err != nil {
			return nil, nil, err
		}
		for _, seq := range logs {
			var b format.Batch
			if _, err := ix.get(ctx, ix.logKeyOf(r, seq), &b); err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				if !errors.Is(err, bucket.ErrNotFound) { // collected meanwhile: a snapshot has it
					skipped = append(skipped, fmt.Errorf("log %d of region %q: %w", seq, r, err))
				}
				continue
			}
			for _, op := range b.Ops {
				op.Entry.Region = r
				all[op.Entry.RunID] = withOp(all[op.Entry.RunID], op)
			}
		}
	}
	return winners(all), skipped, nil
}

// Present reads the index's state and reports whether there is an index:
// nil when it reads, and when it is damaged (commits go on over damage);
// ErrNoIndex when the bucket holds none.
func (ix *Index) Present(ctx context.Context) error {
	_, err := ix.load(ctx)
	if errors.Is(err, ErrDamaged) {
		return nil
	}
	return err
}

// Check reads the whole index as List and LastOp would, without falling
// back: the head, the snapshot it names, the log after it, and every page
// of the snapshot. It returns nil for an intact index, ErrNoIndex when
// there is none, ErrDamaged naming the first object that is missing or
// does not decode, and other errors (a bucket that does not answer) as
// they are. Verify and GC use it: an index that only reads through a
// fallback is damaged, though List still serves it.
func (ix *Index) Check(ctx context.Context) error {
	var (
		st  *state
		err error
	)
	for attempt := 0; attempt < 4; attempt++ {
		if st, err = ix.loadOnce(ctx); !errors.Is(err, errGap) && !errors.Is(err, bucket.ErrNotFound) {
			break
		}
	}
	switch {
	case errors.Is(err, errGap), errors.Is(err, bucket.ErrNotFound), errors.Is(err, cairn.ErrCorrupt), errors.Is(err, bucket.ErrUnreadable):
		return damaged("%w", err)
	case err != nil:
		return err
	}
	if st.m.Seq > 0 {
		if _, err := ix.b.Head(ctx, ix.snapKeyOf(st.m.Region, st.m.Seq)); errors.Is(err, bucket.ErrNotFound) {
			return damaged("snapshot %d is gone", st.m.Seq)
		} else if err != nil {
			return err
		}
	}
	for _, ref := range slices.Concat(st.m.ByTime, st.m.ByLabel) {
		if _, err := ix.page(ctx, ref.ID); err != nil {
			return err
		}
	}
	_, err = ix.levelStreams(ctx, st.m)
	return err
}
