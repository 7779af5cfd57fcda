package main

import (
	"bytes"
	"context"
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

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The end-to-end tests run the built binary (buildDemoBinary, shared with
// the demo's tests) against a directory store and against MinIO, with the
// same checks and the same golden files: a store's output must not depend
// on its backend. Each command's tests are in its own file (ls_test.go,
// show_test.go...), listed in commandTests.

// commandTests are the tests of the operator commands, each run against
// every backend by TestCommandsDirectory and TestCommandsMinIO.
var commandTests = []struct {
	name string
	test func(t *testing.T, b backend)
}{
	{"ls", testLs},
	{"ls --label", testLsLabels},
	{"ls --claimable", testLsClaimable},
	{"labels in show, export and import", testLabelsTransfer},
	{"show", testShow},
	{"rm", testRm},
	{"export", testExport},
	{"import", testImport},
	{"import Blazen records", testImportBlazen},
	{"import refuses bad records", testImportBadRecords},
	{"verify", testVerify},
	{"reindex", testReindex},
	{"gc", testGC},
	{"regions", testRegions},
}

// testCommands runs every command's tests against stores of b.
func testCommands(t *testing.T, b backend) {
	for _, ct := range commandTests {
		t.Run(ct.name, func(t *testing.T) { ct.test(t, b) })
	}
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

// newCLI returns a cli on a fresh, empty store of b, with the bucket under
// it and the store's key prefix in that bucket.
func (b backend) newCLI(t *testing.T) (*cli, bucket.Bucket, string) {
	url, raw, prefix := b.newStore(t)
	return &cli{t: t, env: b.env, store: url}, raw, prefix
}

// damage replaces the object of run, in the store at prefix in raw, with
// bytes that start as a zstd frame and are not one.
func damage(t *testing.T, raw bucket.Bucket, prefix, run string) {
	t.Helper()
	if _, err := raw.Put(context.Background(), prefix+"runs/"+run, []byte{0x28, 0xb5, 0x2f, 0xfd, 'j', 'u', 'n', 'k'}, nil); err != nil {
		t.Fatal(err)
	}
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
