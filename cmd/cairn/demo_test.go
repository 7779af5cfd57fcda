package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/tiered"
)

var demoBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if demoBin.path != "" {
		os.RemoveAll(filepath.Dir(demoBin.path))
	}
	os.Exit(code)
}

// buildDemoBinary builds cmd/cairn once per test binary: the demo starts
// its worker as a second process of the same executable.
func buildDemoBinary(t *testing.T) string {
	t.Helper()
	demoBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "cairn-demo-bin")
		if err != nil {
			demoBin.err = err
			return
		}
		demoBin.path = filepath.Join(dir, "cairn")
		demoBin.out, demoBin.err = exec.Command("go", "build", "-race", "-o", demoBin.path, ".").CombinedOutput()
	})
	if demoBin.err != nil {
		t.Fatalf("go build: %v\n%s", demoBin.err, demoBin.out)
	}
	return demoBin.path
}

// runDemoBinary runs the built binary with args and extra environment, and
// returns its stdout, stderr and exit code.
func runDemoBinary(t *testing.T, envv []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildDemoBinary(t), args...)
	cmd.Env = append(os.Environ(), envv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

var demoWorkflow = regexp.MustCompile(`workflow: (demo-[0-9a-f]{8})`)

// checkDemo runs the demo on store and checks its report, then checks the
// store itself: every run of the demo listed, finished, and the index
// agreeing with the objects.
func checkDemo(t *testing.T, envv []string, store string, runs int) {
	t.Helper()
	args := []string{"demo", "--runs", "80", "--work", "2ms"}
	if store != "" {
		args = append(args, "--store", store)
	}
	stdout, stderr, code := runDemoBinary(t, envv, args...)
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Killed it with SIGKILL", "Verified: all 80 runs", "Saves per PUT", "Load, cache hit"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, stdout)
		}
	}
	m := demoWorkflow.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no workflow name in the report:\n%s", stdout)
	}
	if store == "" {
		return
	}
	ctx := context.Background()
	for _, kv := range envv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	s, err := tiered.Open(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	n := 0
	for sum, err := range cairn.All(ctx, s, &cairn.ListOptions{WorkflowName: m[1], WithCheckpoints: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if sum.Checkpoint.State["done"] != true || sum.Checkpoint.State["total"] != expectedTotal(sum.RunID) {
			t.Errorf("run %v not finished right: %v", sum.RunID, sum.Checkpoint.State)
		}
		n++
	}
	if n != runs {
		t.Fatalf("the store lists %d runs of %s, want %d", n, m[1], runs)
	}
	rep, err := s.Durable().Verify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after the demo: %+v, %v", rep, err)
	}
}

func TestDemoDirectory(t *testing.T) {
	checkDemo(t, nil, "file://"+t.TempDir(), 80)
}

// With neither --store nor CAIRN_STORE the demo runs on the embedded
// default, a directory under the user's data directory.
func TestDemoDefaultStore(t *testing.T) {
	home := t.TempDir()
	checkDemo(t, []string{"HOME=" + home, "XDG_DATA_HOME=", "CAIRN_STORE="}, "", 80)
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "cairn")); err != nil {
		t.Fatalf("the default store is not where the docs say: %v", err)
	}
}

func TestDemoMinIO(t *testing.T) {
	srv := miniofixture.Start(context.Background(), t)
	envv := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
	store := "s3://" + srv.NewBucket(t) + "/demo?endpoint=" + srv.Endpoint + "&region=" + srv.Region + "&path_style=true"
	checkDemo(t, envv, store, 80)
}

func TestDemoRefusesMem(t *testing.T) {
	_, stderr, code := runDemoBinary(t, nil, "demo", "--store", "mem://")
	if code != exitUsage || !strings.Contains(stderr, "needs a file:// or s3:// store") {
		t.Fatalf("demo on mem:// exited %d: %s", code, stderr)
	}
}

// The demo's checks can fail: a run missing a step, a run done twice, a
// lost acknowledged step are each reported.
func TestDemoChecksCatchLosses(t *testing.T) {
	ctx := context.Background()
	s, err := tiered.Open(ctx, "mem://", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	cfg := &demoConfig{workflow: "demo-test", runs: 3, workers: 2}
	for i := range cfg.runs {
		var c *cairn.Checkpoint
		for k := 1; k <= len(demoSteps); k++ {
			c = demoStep(c, cfg, cfg.runID(i), k, "test")
			if i == 1 && k == 3 {
				c = demoStep(c, cfg, cfg.runID(i), k, "test") // step 3 twice
			}
			if i == 2 && k == len(demoSteps) {
				break // never saves its last step
			}
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, err := verifyDemo(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.problems) != 2 || !strings.Contains(v.problems[0], "ran steps [1 2 3 3") || !strings.Contains(v.problems[1], "is not done") {
		t.Fatalf("problems = %q, want run 1's repeated step and run 2 unfinished", v.problems)
	}
	// Run 2 holds step 5; a worker that had acknowledged step 6 lost it.
	if _, err := resume(ctx, s, cfg, map[int]int{2: len(demoSteps)}); err == nil || !strings.Contains(err.Error(), "was acknowledged durable") {
		t.Fatalf("resume with a lost acknowledged step: %v", err)
	}
}

// A flush cut between its PUTs and its index commit leaves a new run
// unlisted (with an object Load would find) and a listed run at an older
// step than its object. resume starts the unlisted run over; the repair
// step finds the other with Verify and brings its entry up to date.
func TestDemoRecoversAFlushCutBeforeItsCommit(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	cfg := &demoConfig{store: store, workflow: "demo-cut", runs: 2, workers: 2}
	s, _, err := openStore(ctx, e, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	var listed *cairn.Checkpoint
	for k := 1; k < len(demoSteps); k++ {
		listed = demoStep(listed, cfg, cfg.runID(0), k, "test")
		if err := s.Save(ctx, listed); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(ctx)
	// What the killed flush wrote: objects, and no index commit (the
	// bucket refuses the index's writes).
	dir, err := bucket.NewDir(strings.TrimPrefix(store, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := durable.New(noIndexWrites{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []durable.Record
	for _, c := range []*cairn.Checkpoint{demoStep(listed, cfg, cfg.runID(0), len(demoSteps), "test"), demoStep(nil, cfg, cfg.runID(1), 1, "test")} {
		rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, durable.Record{RunID: c.RunID, Workflow: c.WorkflowName, Timestamp: c.Timestamp, Data: rec})
	}
	wr, err := d.Write(ctx, recs, nil)
	if !errors.Is(err, errIndexCut) || len(wr) != 2 || wr[0].Err != nil || wr[1].Err != nil {
		t.Fatalf("the cut flush: %+v, %v; want both objects written and the commit refused", wr, err)
	}
	d.Close(ctx)
	s, _, err = openStore(ctx, e, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Durable().Verify(ctx); err != nil || len(rep.Unindexed) != 1 || len(rep.Mismatched) != 1 {
		t.Fatalf("Verify after the cut: %+v, %v; want one unindexed run and one mismatch", rep, err)
	}
	s.Close(ctx)
	s, _, err = openStore(ctx, e, store, nil) // a fresh process resumes
	if err != nil {
		t.Fatal(err)
	}
	res, err := resume(ctx, s, cfg, map[int]int{0: len(demoSteps) - 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.finished != 1 || res.fromScratch != 1 || res.steps != len(demoSteps) {
		t.Fatalf("resume: %+v; want run 0 finished (its object) and run 1 started over", res)
	}
	s.Close(ctx)
	if err := repairAfterCrash(ctx, e, cfg); err != nil {
		t.Fatal(err)
	}
	if out := e.stdout.(*bytes.Buffer).String(); !strings.Contains(out, "1 finished run(s) were listed at an") {
		t.Fatalf("report: %s", out)
	}
	s, _, err = openStore(ctx, e, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if rep, err := s.Durable().Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after the repair: %+v, %v", rep, err)
	}
	v, err := verifyDemo(ctx, s, cfg)
	if err != nil || len(v.problems) > 0 {
		t.Fatalf("after the recovery: %q, %v", v.problems, err)
	}
}

// errIndexCut is the error of noIndexWrites.
var errIndexCut = errors.New("index write cut")

// noIndexWrites is a bucket that refuses every write of an index object:
// a flush killed between its objects and its index commit.
type noIndexWrites struct{ bucket.Bucket }

func (b noIndexWrites) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if strings.HasPrefix(key, "index/") {
		return "", errIndexCut
	}
	return b.Bucket.Put(ctx, key, body, opts)
}
