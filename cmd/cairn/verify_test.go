package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/google/uuid"
)

// testVerify checks verify: ok on a sound store; an unindexed run and a
// damaged object each reported as one problem (exit 1).
func testVerify(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	if out := c.ok("verify"); out != "checked 5 run objects\nok\n" {
		t.Errorf("verify: %q", out)
	}

	// An object that no index entry lists: verify reports it, and no
	// longer once reindex has listed it.
	unindexed := putUnindexed(t, raw, prefix)
	r := c.run("", "verify")
	r.check(t, exitFailure, `^cairn verify: 1 problem found`)
	if want := "checked 6 run objects\nunindexed   " + unindexed + ": a run the index does not list, such as a save whose commit was lost (reindex adds it; gc never deletes it)\n"; r.stdout != want {
		t.Errorf("verify stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if out := c.ok("reindex"); out != "indexed 6 runs of 6 objects\n" {
		t.Errorf("reindex: %q", out)
	}
	if out := c.ok("verify"); out != "checked 6 run objects\nok\n" {
		t.Errorf("verify after reindex: %q", out)
	}

	// The bucket holds a run's object, but its bytes are damaged.
	damage(t, raw, prefix, run3)
	r = c.run("", "verify")
	r.check(t, exitFailure, `1 problem found`)
	if !regexp.MustCompile(`(?m)^corrupt     ` + run3 + `: .*corrupt checkpoint: not a valid zstd frame.*$`).MatchString(r.stdout) {
		t.Errorf("verify stdout:\n%s", r.stdout)
	}
}

// putUnindexed stores the object of a run that no index entry lists (a
// Save whose commit was lost) in the store at prefix in raw, and returns
// its run ID.
func putUnindexed(t *testing.T, raw bucket.Bucket, prefix string) string {
	t.Helper()
	unindexed := "00000000-0000-4000-8000-0000000000aa"
	rec, err := cairn.DefaultCodec().Marshal(&cairn.Checkpoint{WorkflowName: "unindexed", RunID: uuid.MustParse(unindexed),
		Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(context.Background(), prefix+"runs/"+unindexed, rec, nil); err != nil {
		t.Fatal(err)
	}
	return unindexed
}
