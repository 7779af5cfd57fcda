package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// The tests of the command line itself: flags anywhere, global flags,
// help, suggestions, version, completion, times.

// Flags may come before or after the arguments, in their double-dash or
// (as before cobra) single-dash spelling, with their value after = or as
// the next argument; "--" ends them, and a flag's value that starts with
// a dash is a value.
func TestFlagsAnywhere(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := "file://" + dir
	seed(&cli{t: t, env: cliEnv(), store: store})
	c := &cli{t: t, env: cliEnv()}
	want := c.ok("show", "--store", store, run1)
	for _, args := range [][]string{
		{"show", run1, "--store", store},
		{"--store", store, "show", run1},
		{"--store=" + store, "show", run1},
		{"show", "-store", store, run1},
		{"-store=" + store, "show", run1},
		{"show", run1, "--timeout", "1m", "--store", store},
	} {
		if got := c.ok(args...); got != want {
			t.Errorf("cairn %s:\n%s\nwant:\n%s", strings.Join(args, " "), got, want)
		}
	}
	want = c.ok("ls", "--store", store, "--limit", "2", "--json")
	for _, args := range [][]string{
		{"ls", "--json", "--limit=2", "--store", store},
		{"--json", "ls", "--store", store, "-limit", "2"},
		{"ls", "-json", "-limit=2", "-store", store},
		{"-json", "--store", store, "ls", "--limit", "2"},
	} {
		if got := c.ok(args...); got != want {
			t.Errorf("cairn %s:\n%s\nwant:\n%s", strings.Join(args, " "), got, want)
		}
	}
	// A value that starts with a dash is the flag's value: no workflow
	// is called "-json", so the table is empty (not a JSON document).
	if got := c.ok("ls", "--store", store, "--workflow", "-json"); got != "RUN ID  WORKFLOW  TIMESTAMP  SIZE  LABELS\n" {
		t.Errorf("ls --workflow -json: %q", got)
	}
	c.fails(exitUsage, []string{`^cairn show: invalid run ID "-json"`}, "show", "--store", store, "--", "-json")
	c.fails(exitUsage, []string{`^cairn ls: unknown shorthand flag: 'b' in -bogus`}, "ls", "-bogus", "--store", store)
	c.fails(exitUsage, []string{`^cairn show: unexpected argument "` + run2 + `" \(run cairn show --help\)`}, "show", run1, run2, "--store", store)
}

// The global flags work with every command: --json documents,
// --timeout before the command, --debug's log on stderr; a command that
// has no JSON output refuses --json.
func TestGlobalFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, env: cliEnv(), store: "file://" + dir}
	seed(c)
	var v verifyJSON
	if err := json.Unmarshal([]byte(c.ok("verify", "--json")), &v); err != nil || v.Objects != 5 || !v.OK || v.Problems == nil || len(v.Problems) != 0 {
		t.Errorf("verify --json: %+v, %v", v, err)
	}
	var ri reindexJSON
	if err := json.Unmarshal([]byte(c.ok("--json", "reindex")), &ri); err != nil || ri.Objects != 5 || ri.Indexed != 5 || ri.Dead == nil {
		t.Errorf("reindex --json: %+v, %v", ri, err)
	}
	var g gcJSON
	if err := json.Unmarshal([]byte(c.ok("gc", "--dry-run", "--json")), &g); err != nil || !g.DryRun || g.Expired == nil {
		t.Errorf("gc --json: %+v, %v", g, err)
	}
	r := c.run("", "rm", run1, absentRun, "--json")
	var rm rmJSON
	if err := json.Unmarshal([]byte(r.stdout), &rm); err != nil || r.code != exitNotFound ||
		strings.Join(rm.Deleted, " ") != run1 || strings.Join(rm.Missing, " ") != absentRun {
		t.Errorf("rm --json: exit %d, %+v, %v\n%s", r.code, rm, err, r.stderr)
	}
	var im importJSON
	if err := json.Unmarshal([]byte(c.ok("import", "--json", filepath.Join("testdata", "runs.jsonl"))), &im); err != nil ||
		im.Mode != "if-newer" || im.DryRun || im.Imported != 1 || im.Skipped != 4 || im.Refused != 0 || im.Runs != nil {
		t.Errorf("import --json: %+v, %v", im, err)
	}
	var ver versionInfo
	if err := json.Unmarshal([]byte(c.ok("version", "--json")), &ver); err != nil || ver.Go != runtime.Version() {
		t.Errorf("version --json: %+v, %v", ver, err)
	}
	c.fails(exitUsage, []string{`^cairn demo: demo has no --json output\n$`}, "demo", "--json")
	(&cli{t: t, env: cliEnv()}).fails(exitUsage, []string{`^cairn ls: invalid argument "soon" for "--timeout" flag`}, "--timeout", "soon", "ls", "--store", c.store)

	r = c.run("", "--debug", "ls", "--limit", "1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "RUN ID") || !regexp.MustCompile(`(?m)^time=\S+ level=DEBUG msg="open store" url=file://\S+ read_only=true`).MatchString(r.stderr) {
		t.Errorf("--debug ls: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// Help goes to stdout, for the root and for a command, with "help CMD"
// or "CMD --help"; a name that is no command is a usage error that names
// the commands it may be a typo of.
func TestHelp(t *testing.T) {
	t.Parallel()
	root, _, code := runIn(t)
	if code != exitOK || !strings.Contains(root, "Available Commands:\n") || !strings.Contains(root, "\n  verify ") {
		t.Errorf("cairn: exit %d\n%s", code, root)
	}
	if help, _, _ := runIn(t, "help"); help != root {
		t.Errorf("cairn help differs from cairn:\n%s", help)
	}
	ls, stderr, code := runIn(t, "help", "ls")
	if code != exitOK || stderr != "" || !strings.Contains(ls, "Usage:\n  cairn ls [flags]\n") || !strings.Contains(ls, "--since string") {
		t.Errorf("cairn help ls: exit %d, stderr %q\n%s", code, stderr, ls)
	}
	for _, args := range [][]string{{"ls", "--help"}, {"ls", "-h"}, {"--help", "ls"}, {"ls", "-help"}} {
		if got, _, code := runIn(t, args...); got != ls || code != exitOK {
			t.Errorf("cairn %s: exit %d\n%s", strings.Join(args, " "), code, got)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lss"}, `cairn: unknown command "lss" (did you mean ls? run cairn help)` + "\n"},
		{[]string{"verfy", "--store", "mem://"}, `cairn: unknown command "verfy" (did you mean verify? run cairn help)` + "\n"},
		{[]string{"expotr"}, `cairn: unknown command "expotr" (did you mean export? run cairn help)` + "\n"},
		{[]string{"frobnicate"}, `cairn: unknown command "frobnicate" (run cairn help)` + "\n"},
		{[]string{"help", "lss"}, `cairn help: unknown help topic "lss" (did you mean ls? run cairn help)` + "\n"},
		{[]string{"completion", "tcsh"}, `cairn completion: unknown shell "tcsh" (want bash, fish, powershell, zsh)` + "\n"},
	} {
		stdout, stderr, code := runIn(t, tc.args...)
		if code != exitUsage || stderr != tc.want || stdout != "" {
			t.Errorf("cairn %s: exit %d, stderr %q, stdout %q; want exit 2, %q", strings.Join(tc.args, " "), code, stderr, stdout, tc.want)
		}
	}
}

// The demo's internal flags, with which it starts its own processes, are
// not in its help.
func TestDemoHelpHidesInternalFlags(t *testing.T) {
	t.Parallel()
	out, _, code := runIn(t, "demo", "--help")
	if code != exitOK || !strings.Contains(out, "--runs int") || strings.Contains(out, "--worker string") || strings.Contains(out, "--resume-as") || strings.Contains(out, "internal") {
		t.Errorf("demo --help: exit %d\n%s", code, out)
	}
}

// The version comes from the build information: module version, VCS
// revision, time and state, Go version.
func TestVersion(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/cairnstore/cairn", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-02-03T04:05:06Z"},
			{Key: "vcs.modified", Value: "true"}, {Key: "-race", Value: "true"}}}
	v := versionOf(bi)
	want := versionInfo{Version: "v1.4.0", Module: "github.com/cairnstore/cairn", Revision: "0123456789abcdef0123", Time: "2026-02-03T04:05:06Z",
		Modified: true, Go: "go1.26.1", Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if v != want {
		t.Errorf("versionOf = %+v, want %+v", v, want)
	}
	var buf bytes.Buffer
	printVersion(&buf, v)
	if want := "cairn v1.4.0\n  module    github.com/cairnstore/cairn\n  revision  0123456789abcdef0123 (modified)\n  time      2026-02-03T04:05:06Z\n  go        go1.26.1\n  platform  " + want.Platform + "\n"; buf.String() != want {
		t.Errorf("printVersion:\n%s\nwant:\n%s", buf.String(), want)
	}
	if v := versionOf(&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "m"}}); v.Version != "(devel)" || v.Revision != "" || v.Modified {
		t.Errorf("a build without version or VCS: %+v", v)
	}

	// The binary's own: built by this toolchain from this module.
	c := &cli{t: t, env: cliEnv()}
	out := c.ok("version")
	if !strings.HasPrefix(out, "cairn ") || !strings.Contains(out, "  module    github.com/cairnstore/cairn/cmd/cairn\n") || !strings.Contains(out, "  go        "+runtime.Version()+"\n") {
		t.Errorf("version:\n%s", out)
	}
	if out := c.ok("--version"); !regexp.MustCompile(`^cairn \S+( \(\w+(, modified)?\))? ` + regexp.QuoteMeta(runtime.Version()) + "\n$").MatchString(out) {
		t.Errorf("--version: %q", out)
	}
}

// Completion: cobra's scripts for each shell, and run IDs completed from
// the store for show and rm.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, stderr, code := runIn(t, "completion", shell)
		if code != exitOK || stderr != "" || !strings.Contains(out, "cairn") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(out))
		}
	}
	store := "file://" + t.TempDir()
	seed(&cli{t: t, env: cliEnv(), store: store})
	out, _, code := runIn(t, "__complete", "show", "--store", store, "00000000-0000-4000-8000-00000000000")
	want := run5 + "\t\"unicode ✓ wf\" 2024-03-02T22:00:00Z\n" + run3 + "\tbilling 2024-03-02T08:30:00.123Z\n"
	if code != exitOK || !strings.HasPrefix(out, want) || !strings.Contains(out, run4+"\t") || !strings.HasSuffix(out, ":4\n") {
		t.Errorf("__complete show: exit %d\n%s", code, out)
	}
	out, _, _ = runIn(t, "__complete", "rm", "--store", store, run1, "")
	if strings.Count(out, "\n") != 5 || strings.Contains(out, run1) || !strings.Contains(out, run2+"\torders 2024-03-01T10:00:00Z\n") {
		t.Errorf("__complete rm RUN1: the runs but RUN1: %q", out)
	}
}

// --since and --until take a date, an RFC 3339 time or how long ago.
func TestTimeArgs(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)
	e := &env{now: func() time.Time { return now }}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2024-01-01", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2024-01-01T10:00:00Z", time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)},
		{"2024-01-01T10:00:00.5+02:00", time.Date(2024, 1, 1, 8, 0, 0, 5e8, time.UTC)},
		{"2024-01-01 10:00:00Z", time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)},
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"", time.Time{}},
	} {
		got, err := timeArg(e, "since", tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("timeArg(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "-24h", "0s", "0d", "7 d", "2024-13-01", "2024-01-01T25:00:00Z", "d", "1.5d"} {
		if _, err := timeArg(e, "until", bad); exitCode(err) != exitUsage ||
			!strings.HasPrefix(err.Error(), "--until "+quoteShort(bad)+": want a date (2024-01-01), an RFC 3339 time (2024-01-01T10:00:00Z) or how long ago (90m, 24h, 7d)") {
			t.Errorf("timeArg(%q): %v", bad, err)
		}
	}

	// On the seeded runs (testdata/runs.jsonl), "now" 2024-03-03.
	store := "file://" + t.TempDir()
	seed(&cli{t: t, env: cliEnv(), store: store})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--since", "24h"}, []string{run5, run3}},
		{[]string{"--since", "2024-03-02", "--until", "2024-03-03"}, []string{run5, run3}},
		{[]string{"--since", "3d", "--until", "1d"}, []string{run1, run2}},
		{[]string{"--until", "2024-03-01T10:00:00+00:00"}, []string{run4}},
	} {
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, now: func() time.Time { return now }}
		code := run(context.Background(), e, append([]string{"ls", "--json", "--store", store}, tc.args...))
		var doc lsJSON
		if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil || code != 0 {
			t.Fatalf("ls %v: exit %d, %v, %s", tc.args, code, err, stderr.String())
		}
		var got []string
		for _, r := range doc.Runs {
			got = append(got, r.RunID)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("ls %v: %v, want %v", tc.args, got, tc.want)
		}
	}
	if _, stderr, code := runIn(t, "ls", "--store", store, "--since", "2024-03-02", "--until", "2024-03-01"); code != exitUsage ||
		stderr != `cairn ls: --since "2024-03-02" is not before --until "2024-03-01": no run can match`+"\n" {
		t.Errorf("--since after --until: exit %d, %q", code, stderr)
	}
}
