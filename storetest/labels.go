package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// labeled returns checkpoint(n, ts) with labels.
func labeled(n int, ts time.Time, labels map[string]string) *cairn.Checkpoint {
	c := checkpoint(n, ts)
	for k, v := range labels {
		c.SetLabel(k, v)
	}
	return c
}

// listLabels lists every run o selects, across pages of limit, and
// returns their summaries, failing t when a run comes twice.
func listLabels(t *testing.T, s cairn.Store, selector map[string]string, limit int) []cairn.Summary {
	t.Helper()
	var out []cairn.Summary
	seen := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(context.Background(), s, &cairn.ListOptions{Labels: selector, Limit: limit}) {
		if err != nil {
			t.Fatalf("List(labels %v): %v", selector, err)
		}
		if seen[sum.RunID] {
			t.Fatalf("List(labels %v, limit %d): run %v twice", selector, limit, sum.RunID)
		}
		seen[sum.RunID] = true
		out = append(out, sum)
	}
	return out
}

func summaryIDs(sums []cairn.Summary) []uuid.UUID {
	ids := make([]uuid.UUID, len(sums))
	for i, s := range sums {
		ids[i] = s.RunID
	}
	return ids
}

// sameLabels compares label sets, nil and empty alike.
func sameLabels(got, want map[string]string) bool {
	return len(got) == 0 && len(want) == 0 || maps.Equal(got, want)
}

// testLabelsRoundTrip: labels, values with the characters their stored
// form escapes included, come back from Load (in Metadata, read by
// Checkpoint.Labels), in List's summaries and in listed checkpoints; a
// run without labels has none (nil) in its summary.
func testLabelsRoundTrip(t *testing.T, s cairn.Store) {
	labels := map[string]string{
		"status":                 "running",
		"app.example.com/tenant": "acme & co=1",
		"note":                   "ünïcode ✓ 100% +plus",
		"step_2-b":               "a/b?c#d",
	}
	c := labeled(1, base, labels)
	mustSave(t, s, c)
	plain := checkpoint(2, base.Add(-time.Second))
	mustSave(t, s, plain)
	got := mustLoad(t, s, c.RunID)
	if d := Diff(got, c); d != "" {
		t.Fatalf("Load: %s", d)
	}
	if l, err := got.Labels(); err != nil || !maps.Equal(l, labels) {
		t.Fatalf("loaded Labels() = %v, %v; want %v", l, err, labels)
	}
	p := mustList(t, s, nil)
	if len(p.Runs) != 2 || p.Runs[0].RunID != c.RunID {
		t.Fatalf("List = %+v, want runs %v, %v", p.Runs, c.RunID, plain.RunID)
	}
	if !maps.Equal(p.Runs[0].Labels, labels) {
		t.Fatalf("summary labels = %v, want %v", p.Runs[0].Labels, labels)
	}
	if p.Runs[1].Labels != nil {
		t.Fatalf("summary of a run without labels has labels %#v, want nil", p.Runs[1].Labels)
	}
	p.Runs[0].Labels["status"] = "changed" // the caller's copy
	p = mustList(t, s, &cairn.ListOptions{WithCheckpoints: true, Labels: map[string]string{"status": "running"}})
	if len(p.Runs) != 1 || !maps.Equal(p.Runs[0].Labels, labels) || p.Runs[0].Checkpoint == nil {
		t.Fatalf("List(status=running, with checkpoints) = %+v, want run %v with %v", p.Runs, c.RunID, labels)
	}
	if d := Diff(p.Runs[0].Checkpoint, c); d != "" {
		t.Fatalf("listed checkpoint: %s", d)
	}
}

// labelRuns saves 12 runs, one second apart (run i at base+i s), with
// status running for even i and done for odd, tenant acme for i%3 == 0
// and globex otherwise, and no labels at all for i == 11; workflows as
// checkpoint names them (wf-0, wf-1, wf-2 in turn).
func labelRuns(t *testing.T, s cairn.Store) {
	t.Helper()
	for i := range 12 {
		var labels map[string]string
		if i != 11 {
			labels = map[string]string{"status": "done", "tenant": "globex"}
			if i%2 == 0 {
				labels["status"] = "running"
			}
			if i%3 == 0 {
				labels["tenant"] = "acme"
			}
		}
		mustSave(t, s, labeled(i, base.Add(time.Duration(i)*time.Second), labels))
	}
}

// testListByLabel: a selector of one label, of two (ANDed), with a
// workflow, a time window or a limit, keeps exactly the runs carrying
// every pair, newest first, with their labels in the summaries.
func testListByLabel(t *testing.T, s cairn.Store) {
	labelRuns(t, s)
	ids := func(ns ...int) []uuid.UUID {
		var out []uuid.UUID
		for _, n := range ns {
			out = append(out, runID(n))
		}
		return out
	}
	running := map[string]string{"status": "running"}
	tests := []struct {
		name string
		o    cairn.ListOptions
		want []uuid.UUID
	}{
		{"one label", cairn.ListOptions{Labels: running}, ids(10, 8, 6, 4, 2, 0)},
		{"other value", cairn.ListOptions{Labels: map[string]string{"status": "done"}}, ids(9, 7, 5, 3, 1)},
		{"two labels", cairn.ListOptions{Labels: map[string]string{"status": "running", "tenant": "acme"}}, ids(6, 0)},
		{"two labels, other", cairn.ListOptions{Labels: map[string]string{"status": "done", "tenant": "globex"}}, ids(7, 5, 1)},
		{"unknown value", cairn.ListOptions{Labels: map[string]string{"status": "paused"}}, nil},
		{"unknown key", cairn.ListOptions{Labels: map[string]string{"owner": "me"}}, nil},
		{"value is not a prefix", cairn.ListOptions{Labels: map[string]string{"status": "run"}}, nil},
		{"with workflow", cairn.ListOptions{Labels: running, WorkflowName: "wf-1"}, ids(10, 4)},
		{"with window", cairn.ListOptions{Labels: running, Since: base.Add(3 * time.Second), Until: base.Add(9 * time.Second)}, ids(8, 6, 4)},
		{"with limit", cairn.ListOptions{Labels: running, Limit: 2}, ids(10, 8)},
		{"empty selector", cairn.ListOptions{Labels: map[string]string{}, Since: base.Add(10 * time.Second)}, ids(11, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustList(t, s, &tt.o)
			if got := runIDs(p); len(got)+len(tt.want) > 0 && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("List(%+v) = %v, want %v", tt.o, got, tt.want)
			}
			for _, r := range p.Runs {
				if !cairn.MatchLabels(r.Labels, tt.o.Labels) {
					t.Errorf("run %v listed with labels %v, not matching %v", r.RunID, r.Labels, tt.o.Labels)
				}
			}
		})
	}
}

// testLabelChange: a run whose labels change between Saves moves from one
// selection to the other, leaves both when its labels go, and leaves
// every selection when deleted.
func testLabelChange(t *testing.T, s cairn.Store) {
	ctx := context.Background()
	running, done := map[string]string{"status": "running"}, map[string]string{"status": "done"}
	other := labeled(2, base, running)
	mustSave(t, s, other)
	check := func(when string, wantRunning, wantDone []uuid.UUID) {
		t.Helper()
		for _, sel := range []struct {
			labels map[string]string
			want   []uuid.UUID
		}{{running, wantRunning}, {done, wantDone}} {
			for _, limit := range []int{0, 1} {
				got := summaryIDs(listLabels(t, s, sel.labels, limit))
				if len(got)+len(sel.want) > 0 && !reflect.DeepEqual(got, sel.want) {
					t.Fatalf("%s: List(%v, limit %d) = %v, want %v", when, sel.labels, limit, got, sel.want)
				}
			}
		}
	}
	c := labeled(1, base.Add(time.Second), running)
	mustSave(t, s, c)
	check("saved running", []uuid.UUID{c.RunID, other.RunID}, nil)
	c.Timestamp = c.Timestamp.Add(time.Second)
	c.SetLabel("status", "done")
	mustSave(t, s, c)
	check("saved done", []uuid.UUID{other.RunID}, []uuid.UUID{c.RunID})
	c.DeleteLabel("status")
	mustSave(t, s, c)
	check("label removed", []uuid.UUID{other.RunID}, nil)
	if p := mustList(t, s, nil); len(p.Runs) != 2 || p.Runs[0].RunID != c.RunID || p.Runs[0].Labels != nil {
		t.Fatalf("List after the label went = %+v, want run %v first, without labels", p.Runs, c.RunID)
	}
	c.SetLabel("status", "running")
	mustSave(t, s, c)
	check("running again", []uuid.UUID{c.RunID, other.RunID}, nil)
	if err := s.Delete(ctx, c.RunID); err != nil {
		t.Fatal(err)
	}
	check("deleted", []uuid.UUID{other.RunID}, nil)
}

// testLabelPaging: paging a label selection with cursors returns every
// matching run once, in order, whatever the page size, ties in time
// included; across changes between pages (a newer run saved, a listed
// run deleted, a run not yet listed relabelled out of the selection, an
// older run saved), no run that stayed unchanged is returned twice or
// skipped.
func testLabelPaging(t *testing.T, s cairn.Store) {
	running := map[string]string{"status": "running"}
	var want []uuid.UUID
	for pair := 9; pair >= 0; pair-- { // List order: newest pair first, ties by run bytes
		for _, n := range []int{2 * pair, 2*pair + 1} {
			labels := map[string]string{"status": "done"}
			if n%3 != 2 {
				labels["status"] = "running"
			}
			mustSave(t, s, labeled(n, base.Add(time.Duration(pair)*time.Millisecond), labels))
			if labels["status"] == "running" {
				want = append(want, runID(n))
			}
		}
	}
	for _, limit := range []int{1, 2, 3, 5, len(want), len(want) + 1} {
		if got := summaryIDs(listLabels(t, s, running, limit)); !reflect.DeepEqual(got, want) {
			t.Fatalf("limit %d: pages = %v\nwant %v", limit, got, want)
		}
	}
	p := mustList(t, s, &cairn.ListOptions{Labels: running, Limit: 4})
	got := runIDs(p)
	mustSave(t, s, labeled(100, base.Add(time.Hour), running))
	if err := s.Delete(context.Background(), got[1]); err != nil {
		t.Fatal(err)
	}
	moved := want[len(want)-3]
	c := mustLoad(t, s, moved)
	c.SetLabel("status", "done")
	mustSave(t, s, c)
	mustSave(t, s, labeled(101, base.Add(-time.Hour), running))
	for o := (&cairn.ListOptions{Labels: running, Limit: 4, Cursor: p.Next}); o.Cursor != ""; {
		p = mustList(t, s, o)
		got = append(got, runIDs(p)...)
		o.Cursor = p.Next
	}
	want = append(without(want, moved), runID(101))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages across changes = %v\nwant %v", got, want)
	}
}

func without(ids []uuid.UUID, drop uuid.UUID) []uuid.UUID {
	var out []uuid.UUID
	for _, id := range ids {
		if id != drop {
			out = append(out, id)
		}
	}
	return out
}

// hostileLabels are labels that break the rules of cairn.Labels, each
// with the Metadata it is saved with.
func hostileLabels() map[string]func(c *cairn.Checkpoint) {
	many := map[string]any{}
	for i := range cairn.MaxLabels + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	heavy := map[string]any{}
	for i := range cairn.MaxLabels {
		heavy[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", 100) // each allowed; together over MaxLabelsSize
	}
	set := func(k, v string) func(c *cairn.Checkpoint) {
		return func(c *cairn.Checkpoint) { c.SetLabel(k, v) }
	}
	entry := func(v any) func(c *cairn.Checkpoint) {
		return func(c *cairn.Checkpoint) { c.Metadata[cairn.LabelsKey] = v }
	}
	return map[string]func(c *cairn.Checkpoint){
		"too many":              entry(many),
		"too large together":    entry(heavy),
		"key too long":          set(strings.Repeat("k", cairn.MaxLabelKey+1), "v"),
		"value too long":        set("k", strings.Repeat("v", cairn.MaxLabelValue+1)),
		"empty key":             set("", "v"),
		"empty value":           set("k", ""),
		"value not UTF-8":       set("k", "a\xffb"),
		"key not UTF-8":         set("k\xff", "v"),
		"value with newline":    set("k", "a\nb"),
		"value with NUL":        set("k", "a\x00b"),
		"value with C1 control": set("k", "a\u0085b"),
		"reserved key":          set("cairn.lease", "v"),
		"key with space":        set("a b", "v"),
		"key with '='":          set("a=b", "v"),
		"key starting with '-'": set("-a", "v"),
		"key ending with '/'":   set("a/", "v"),
		"non-ASCII key":         set("ключ", "v"),
		"entry not a map":       entry("status=running"),
		"entry a list":          entry([]any{"status", "running"}),
		"value not a string":    entry(map[string]any{"status": int64(1)}),
		"value null":            entry(map[string]any{"status": nil}),
		"value a map":           entry(map[string]any{"status": map[string]any{"a": "b"}}),
	}
}

// testLabelsInvalid: a checkpoint whose labels break the rules is refused
// with ErrInvalid, writing nothing: a new run does not appear, and an
// existing run keeps its checkpoint and its labels.
func testLabelsInvalid(t *testing.T, s cairn.Store) {
	ctx := context.Background()
	kept := labeled(1, base, map[string]string{"status": "running"})
	mustSave(t, s, kept)
	for name, spoil := range hostileLabels() {
		for _, run := range []int{1, 2} {
			c := labeled(run, base.Add(time.Second), map[string]string{"status": "done"})
			spoil(c)
			err := s.Save(ctx, c)
			var oe *cairn.Error
			if !errors.Is(err, cairn.ErrInvalid) || !errors.As(err, &oe) || oe.Op != "save" || oe.RunID != c.RunID {
				t.Errorf("%s (run %d): Save = %v, want ErrInvalid naming op save and the run", name, run, err)
			}
		}
	}
	if err := flush(ctx, s); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if d := Diff(mustLoad(t, s, kept.RunID), kept); d != "" {
		t.Fatalf("refused Saves changed run 1: %s", d)
	}
	if _, err := s.Load(ctx, runID(2)); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load of a run only ever refused: %v, want ErrNotFound", err)
	}
	p := mustList(t, s, nil)
	if len(p.Runs) != 1 || !sameLabels(p.Runs[0].Labels, map[string]string{"status": "running"}) {
		t.Fatalf("List after refused Saves = %+v, want run 1 with status=running", p.Runs)
	}
	if p := mustList(t, s, &cairn.ListOptions{Labels: map[string]string{"status": "done"}}); len(p.Runs) != 0 {
		t.Fatalf("List(status=done) after refused Saves = %+v, want none", p.Runs)
	}
}

// testLabelSelectorInvalid: a List whose selector breaks the label rules
// is ErrInvalid.
func testLabelSelectorInvalid(t *testing.T, s cairn.Store) {
	mustSave(t, s, labeled(1, base, map[string]string{"status": "running"}))
	many := map[string]string{}
	for i := range cairn.MaxLabels + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for name, sel := range map[string]map[string]string{
		"too many":        many,
		"empty key":       {"": "running"},
		"empty value":     {"status": ""},
		"reserved key":    {"cairn.labels": "x"},
		"bad key":         {"sta tus": "running"},
		"key too long":    {strings.Repeat("k", cairn.MaxLabelKey+1): "v"},
		"value too long":  {"status": strings.Repeat("v", cairn.MaxLabelValue+1)},
		"value not UTF-8": {"status": "\xff"},
		"control char":    {"status": "run\tning"},
	} {
		if _, err := s.List(context.Background(), &cairn.ListOptions{Labels: sel}); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("%s: List = %v, want ErrInvalid", name, err)
		}
	}
}
