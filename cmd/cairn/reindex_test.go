package main

import (
	"strings"
	"testing"
)

// testReindex checks reindex: the same listing after it, and an
// unindexed run listed.
func testReindex(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	before := c.ok("ls", "--json", "--limit", "0")
	if out := c.ok("reindex"); out != "indexed 5 runs of 5 objects\n" {
		t.Errorf("reindex: %q", out)
	}
	if got := c.ok("ls", "--json", "--limit", "0"); got != before {
		t.Errorf("ls after reindex:\n%s\nwant:\n%s", got, before)
	}

	// An object that no index entry lists: reindex lists it.
	unindexed := putUnindexed(t, raw, prefix)
	if out := c.ok("reindex"); out != "indexed 6 runs of 6 objects\n" {
		t.Errorf("reindex: %q", out)
	}
	if got := c.ok("ls", "--json", "--limit", "0"); !strings.Contains(got, unindexed) {
		t.Errorf("ls after reindex lacks the unindexed run:\n%s", got)
	}
}
