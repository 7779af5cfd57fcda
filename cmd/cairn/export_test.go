package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testExport checks export: JSON lines (the golden file), to stdout or
// a file, of one workflow; the msgpack and json files of a directory;
// its usage errors; and a damaged run skipped.
func testExport(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seed(c)
	jsonl := c.ok("export")
	golden(t, "export.jsonl", jsonl)
	if got := c.ok("export", "--workflow", "billing"); got != lineOf(jsonl, run3)+lineOf(jsonl, run4) {
		t.Errorf("export --workflow billing:\n%s", got)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "all.jsonl")
	if out := c.ok("export", "--out", file); out != "exported 5 runs to "+file+"\n" {
		t.Errorf("export --out: %q", out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != jsonl {
		t.Errorf("export --out wrote %q, %v", b, err)
	}
	for _, format := range []string{"msgpack", "json"} {
		out := filepath.Join(dir, format)
		c.ok("export", "--format", format, "--out", out)
		entries, err := os.ReadDir(out)
		if err != nil || len(entries) != 5 {
			t.Fatalf("export --format %s: %d files, %v", format, len(entries), err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), "."+format) {
				t.Errorf("export --format %s wrote %s", format, e.Name())
			}
		}
		if format == "json" {
			b, err := os.ReadFile(filepath.Join(out, run2+".json"))
			if err != nil || string(b) != lineOf(jsonl, run2) {
				t.Errorf("%s.json = %q, %v; want the JSON line", run2, b, err)
			}
		}
	}

	c.fails(exitUsage, []string{`--format "xml"`}, "export", "--format", "xml")
	c.fails(exitUsage, []string{`give the directory with --out`}, "export", "--format", "msgpack")
	c.fails(exitUsage, []string{`give the directory with --out \(--out - is stdout, for jsonl`}, "export", "--format", "json", "--out", "-")
	// --out - is stdout, with --json too: the JSON lines, no report.
	if got := c.ok("export", "--out", "-", "--json"); got != jsonl {
		t.Errorf("export --out - --json:\n%s", got)
	}

	// export writes the others, names the damaged one, and fails at the end.
	damage(t, raw, prefix, run3)
	r := c.run("", "export")
	if r.code != exitFailure || strings.Count(r.stdout, "\n") != 4 || strings.Contains(r.stdout, run3) ||
		!regexp.MustCompile(`^cairn export: run `+run3+`: cannot read it, skipped: .*corrupt checkpoint.*\ncairn export: 1 run could not be read \(listed above\); the 4 others were exported\n$`).MatchString(r.stderr) {
		t.Errorf("export past a corrupt run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
