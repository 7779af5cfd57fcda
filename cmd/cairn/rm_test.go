package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// testRm checks rm: runs deleted and named, runs not found reported
// (exit 3) without stopping the others, nothing deleted when one run ID
// is bad, and a run with a damaged object deleted.
func testRm(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	// One bad run ID deletes nothing.
	c.fails(exitUsage, []string{`invalid run ID "nope"`}, "rm", run1, "nope")
	c.ok("show", run1)

	r := c.run("", "rm", run1, absentRun, run3, run1)
	r.check(t, exitNotFound, `^cairn rm: run not found: `+absentRun+`\n$`)
	if want := "deleted " + run1 + "\ndeleted " + run3 + "\n"; r.stdout != want {
		t.Errorf("rm stdout %q, want %q", r.stdout, want)
	}
	c.fails(exitNotFound, []string{`run ` + run1 + ` not found`}, "show", run1)
	if got := c.ok("rm", run2); got != "deleted "+run2+"\n" {
		t.Errorf("rm: %q", got)
	}
	r = c.run("", "rm", run1, run3)
	r.check(t, exitNotFound, `2 runs not found: `+run1+`, `+run3)
	var doc struct {
		Runs []struct {
			RunID string `json:"run_id"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(c.ok("ls", "--json")), &doc); err != nil || len(doc.Runs) != 2 || doc.Runs[0].RunID != run5 || doc.Runs[1].RunID != run4 {
		t.Errorf("ls after rm: %+v, %v", doc, err)
	}

	// A run whose object is damaged is deleted all the same.
	c, raw, prefix = b.newCLI(t)
	seed(c)
	damage(t, raw, prefix, run3)
	if out := c.ok("rm", run3); out != "deleted "+run3+"\n" {
		t.Errorf("rm of a corrupt run: %q", out)
	}
	if out := c.ok("verify"); out != "checked 4 run objects\nok\n" {
		t.Errorf("verify after rm: %q", out)
	}
}

// An interrupted rm fails: it does not report the runs it could not check
// as missing (exit 3).
func TestRmInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(ctx, e, []string{"rm", "--store", "file://" + t.TempDir(), "67e55044-10b1-426f-9247-bb680e5fe0c8"})
	if code != exitFailure || strings.Contains(stderr.String(), "not found") {
		t.Fatalf("rm with its context cancelled: exit %d, %s", code, stderr.String())
	}
}
