package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The end-to-end tests run the built binary (buildDemoBinary, shared with
// the demo's tests) against a directory store and against MinIO, with the
// same checks and the same golden files: a store's output must not depend
// on its backend.

// backend makes fresh, empty stores of one kind for the subtests.
type backend struct {
	env []string // environment of the subprocess (credentials)
	// newStore returns the URL of an empty store, the bucket under it and
	// the key prefix of the store in that bucket ("" or "p/").
	newStore func(t *testing.T) (url string, raw bucket.Bucket, prefix string)
}

// cliEnv is the environment of the subprocess: this process's, without
// anything that could choose a store or credentials, plus extra. The
// binary is built with -race, whose runtime sleeps a second at exit unless
// told not to; a race it finds still prints on stderr, which the tests
// check, and exits with 66.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "CAIRN_STORE=") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0", "AWS_EC2_METADATA_DISABLED=true")
	return append(env, extra...)
}

// result is what a run of the binary did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// cli runs the binary on one store.
type cli struct {
	t     *testing.T
	env   []string
	store string
}

// run runs cairn with args (--store added after the command name when
// the cli has a store) and stdin.
func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	if c.store != "" && len(args) > 0 {
		args = append([]string{args[0], "--store", c.store}, args[1:]...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildDemoBinary(c.t), args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("cairn %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs cairn, requires success and a quiet stderr (not a terminal, so
// no progress), and returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	return c.okIn("", args...)
}

func (c *cli) okIn(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs cairn and requires exit code want and a one-line error on
// stderr that matches every pattern.
func (c *cli) fails(want int, patterns []string, args ...string) result {
	c.t.Helper()
	r := c.run("", args...)
	r.check(c.t, want, patterns...)
	return r
}

func (r result) check(t *testing.T, want int, patterns ...string) {
	t.Helper()
	if r.code != want {
		t.Fatalf("cairn %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, want, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "cairn ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("cairn %s: stderr is not one line starting with the command:\n%s", strings.Join(r.args, " "), r.stderr)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(r.stderr) {
			t.Errorf("cairn %s: stderr %q does not match %q", strings.Join(r.args, " "), r.stderr, p)
		}
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// The seeded runs of testdata/runs.jsonl, newest first.
var (
	run5 = "00000000-0000-4000-8000-000000000005" // 2024-03-02T22:00:00Z (given with +02:00)
	run3 = "00000000-0000-4000-8000-000000000003" // 2024-03-02T08:30:00.123Z
	run1 = "00000000-0000-4000-8000-000000000001" // 2024-03-01T10:00:00Z
	run2 = "00000000-0000-4000-8000-000000000002" // the same instant: after run1 by ID
	run4 = "00000000-0000-4000-8000-000000000004" // 2024-02-28T23:59:59.999999999Z
)

const absentRun = "00000000-0000-4000-8000-0000000000ff"

// seed imports testdata/runs.jsonl into the cli's store.
func seed(c *cli) {
	c.t.Helper()
	if out := c.ok("import", filepath.Join("testdata", "runs.jsonl")); out != "imported 5 runs\n" {
		c.t.Fatalf("import: %q", out)
	}
}

// testCommands runs every operator command against stores of b.
func testCommands(t *testing.T, b backend) {
	newCLI := func(t *testing.T) (*cli, bucket.Bucket, string) {
		url, raw, prefix := b.newStore(t)
		return &cli{t: t, env: b.env, store: url}, raw, prefix
	}

	t.Run("ls", func(t *testing.T) {
		c, _, _ := newCLI(t)
		golden(t, "ls_empty.json", c.ok("ls", "--json"))
		seed(c)
		golden(t, "ls_all.json", c.ok("ls", "--json", "--limit", "0"))
		golden(t, "ls_orders.json", c.ok("ls", "--json", "--workflow", "orders"))
		golden(t, "ls_window.json", c.ok("ls", "--json", "--since", "2024-03-01T10:00:00Z", "--until", "2024-03-02T22:00:00Z"))

		// Paging: two pages of two and a last one of one, by cursor.
		var all []string
		cursor := ""
		for page := 1; ; page++ {
			args := []string{"ls", "--json", "--limit", "2"}
			if cursor != "" {
				args = append(args, "--cursor", cursor)
			}
			out := c.ok(args...)
			golden(t, fmt.Sprintf("ls_page%d.json", page), out)
			var doc struct {
				Runs []struct {
					RunID string `json:"run_id"`
				} `json:"runs"`
				Next *string `json:"next"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Next == nil {
				t.Fatalf("ls --json: %v, or no next:\n%s", err, out)
			}
			for _, r := range doc.Runs {
				all = append(all, r.RunID)
			}
			if cursor = *doc.Next; cursor == "" {
				break
			}
		}
		if want := []string{run5, run3, run1, run2, run4}; strings.Join(all, " ") != strings.Join(want, " ") {
			t.Errorf("paged ls: %v\nwant %v", all, want)
		}

		// The table, with the cursor of the next page on stderr.
		r := c.run("", "ls", "--limit", "3")
		if r.code != 0 {
			t.Fatalf("ls: exit %d: %s", r.code, r.stderr)
		}
		golden(t, "ls_table.txt", r.stdout)
		if !regexp.MustCompile(`^more runs: repeat with --cursor [A-Za-z0-9_-]+\n$`).MatchString(r.stderr) {
			t.Errorf("ls stderr: %q", r.stderr)
		}
		if out := c.ok("ls", "--limit", "0"); strings.Count(out, "\n") != 6 {
			t.Errorf("ls --limit 0 is not a header and five runs:\n%s", out)
		}

		c.fails(exitUsage, []string{`--limit -1`}, "ls", "--limit", "-1")
		c.fails(exitUsage, []string{`--since "yesterday": want an RFC 3339 time`}, "ls", "--since", "yesterday")
		c.fails(exitUsage, []string{`--cursor: "xyz" is not a cursor`}, "ls", "--cursor", "xyz")
		if r := c.fails(exitUsage, []string{`--cursor: "x{64}"…\(100000 bytes\) is not a cursor`}, "ls", "--cursor", strings.Repeat("x", 100000)); len(r.stderr) > 300 {
			t.Errorf("a 100 KB cursor makes a %d-byte error", len(r.stderr))
		}
		c.fails(exitUsage, []string{`flag provided but not defined: -bogus`}, "ls", "--bogus")
		c.fails(exitUsage, []string{`unexpected argument "extra"`}, "ls", "extra")
	})

	t.Run("show and rm", func(t *testing.T) {
		c, _, _ := newCLI(t)
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
	})

	t.Run("export and import", func(t *testing.T) {
		c, _, _ := newCLI(t)
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

		// Each form imports into an empty store and exports the same.
		for _, args := range [][]string{{file}, {filepath.Join(dir, "msgpack")}, {filepath.Join(dir, "json")}, {"-"}} {
			d, _, _ := newCLI(t)
			stdin := ""
			if args[0] == "-" {
				stdin = jsonl
			}
			if out := d.okIn(stdin, append([]string{"import"}, args...)...); out != "imported 5 runs\n" {
				t.Errorf("import %v: %q", args, out)
			}
			if got := d.ok("export"); got != jsonl {
				t.Errorf("export after import %v:\n%s\nwant:\n%s", args, got, jsonl)
			}
		}

		c.fails(exitUsage, []string{`--format "xml"`}, "export", "--format", "xml")
		c.fails(exitUsage, []string{`give the directory with --out`}, "export", "--format", "msgpack")
	})

	t.Run("import Blazen records", func(t *testing.T) {
		c, _, _ := newCLI(t)
		dir := t.TempDir()
		a, _ := hex.DecodeString(goldenA)
		b, _ := hex.DecodeString(goldenB)
		write := func(name string, data []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		wantA := indentJSON(t, `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{"counter":42},"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"hello"}}],"metadata":{}}`)
		wantB := indentJSON(t, `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-06-10T06:13:20.123456789Z","state":{"counter":{"Json":42}},"pending_events":[],"metadata":{"run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8"}}`)
		for _, tc := range []struct {
			name string
			data []byte
			want string
		}{
			{"a.msgpack", a, wantA},
			{"b.msgpack", b, wantB},
			{"a.zst", cairn.DefaultCodec().Compress(nil, a), wantA},
			{"a-array.msgpack", positionalA(t), wantA},
		} {
			if out := c.ok("import", write(tc.name, tc.data)); out != "imported 1 run\n" {
				t.Errorf("import %s: %q", tc.name, out)
			}
			if got := c.ok("show", goldenRunID); got != tc.want {
				t.Errorf("show after importing %s:\n%s\nwant:\n%s", tc.name, got, tc.want)
			}
		}
		// Export gives back Blazen's bytes exactly.
		out := filepath.Join(dir, "out")
		c.ok("export", "--format", "msgpack", "--out", out)
		if got, err := os.ReadFile(filepath.Join(out, goldenRunID+".msgpack")); err != nil || !bytes.Equal(got, a) {
			t.Errorf("exported record:\n%x, %v\nwant golden vector A:\n%x", got, err, a)
		}

		// A legacy JSON record, indented, with a field Cairn does not know.
		if out := c.ok("import", filepath.Join("testdata", "legacy.json")); out != "imported 1 run\n" {
			t.Fatalf("import legacy.json: %q", out)
		}
		want := indentJSON(t, `{"workflow_name":"legacy","run_id":"9b2f6c1e-4d3a-4e8b-a1c2-3d4e5f6a7b8c","timestamp":"2023-12-31T23:59:59.500Z","state":{"attempt":3,"payload":{"ids":[1,2,3],"ratio":0.25}},"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"from an older Blazen"}}],"metadata":{"engine":"blazen"}}`)
		if got := c.ok("show", "9b2f6c1e-4d3a-4e8b-a1c2-3d4e5f6a7b8c"); got != want {
			t.Errorf("show of the legacy record:\n%s\nwant:\n%s", got, want)
		}

		// A directory: every file in it, not hidden files or subdirectories.
		d, _, _ := newCLI(t)
		in := t.TempDir()
		for name, data := range map[string][]byte{"b.msgpack": b, ".hidden": []byte("garbage"), "sub/x": []byte("garbage")} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(in, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(in, "legacy.json"), must(os.ReadFile(filepath.Join("testdata", "legacy.json"))), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := d.ok("import", in); out != "imported 2 runs\n" {
			t.Errorf("import DIR: %q", out)
		}
		if got := d.ok("show", goldenRunID); got != wantB {
			t.Errorf("show after importing a directory:\n%s", got)
		}
	})

	t.Run("import refuses bad records", func(t *testing.T) {
		c, _, _ := newCLI(t)
		dir := t.TempDir()
		lines := readLines(t, filepath.Join("testdata", "runs.jsonl"))
		bad := filepath.Join(dir, "bad.jsonl")
		content := lines[0] + "\n" + `{"workflow_name":"x","run_id":"not-a-uuid","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{}}` +
			"\n" + lines[1] + "\n" + `{"workflow_name":"x"}` + "\n" + "\x01garbage\n" + `{"truncated": ` + "\n"
		if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		r := c.run("", "import", bad)
		if r.code != exitFailure || r.stdout != "imported 2 runs\n" {
			t.Fatalf("import of a file with bad records: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		want := []string{
			`^cairn import: .*bad.jsonl line 2: legacy JSON: run_id: invalid UUID`,
			`^cairn import: .*bad.jsonl line 4: legacy JSON: missing field\(s\) \[run_id timestamp state pending_events metadata\]$`,
			`^cairn import: .*bad.jsonl line 5: unknown format \(first byte 0x01\)$`,
			`^cairn import: .*bad.jsonl line 6: legacy JSON: unexpected EOF$`,
			`^cairn import: 4 records could not be imported \(listed above\)$`,
		}
		got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("stderr:\n%s\nwant %d lines", r.stderr, len(want))
		}
		for i, p := range want {
			if !regexp.MustCompile(p).MatchString(got[i]) {
				t.Errorf("stderr line %d: %q does not match %q", i+1, got[i], p)
			}
		}
		c.ok("show", run1)
		c.ok("show", run2)

		// A hostile line longer than the record limit is refused once the
		// limit is read, not buffered whole.
		huge := filepath.Join(dir, "huge.jsonl")
		f, err := os.Create(huge)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s\n{\"workflow_name\":\"", lines[2])
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range cairn.DefaultCodec().MaxSize()>>20 + 1 {
			f.Write(chunk)
		}
		f.Close()
		r = c.run("", "import", huge)
		if r.code != exitFailure || r.stdout != "imported 1 run\n" || !strings.Contains(r.stderr, "huge.jsonl line 2: record longer than the limit of 16777216 bytes") {
			t.Errorf("import of a huge line: stdout %q, stderr:\n%s", r.stdout, r.stderr)
		}
		// The same for a binary file.
		big := filepath.Join(dir, "big.msgpack")
		if err := os.WriteFile(big, append([]byte{0xde}, make([]byte, cairn.DefaultCodec().MaxSize()*2)...), 0o644); err != nil {
			t.Fatal(err)
		}
		r = c.run("", "import", big)
		if r.code != exitFailure || !strings.Contains(r.stderr, "big.msgpack: larger than the limit of") {
			t.Errorf("import of a huge binary file: exit %d, stderr:\n%s", r.code, r.stderr)
		}

		c.fails(exitFailure, []string{`no such file or directory`}, "import", filepath.Join(dir, "missing.jsonl"))
		c.fails(exitUsage, []string{`missing argument`}, "import")
	})

	t.Run("verify, reindex, gc", func(t *testing.T) {
		c, raw, prefix := newCLI(t)
		seed(c)
		before := c.ok("ls", "--json", "--limit", "0")
		if out := c.ok("verify"); out != "checked 5 run objects\nok\n" {
			t.Errorf("verify: %q", out)
		}
		if out := c.ok("reindex"); out != "indexed 5 runs of 5 objects\n" {
			t.Errorf("reindex: %q", out)
		}
		if got := c.ok("ls", "--json", "--limit", "0"); got != before {
			t.Errorf("ls after reindex:\n%s\nwant:\n%s", got, before)
		}

		// An object that no index entry lists (a Save whose commit was
		// lost): verify reports it, gc never deletes it, reindex lists it.
		unindexed := "00000000-0000-4000-8000-0000000000aa"
		rec, err := cairn.DefaultCodec().Marshal(&cairn.Checkpoint{WorkflowName: "unindexed", RunID: uuid.MustParse(unindexed),
			Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Put(context.Background(), prefix+"runs/"+unindexed, rec, nil); err != nil {
			t.Fatal(err)
		}
		r := c.run("", "verify")
		r.check(t, exitFailure, `^cairn verify: 1 problem found`)
		if want := "checked 6 run objects\nunindexed   " + unindexed + ": a run the index does not list, such as a save whose commit was lost (reindex adds it; gc never deletes it)\n"; r.stdout != want {
			t.Errorf("verify stdout:\n%s\nwant:\n%s", r.stdout, want)
		}
		for _, args := range [][]string{{"gc", "--dry-run", "--grace", "1ms"}, {"gc", "--grace", "1ms"}} {
			want := "kept unindexed run " + unindexed + " (cairn reindex lists it)\n"
			if out := c.ok(args...); !strings.HasPrefix(out, want) || !strings.Contains(out, " 0 expired runs, 0 objects of deleted runs, ") {
				t.Errorf("%v: %q", args, out)
			}
		}
		if out := c.ok("reindex"); out != "indexed 6 runs of 6 objects\n" {
			t.Errorf("reindex: %q", out)
		}
		if out := c.ok("verify"); out != "checked 6 run objects\nok\n" {
			t.Errorf("verify after reindex: %q", out)
		}
		if got := c.ok("ls", "--json", "--limit", "0"); !strings.Contains(got, unindexed) {
			t.Errorf("ls after reindex lacks the unindexed run:\n%s", got)
		}
		c.fails(exitUsage, []string{`--grace 0s: want a positive duration`}, "gc", "--grace", "0")
	})

	t.Run("corrupt object", func(t *testing.T) {
		c, raw, prefix := newCLI(t)
		seed(c)
		// The bucket holds the run's object, but its bytes are damaged.
		if _, err := raw.Put(context.Background(), prefix+"runs/"+run3, []byte{0x28, 0xb5, 0x2f, 0xfd, 'j', 'u', 'n', 'k'}, nil); err != nil {
			t.Fatal(err)
		}
		c.fails(exitFailure, []string{`^cairn show: load ` + run3 + `: .*corrupt checkpoint: not a valid zstd frame`}, "show", run3)
		r := c.run("", "verify")
		r.check(t, exitFailure, `1 problem found`)
		if !regexp.MustCompile(`(?m)^corrupt     ` + run3 + `: .*corrupt checkpoint: not a valid zstd frame.*$`).MatchString(r.stdout) {
			t.Errorf("verify stdout:\n%s", r.stdout)
		}
		// export writes the others, names it, and fails at the end.
		r = c.run("", "export")
		if r.code != exitFailure || strings.Count(r.stdout, "\n") != 4 || strings.Contains(r.stdout, run3) ||
			!regexp.MustCompile(`^cairn export: run `+run3+`: cannot read it, skipped: .*corrupt checkpoint.*\ncairn export: 1 run could not be read \(listed above\); the 4 others were exported\n$`).MatchString(r.stderr) {
			t.Errorf("export past a corrupt run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if out := c.ok("rm", run3); out != "deleted "+run3+"\n" {
			t.Errorf("rm of a corrupt run: %q", out)
		}
		if out := c.ok("verify"); out != "checked 4 run objects\nok\n" {
			t.Errorf("verify after rm: %q", out)
		}
	})
}

// goldenRunID is the run of DESIGN.md's golden vectors (golden_test.go at
// the root holds them as goldenA and goldenB; a test package cannot import
// them).
const (
	goldenRunID = "67e55044-10b1-426f-9247-bb680e5fe0c8"
	goldenA     = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70b4323032342d30312d30315430303a30303a30305aa5737461746581a7636f756e7465722aae70656e64696e675f6576656e74739182aa6576656e745f74797065b2626c617a656e3a3a53746172744576656e74a46461746181a5696e707574a568656c6c6fa86d6574616461746180"
	goldenB     = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70be323032342d30362d31305430363a31333a32302e3132333435363738395aa5737461746581a7636f756e74657281a44a736f6e2aae70656e64696e675f6576656e747390a86d6574616461746181a672756e5f6964d92436376535353034342d313062312d343236662d393234372d626236383065356665306338"
)

// positionalA is vector A as rmp-serde's to_vec writes it: structs as
// arrays of their fields, in order.
func positionalA(t *testing.T) []byte {
	s := "96" + // [workflow_name, run_id, timestamp, state, pending_events, metadata]
		"a464656d6f" + "c41067e5504410b1426f9247bb680e5fe0c8" +
		"b4323032342d30312d30315430303a30303a30305a" +
		"81a7636f756e7465722a" +
		"91" + "92" + "b2626c617a656e3a3a53746172744576656e74" + "81a5696e707574a568656c6c6f" +
		"80"
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indentJSON(t *testing.T, s string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.String() + "\n"
}

// exportLines exports the cli's store and returns its lines by run ID.
func exportLines(t *testing.T, c *cli) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(c.ok("export"), "\n"), "\n") {
		var r struct {
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		m[r.RunID] = l
	}
	return m
}

// lineOf returns the line of jsonl that holds run, with its newline.
func lineOf(jsonl, run string) string {
	for _, l := range strings.SplitAfter(jsonl, "\n") {
		if strings.Contains(l, `"run_id":"`+run+`"`) {
			return l
		}
	}
	return "(no line for " + run + ")"
}

func readLines(t *testing.T, path string) []string {
	var out []string
	for _, l := range strings.Split(string(must(os.ReadFile(path))), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCommandsDirectory(t *testing.T) {
	t.Parallel()
	testCommands(t, backend{env: cliEnv(), newStore: func(t *testing.T) (string, bucket.Bucket, string) {
		dir := t.TempDir()
		raw, err := bucket.NewDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return "file://" + dir, raw, ""
	}})
}

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
	if r := c.run("", "ls", "-h"); r.code != exitOK || !strings.HasPrefix(r.stderr, "usage: cairn ls [flags]") || !strings.Contains(r.stderr, "-workflow") {
		t.Errorf("ls -h: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if r := c.run("", "show", "--store", "mem://", absentRun); r.code != exitNotFound {
		t.Errorf("show on mem://: exit %d: %s", r.code, r.stderr)
	}
}

func TestCommandsMinIO(t *testing.T) {
	t.Parallel()
	srv := miniofixture.Start(context.Background(), t)
	creds := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
	bkt := srv.NewBucket(t)
	raw := s3store.NewS3(srv.NewClient(t), bkt)
	storeURL := func(bucketName, prefix string) string {
		return "s3://" + bucketName + "/" + prefix + "?endpoint=" + srv.Endpoint + "&region=" + srv.Region + "&path_style=true"
	}
	n := 0
	testCommands(t, backend{env: cliEnv(creds...), newStore: func(t *testing.T) (string, bucket.Bucket, string) {
		n++
		prefix := fmt.Sprintf("t%d", n)
		return storeURL(bkt, prefix), raw, prefix + "/"
	}})

	t.Run("missing bucket", func(t *testing.T) {
		c := &cli{t: t, env: cliEnv(creds...), store: storeURL("no-such-bucket-here", "p")}
		c.fails(exitFailure, []string{`^cairn ls: list: the bucket does not exist \(create it, or fix the bucket in the store URL\)\n$`}, "ls")
		c.fails(exitFailure, []string{`^cairn show: load ` + run1 + `: the bucket does not exist`}, "show", run1)
	})
	t.Run("wrong credentials", func(t *testing.T) {
		wrong := "wrong-" + srv.SecretKey
		c := &cli{t: t, env: cliEnv("AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+wrong, "AWS_REGION="+srv.Region), store: storeURL(bkt, "p")}
		for _, args := range [][]string{{"ls"}, {"verify"}, {"import", filepath.Join("testdata", "legacy.json")}} {
			r := c.fails(exitFailure, []string{`access denied \(SignatureDoesNotMatch\): check the AWS credentials`}, args...)
			if strings.Contains(r.stdout+r.stderr, wrong) || strings.Contains(r.stdout+r.stderr, srv.AccessKey) {
				t.Errorf("credentials printed: %s%s", r.stdout, r.stderr)
			}
		}
		c = &cli{t: t, env: cliEnv("AWS_REGION=" + srv.Region), store: storeURL(bkt, "p")}
		c.fails(exitFailure, []string{`no AWS credentials found`}, "ls")
	})
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
