package index

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

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
	// The snapshot must cover every stream there is (the default region
	// otherwise looks for new ones only now and then).
	if _, err := ix.discover(ctx, true); err != nil {
		return err
	}
	st, err := ix.load(ctx)
	if err != nil || (st.logs == 0 && st.m.Region == ix.region) {
		return err // nothing new; a region reading another's snapshot writes its own
	}
	if st.tail == 0 || (st.m.Region == ix.region && st.tail == st.m.Seq) {
		// Only other regions' logs are new: a snapshot is numbered by a
		// log of this region's, so commit an empty one first.
		if _, err := ix.commitBatch(ctx, []Op{}); err != nil {
			return err
		}
		if st, err = ix.load(ctx); err != nil {
			return err
		}
		if st.tail == 0 || (st.m.Region == ix.region && st.tail == st.m.Seq) {
			return nil
		}
	}
	if st.m.Region != ix.region {
		return ix.compactFull(ctx, st)
	}
	m := st.m
	runs := slices.Collect(maps.Keys(st.tails))
	slices.SortFunc(runs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	snap, err := ix.lookupOps(ctx, m, runs)
	if err != nil {
		return err
	}
	var olds []Entry
	var ops []Op
	var contested []uuid.UUID
	for _, run := range runs {
		if sops := snap[run]; len(sops) > 0 {
			if w := winner(sops); !w.Delete {
				olds = append(olds, w.Entry)
			}
		}
		if decided(snap[run], st.tails[run], st.over[run]) {
			contested = append(contested, run)
		}
		tops := slices.Clone(st.tails[run])
		slices.SortFunc(tops, func(a, b Op) int { return opLess(&a, &b) })
		ops = append(ops, tops...)
	}
	nm := ix.nextManifest(st, m.Count-int64(len(olds))+int64(len(st.puts)), m.Seq)
	var newPages map[string]*format.Page
	if nm.ByTime, newPages, err = ix.rewrite(ctx, byTime, m.ByTime, olds, listed(st.puts), nil); err != nil {
		return err
	}
	if nm.ByLabel, err = ix.labelSet(ctx, st, olds, newPages); err != nil {
		return err
	}
	nm.LabelsUnsure = m.LabelsUnsure || labelsLost(m)
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
	if err := ix.publish(ctx, nm, m.Seq); err != nil {
		return err
	}
	if len(contested) > 0 && ix.o.Contested != nil {
		ix.o.Contested(contested)
	}
	return nil
}

// decided reports whether a compaction decided between regions for a
// run: one of its tail ops lost (to the snapshot's or another tail's), or
// the winner w comes from another region than the snapshot's winner.
func decided(snap, tails []Op, w Op) bool {
	for _, op := range tails {
		if op.Entry.Region != w.Entry.Region {
			return true
		}
	}
	return len(snap) > 0 && winner(snap).Entry.Region != w.Entry.Region
}

// nextManifest returns the manifest of the snapshot a compaction of st
// writes, built on base, before its pages: numbered by this region's last
// log applied, covering every stream as far as st does, and holding ops
// of the regions st.m's did and those of the tails.
func (ix *Index) nextManifest(st *state, count int64, base uint64) *format.Manifest {
	nm := &format.Manifest{Seq: st.tail, Created: ix.o.Now(), Count: count, Base: base, Labeled: true, Region: ix.region,
		Streams: ix.streamsOf(st.cov), Sources: slices.Clone(sources(st.m))}
	for _, ops := range st.tails {
		nm.Sources = withSources(nm.Sources, ops)
	}
	return nm
}

// streamsOf returns the coverage cov of the other regions' streams as a
// manifest records it: sorted by region, the streams covered up to 0
// left out.
func (ix *Index) streamsOf(cov map[string]uint64) []format.StreamSeq {
	var out []format.StreamSeq
	for r, seq := range cov {
		if r != ix.region && seq > 0 {
			out = append(out, format.StreamSeq{Region: r, Seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b format.StreamSeq) int { return strings.Compare(a.Region, b.Region) })
	return out
}

// withSources returns srcs, sorted regions, with the regions of ops added.
func withSources(srcs []string, ops []Op) []string {
	for _, op := range ops {
		if !slices.Contains(srcs, op.Entry.Region) {
			srcs = append(srcs, op.Entry.Region)
		}
	}
	slices.Sort(srcs)
	return srcs
}

// publish creates the manifest of nm and moves the head to it (see
// putSnapshot and advanceHead), base being the snapshot it was built on.
func (ix *Index) publish(ctx context.Context, nm *format.Manifest, base uint64) error {
	nm, ok, err := ix.putSnapshot(ctx, nm)
	if err != nil || !ok {
		return err // !ok: another base's snapshot took this number; give way
	}
	moved, err := ix.advanceHead(ctx, nm.Seq, base)
	if moved {
		nm.Region = ix.region
		ix.adopt(nm)
	}
	return err
}

// compactFull compacts a state whose snapshot is another region's (a
// region's first compaction): it writes every page of the new snapshot,
// so that no snapshot of this region refers to pages another region's GC
// may delete.
func (ix *Index) compactFull(ctx context.Context, st *state) error {
	all, err := ix.levelStreams(ctx, st.m)
	if err != nil {
		return err
	}
	for run, ops := range st.tails {
		for _, op := range ops {
			all[run] = withOp(all[run], op)
		}
	}
	var entries []Entry
	var ops []Op
	for _, rops := range all {
		if w := winner(rops); !w.Delete {
			entries = append(entries, w.Entry)
		}
		ops = append(ops, rops...)
	}
	slices.SortFunc(ops, func(a, b Op) int { return opLess(&a, &b) })
	nm := ix.nextManifest(st, int64(len(entries)), 0)
	nm.Base = nm.Seq
	nm.LabelsUnsure = st.m.LabelsUnsure || labelsLost(st.m)
	if err := ix.writeFull(ctx, nm, entries, ops); err != nil {
		return err
	}
	return ix.publish(ctx, nm, 0)
}

// writeFull fills in the page sets of nm, a snapshot holding exactly
// entries (the winners) and ops (sorted by run, then region), and writes
// their pages.
func (ix *Index) writeFull(ctx context.Context, nm *format.Manifest, entries []Entry, ops []Op) error {
	var opPages map[string]*format.OpPage
	var err error
	if nm.RunLevels, opPages, err = ix.pushLevel(ctx, nil, ops); err != nil {
		return err
	}
	var pages map[string]*format.Page
	if nm.ByTime, pages, err = ix.rewrite(ctx, byTime, nil, nil, listed(entries), nil); err != nil {
		return err
	}
	if nm.ByLabel, _, err = ix.rewrite(ctx, byLabel, nil, nil, postings(entries), pages); err != nil {
		return err
	}
	if err := putPages(ctx, ix, pages); err != nil {
		return err
	}
	return putPages(ctx, ix, opPages)
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
		// cur holds every op of the snapshot, a run's ops (one per
		// region) side by side. A run's tombstones go only with all of
		// its ops: a tombstone dropped while another region's save of the
		// run is kept would bring that save back.
		cutoff := ix.o.Now().Add(-ix.o.KeepTombstones)
		kept := cur[:0:0]
		for i := 0; i < len(cur); {
			j := i + 1
			for j < len(cur) && cur[j].Entry.RunID == cur[i].Entry.RunID {
				j++
			}
			if !slices.ContainsFunc(cur[i:j], func(op Op) bool { return !op.Delete || op.Entry.Timestamp.After(cutoff) }) {
				i = j
				continue
			}
			kept, i = append(kept, cur[i:j]...), j
		}
		cur = kept
	}
	pages := map[string]*format.OpPage{}
	if len(cur) == 0 {
		return rest, pages, nil
	}
	level := format.Level{Count: len(cur)}
	for len(cur) > 0 {
		n := min(ix.o.PageSize, len(cur))
		for n < len(cur) && cur[n].Entry.RunID == cur[n-1].Entry.RunID {
			n++ // a run's ops stay on one page, where snapshotOps looks
		}
		chunk := cur[:n]
		cur = cur[len(chunk):]
		id := uuid.NewString()
		pages[id] = &format.OpPage{Ops: chunk}
		level.Pages = append(level.Pages, format.PageRef{ID: id, Count: len(chunk), First: Entry{RunID: chunk[0].Entry.RunID}})
	}
	return append([]format.Level{level}, rest...), pages, nil
}

// mergeOps merges two runs of ops sorted by run ID, then region; for a run
// and region in both, the newer op wins.
func mergeOps(newer, older []Op) []Op {
	out := make([]Op, 0, len(newer)+len(older))
	for len(newer) > 0 && len(older) > 0 {
		switch c := opLess(&newer[0], &older[0]); {
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
// So is a head behind base that base does not descend from: the head was
// moved back since this compaction read its state, by a Reindex of a lost
// index (whose numbers start again low), and moving past it would bring
// back a snapshot whose pages and logs may be gone. A head naming a
// snapshot that is gone is repaired either way.
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
			if h.Seq != base {
				if ok, err := ix.builtOver(ctx, base, h.Seq); !ok {
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

// builtOver reports whether a snapshot built on snapshot base may move
// the head over snapshot head: when base descends from head (see
// descends), or head is gone (the state this one was built on fell back
// past it: this one repairs the head).
func (ix *Index) builtOver(ctx context.Context, base, head uint64) (bool, error) {
	if head < base {
		if ok, err := ix.descends(ctx, base, head); ok || err != nil {
			return ok, err
		}
	}
	switch _, err := ix.b.Head(ctx, ix.snapKey(head)); {
	case errors.Is(err, bucket.ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil
}

// descends reports whether snapshot from was built, through the Base of
// each snapshot down the chain, on snapshot to (to < from). A snapshot of
// the chain that is gone or damaged, a Rebuild's (its Base is itself)
// above to, or one written before Base was recorded (Base 0) ends the
// chain: false.
func (ix *Index) descends(ctx context.Context, from, to uint64) (bool, error) {
	for cur := from; cur > to; {
		var m format.Manifest
		if _, err := ix.get(ctx, ix.snapKey(cur), &m); err != nil {
			if errors.Is(err, bucket.ErrNotFound) || errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, bucket.ErrUnreadable) {
				return false, nil
			}
			return false, err
		}
		if m.Base >= cur {
			return false, nil
		}
		cur = m.Base
		if cur == to {
			return true, nil
		}
	}
	return false, nil
}
