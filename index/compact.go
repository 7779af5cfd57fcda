package index

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
)

// A pageSet is one of the sets of sorted pages that rewrite keeps: the
// order of its entries, and the prefix of its page IDs (which pageKey
// maps to the set's directory).
type pageSet struct {
	cmp    func(a, b *Entry) int
	prefix string
}

// byTime is the by-time set, in List order.
var byTime = pageSet{cmp: func(a, b *Entry) int { return a.Key().Compare(b.Key()) }}

// Compact writes a snapshot of the index as of its newest log, if that is
// newer than the newest snapshot, and moves the head to it. Commits start
// it on their own once the tail is Options.CompactAfter logs long; call it
// to compact now. Any number of processes may compact at once: one
// snapshot per log number is created, the others give way.
func (ix *Index) Compact(ctx context.Context) error {
	ix.compacting.Lock()
	defer ix.compacting.Unlock()
	return ix.compact(ctx)
}

func (ix *Index) compact(ctx context.Context) error {
	st, err := ix.load(ctx)
	if err != nil || st.tail == st.m.Seq {
		return err
	}
	m := st.m
	runs := make([]uuid.UUID, 0, len(st.over))
	for run := range st.over {
		runs = append(runs, run)
	}
	slices.SortFunc(runs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	olds, err := ix.snapshotEntries(ctx, m, runs)
	if err != nil {
		return err
	}
	nm := &format.Manifest{Seq: st.tail, Created: ix.o.Now(), Count: m.Count - int64(len(olds)) + int64(len(st.puts)), Base: m.Seq}
	var newPages map[string]*format.Page
	if nm.ByTime, newPages, err = ix.rewrite(ctx, byTime, m.ByTime, olds, listed(st.puts), nil); err != nil {
		return err
	}
	if nm.ByLabel, err = ix.labelSet(ctx, st, olds, newPages); err != nil {
		return err
	}
	nm.Labeled = true
	nm.LabelsUnsure = m.LabelsUnsure || labelsLost(m)
	ops := make([]Op, len(runs))
	for i, run := range runs {
		ops[i] = st.over[run]
	}
	var opPages map[string]*format.OpPage
	if nm.RunLevels, opPages, err = ix.pushLevel(ctx, m.RunLevels, ops); err != nil {
		return err
	}
	if err := putPages(ctx, ix, newPages); err != nil {
		return err
	}
	if err := putPages(ctx, ix, opPages); err != nil {
		return err
	}
	var ok bool
	if nm, ok, err = ix.putSnapshot(ctx, nm); err != nil || !ok {
		return err // !ok: another base's snapshot took this number; give way
	}
	moved, err := ix.advanceHead(ctx, nm.Seq, m.Seq)
	if moved {
		ix.adopt(nm)
	}
	return err
}

// snapshotEntries returns the entries snapshot m holds for runs (sorted by
// run ID), reading the by-run pages in that order; runs it does not hold
// are left out.
func (ix *Index) snapshotEntries(ctx context.Context, m *format.Manifest, runs []uuid.UUID) ([]Entry, error) {
	var olds []Entry
	for _, run := range runs {
		old, ok, err := ix.lookupSnapshot(ctx, m, run)
		if err != nil {
			return nil, err
		}
		if ok {
			olds = append(olds, old)
		}
	}
	return olds, nil
}

// putSnapshot creates the manifest of snapshot nm.Seq and returns the
// snapshot to move the head to: nm, or the one another process wrote
// first on the same base. ok is false when that other one was built on
// another base: the compaction gives way.
func (ix *Index) putSnapshot(ctx context.Context, nm *format.Manifest) (snap *format.Manifest, ok bool, err error) {
	_, err = ix.put(ctx, ix.snapKey(nm.Seq), nm, &bucket.PutOptions{IfNoneMatch: "*"})
	if err == nil {
		ix.mu.Lock()
		ix.stats.Compactions++
		ix.mu.Unlock()
		return nm, true, nil
	}
	if !errors.Is(err, bucket.ErrPrecondition) {
		return nil, false, err
	}
	// Another process wrote this snapshot first. Built on the same
	// snapshot, it is as good: its pages are the ones to use, and ours are
	// garbage for GC. Built on another (one a Reindex replaced, left
	// behind by advanceHead), it is not: give way.
	var theirs format.Manifest
	if _, err := ix.get(ctx, ix.snapKey(nm.Seq), &theirs); err != nil {
		return nil, false, err
	}
	if theirs.Base != nm.Base {
		return nil, false, nil
	}
	return &theirs, true, nil
}

// listed returns entries as by-time pages keep them: without the ETag,
// which List does not need (the by-run levels keep it), and without a
// Pair, which only by-label pages have.
func listed(entries []Entry) []Entry {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		e.ETag, e.Pair = "", ""
		out[i] = e
	}
	return out
}

// putPages writes new pages (created, never replaced) and caches them.
func putPages[T any, PT interface {
	*T
	wire.Marshaler
}](ctx context.Context, ix *Index, pages map[string]PT) error {
	for id, p := range pages {
		if _, err := ix.put(ctx, ix.pageKey(id), p, &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
			return err
		}
		ix.pages.Add(id, p)
		ix.mu.Lock()
		ix.stats.PagesPut++
		ix.mu.Unlock()
	}
	return nil
}

// levelRatio is the size ratio between neighbouring by-run levels. A new
// level merges with the next older one while it is more than 1/levelRatio
// of its size, so levels grow geometrically, a lookup reads one page per
// level, and each op is rewritten about log(runs)/log(levelRatio) times
// over its life: a cost per Save that barely grows with the runs, unlike
// rewriting the pages that random run IDs scatter over.
const levelRatio = 4

// pushLevel adds ops (sorted by run) as the newest by-run level, merging
// it into older levels as the size ratio says, and returns the new levels
// with the pages to write. A tombstone that reaches the oldest level has
// nothing older left to hide, but it is still the evidence GC and Reindex
// need (the run's object may not be deleted yet): it is dropped there only
// once it is older than Options.KeepTombstones.
func (ix *Index) pushLevel(ctx context.Context, levels []format.Level, ops []Op) ([]format.Level, map[string]*format.OpPage, error) {
	cur, rest := ops, levels
	for len(rest) > 0 && len(cur)*levelRatio > rest[0].Count {
		var older []Op
		for _, ref := range rest[0].Pages {
			p, err := ix.opPage(ctx, ref.ID)
			if err != nil {
				return nil, nil, err
			}
			older = append(older, p.Ops...)
		}
		cur = mergeOps(cur, older)
		rest = rest[1:]
	}
	if len(rest) == 0 {
		cutoff := ix.o.Now().Add(-ix.o.KeepTombstones)
		kept := cur[:0:0]
		for _, op := range cur {
			if !op.Delete || op.Entry.Timestamp.After(cutoff) {
				kept = append(kept, op)
			}
		}
		cur = kept
	}
	pages := map[string]*format.OpPage{}
	if len(cur) == 0 {
		return rest, pages, nil
	}
	level := format.Level{Count: len(cur)}
	for len(cur) > 0 {
		chunk := cur[:min(ix.o.PageSize, len(cur))]
		cur = cur[len(chunk):]
		id := uuid.NewString()
		pages[id] = &format.OpPage{Ops: chunk}
		level.Pages = append(level.Pages, format.PageRef{ID: id, Count: len(chunk), First: Entry{RunID: chunk[0].Entry.RunID}})
	}
	return append([]format.Level{level}, rest...), pages, nil
}

// mergeOps merges two runs of ops sorted by run ID; for a run in both, the
// newer op wins.
func mergeOps(newer, older []Op) []Op {
	out := make([]Op, 0, len(newer)+len(older))
	for len(newer) > 0 && len(older) > 0 {
		switch c := bytes.Compare(newer[0].Entry.RunID[:], older[0].Entry.RunID[:]); {
		case c < 0:
			out, newer = append(out, newer[0]), newer[1:]
		case c > 0:
			out, older = append(out, older[0]), older[1:]
		default:
			out, newer, older = append(out, newer[0]), newer[1:], older[1:]
		}
	}
	return append(append(out, newer...), older...)
}

// rewrite applies the changes of a compaction to one page set: the entries
// of remove (located by the set's order, matched by run) leave it, those of
// insert join it. Only the pages the changes fall in are rewritten; the
// others are kept by reference. A rewritten page whose result is under
// mergeBelow entries is merged into the next page's rewrite (that page is
// read even if unchanged), as it is when the next page is rewritten anyway
// and the result is not a full page: otherwise pages that compactions
// empty one entry at a time (the runs of status=running once most have
// finished) would end up about an entry each, and a List would read a
// page per run. Results over twice the page size are split, results of
// nothing dropped. New pages are added to pages (allocated if nil).
func (ix *Index) rewrite(ctx context.Context, set pageSet, refs []format.PageRef,
	remove, insert []Entry, pages map[string]*format.Page) ([]format.PageRef, map[string]*format.Page, error) {
	if pages == nil {
		pages = map[string]*format.Page{}
	}
	if len(refs) == 0 && len(insert) == 0 {
		return nil, pages, nil
	}
	changes := pageChanges(refs, set.cmp, remove, insert)
	n := ix.o.PageSize
	var (
		out   []format.PageRef
		carry []Entry // a small result of the pages before, merged into this one
	)
	for i := 0; i < max(len(refs), 1); i++ {
		c := changes[i]
		if c == nil && carry == nil {
			out = append(out, refs[i])
			continue
		}
		if c == nil {
			c = &pageChange{}
		}
		var ref *format.PageRef
		if i < len(refs) {
			ref = &refs[i]
		}
		entries, err := ix.applyChange(ctx, ref, c, set.cmp, carry)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case len(entries) == 0:
			carry = nil
		case i+1 < len(refs) && (len(entries) < mergeBelow(n) || len(entries) < n && changes[i+1] != nil):
			carry = entries
		default:
			carry = nil
			out = ix.writePages(set, entries, pages, out)
		}
	}
	return out, pages, nil
}

// mergeBelow is the size under which a rewritten page is merged with the
// next one, for pages of n entries.
func mergeBelow(n int) int { return n / 4 }

// A pageChange is what a compaction changes in one page: the runs that
// leave it and the entries that join it.
type pageChange struct {
	gone map[uuid.UUID]bool
	add  []Entry
}

// pageChanges groups removals and insertions by the page of refs they fall
// in (located by cmp), keyed by its index; into page 0 when refs is empty.
func pageChanges(refs []format.PageRef, cmp func(a, b *Entry) int, remove, insert []Entry) map[int]*pageChange {
	target := func(e *Entry) int {
		return max(0, prefixLen(refs, func(r *format.PageRef) bool { return cmp(&r.First, e) <= 0 })-1)
	}
	changes := map[int]*pageChange{}
	at := func(i int) *pageChange {
		if changes[i] == nil {
			changes[i] = &pageChange{gone: map[uuid.UUID]bool{}}
		}
		return changes[i]
	}
	if len(refs) == 0 {
		at(0).add = append(at(0).add, insert...)
		return changes
	}
	for i := range remove {
		at(target(&remove[i])).gone[remove[i].RunID] = true
	}
	for i := range insert {
		c := at(target(&insert[i]))
		c.add = append(c.add, insert[i])
	}
	return changes
}

// applyChange returns the entries of the page ref names (none when ref is
// nil: the set is empty) with c applied and carry added, sorted by cmp.
func (ix *Index) applyChange(ctx context.Context, ref *format.PageRef, c *pageChange, cmp func(a, b *Entry) int, carry []Entry) ([]Entry, error) {
	entries := slices.Clone(carry)
	if ref != nil {
		p, err := ix.page(ctx, ref.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Entries {
			if !c.gone[e.RunID] {
				entries = append(entries, e)
			}
		}
	}
	entries = append(entries, c.add...)
	slices.SortFunc(entries, func(a, b Entry) int { return cmp(&a, &b) })
	return entries, nil
}

// writePages adds entries (sorted) to pages as new pages of set and
// appends their refs to out. More than twice the page size is split into
// pages of equal size, none over the page size (so no split leaves a
// small page behind); nothing makes no page.
func (ix *Index) writePages(set pageSet, entries []Entry, pages map[string]*format.Page, out []format.PageRef) []format.PageRef {
	chunks := 1
	if n := ix.o.PageSize; len(entries) > 2*n {
		chunks = (len(entries) + n - 1) / n
	}
	for k := chunks; len(entries) > 0; k-- {
		chunk := entries[:(len(entries)+k-1)/k]
		entries = entries[len(chunk):]
		id := set.prefix + uuid.NewString()
		pages[id] = &format.Page{Entries: chunk}
		// A ref needs only the first key, not the whole entry.
		first := Entry{RunID: chunk[0].RunID, Timestamp: chunk[0].Timestamp, Pair: chunk[0].Pair}
		out = append(out, format.PageRef{ID: id, Count: len(chunk), First: first})
	}
	return out
}

// advanceHead moves the head to seq, a snapshot built on snapshot base,
// and reports whether the head names seq. The head only moves forward: it
// is replaced with If-Match on the ETag read, and re-read when another
// writer moved it first. A head past base but before seq names a snapshot
// this one was not built on (a Reindex's, whose entries are not in the
// logs): moving past it would undo it, so this snapshot is left for GC.
func (ix *Index) advanceHead(ctx context.Context, seq, base uint64) (bool, error) {
	for attempt := 0; ; attempt++ {
		var h format.Head
		obj, err := ix.get(ctx, ix.headKey(), &h)
		opts := &bucket.PutOptions{IfNoneMatch: "*"}
		switch {
		case err == nil:
			if h.Seq >= seq {
				return h.Seq == seq, nil
			}
			if h.Seq > base {
				// Unless that snapshot is gone (the state this one was
				// built on fell back past it): then this one repairs the
				// head.
				if _, err := ix.b.Head(ctx, ix.snapKey(h.Seq)); !errors.Is(err, bucket.ErrNotFound) {
					return false, err
				}
			}
			opts = &bucket.PutOptions{IfMatch: obj.ETag}
		case errors.Is(err, cairn.ErrCorrupt) && obj != nil:
			opts = &bucket.PutOptions{IfMatch: obj.ETag} // replace a damaged head
		case errors.Is(err, bucket.ErrUnreadable):
			opts = nil // a damaged file of a directory bucket: replaced as it is
		case !errors.Is(err, bucket.ErrNotFound):
			return false, err
		}
		_, err = ix.put(ctx, ix.headKey(), &format.Head{Seq: seq}, opts)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, bucket.ErrPrecondition) && !errors.Is(err, bucket.ErrBusy) {
			return false, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, err
		}
	}
}
