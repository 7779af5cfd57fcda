package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
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

// demoResumers finds the resume workers' lines in the demo's report.
var demoResumers = regexp.MustCompile(`(?m)^   (w\d+) resumed +(\d+) runs \((\d+) taken over\)`)

// checkDemo runs the demo on store and checks its report, then checks the
// store itself: every run of the demo listed, finished, labelled done and
// claimable (no lease left live), and the index agreeing with the objects.
func checkDemo(t *testing.T, envv []string, store string, runs int) {
	t.Helper()
	args := []string{"demo", "--runs", fmt.Sprint(runs), "--work", "2ms"}
	if store != "" {
		args = append(args, "--store", store)
	}
	start := time.Now()
	stdout, stderr, code := runDemoBinary(t, envv, args...)
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("the demo took %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"Killed it with SIGKILL", fmt.Sprintf("Verified: all %d runs", runs), "none left status=running",
		"exactly\n   once", "takeovers: runs whose holder died", "Saves per PUT", "Load, cache hit"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, stdout)
		}
	}
	checkResumers(t, stdout)
	m := demoWorkflow.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no workflow name in the report:\n%s", stdout)
	}
	if store == "" {
		return
	}
	for _, kv := range envv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	checkDemoRuns(t, store, m[1], runs)
}

// checkResumers checks that the report names the 4 resume workers, that
// between them they resumed runs, and that there were takeovers (the
// killed worker held runs when it died).
func checkResumers(t *testing.T, stdout string) {
	t.Helper()
	lines := demoResumers.FindAllStringSubmatch(stdout, -1)
	resumed, takeovers := 0, 0
	for i, l := range lines {
		if l[1] != fmt.Sprint("w", i+1) {
			t.Errorf("resume worker %d is called %s", i+1, l[1])
		}
		n, _ := strconv.Atoi(l[2])
		k, _ := strconv.Atoi(l[3])
		resumed, takeovers = resumed+n, takeovers+k
	}
	if len(lines) != 4 || resumed == 0 || takeovers == 0 {
		t.Errorf("%d resume workers resumed %d runs with %d takeovers; want 4 workers, some runs, some takeovers:\n%s", len(lines), resumed, takeovers, stdout)
	}
}

// checkDemoRuns checks the store a demo ran on, from a fresh process's
// view: every run of workflow finished and labelled done, none running,
// none held by a lease, and Verify happy.
func checkDemoRuns(t *testing.T, store, workflow string, runs int) {
	t.Helper()
	ctx := context.Background()
	s, err := tiered.Open(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	done := map[string]string{"status": "done"}
	n := 0
	for sum, err := range cairn.All(ctx, s, &cairn.ListOptions{WorkflowName: workflow, Labels: done, Claimable: true, WithCheckpoints: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if sum.Checkpoint.State["done"] != true || sum.Checkpoint.State["total"] != expectedTotal(sum.RunID) || sum.Labels["status"] != "done" {
			t.Errorf("run %v not finished right: labels %v, state %v", sum.RunID, sum.Labels, sum.Checkpoint.State)
		}
		n++
	}
	if n != runs {
		t.Errorf("the store lists %d runs of %s done and claimable, want %d", n, workflow, runs)
	}
	running, err := s.List(ctx, &cairn.ListOptions{WorkflowName: workflow, Labels: map[string]string{"status": "running"}})
	if err != nil || len(running.Runs) > 0 {
		t.Errorf("runs left status=running: %+v, %v", running, err)
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
// run left status=running, an effect performed twice, a receipt that is
// not the ledger's, and a lost acknowledged step are each reported.
func TestDemoChecksCatchLosses(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	s, err := tiered.Open(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	cfg := &demoConfig{store: store, workflow: "demo-test", runs: 5, workers: 2, resumers: 1}
	lg := newLedger()
	for i := range cfg.runs {
		id := cfg.runID(i)
		l := &cairn.Lease{RunID: id, Owner: "test", Epoch: 1}
		c := demoSubmit(cfg, id)
		for k := 1; k <= len(demoSteps); k++ {
			rc, err := lg.perform(ctx, l, "test", k, stepValue(id, k))
			if err != nil {
				t.Fatal(err)
			}
			if i == 4 && k == 2 {
				rc.Key = "forged"
			}
			c = demoStep(c, cfg, id, k, "test", rc.Key)
			if i == 1 && k == 3 {
				c = demoStep(c, cfg, id, k, "test", rc.Key) // step 3 twice
			}
			if i == 2 && k == len(demoSteps) {
				break // never saves its last step
			}
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Run 3's effect of step 2 performed twice.
	doc := lg.mu.runs[cfg.runID(3)]
	doc.Steps = append(doc.Steps, doc.Steps[1])
	v, err := verifyDemo(ctx, s, lg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1 runs are still listed as status=running", "ran steps [1 2 3 3", "run " + cfg.runID(2).String() + " is not done",
		"step 6 kept receipt <nil>", "performed step 2 2 times", "performed 7 effects", "step 2 kept receipt forged"}
	if len(v.problems) != len(want) {
		t.Fatalf("problems = %q, want %d: %q", v.problems, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(v.problems[i], w) {
			t.Errorf("problem %d = %q, want it to say %q", i, v.problems[i], w)
		}
	}
	// Run 2 holds step 5; a worker that had acknowledged step 6 lost it.
	if err := checkAcked(cfg, map[int]int{0: 2, 2: 5}, map[int]int{0: 2, 2: len(demoSteps)}); err == nil || !strings.Contains(err.Error(), "was acknowledged durable") {
		t.Fatalf("checkAcked with a lost acknowledged step: %v", err)
	}
	if err := checkAcked(cfg, map[int]int{0: 3}, map[int]int{0: 2, 1: len(demoSteps)}); err != nil {
		t.Fatalf("checkAcked: %v", err)
	}
}

// The ledger performs each step of a run once, answers a repeat with the
// first receipt, and refuses an epoch lower than one it has seen, also
// when many requests race; its HTTP client says the same, and requests
// without the token are refused.
func TestDemoLedger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := newLedger()
	envv, err := svc.serve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		for _, kv := range envv {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				return v
			}
		}
		return ""
	}
	lg, err := ledgerFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	run := (&demoConfig{workflow: "demo-ledger-test"}).runID(0)
	one, two := &cairn.Lease{RunID: run, Epoch: 1}, &cairn.Lease{RunID: run, Epoch: 2}
	first, err := lg.perform(ctx, one, "a", 1, 7)
	if err != nil || first.Replay || first.Key != one.Key("fetch") {
		t.Fatalf("first request: %+v, %v; want performed under %s", first, err, one.Key("fetch"))
	}
	again, err := lg.perform(ctx, two, "b", 1, 7)
	if err != nil || !again.Replay || again.Key != first.Key {
		t.Fatalf("the step again under a newer epoch: %+v, %v; want a replay of %s", again, err, first.Key)
	}
	if _, err := lg.perform(ctx, one, "a", 2, 7); !errors.Is(err, errStaleEpoch) {
		t.Fatalf("epoch 1 after epoch 2 was seen: %v, want errStaleEpoch", err)
	}
	var wg sync.WaitGroup
	replays := make([]bool, 8)
	for i := range replays {
		wg.Go(func() {
			rc, err := lg.perform(ctx, two, fmt.Sprint("w", i), 2, 7)
			if err != nil {
				t.Error(err)
			}
			replays[i] = rc.Replay
		})
	}
	wg.Wait()
	if n := slices.Index(replays, false); n < 0 || slices.Index(replays[n+1:], false) >= 0 {
		t.Errorf("8 racing requests for one step: replays %v, want exactly one performed", replays)
	}
	all := svc.all()
	if len(all) != 1 || len(all[run].Steps) != 2 || all[run].Epoch != 2 {
		t.Fatalf("ledger: %+v; want run %v with 2 effects, epoch 2", all, run)
	}
	forged := &ledgerClient{url: lg.url, token: "forged", c: lg.c}
	if _, err := forged.perform(ctx, two, "x", 3, 7); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a request with a wrong token: %v, want 401", err)
	}
	if _, err := ledgerFromEnv(func(string) string { return "" }); err == nil {
		t.Error("a worker without the ledger's environment started")
	}
}

// A flush cut between its PUTs and its index commit leaves a finished run
// listed at an older step (status=running) than its object holds (done).
// A resume worker claims it from the listing, finds it finished (the
// claim's rewrite brings its entry up to date) and releases it; it
// resumes a run held by the dead worker from its last durable step, the
// effect the dead worker performed without saving answered by the ledger.
func TestDemoRecoversAFlushCutBeforeItsCommit(t *testing.T) {
	ctx := context.Background()
	store := "file://" + t.TempDir()
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	cfg := &demoConfig{store: store, workflow: "demo-cut", runs: 2, workers: 2, resumers: 1, lease: 200 * time.Millisecond}
	s, err := openStore(ctx, e, store, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	lg := newLedger()
	// The dead worker: run 0 saved to step 5, run 1 to step 2, and the
	// effects of run 0's step 6 and run 1's step 3 performed.
	last := make([]*cairn.Checkpoint, 2)
	leases := make([]*cairn.Lease, 2)
	for i, upTo := range []int{len(demoSteps) - 1, 2} {
		last[i], leases[i] = deadWorker(t, s, lg, cfg, i, upTo)
	}
	s.Close(ctx)
	cutFlush(t, store, leases[0].Stamped(last[0]))
	time.Sleep(time.Until(leases[0].Expires) + 50*time.Millisecond)

	s, err = openStore(ctx, e, store, false, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := newResumer(cfg, s, lg, "w1").resume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if rep.Resumed != 1 || rep.Takeovers != 1 || rep.Done != 1 || rep.Replays != 1 || rep.Steps != len(demoSteps)-2 ||
		rep.From[0] != len(demoSteps) || rep.From[1] != 2 {
		t.Fatalf("resume: %+v; want run 0 found finished, run 1 resumed from step 2 with one replay, both taken over", rep)
	}
	if err := repairAfterCrash(ctx, e, cfg); err != nil {
		t.Fatal(err)
	}
	s, err = openStore(ctx, e, store, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if rep, err := s.Durable().Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after the repair: %+v, %v", rep, err)
	}
	v, err := verifyDemo(ctx, s, lg, cfg)
	if err != nil || len(v.problems) > 0 {
		t.Fatalf("after the recovery: %q, %v", v.problems, err)
	}
}

// deadWorker submits run i, claims it and runs it to step upTo, saving
// and flushing each step, then performs the effect of the next step
// without saving it, as a worker killed there would. It returns the
// checkpoint of that next step (not saved) and the lease.
func deadWorker(t *testing.T, s *tiered.Store, lg effects, cfg *demoConfig, i, upTo int) (*cairn.Checkpoint, *cairn.Lease) {
	t.Helper()
	ctx := context.Background()
	id := cfg.runID(i)
	if err := s.Save(ctx, demoSubmit(cfg, id)); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, id, &cairn.ClaimOptions{Owner: crashOwner, Lease: cfg.lease})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Checkpoint
	for k := 1; k <= upTo+1; k++ {
		rc, err := lg.perform(ctx, l, crashOwner, k, stepValue(id, k))
		if err != nil {
			t.Fatal(err)
		}
		c = demoStep(c, cfg, id, k, crashOwner, rc.Key)
		if k <= upTo {
			if err := s.SaveLeased(ctx, l, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c, l
}

// cutFlush writes c's object as a flush killed before its index commit
// leaves it: the object written, the index not (the bucket refuses the
// index's writes).
func cutFlush(t *testing.T, store string, c *cairn.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	dir, err := bucket.NewDir(strings.TrimPrefix(store, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	// The commit gives up at once: it would retry for 30 s by default.
	d, err := durable.New(noIndexWrites{dir}, &durable.Options{Index: &index.Options{RetryFor: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := c.Labels()
	wr, err := d.Write(ctx, []durable.Record{{RunID: c.RunID, Workflow: c.WorkflowName, Timestamp: c.Timestamp, Labels: labels, Data: rec}}, nil)
	if !errors.Is(err, errIndexCut) || len(wr) != 1 || wr[0].Err != nil {
		t.Fatalf("the cut flush: %+v, %v; want the object written and the commit refused", wr, err)
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

// The demo refuses each flag out of its range with a usage error naming
// it, every one at once, before it looks at the store (mem://, which it
// refuses next): a negative --work, a lease or a step's work too long for
// a demo, more resume processes than it starts.
func TestDemoFlagBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--work", "-1ms"}, "--work -1ms: want 0 to 1m0s"},
		{[]string{"--work", "2m"}, "--work 2m0s: want 0 to 1m0s"},
		{[]string{"--lease", "50ms"}, "--lease 50ms: want 100ms to 1h0m0s"},
		{[]string{"--lease", "2000000h"}, "--lease 2000000h0m0s: want 100ms to 1h0m0s"},
		{[]string{"--resumers", "65"}, "--resumers 65: want 1 to 64"},
		{[]string{"--crash-at", "1"}, "--crash-at 1: want a fraction between 0 and 1"},
		{[]string{"--runs", "0", "--crash-at", "NaN", "--work", "-1s"}, "--runs 0: want 1 or more; --crash-at NaN: want a fraction between 0 and 1 (exclusive), such as 0.4; --work -1s: want 0 to 1m0s"},
	} {
		_, stderr, code := runIn(t, append([]string{"demo", "--store", "mem://"}, tc.args...)...)
		if code != exitUsage || !strings.HasPrefix(stderr, "cairn demo: "+tc.want) || !strings.HasSuffix(stderr, " (run cairn demo --help)\n") {
			t.Errorf("demo %v: exit %d, %q; want a usage error starting %q", tc.args, code, stderr, tc.want)
		}
	}
	// In range (0 work included), the flags pass, and mem:// is refused.
	_, stderr, code := runIn(t, "demo", "--store", "mem://", "--work", "0", "--lease", "1h", "--resumers", "64", "--crash-at", "0.99")
	if code != exitUsage || !strings.Contains(stderr, "not mem://") {
		t.Errorf("demo with flags in range: exit %d, %q", code, stderr)
	}
}
