package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// testShow checks show: the record export writes, indented; a run not
// found, a bad run ID, and a damaged object.
func testShow(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	exported := exportLines(t, c)
	out := c.ok("show", run2)
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(out)); err != nil {
		t.Fatal(err)
	}
	if compact.String() != exported[run2] {
		t.Errorf("show: %s\nwant the record export writes: %s", compact.String(), exported[run2])
	}
	if !strings.Contains(out, "\n  \"state\": {\n") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("show does not indent:\n%s", out)
	}

	c.fails(exitNotFound, []string{`^cairn show: run ` + absentRun + ` not found\n$`}, "show", absentRun)
	c.fails(exitUsage, []string{`invalid run ID "not-a-run"`}, "show", "not-a-run")
	c.fails(exitUsage, []string{`missing argument`}, "show")

	// The bucket holds the run's object, but its bytes are damaged.
	damage(t, raw, prefix, run3)
	c.fails(exitFailure, []string{`^cairn show: load ` + run3 + `: .*corrupt checkpoint: not a valid zstd frame`}, "show", run3)
}
