package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/s3store/faults"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The tests of stopping commands (signals, --timeout), of export past
// damaged objects, and of secrets never printed, on the built binary.

// canary stands for a secret: it must never be printed.
const canary = "CANARYSECRET-7f3a"

// importFile writes n runs as JSON lines and returns the file and the run
// IDs in file order.
func importFile(t *testing.T, n int) (string, []uuid.UUID) {
	t.Helper()
	var buf bytes.Buffer
	ids := make([]uuid.UUID, n)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(i)))
		rec, err := cairn.EncodeJSON(&cairn.Checkpoint{WorkflowName: "bulk", RunID: ids[i], Timestamp: t0.Add(time.Duration(i) * time.Second),
			State: map[string]any{"i": int64(i), "pad": strings.Repeat("x", 200)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(rec)
		buf.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// started is a running binary.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func start(t *testing.T, envv []string, args ...string) *started {
	t.Helper()
	s := &started{cmd: exec.Command(buildDemoBinary(t), args...)}
	s.cmd.Env = envv
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill() })
	return s
}

// wait waits at most limit for the process and returns its exit code.
func (s *started) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		s.cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end within %s\nstdout: %s\nstderr: %s", s.cmd.Args, limit, s.stdout.String(), s.stderr.String())
		return -1
	}
}

// SIGINT and SIGTERM stop an import partway: it exits 130 or 143 with one
// line, and every run it reported imported is in the store.
func TestImportStoppedBySignal(t *testing.T) {
	t.Parallel()
	const total = 30000
	file, ids := importFile(t, total)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGINT, 130, "SIGINT"}, {syscall.SIGTERM, 143, "SIGTERM"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := start(t, cliEnv(), "import", "--store", "file://"+dir, file)
			// Partway: once some runs are durable.
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if ents, _ := os.ReadDir(filepath.Join(dir, "runs")); len(ents) >= 100 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			stopAt := time.Now()
			if code := p.wait(t, time.Minute); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, p.stdout.String(), p.stderr.String())
			}
			if took := time.Since(stopAt); took > 20*time.Second {
				t.Errorf("took %s to stop", took)
			}
			if got, want := p.stderr.String(), "cairn import: interrupted by "+tc.name+"\n"; got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
			m := regexp.MustCompile(`^imported (\d+) runs\n$`).FindStringSubmatch(p.stdout.String())
			if m == nil {
				t.Fatalf("stdout %q: want the count imported", p.stdout.String())
			}
			n, _ := strconv.Atoi(m[1])
			if n == 0 || n >= total {
				t.Fatalf("imported %d of %d runs: not stopped partway", n, total)
			}
			s, err := tiered.Open(context.Background(), "file://"+dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			for _, id := range ids[:n] {
				if _, err := s.Load(context.Background(), id); err != nil {
					t.Fatalf("run %s was reported imported: %v", id, err)
				}
			}
			page, err := s.List(context.Background(), &cairn.ListOptions{Limit: total})
			if err != nil || len(page.Runs) < n {
				t.Fatalf("list after the interrupted import: %d runs, %v; want at least %d", len(page.Runs), err, n)
			}
			t.Logf("imported %d of %d runs before %s", n, total, tc.name)
		})
	}
}

// stuckExport starts an export of a store of 2,000 runs to a pipe no one
// reads: once the pipe is full, its write blocks where no context
// reaches. grace is its $CAIRN_STOP_GRACE.
func stuckExport(t *testing.T, grace string) *started {
	t.Helper()
	dir := t.TempDir()
	file, _ := importFile(t, 2000)
	c := &cli{t: t, env: cliEnv(), store: "file://" + dir}
	c.ok("import", file)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s := &started{cmd: exec.Command(buildDemoBinary(t), "export", "--store", "file://"+dir)}
	s.cmd.Env = cliEnv("CAIRN_STOP_GRACE=" + grace)
	s.cmd.Stdout, s.cmd.Stderr = w, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the child's copy stays open
	t.Cleanup(func() { s.cmd.Process.Kill() })
	time.Sleep(2 * time.Second) // the pipe is full, and the signal handling set up (a loaded machine starts it slowly)
	return s
}

// A command stuck where it cannot be cancelled (writing to a full pipe)
// still ends soon after a signal: after the stop grace and a margin, with
// the signal's exit code and one line.
func TestStuckCommandEndsAfterSignal(t *testing.T) {
	t.Parallel()
	p := stuckExport(t, "200ms")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 143 {
		t.Fatalf("exit %d, want 143; stderr: %s", code, p.stderr.String())
	}
	if !regexp.MustCompile(`^cairn export: interrupted by SIGTERM, and did not stop within 3\.2s: exiting\n$`).MatchString(p.stderr.String()) {
		t.Errorf("stderr %q", p.stderr.String())
	}
}

// A second signal ends the process at once, without waiting for the
// grace, with the exit code of that signal.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	p := stuckExport(t, "1h")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 143 {
		t.Fatalf("exit %d, want 143; stderr: %s", code, p.stderr.String())
	}
	if got := p.stderr.String(); got != "cairn: SIGTERM again: exiting without flushing\n" {
		t.Errorf("stderr %q", got)
	}
}

// An import whose reading is stuck (opening a FIFO no one writes) stops
// at once on a signal: the reading is left behind, nothing was read, and
// the import ends with the signal's code and one line.
func TestImportStopsWhileReadingIsStuck(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, cliEnv("CAIRN_STOP_GRACE=1h"), "import", "--store", "file://"+t.TempDir(), fifo)
	time.Sleep(time.Second) // its signal handling is set up (a loaded machine starts it slowly)
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	if code := p.wait(t, 30*time.Second); code != 130 {
		t.Fatalf("exit %d, want 130; stderr: %s", code, p.stderr.String())
	}
	if took := time.Since(stopAt); took > 5*time.Second {
		t.Errorf("took %s to stop", took)
	}
	if got := p.stderr.String(); got != "cairn import: interrupted by SIGINT\n" || p.stdout.String() != "imported 0 runs\n" {
		t.Errorf("stdout %q, stderr %q", p.stdout.String(), got)
	}
}

// --timeout ends a command against a server that never answers, and so
// do the store URL's own bounds; a bad --timeout is a usage error.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	creds := cliEnv("AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1", "CAIRN_STOP_GRACE=2s")
	silent := "s3://b/p?endpoint=" + faults.SilentServer(t)
	c := &cli{t: t, env: creds}
	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"ls", "--timeout", "1s", "--store", silent}, `^cairn ls: timed out after 1s \(--timeout\)\n$`},
		{[]string{"verify", "--timeout", "1s", "--store", silent}, `^cairn verify: timed out after 1s \(--timeout\)\n$`},
		// Stopped while it only read the store's copies (--if-newer):
		// nothing was being written, so nothing is said to be at risk.
		{[]string{"import", "--timeout", "1s", "--store", silent, filepath.Join("testdata", "runs.jsonl")},
			`^cairn import: timed out after 1s \(--timeout\)\n$`},
		// Stopped while it wrote (--overwrite reads nothing first).
		{[]string{"import", "--overwrite", "--timeout", "1s", "--store", silent, filepath.Join("testdata", "runs.jsonl")},
			`^cairn import: timed out after 1s \(--timeout\); a batch of 5 runs \(from .*runs.jsonl line 1\) did not commit \(cairn reindex lists what it wrote\): what was saved may not be durable \(stopped, and the flush did not end within 2s \(CAIRN_STOP_GRACE\)`},
		{[]string{"ls", "--store", silent + "&attempt_timeout=200ms"},
			`^cairn ls: list: no answer from the store in time \(the store URL's attempt_timeout= and timeout= set the bounds\)\n$`},
		{[]string{"ls", "--store", silent + "&timeout=500ms&attempt_timeout=200ms"}, `^cairn ls: list: no answer from the store within 500ms \(the store URL's timeout= sets it\)\n$`},
	} {
		start := time.Now()
		r := c.run("", tc.args...)
		r.check(t, exitFailure, tc.pattern)
		t.Logf("cairn %s: %s after %s", strings.Join(tc.args, " "), strings.TrimSpace(r.stderr), time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("cairn %s took %s", strings.Join(tc.args, " "), took)
		}
	}
	c.fails(exitUsage, []string{`^cairn ls: invalid argument "soon" for "--timeout" flag: want a positive duration`}, "ls", "--timeout", "soon")
	c.fails(exitUsage, []string{`^cairn ls: invalid argument "0s" for "--timeout" flag`}, "ls", "--timeout", "0s")
	if r := c.run("", "ls", "-h"); !strings.Contains(r.stdout, "--timeout duration") {
		t.Errorf("ls -h does not show --timeout:\n%s", r.stdout)
	}
}

// Export writes every healthy run past a damaged object, names the run it
// could not read, and fails at the end.
func TestExportPastCorruptObject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, env: cliEnv(), store: "file://" + dir}
	seed(c)
	if err := os.WriteFile(filepath.Join(dir, "runs", run1+".obj"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	healthy := []string{run5, run3, run2, run4}
	checkStderr := func(r result) {
		t.Helper()
		if r.code != exitFailure {
			t.Fatalf("cairn %s: exit %d, want 1\nstderr: %s", strings.Join(r.args, " "), r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "cairn export: run "+run1+": cannot read it, skipped: ") ||
			lines[1] != "cairn export: 1 run could not be read (listed above); the 4 others were exported" {
			t.Errorf("cairn %s: stderr:\n%s", strings.Join(r.args, " "), r.stderr)
		}
	}

	out := filepath.Join(t.TempDir(), "all.jsonl")
	r := c.run("", "export", "--out", out)
	checkStderr(r)
	if r.stdout != "exported 4 runs to "+out+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	lines := readLines(t, out)
	if len(lines) != len(healthy) {
		t.Fatalf("%d lines exported, want %d", len(lines), len(healthy))
	}
	for i, id := range healthy {
		if !strings.Contains(lines[i], id) {
			t.Errorf("line %d is not run %s: %s", i, id, lines[i])
		}
	}

	r = c.run("", "export")
	checkStderr(r)
	if n := strings.Count(r.stdout, "\n"); n != len(healthy) || strings.Contains(r.stdout, run1) {
		t.Errorf("export to stdout: %d lines:\n%s", n, r.stdout)
	}

	msgDir := filepath.Join(t.TempDir(), "msgpack")
	checkStderr(c.run("", "export", "--format", "msgpack", "--out", msgDir))
	for _, id := range healthy {
		if _, err := os.Stat(filepath.Join(msgDir, id+".msgpack")); err != nil {
			t.Error(err)
		}
	}
}

// A secret pushed through every input (the URL's user info, the
// endpoint's, an unknown parameter, a known one, the environment) is
// printed by no command, whether the URL is refused or the store cannot be
// reached.
func TestCanarySecretNeverPrinted(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: cliEnv("AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY="+canary, "AWS_REGION=us-east-1")}
	const unreachable = "http://127.0.0.1:1"
	stores := []string{
		"s3://AKID:" + canary + "@b/p?endpoint=" + unreachable,
		"s3://" + canary + "@b/p?endpoint=" + unreachable,
		"s3://b/p?endpoint=http://AKID:" + canary + "@127.0.0.1:1",
		"s3://b/p?endpoint=" + unreachable + "&secret=" + canary,
		"s3://b/p?endpoint=" + unreachable + "&region=" + canary,
		"s3://b/p?endpoint=" + unreachable, // the environment's secret alone
	}
	for _, store := range stores {
		for _, args := range [][]string{{"ls"}, {"verify"}, {"demo", "--runs", "2", "--workers", "1"}} {
			r := c.run("", append([]string{args[0], "--store", store}, args[1:]...)...)
			if r.code == exitOK {
				t.Errorf("cairn %s on an unreachable store: exit 0", strings.Join(r.args, " "))
			}
			if strings.Contains(strings.ToLower(r.stdout+r.stderr), strings.ToLower(canary)) {
				t.Errorf("cairn %s printed the secret:\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.stdout, r.stderr)
			}
		}
	}
	// And through the environment's store.
	env := append(append([]string(nil), c.env...), "CAIRN_STORE="+stores[0])
	r := (&cli{t: t, env: env}).run("", "ls")
	if r.code != exitUsage || strings.Contains(r.stderr, canary) {
		t.Errorf("CAIRN_STORE with credentials: exit %d, stderr %s", r.code, r.stderr)
	}
}

// An import from a pipe whose producer has gone quiet: the records it has
// sent are imported (not held back until the next one comes), and a stop
// ends the import at once, counting them.
func TestImportFromIdlePipe(t *testing.T) {
	t.Parallel()
	file, ids := importFile(t, 3)
	dir := t.TempDir()
	p := &started{cmd: exec.Command(buildDemoBinary(t), "import", "--store", "file://"+dir, "-")}
	p.cmd.Env = cliEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); in.Close() })
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write(data); err != nil { // and then nothing, stdin left open
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ents, _ := os.ReadDir(filepath.Join(dir, "runs")); len(ents) == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the records sent are not imported while the producer is idle")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	if code := p.wait(t, time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130\nstdout: %s\nstderr: %s", code, p.stdout.String(), p.stderr.String())
	}
	if took := time.Since(stopAt); took > 5*time.Second {
		t.Errorf("took %s to stop while reading an idle pipe", took)
	}
	if got := p.stdout.String(); got != "imported 3 runs\n" {
		t.Errorf("stdout %q", got)
	}
}
