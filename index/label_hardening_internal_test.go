package index

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
)

// olderBinaryGC is the index GC of a Cairn from before the by-label set
// (index/admin.go at 27b1985, the commit before 5c01b40), as it runs on
// today's index: its codec skips the manifest fields it does not know
// (ByLabel, Labeled), so the pages it keeps are the by-time and by-run
// pages of the snapshots from the head's on; it deletes every other
// object under index/pages/ written before the grace cutoff.
func olderBinaryGC(t *testing.T, ix *Index, now time.Time, grace time.Duration) int {
	t.Helper()
	ctx := context.Background()
	keep, _, err := ix.settledHead(ctx, grace)
	if err != nil || keep == 0 {
		t.Fatalf("settledHead = %d, %v", keep, err)
	}
	snaps, err := ix.listSeqs(ctx, ix.root+"snap/", 0)
	if err != nil {
		t.Fatal(err)
	}
	referenced := map[string]bool{}
	for _, seq := range snaps {
		if seq < keep {
			continue
		}
		var m format.Manifest
		if _, err := ix.get(ctx, ix.snapKey(seq), &m); err != nil {
			t.Fatal(err)
		}
		m.ByLabel, m.Labeled = nil, false // what the older codec decodes
		for _, r := range m.ByTime {
			referenced[r.ID] = true
		}
		for _, l := range m.RunLevels {
			for _, r := range l.Pages {
				referenced[r.ID] = true
			}
		}
	}
	dir := ix.root + "pages/"
	infos, _, err := ix.b.List(ctx, dir, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, in := range infos {
		if !referenced[strings.TrimPrefix(in.Key, dir)] && in.LastModified.Before(now.Add(-grace)) {
			if err := ix.b.Delete(ctx, in.Key); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	return deleted
}

// A fleet midway through a rolling upgrade, which index/internal/format's
// doc says is supported (older binaries drop the by-label set when they
// compact, and readers fall back to the by-time pages): a not yet
// upgraded process runs GC (durable.GC, `cairn gc`). It deletes the
// by-label pages of the head's snapshot, which it cannot see referenced,
// as soon as they are older than the grace period, while the manifest
// still says Labeled: every label List of an upgraded process then fails
// with ErrDamaged ("run Reindex"), and the pages a Reindex writes go the
// same way at the next GC. Reproduced with the real binaries too: an
// index GC built from 27b1985 on a directory store that `cairn reindex`
// wrote deletes its one by-label page, and `cairn ls --label` and `cairn
// verify` report the index damaged. (Keeping the by-label pages under a
// prefix older GCs do not list, such as index/label-pages/, avoids it.)
func TestOlderGCKeepsLabelPages(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	mem := bucket.NewMem()
	mem.SetClock(now)
	ix, err := New(mem, &Options{PageSize: 4, CompactAfter: 1000, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Create(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for i := range 10 {
		status := "done"
		if i%2 == 0 {
			status = "running"
		}
		ops = append(ops, Op{Entry: Entry{RunID: uuid.UUID{0: byte(i + 1), 6: 0x40, 8: 0x80}, Timestamp: clock.Add(time.Duration(i) * time.Second),
			Workflow: "w", Size: 10, Labels: cairn.EncodeLabels(map[string]string{"status": status})}})
	}
	if err := ix.Commit(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	ix.Wait()
	if err := ix.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	if n := olderBinaryGC(t, ix, clock, 15*time.Minute); n == 0 {
		t.Log("the older GC deleted nothing")
	} else {
		t.Logf("the older GC deleted %d pages", n)
	}
	cold, err := New(mem, &Options{PageSize: 4, CompactAfter: 1000, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	q, err := (&cairn.ListOptions{Labels: map[string]string{"status": "running"}}).Query()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := cold.List(ctx, &q)
	if err != nil || len(got) != 5 {
		t.Errorf("List(status=running) after an older process's GC: %d runs, %v; want the 5 running runs", len(got), err)
	}
	if err := cold.Check(ctx); err != nil {
		t.Errorf("Check after an older process's GC: %v", err)
	}
}
