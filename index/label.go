package index

import (
	"context"
	"slices"
	"strings"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/index/internal/format"
)

// The by-label set (Manifest.ByLabel) holds one posting per run and label
// pair it carries: a copy of the run's by-time entry with Pair set, sorted
// by pair, then List order. The runs carrying one label are thus one range
// of pages, in List order, and a List with label selectors reads that
// range of one selector from its cursor on instead of every by-time page.
// Compaction keeps it with the same rewrite as the by-time set.

// byLabel is the by-label set: by pair, then List order. Its page IDs
// begin with labelPagePrefix, so that they live where older binaries'
// GC does not look (see pageKey).
var byLabel = pageSet{prefix: labelPagePrefix, cmp: func(a, b *Entry) int {
	if c := strings.Compare(a.Pair, b.Pair); c != 0 {
		return c
	}
	return a.Key().Compare(b.Key())
}}

// postings returns the by-label postings of entries: for each entry, one
// copy per distinct label pair of its stored labels, with Pair set and
// without the ETag. Entries without labels have none, and so do entries
// whose stored labels break the rules of cairn.Labels (no Save writes
// them; a damaged or foreign log may): a posting carries the whole labels
// string, so one entry of thousands of pairs would make pages of
// pairs × length bytes. Such entries stay in the by-time set, where a
// label List does not match them either.
func postings(entries []Entry) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.Labels == "" {
			continue
		}
		if _, err := cairn.ParseLabels(e.Labels); err != nil {
			continue
		}
		for _, pair := range pairs(e.Labels) {
			p := e
			p.ETag, p.Pair = "", pair
			out = append(out, p)
		}
	}
	return out
}

// unpostings returns what the by-label set must lose for entries to leave
// it: a key per distinct pair of their stored labels, without the labels
// themselves. Unlike postings it does not skip labels breaking the rules,
// so that it also removes postings that an index written before that rule
// holds, and it stays small for labels of any length.
func unpostings(entries []Entry) []Entry {
	var out []Entry
	for _, e := range entries {
		for _, pair := range pairs(e.Labels) {
			out = append(out, Entry{RunID: e.RunID, Timestamp: e.Timestamp, Pair: pair})
		}
	}
	return out
}

// pairs returns the distinct non-empty pairs of stored labels, sorted.
// Stored labels are canonical (cairn.EncodeLabels); a repeated or empty
// pair, from labels made another way, must still not list a run twice.
func pairs(labels string) []string {
	if labels == "" {
		return nil
	}
	ps := strings.Split(labels, "&")
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if ps[0] == "" {
		ps = ps[1:]
	}
	return ps
}

// labelSet returns the by-label set of the snapshot a compaction of st
// builds, olds being the entries st.m held for the runs the tail changed,
// and adds its new pages to pages. When st.m keeps the set, only the
// pages the changed runs' postings fall in are rewritten. Otherwise (a
// manifest from before the set existed, or from a binary that dropped it)
// the set is built from every entry, reading every by-time page once.
func (ix *Index) labelSet(ctx context.Context, st *state, olds []Entry, pages map[string]*format.Page) ([]format.PageRef, error) {
	if st.m.Labeled {
		refs, _, err := ix.rewrite(ctx, byLabel, st.m.ByLabel, unpostings(olds), postings(listed(st.puts)), pages)
		return refs, err
	}
	live, err := ix.liveEntries(ctx, st)
	if err != nil {
		return nil, err
	}
	refs, _, err := ix.rewrite(ctx, byLabel, nil, nil, postings(live), pages)
	return refs, err
}

// labelsLost reports whether the entries of m may have lost their labels:
// m holds runs but not the by-label set, so a binary that does not know
// labels wrote it (its codec drops Entry.Labels with the set), or it
// predates them.
func labelsLost(m *format.Manifest) bool {
	return !m.Labeled && (m.Count > 0 || len(m.ByTime) > 0)
}

// LabelsUnsure reports whether the runs of the index may have lost their
// labels: the current snapshot, or one it was compacted from, was written
// by a binary that does not know labels, or predates them. Labels of runs
// committed since are kept, but a label List may miss older runs until a
// Rebuild (durable's Reindex), which reads the labels from the runs and
// clears the mark. It reads the index's state as List does, and fails as
// List does (ErrNoIndex, ErrDamaged); safe for concurrent use.
func (ix *Index) LabelsUnsure(ctx context.Context) (bool, error) {
	st, err := ix.load(ctx)
	if err != nil {
		return false, err
	}
	return st.m.LabelsUnsure || labelsLost(st.m), nil
}

// liveEntries returns every entry of the state st: those of st.m's by-time
// pages that the tail left alone, and the tail's puts.
func (ix *Index) liveEntries(ctx context.Context, st *state) ([]Entry, error) {
	live := listed(st.puts)
	for _, ref := range st.m.ByTime {
		p, err := ix.page(ctx, ref.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Entries {
			if _, changed := st.over[e.RunID]; !changed {
				live = append(live, e)
			}
		}
	}
	return live, nil
}

// listLabeled is listPages for a List with label selectors, over st's
// by-label set (which st.m must keep): it reads only the pages of one
// selector pair (the one whose postings from l's cursor on span the fewest
// pages), in order, merging the postings of that pair and the tail's puts
// before them into l, skipping the runs the tail changed, until l is full
// or done or the pair's postings end. The other selectors are l's filter.
func (ix *Index) listLabeled(ctx context.Context, l *listing, st *state) error {
	pair, refs := l.narrowest(st.m.ByLabel)
	for _, ref := range refs {
		p, err := ix.page(ctx, ref.ID)
		if err != nil {
			return err
		}
		for i := range p.Entries {
			e := &p.Entries[i]
			switch c := strings.Compare(e.Pair, pair); {
			case c < 0:
				continue
			case c > 0:
				return nil
			}
			if _, changed := st.over[e.RunID]; changed {
				continue
			}
			if l.visit(e) {
				return nil
			}
		}
	}
	return nil
}

// narrowest returns the selector pair of l whose postings after l's
// cursor, down to Since, span the fewest pages of refs (a by-label set),
// and those pages.
func (l *listing) narrowest(refs []format.PageRef) (string, []format.PageRef) {
	var (
		best     string
		bestRefs []format.PageRef
	)
	for i, pair := range l.labels {
		r := l.pairPages(refs, pair)
		if i == 0 || len(r) < len(bestRefs) {
			best, bestRefs = pair, r
		}
	}
	return best, bestRefs
}

// pairPages returns the pages of refs (a by-label set) that may hold
// postings of pair that come after l's cursor and are not older than
// Since: from the last page starting at or before that position, to the
// last page starting before the pair's postings older than Since, or
// after the pair.
func (l *listing) pairPages(refs []format.PageRef, pair string) []format.PageRef {
	start := prefixLen(refs, func(r *format.PageRef) bool {
		if c := strings.Compare(r.First.Pair, pair); c != 0 {
			return c < 0
		}
		return l.hasAfter && r.First.Key().Compare(l.after) <= 0
	}) - 1
	end := prefixLen(refs, func(r *format.PageRef) bool {
		if c := strings.Compare(r.First.Pair, pair); c != 0 {
			return c < 0
		}
		return l.q.Since.IsZero() || !r.First.Timestamp.Before(l.q.Since)
	})
	start = max(start, 0)
	if end <= start {
		return nil
	}
	return refs[start:end]
}
