package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A directory's object file that is not an object file at all (not one
// whose body is damaged) still gives one line that names the run.
func TestCorruptObjectFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, env: cliEnv(), store: "file://" + dir}
	seed(c)
	if err := os.WriteFile(filepath.Join(dir, "runs", run1+".obj"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.fails(exitFailure, []string{`^cairn show: load ` + run1 + `: .*corrupt object file`}, "show", run1)
	// verify names it in its report; reindex indexes the others, names it
	// and leaves it in place, and exits with 1.
	r := c.fails(exitFailure, []string{`^cairn verify: 1 problem found`}, "verify")
	if !regexp.MustCompile(`(?m)^corrupt +` + run1 + `: .*corrupt object file .*` + run1 + `\.obj`).MatchString(r.stdout) {
		t.Errorf("verify's report does not name the damaged file:\n%s", r.stdout)
	}
	r = c.fails(exitFailure, []string{`^cairn reindex: 1 unreadable object skipped`}, "reindex")
	if !regexp.MustCompile(`(?m)^skipped +`+run1+`: .*corrupt object file .*`+run1+`\.obj.*\(left in place\)$`).MatchString(r.stdout) ||
		!strings.HasSuffix(r.stdout, "indexed 4 runs of 5 objects\n") {
		t.Errorf("reindex's report:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "runs", run1+".obj")); err != nil {
		t.Errorf("reindex touched the damaged file: %v", err)
	}
	if out := c.ok("rm", run1); out != "deleted "+run1+"\n" {
		t.Errorf("rm of a damaged object file: %q", out)
	}
	if out := c.ok("verify"); out != "checked 4 run objects\nok\n" {
		t.Errorf("verify after rm: %q", out)
	}
}
