package main

import (
	"slices"
	"strings"
	"testing"
)

// testRegions checks the commands of a store written from two regions
// sharing one bucket (no replication needed to see both): ls, verify and
// reconcile agree in both, gc --versions runs, and a bad CAIRN_REGION is
// a usage error.
func testRegions(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	seed(c) // the default region
	eu := &cli{t: t, env: append(slices.Clone(c.env), "CAIRN_REGION=eu"), store: c.store}
	if out := eu.ok("import", "testdata/legacy.json"); out != "imported 1 run\n" {
		t.Fatalf("import in eu: %q", out)
	}
	def, other := c.ok("ls", "--limit", "0", "--json"), eu.ok("ls", "--limit", "0", "--json")
	if def != other || strings.Count(def, `"run_id"`) != 6 {
		t.Fatalf("ls in the default region and in eu differ, or miss runs:\n%s\n%s", def, other)
	}
	for _, x := range []*cli{c, eu} {
		if out := x.ok("verify"); !strings.HasSuffix(out, "ok\n") {
			t.Errorf("verify: %q", out)
		}
		if out := x.ok("reconcile"); out != "checked 0 runs written in more than one region, restored 0\n" {
			t.Errorf("reconcile: %q", out)
		}
		if out := x.ok("gc", "--grace", "1m", "--versions"); !strings.HasSuffix(out, " old versions\n") {
			t.Errorf("gc --versions: %q", out)
		}
	}
	bad := &cli{t: t, env: append(slices.Clone(c.env), "CAIRN_REGION=Not_A_Region"), store: c.store}
	bad.fails(exitUsage, []string{`CAIRN_REGION="Not_A_Region": want 1 to 63 of \[a-z0-9-\]`}, "ls")
}
