package durable_test

import (
	"context"
	"maps"
	"reflect"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// relabelEntry commits, for run, its current index entry (same object,
// same ETag) with its labels replaced by stored: what a binary that does
// not know labels leaves when it compacts or re-commits an entry (its
// codec drops the field), or what any writer of a non-canonical form
// leaves.
func relabelEntry(t *testing.T, s *durable.Store, run uuid.UUID, stored string) {
	t.Helper()
	ctx := context.Background()
	ix := durable.IndexOf(s)
	op, found, err := ix.LastOp(ctx, run)
	if err != nil || !found || op.Delete || op.Entry.ETag == "" {
		t.Fatalf("LastOp = %+v, %v, %v", op, found, err)
	}
	op.Entry.Labels = stored
	if err := ix.Commit(ctx, op); err != nil {
		t.Fatal(err)
	}
}

// An index entry that lost its labels while still naming the object it
// describes is reported Mismatched by Verify, whose doc (and `cairn
// verify`) says "Reindex repairs them". Reindex does not: it takes the
// entry as it is, since its ETag matches and its (empty) labels parse,
// and never reads the object's metadata, which still holds the labels.
// The run stays out of every label List, for good.
//
// This is what a fleet midway through a rolling upgrade gets (which
// index/internal/format's doc says is supported): reproduced with the real
// binaries, a directory store written by today's `cairn import` and
// `cairn reindex`, then compacted once by the index of a Cairn from before
// labels (cba535c, whose codec drops Entry.Labels from the logs, by-time
// pages and by-run levels it rewrites), lists every run without labels;
// `cairn verify` reports 4 runs mismatched ("reindex repairs this"),
// `cairn reindex` succeeds, and `cairn verify` still reports the same 4.
// The by-time fallback the format doc calls "never wrong, only slower" is
// wrong there too.
func TestReviewReindexRepairsLostLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	running := map[string]string{"status": "running"}
	c := labeledCP(1, t0, running)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	relabelEntry(t, s, c.RunID, "")
	rep, err := s.Verify(ctx)
	if err != nil || !reflect.DeepEqual(rep.Mismatched, []uuid.UUID{c.RunID}) {
		t.Fatalf("Verify = %+v, %v; want the run mismatched", rep, err)
	}
	if _, err := s.Reindex(ctx, &durable.ReindexOptions{Full: true}); err != nil {
		t.Fatal(err)
	}
	if got := byLabel(t, s, running); len(got) != 1 {
		t.Errorf("List(status=running) after Reindex = %v, want the run (its object's metadata has cairn-labels=%q)", got, runMeta(t, mem, c.RunID)["cairn-labels"])
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify after Reindex = %+v, %v; want OK (Verify: \"Reindex repairs them\")", rep, err)
	}
}

// An index entry whose labels parse but are not in the canonical form
// (the value percent-encoded where EncodeLabels leaves it plain) lists
// the run with status=running in its Summary, yet List(status=running)
// does not return it: the index matches stored forms byte for byte.
// Verify reports the entry; Reindex must rewrite it in canonical form.
func TestReviewNonCanonicalStoredLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	running := map[string]string{"status": "running"}
	c := labeledCP(1, t0, running)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	relabelEntry(t, s, c.RunID, "status=%72unning")
	check := func(when string) {
		t.Helper()
		p, err := s.List(ctx, nil)
		if err != nil || len(p.Runs) != 1 || !maps.Equal(p.Runs[0].Labels, running) {
			t.Fatalf("%s: List = %+v, %v", when, p, err)
		}
		if got := byLabel(t, s, running); len(got) != 1 {
			t.Errorf("%s: List(status=running) = %v, but List shows the run with labels %v", when, got, p.Runs[0].Labels)
		}
	}
	// Before Reindex a label List may miss the run: the index matches the
	// canonical form Write stores, and an entry in another form is damage
	// that Verify reports (below) and Reindex repairs.
	rep, err := s.Verify(ctx)
	if err != nil || !reflect.DeepEqual(rep.Mismatched, []uuid.UUID{c.RunID}) {
		t.Fatalf("Verify = %+v, %v; want the run mismatched", rep, err)
	}
	reindex(t, s)
	check("after Reindex")
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify after Reindex = %+v, %v; want OK", rep, err)
	}
}

var _ = cairn.LabelsKey
