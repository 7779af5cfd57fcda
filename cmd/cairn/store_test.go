package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// Mistakes in the command line are usage errors (2), failures to reach
// the store failures (1), each one line.
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: cliEnv("AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret-never-printed", "AWS_REGION=us-east-1")}
	for _, tc := range []struct {
		store    string
		code     int
		patterns []string
	}{
		{"ftp://host/x", exitUsage, []string{`^cairn ls: store URL "ftp://host/x": unknown scheme "ftp" \(want file, mem or s3\)\n$`}},
		{"file://host/x", exitUsage, []string{`file URLs name a local path`}},
		{"s3:///prefix", exitUsage, []string{`s3 URL without a bucket`}},
		{"s3://b/p?path_style=maybe", exitUsage, []string{`parameter path_style: want true or false`}},
		{"s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1&path_style=true", exitFailure,
			[]string{`^cairn ls: list: cannot reach the endpoint 127\.0\.0\.1:1: .*connection refused\n$`}},
	} {
		r := c.run("", "ls", "--store", tc.store)
		r.check(t, tc.code, tc.patterns...)
		if strings.Contains(r.stderr, "secret-never-printed") {
			t.Errorf("the secret key was printed: %s", r.stderr)
		}
	}
	if r := c.run("", "ls", "-h"); r.code != exitOK || r.stderr != "" || !strings.Contains(r.stdout, "Usage:\n  cairn ls [flags]\n") || !strings.Contains(r.stdout, "--workflow") {
		t.Errorf("ls -h: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := c.run("", "show", "--store", "mem://", absentRun); r.code != exitNotFound {
		t.Errorf("show on mem://: exit %d: %s", r.code, r.stderr)
	}
}

// The commands that only read open the store read-only: a file:// store
// that does not exist is an error naming its directory (exit 1), not a
// new empty store, and nothing is created. A store path the system
// refuses (through a file) is a failure (1), not a usage error (2), for
// every command.
func TestReadOnlyOpen(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "typo")
	c := &cli{t: t, env: cliEnv(), store: "file://" + missing}
	for _, args := range [][]string{{"ls"}, {"show", run1}, {"verify"}, {"export"}, {"gc", "--dry-run"}, {"import", "--dry-run", "testdata/runs.jsonl"}} {
		c.fails(exitFailure, []string{`^cairn ` + args[0] + `: store directory ` + regexp.QuoteMeta(missing) + ` does not exist \(this command only reads, and creates nothing`}, args...)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only command created the store: %v", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c = &cli{t: t, env: cliEnv(), store: "file://" + file + "/store"}
	c.fails(exitFailure, []string{`^cairn ls: stat ` + regexp.QuoteMeta(file) + `/store: not a directory\n$`}, "ls")
	c.fails(exitFailure, []string{`^cairn import: .*` + regexp.QuoteMeta(file) + `.*not a directory`}, "import", "testdata/runs.jsonl")
	c = &cli{t: t, env: cliEnv(), store: "file://" + file}
	c.fails(exitFailure, []string{`^cairn ls: store directory ` + regexp.QuoteMeta(file) + ` is not a directory\n$`}, "ls")
}

// The commands that only read create nothing in an existing store
// directory: no lock file, no temporary directory.
//
// This needs the read-only directory store (tiered.Options.ReadOnly),
// which openStore sets once it exists (see its MERGE note): until then
// the directory store creates its lock file and temporary directory on
// open, and this test fails.
func TestReadOnlyOpenCreatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, env: cliEnv(), store: "file://" + dir}
	for _, args := range [][]string{{"ls"}, {"verify"}, {"export"}, {"gc", "--dry-run"}} {
		c.ok(args...)
	}
	c.fails(exitNotFound, nil, "show", run1)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("read-only commands left %v in the store directory (%v)", names, err)
	}
}

// A stopped command whose grace has passed says that what it saved may
// not be durable only when Saves were left unflushed: a write-through
// store has none (each Save was durable when it returned), whatever its
// Close on the ended context reports.
func TestCloseStoreNotDurableOnlyWhenUnflushed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		opts       tiered.Options
		notDurable bool
	}{
		{"write-through", tiered.Options{}, false},
		{"write-back, unflushed", tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, stop := context.WithCancel(context.Background())
			g := newGrace(ctx, time.Millisecond)
			ctx = context.WithValue(ctx, graceKey{}, g)
			e := &env{getenv: func(string) string { return "" }}
			s, err := openStore(ctx, e, "mem://", false, &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			cp := &cairn.Checkpoint{WorkflowName: "w", RunID: uuid.New(), Timestamp: time.Now(), State: map[string]any{"n": int64(1)}}
			if err := s.Save(ctx, cp); err != nil {
				t.Fatal(err)
			}
			stop()
			<-g.ctx.Done() // the grace has passed
			err = nil
			closeStore(ctx, s, &err)
			if got := errors.Is(err, errNotDurable); got != tc.notDurable {
				t.Errorf("closeStore: %v; want not durable: %v", err, tc.notDurable)
			}
		})
	}
}
