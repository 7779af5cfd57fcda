package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The review's tests of the command line, run in this process (runIn).

// seededStore returns the URL of a directory store holding
// testdata/runs.jsonl.
func seededStore(t *testing.T) string {
	t.Helper()
	store := "file://" + t.TempDir()
	runs, err := filepath.Abs(filepath.Join("testdata", "runs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runIn(t, "import", runs, "--store", store); code != 0 || out != "imported 5 runs\n" {
		t.Fatalf("import: exit %d, %q, %q", code, out, errOut)
	}
	return store
}

// --crash-at NaN is not "0 < --crash-at < 1": the demo must refuse it as
// it refuses 2 or -0.1. It passes the check today (every comparison with
// NaN is false), and the demo then never reaches its crash point: the
// worker's "acknowledged ≥ NaN × steps" is never true and its limit
// int64(NaN × steps) is garbage, so `cairn demo --crash-at NaN --runs 20`
// was still running after 120 s (the same demo with the default ends in
// 2.5 s). On mem:// the check is all that runs: the store is refused
// next, for another reason, which is how this test tells them apart
// without starting a demo.
func TestReview2DemoRefusesNaNCrashAt(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "+Inf", "-Inf"} {
		_, stderr, code := runIn(t, "demo", "--crash-at", v, "--store", "mem://")
		if code != exitUsage || !strings.Contains(stderr, "--crash-at") {
			t.Errorf("demo --crash-at %s: exit %d, %q; want a usage error about --crash-at", v, code, stderr)
		}
	}
}

// `import -` reads stdin; `export --out -` should write stdout, as `-`
// means for tar -f, curl -o and docker cp. It creates a file named "-"
// in the working directory instead, and stdout gets nothing.
func TestReview2ExportOutDashIsStdout(t *testing.T) {
	store := seededStore(t)
	want, _, code := runIn(t, "export", "--store", store)
	if code != 0 || strings.Count(want, "\n") != 5 {
		t.Fatalf("export to stdout: exit %d, %q", code, want)
	}
	t.Chdir(t.TempDir())
	got, stderr, code := runIn(t, "export", "--out", "-", "--store", store)
	if code != 0 {
		t.Fatalf("export --out -: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat("-"); err == nil {
		t.Errorf("export --out - wrote a file named \"-\" (stdout: %q)", got)
	}
	if got != want {
		t.Errorf("export --out - printed %q; want the records export prints to stdout", got)
	}
}

// README: import --json gives {"mode", "dry_run", "imported", "skipped",
// "refused"} "(and each record's outcome in a dry run)"; "lists are [],
// never null". A dry run that read no record leaves "runs" out, so a
// script reading doc["runs"] of a dry run fails on an empty input.
func TestReview2DryRunJSONAlwaysListsRuns(t *testing.T) {
	store := seededStore(t)
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runIn(t, "import", "--dry-run", "--json", empty, "--store", store)
	if code != 0 {
		t.Fatalf("import --dry-run --json: exit %d, %q", code, stderr)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if runs, ok := doc["runs"]; !ok || string(runs) != "[]" {
		t.Errorf("a dry run of no record: runs = %q (present %v); want []\n%s", runs, ok, out)
	}
}

// `show` takes one run ID: once it is given, completion offers no other
// (what it offers would be a usage error).
func TestReview2ShowCompletesOneRunID(t *testing.T) {
	store := seededStore(t)
	first, _, _ := runIn(t, "__complete", "show", "--store", store, "")
	if !strings.Contains(first, run1) {
		t.Fatalf("show's first argument: completion %q lacks %s", first, run1)
	}
	second, _, _ := runIn(t, "__complete", "show", "--store", store, run1, "")
	for _, id := range []string{run2, run3, run4, run5} {
		if strings.Contains(second, id) {
			t.Errorf("after show %s, completion offers another run ID (%s), which show would refuse:\n%s", run1, id, second)
			break
		}
	}
}

// `cairn import DIR` stands for "the files in it (not its
// subdirectories, nor names starting with '.')". A symbolic link to a
// file is one of its files to a user (a directory of backups assembled
// with links), yet it is skipped without a word: the import reports
// success, and the runs it holds are missing from the store.
func TestReview2ImportDirReadsLinkedFiles(t *testing.T) {
	runs, err := filepath.Abs(filepath.Join("testdata", "runs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(runs, filepath.Join(dir, "runs.jsonl")); err != nil {
		t.Fatal(err)
	}
	store := "file://" + t.TempDir()
	out, stderr, code := runIn(t, "import", dir, "--store", store)
	if code != 0 || out != "imported 5 runs\n" {
		t.Errorf("import of a directory holding a link to runs.jsonl: exit %d, stdout %q, stderr %q; want the 5 runs imported (or at least the link named)",
			code, out, stderr)
	}
}
