package main

import (
	"strings"
	"testing"
)

// testGC checks gc: an unindexed run kept, with --dry-run or not, and
// its usage errors.
func testGC(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	// An object that no index entry lists: gc never deletes it (reindex
	// then finds all six objects).
	unindexed := putUnindexed(t, raw, prefix)
	for _, args := range [][]string{{"gc", "--dry-run", "--grace", "1ms"}, {"gc", "--grace", "1ms"}} {
		want := "kept unindexed run " + unindexed + " (cairn reindex lists it)\n"
		if out := c.ok(args...); !strings.HasPrefix(out, want) || !strings.Contains(out, " 0 expired runs, 0 objects of deleted runs, ") {
			t.Errorf("%v: %q", args, out)
		}
	}
	if out := c.ok("reindex"); out != "indexed 6 runs of 6 objects\n" {
		t.Errorf("reindex: %q", out)
	}
	c.fails(exitUsage, []string{`--grace 0s: want a positive duration`}, "gc", "--grace", "0")
}
