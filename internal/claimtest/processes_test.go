package claimtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// envWorker, when set, makes the test binary a worker process: its value
// is the workerSpec, in JSON.
const envWorker = "CAIRN_CLAIMTEST_WORKER"

// workerSpec is what a worker process is told.
type workerSpec struct {
	Config
	Store   string        // URL
	Events  string        // the Recorder's file
	Timeout time.Duration // of the whole process
}

// open opens the store of a worker process by its URL, an s3:// one with
// a connection pool as large as the worker's parallel requests (a URL
// gets the SDK's 10 idle connections, and a busy worker would open and
// close connections all the time) and checksums only where S3 requires
// them (the SDK's middleware is most of a worker's CPU, which it shares
// with MinIO and the other workers). Its index compacts after 128 logs
// rather than 32: with four processes committing, every process reads
// every log whatever the threshold, and fewer compactions (which the
// processes race to make, and all but one throw away) leave MinIO more
// time for the claims.
func open(ctx context.Context, rawURL string, parallel int) (*tiered.Store, error) {
	o := &tiered.Options{Durable: durable.Options{Index: &index.Options{CompactAfter: 128}}}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" {
		return tiered.Open(ctx, rawURL, o)
	}
	q := u.Query()
	client, err := s3store.NewS3Client(ctx, &s3store.S3Options{Endpoint: q.Get("endpoint"), Region: q.Get("region"), PathStyle: true,
		Concurrency: 4 * parallel, ChecksumWhenRequired: true})
	if err != nil {
		return nil, err
	}
	o.Durable.Prefix = strings.Trim(u.Path, "/")
	return tiered.New(s3store.NewS3(client, u.Host), o)
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envWorker); spec != "" {
		if err := workerMain(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerMain is a worker process: Run on the store, recording its events.
func workerMain(spec string) (err error) {
	var ws workerSpec
	if err := json.Unmarshal([]byte(spec), &ws); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ws.Timeout)
	defer cancel()
	s, err := open(ctx, ws.Store, ws.Parallel)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(ctx); err == nil {
			err = cerr
		}
	}()
	rec, err := NewRecorder(ws.Events, ws.Name)
	if err != nil {
		return err
	}
	err = Run(ctx, s, rec, ws.Config)
	if cerr := rec.Close(); err == nil {
		err = cerr
	}
	return err
}

// scenario is a race of worker processes for runs.
type scenario struct {
	store   string   // URL
	env     []string // for the store (credentials)
	runs    int
	workers int // at least 3: one is killed, one paused
	steps   int
	lease   time.Duration
	// holding is how many runs the victims must have claimed before they
	// are killed and paused: partway, holding runs.
	holding int
}

// TestClaimsMinIO: 4 worker processes race to claim 1,000 unfinished
// runs in a MinIO bucket. One is killed with SIGKILL mid-run: its runs
// are taken over once their leases end, and finished by the others.
// Another is stopped with SIGSTOP past its lease, and continued once
// another worker took one of its runs: its next write gets ErrConflict,
// and the new owner's state is kept. The claim history of all of them is
// checked to be a lease register's (Check).
func TestClaimsMinIO(t *testing.T) {
	srv := startMinIO(t)
	sc := scenario{
		store: "s3://" + srv.NewBucket(t) + "/claims?endpoint=" + srv.Endpoint + "&region=" + srv.Region + "&path_style=true",
		env:   []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region},
		runs:  1000, workers: 4, steps: 2, lease: 2 * time.Second, holding: 60,
	}
	sc.race(t)
}

// startMinIO is miniofixture.Start with MinIO's data on a tmpfs: on
// machines whose container storage driver is fuse-overlayfs, that makes
// MinIO several times faster (about 65 PUTs a second against 400 to 600
// on two busy cores), which keeps this test's thousands of requests
// within seconds. Like Start, it uses CAIRN_S3_ENDPOINT when set, and
// without Docker it skips the test, or fails it when CAIRN_REQUIRE_S3=1.
func startMinIO(t *testing.T) *miniofixture.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a first run builds the image
	defer cancel()
	srv, stop, err := miniofixture.Launch(ctx, t.Logf, &miniofixture.LaunchOptions{Tmpfs: true})
	switch {
	case err == nil:
		t.Cleanup(func() {
			if err := stop(context.Background()); err != nil {
				t.Logf("stop MinIO: %v", err)
			}
		})
		return srv
	case os.Getenv(miniofixture.EnvRequire) != "1" && strings.Contains(err.Error(), "NO S3 SERVER"):
		t.Skipf("%v\n\tSKIPPING. Set %s=1 to make this a failure.", err, miniofixture.EnvRequire)
	}
	t.Fatalf("%v\n\t(%s=%q)", err, miniofixture.EnvRequire, os.Getenv(miniofixture.EnvRequire))
	return nil
}

// TestClaimsDirectory is TestClaimsMinIO on a directory store, with fewer
// runs: the same race wherever Docker is missing.
func TestClaimsDirectory(t *testing.T) {
	sc := scenario{store: "file://" + t.TempDir(), runs: 150, workers: 4, steps: 2, lease: 2 * time.Second, holding: 10}
	sc.race(t)
}

// race runs the scenario and checks it.
func (sc *scenario) race(t *testing.T) {
	for _, kv := range sc.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	workflow := "claims-" + uuid.NewString()[:8]
	start := time.Now()
	sc.submit(t, workflow)
	t.Logf("%d runs submitted in %v", sc.runs, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	procs := make([]*exec.Cmd, sc.workers)
	for w := range procs {
		procs[w] = sc.start(t, workflow, dir, w)
	}
	killedAt := sc.kill(t, procs, dir)
	paused := sc.pause(t, procs, dir)
	for w, p := range procs[1:] {
		if err := p.Wait(); err != nil {
			t.Fatalf("worker w%d: %v\n%s", w+2, err, p.Stderr)
		}
	}
	procs[0].Wait()
	t.Logf("the workers were done %v after the start", time.Since(start).Round(time.Millisecond))
	events := readAll(t, dir, sc.workers)
	if err := Check(events, sc.lease); err != nil {
		t.Fatal(err)
	}
	final := sc.finalStates(t, workflow)
	checkKilled(t, events, final, killedAt, sc.steps)
	checkPaused(t, events, final, paused, sc.steps)
	t.Logf("%d operations checked; the test took %v", len(events), time.Since(start).Round(time.Millisecond))
}

// submit saves every run's first checkpoint, labelled status=running.
func (sc *scenario) submit(t *testing.T, workflow string) {
	ctx := context.Background()
	s, err := tiered.Open(ctx, sc.store, &tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		t.Fatal(err)
	}
	for range sc.runs {
		if err := s.Save(ctx, Submit(workflow, uuid.New())); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// start starts worker process w (named w1, w2, ...), with 8 goroutines
// that sleep 100 ms before each step. The process gives up after 3
// minutes.
func (sc *scenario) start(t *testing.T, workflow, dir string, w int) *exec.Cmd {
	name := fmt.Sprint("w", w+1)
	spec, err := json.Marshal(workerSpec{
		Config: Config{Name: name, Workflow: workflow, Steps: sc.steps, Lease: sc.lease, Parallel: 8,
			Work: 100 * time.Millisecond, Poll: sc.lease / 8},
		Store: sc.store, Events: filepath.Join(dir, name), Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GOTRACEBACK=all: the goroutines diagnose asks for with SIGQUIT.
	cmd.Env = append(append(os.Environ(), sc.env...), envWorker+"="+string(spec), "GOTRACEBACK=all")
	cmd.Stderr = &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// waitHolding waits until worker w has made sc.holding successful claims
// and holds a run mid-run: a step saved, not the last. (Such a run was
// saved lately, so it comes first in the listings the others make once
// its lease ends: they take it over at once, where a run held before its
// first step waits its turn among the runs nobody started.)
func (sc *scenario) waitHolding(t *testing.T, dir string, w int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		events, err := ReadEvents(filepath.Join(dir, fmt.Sprint("w", w+1)))
		if err == nil && count(events, OpClaim, ResultOK) >= sc.holding && midRun(events, held(events, time.Now().UnixNano(), sc.steps)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	for v := range sc.workers {
		events, err := ReadEvents(filepath.Join(dir, fmt.Sprint("w", v+1)))
		t.Logf("w%d: %s (%v)", v+1, summary(events), err)
	}
	t.Fatalf("worker w%d made no %d claims in 60 s, or held no run mid-run", w+1, sc.holding)
}

// kill kills worker w1 with SIGKILL once it holds a run another worker
// can take over (see freeze), and returns when.
func (sc *scenario) kill(t *testing.T, procs []*exec.Cmd, dir string) int64 {
	sc.waitHolding(t, dir, 0)
	at := sc.freeze(t, procs, dir, 0)
	if err := procs[0].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return at
}

// pauseWindow is when a worker was stopped and continued.
type pauseWindow struct {
	worker         string
	stopped, woken int64
}

// pause stops worker w2 with SIGSTOP once it holds a run another worker
// can take over (see freeze), waits until another worker claimed one of
// its runs (its lease ran out meanwhile), and continues it with SIGCONT.
func (sc *scenario) pause(t *testing.T, procs []*exec.Cmd, dir string) pauseWindow {
	p := procs[1]
	sc.waitHolding(t, dir, 1)
	pw := pauseWindow{worker: "w2", stopped: sc.freeze(t, procs, dir, 1)}
	mine, err := ReadEvents(filepath.Join(dir, "w2"))
	if err != nil {
		t.Fatal(err)
	}
	holding := held(mine, pw.stopped, sc.steps)
	// Past the lease, until another worker took over one of w2's runs
	// (and a little longer, for the others).
	deadline := time.Now().Add(30 * time.Second)
	for len(takenOver(readAll(t, dir, sc.workers), holding, pw.worker, pw.stopped, sc.steps)) == 0 {
		if time.Now().After(deadline) {
			sc.diagnose(t, procs, dir)
			t.Fatalf("nobody took over the %d runs w2 held within 30 s of its SIGSTOP", len(holding))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(sc.lease / 4)
	if err := p.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	pw.woken = time.Now().UnixNano()
	t.Logf("w2 was stopped for %v, holding %d runs", time.Duration(pw.woken-pw.stopped).Round(time.Millisecond), len(holding))
	return pw
}

// freeze stops worker w with SIGSTOP, at a moment when the scenario can
// go on from, and returns that moment: every thread of it stopped, so its
// events are final; holding a run mid-run whose last step it has not
// begun to save (takeable); and not inside the directory store's lock.
// It stops the worker only once its events, read while it runs, show such
// a run (each stop slows it, and a worker stopped again and again loses
// its leases and runs out of work); if the stop finds otherwise, it
// continues the worker and tries again.
//
// A stop that lands anywhere breaks the scenario now and then: a run
// whose last save landed, but not yet its record, looks held and is
// finished (nobody takes it over); and a Put or Delete of a directory
// store holds an flock on root/.cairn-lock across a few system calls, so
// a process stopped there keeps every other writer of the directory
// waiting (until the store's LockWait ends their Put with ErrBusy). The
// scenario is a worker killed or paused past its lease holding runs, not
// either of those.
func (sc *scenario) freeze(t *testing.T, procs []*exec.Cmd, dir string, w int) int64 {
	p := procs[w]
	name := fmt.Sprint("w", w+1)
	root, isDir := strings.CutPrefix(sc.store, "file://")
	deadline := time.Now().Add(60 * time.Second)
	tries := map[string]int{} // why each stop was not the moment
	failed := func(err error) {
		p.Process.Kill() // if it is not stopped; an exited one is gone already
		exit := p.Wait()
		sc.diagnose(t, procs, dir)
		t.Fatalf("%s: %v, after %d stops that were not the moment (%v); it ended: %v\n%s", name, err, sumValues(tries), tries, exit, p.Stderr)
	}
	for {
		if time.Now().After(deadline) {
			failed(fmt.Errorf("never stopped at a moment the scenario can go on from in 60 s"))
		}
		events, err := ReadEvents(filepath.Join(dir, name))
		if err != nil || !takeable(events, time.Now().UnixNano(), sc.steps) {
			if states, err := threadStates(p.Process.Pid); err != nil || !slices.ContainsFunc(states, running) {
				failed(fmt.Errorf("it exited (threads %q, %v)", states, err))
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err := p.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := waitStopped(p.Process.Pid); err != nil {
			failed(err)
		}
		at := time.Now().UnixNano()
		events, err = ReadEvents(filepath.Join(dir, name))
		var why string
		switch {
		case err != nil:
			why = err.Error()
		case !takeable(events, at, sc.steps):
			why = "it holds no run mid-run whose last step it has not begun to save"
		case isDir && slices.Contains(lockHolders(t, filepath.Join(root, ".cairn-lock")), p.Process.Pid):
			why = "it holds the directory store's lock"
		}
		if why == "" {
			if n := sumValues(tries); n > 0 {
				t.Logf("%s stopped after %d stops that were not the moment: %v", name, n, tries)
			}
			return at
		}
		tries[why]++
		if err := p.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running reports whether a thread state (see threadStates) is that of a
// thread that has not exited.
func running(state byte) bool { return state != 'Z' && state != 'X' }

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// takeable reports whether one worker's events show it holding, at time
// at, a run that another worker will take over unfinished once its lease
// ends: a step saved under its lease (so the run was saved lately and
// comes first in the others' listings), and no save of the last step
// begun (one begun may have landed, finishing the run).
func takeable(events []Event, at int64, steps int) bool {
	holding := held(events, at, steps)
	saved := map[uuid.UUID]bool{}
	for _, e := range events {
		if epoch, ok := holding[e.Run]; ok && e.Op == OpSave && e.Epoch == epoch {
			if e.Step == int64(steps) {
				delete(holding, e.Run)
			} else if e.Result == ResultOK {
				saved[e.Run] = true
			}
		}
	}
	for run := range holding {
		if saved[run] {
			return true
		}
	}
	return false
}

// waitStopped waits until every thread of the process pid is stopped
// (state T in /proc/pid/task/*/stat): a signal is delivered after kill(2)
// returns, and each thread stops on its own, so one may still be running,
// and take a lock, after the main thread stopped. A process that exited
// (its threads zombies), or is not stopped within 10 s, is an error.
func waitStopped(pid int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		states, err := threadStates(pid)
		if err != nil {
			return fmt.Errorf("the threads of process %d: %w", pid, err)
		}
		stopped := true
		for _, st := range states {
			switch st {
			case 'T', 't':
			case 'Z', 'X':
				return fmt.Errorf("process %d exited before it could be stopped (threads %q)", pid, states)
			default:
				stopped = false
			}
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d is not stopped 10 s after SIGSTOP (threads %q)", pid, states)
		}
		time.Sleep(time.Millisecond)
	}
}

// threadStates returns the state of each thread of process pid, from
// /proc/pid/task/*/stat ("pid (comm) state ...": the state follows the
// last ')'). A thread that ends meanwhile is left out.
func threadStates(pid int) ([]byte, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err == nil && len(tasks) == 0 {
		err = errors.New("none found")
	}
	if err != nil {
		return nil, err
	}
	var states []byte
	for _, task := range tasks {
		stat, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return nil, fmt.Errorf("%s: %q", task, stat)
		}
		states = append(states, stat[i+2])
	}
	return states, nil
}

// lockHolders returns the processes holding an flock on the file at
// path, from /proc/locks (waiters, "->" lines, left out).
func lockHolders(t *testing.T, path string) []int {
	holders, _ := lockTable(t, path)
	return holders
}

// lockTable returns the processes holding an flock on the file at path
// and those waiting for one, from /proc/locks: lines such as
// "1: FLOCK  ADVISORY  WRITE 1234 00:2e:56789 0 EOF", a waiter's with
// "->" after the number.
func lockTable(t *testing.T, path string) (holders, waiters []int) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	major := (st.Dev>>8)&0xfff | (st.Dev>>32)&^0xfff
	minor := st.Dev&0xff | (st.Dev>>12)&^0xff
	id := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	table, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatalf("the locks held: %v", err)
	}
	for line := range strings.Lines(string(table)) {
		f := strings.Fields(line)
		waiting := len(f) > 1 && f[1] == "->"
		if waiting {
			f = append(f[:1], f[2:]...)
		}
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != id {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		if waiting {
			waiters = append(waiters, pid)
		} else {
			holders = append(holders, pid)
		}
	}
	return holders, waiters
}

// diagnose logs, for a scenario that failed to go on, what each worker
// did, who holds and who waits for the directory store's lock, and the
// goroutines of the workers still running (SIGQUIT makes a Go program
// print them and exit).
func (sc *scenario) diagnose(t *testing.T, procs []*exec.Cmd, dir string) {
	for w := range procs {
		events, err := ReadEvents(filepath.Join(dir, fmt.Sprint("w", w+1)))
		t.Logf("w%d (pid %d): %s (%v)", w+1, procs[w].Process.Pid, summary(events), err)
	}
	if root, isDir := strings.CutPrefix(sc.store, "file://"); isDir {
		holders, waiters := lockTable(t, filepath.Join(root, ".cairn-lock"))
		t.Logf("the directory store's lock: held by %v, awaited by %v", holders, waiters)
	}
	for w, p := range procs {
		if p.ProcessState != nil || p.Process.Signal(syscall.SIGQUIT) != nil {
			continue
		}
		p.Process.Signal(syscall.SIGCONT) // a stopped one handles SIGQUIT once continued
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
			t.Logf("w%d (%v), its goroutines in Cairn's code:\n%s", w+1, p.ProcessState, cairnGoroutines(p.Stderr.(*strings.Builder).String()))
		case <-time.After(10 * time.Second):
			t.Logf("w%d did not exit 10 s after SIGQUIT", w+1)
			p.Process.Kill()
			<-done
		}
	}
}

// cairnGoroutines returns, of a Go program's goroutine dump, the
// goroutines in Cairn's code, without frame addresses.
func cairnGoroutines(dump string) string {
	var b strings.Builder
	for g := range strings.SplitSeq(dump, "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") || !strings.Contains(g, "cairnstore/cairn") {
			continue
		}
		for line := range strings.Lines(g) {
			if i := strings.Index(line, " fp=0x"); i >= 0 {
				line = line[:i] + "\n"
			}
			b.WriteString(line)
		}
		b.WriteString("\n\n")
	}
	return b.String()
}

// readAll reads the events of every worker.
func readAll(t *testing.T, dir string, workers int) []Event {
	t.Helper()
	var all []Event
	for w := range workers {
		events, err := ReadEvents(filepath.Join(dir, fmt.Sprint("w", w+1)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, events...)
	}
	return all
}

// summary counts events by operation and result, with their mean time.
func summary(events []Event) string {
	n := map[string]int{}
	d := map[string]time.Duration{}
	for _, e := range events {
		k := e.Op + "/" + e.Result
		n[k]++
		if e.End != 0 {
			d[k] += time.Duration(e.End - e.Start)
		}
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		s = append(s, fmt.Sprintf("%s %d (%v each)", k, n[k], (d[k]/time.Duration(n[k])).Round(time.Millisecond)))
	}
	return strings.Join(s, ", ")
}

func count(events []Event, op, result string) int {
	n := 0
	for _, e := range events {
		if e.Op == op && e.Result == result {
			n++
		}
	}
	return n
}

// held returns the unfinished runs one worker's events show it holding
// at time at, by the epoch of its claim: claimed unfinished (the claim
// ended before at, and read a step before the last: a claim that lost
// the race with the run's last save finds it done, and only releases
// it), and neither finished (the last step saved), released nor found
// taken over by an operation that ended before at.
func held(events []Event, at int64, steps int) map[uuid.UUID]uint64 {
	runs := map[uuid.UUID]uint64{}
	for _, e := range events {
		if e.Op == OpClaim && e.Result == ResultOK && e.End < at {
			if e.Step < int64(steps) {
				runs[e.Run] = e.Epoch
			} else {
				delete(runs, e.Run)
			}
		}
	}
	for _, e := range events {
		ended := e.Op == OpRelease && e.Result == ResultOK || e.Op == OpSave && e.Result == ResultOK && e.Step == int64(steps) ||
			e.Result == ResultConflict
		if ended && e.End != 0 && e.End < at && runs[e.Run] == e.Epoch {
			delete(runs, e.Run)
		}
	}
	return runs
}

// midRun reports whether one of the runs held (by epoch) had a step saved
// under its lease, in events.
func midRun(events []Event, holding map[uuid.UUID]uint64) bool {
	return slices.ContainsFunc(events, func(e Event) bool {
		epoch, ok := holding[e.Run]
		return ok && e.Op == OpSave && e.Result == ResultOK && e.Epoch == epoch
	})
}

// takenOver returns, of the runs holder held (by epoch), those another
// worker claimed unfinished (its claim read a step before the last),
// with a later epoch, in a claim begun after since.
func takenOver(events []Event, holding map[uuid.UUID]uint64, holder string, since int64, steps int) map[uuid.UUID]bool {
	out := map[uuid.UUID]bool{}
	for _, e := range events {
		epoch, ok := holding[e.Run]
		if ok && e.Op == OpClaim && e.Result == ResultOK && e.Worker != holder && e.Start > since && e.Epoch > epoch && e.Step < int64(steps) {
			out[e.Run] = true
		}
	}
	return out
}

// finalStates lists every run of workflow with its checkpoint, checks
// that each is done, labelled so, with every step once and in order, and
// that none is left status=running; it returns them by run.
func (sc *scenario) finalStates(t *testing.T, workflow string) map[uuid.UUID]*cairn.Checkpoint {
	ctx := context.Background()
	s, err := tiered.Open(ctx, sc.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	want := make([]any, sc.steps)
	for k := range want {
		want[k] = int64(k + 1)
	}
	final := map[uuid.UUID]*cairn.Checkpoint{}
	for sum, err := range cairn.All(ctx, s, &cairn.ListOptions{WorkflowName: workflow, WithCheckpoints: true}) {
		if err != nil {
			t.Fatal(err)
		}
		c := sum.Checkpoint
		h, _ := c.State["history"].([]any)
		labels, _ := c.Labels()
		if StepOf(c) != int64(sc.steps) || !slices.Equal(h, want) || labels["status"] != "done" {
			t.Errorf("run %v ended at step %d, history %v, labels %v; want step %d, each step once in order, done", sum.RunID, StepOf(c), h, labels, sc.steps)
		}
		final[sum.RunID] = c
	}
	if len(final) != sc.runs {
		t.Errorf("%d runs listed, want %d", len(final), sc.runs)
	}
	running, err := s.List(ctx, &cairn.ListOptions{WorkflowName: workflow, Labels: map[string]string{"status": "running"}})
	if err != nil || len(running.Runs) > 0 {
		t.Errorf("runs left status=running: %d, %v", len(running.Runs), err)
	}
	return final
}

// checkKilled checks that w1 was killed holding unfinished runs, and
// that each was claimed again by another worker (its lease ran out) and
// finished, unless w1's save of its last step landed as it was killed.
func checkKilled(t *testing.T, events []Event, final map[uuid.UUID]*cairn.Checkpoint, killedAt int64, steps int) {
	var mine []Event
	for _, e := range events {
		if e.Worker == "w1" {
			mine = append(mine, e)
		}
	}
	holding := held(mine, killedAt, steps)
	taken := takenOver(events, holding, "w1", killedAt, steps)
	for run, epoch := range holding {
		if taken[run] || claimedAfter(events, run, epoch) {
			continue
		}
		if final[run].Metadata["by"] != "w1" || !savedLast(mine, run, int64(steps)) {
			t.Errorf("run %v, held by w1 when it was killed, was never claimed again: %v", run, final[run].State)
		}
	}
	if len(taken) == 0 {
		t.Errorf("w1 held %d unfinished runs when it was killed, none was taken over unfinished", len(holding))
	}
	t.Logf("w1 held %d unfinished runs when it was killed; others took %d over and finished them", len(holding), len(taken))
}

// claimedAfter reports whether a worker claimed run with an epoch above
// epoch.
func claimedAfter(events []Event, run uuid.UUID, epoch uint64) bool {
	for _, e := range events {
		if e.Op == OpClaim && e.Result == ResultOK && e.Run == run && e.Epoch > epoch {
			return true
		}
	}
	return false
}

// savedLast reports whether events hold a save of run's last step that
// succeeded or never ended.
func savedLast(events []Event, run uuid.UUID, steps int64) bool {
	return slices.ContainsFunc(events, func(e Event) bool {
		return e.Run == run && e.Op == OpSave && e.Step == steps && (e.Result == ResultOK || e.End == 0)
	})
}

// checkPaused checks that, of the runs w2 held when it was stopped, those
// another worker took over meanwhile got ErrConflict on w2's writes once
// it was continued (any it began then failed, at least one did), and kept
// the new owner's state.
func checkPaused(t *testing.T, events []Event, final map[uuid.UUID]*cairn.Checkpoint, pw pauseWindow, steps int) {
	var mine []Event
	for _, e := range events {
		if e.Worker == pw.worker {
			mine = append(mine, e)
		}
	}
	holding := held(mine, pw.stopped, steps)
	taken := takenOver(events, holding, pw.worker, pw.stopped, steps)
	conflicts := 0
	for _, e := range mine {
		if !taken[e.Run] || e.Epoch != holding[e.Run] || e.Op == OpClaim || e.End != 0 && e.End < pw.woken {
			continue
		}
		switch {
		case e.Result == ResultConflict:
			conflicts++
		case e.Start > pw.woken && e.Result == ResultOK:
			t.Errorf("w2's %s of run %v (epoch %d), taken over while w2 was stopped, begun after SIGCONT: %s (%s)", e.Op, e.Run, e.Epoch, e.Result, e.Err)
		}
	}
	if len(taken) == 0 || conflicts == 0 {
		t.Errorf("w2 held %d runs when stopped, %d were taken over, its writes got %d conflicts after SIGCONT; want some of each", len(holding), len(taken), conflicts)
	}
	for run := range taken {
		if by := final[run].Metadata["by"]; by == pw.worker && !claimedAfter(mine, run, holding[run]) {
			t.Errorf("run %v, taken over from w2, ends with w2's state", run)
		}
	}
	t.Logf("w2 held %d runs when stopped; %d were taken over, and w2's writes to them got %d ErrConflicts after SIGCONT", len(holding), len(taken), conflicts)
}
