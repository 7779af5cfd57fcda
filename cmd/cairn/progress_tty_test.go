//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of 100×30 and returns its two ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// With stderr a terminal, import, verify and export draw a progress bar
// there, and erase it; stdout (piped) gets the result alone. Piped, or
// with --json, stderr stays empty.
func TestProgressBarOnTerminalOnly(t *testing.T) {
	t.Parallel()
	file, _ := importFile(t, 3000)
	store := "file://" + t.TempDir()
	runOn := func(stderrTTY bool, args ...string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(buildDemoBinary(t), append(args, "--store", store)...)
		cmd.Env = cliEnv()
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		var wg sync.WaitGroup
		var slave *os.File
		if stderrTTY {
			var master *os.File
			master, slave = openPTY(t)
			cmd.Stderr = slave
			wg.Go(func() { io.Copy(&errOut, master) }) // until no process holds the slave: EIO
		}
		start := time.Now()
		err := cmd.Run()
		t.Logf("cairn %s (stderr a terminal: %v): %s", strings.Join(args, " "), stderrTTY, time.Since(start).Round(time.Millisecond))
		if slave != nil {
			slave.Close()
			wg.Wait()
		}
		if err != nil {
			t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), errOut.String()
	}

	out, bar := runOn(true, "import", file)
	if out != "imported 3000 runs\n" || !strings.Contains(bar, "importing ") || !strings.Contains(bar, "/s") ||
		!strings.Contains(bar, " imported") || !strings.HasSuffix(bar, erase) {
		t.Errorf("import on a terminal: stdout %q, stderr %q", out, bar)
	}
	out, bar = runOn(true, "verify")
	if out != "checked 3000 run objects\nok\n" || !strings.Contains(bar, "verifying ") || !strings.HasSuffix(bar, erase) {
		t.Errorf("verify on a terminal: stdout %q, stderr %q", out, bar)
	}
	exported := filepath.Join(t.TempDir(), "out.jsonl")
	if out, bar = runOn(true, "export", "--out", exported); out != "exported 3000 runs to "+exported+"\n" || !strings.Contains(bar, "exporting ") {
		t.Errorf("export on a terminal: stdout %q, stderr %q", out, bar)
	}
	for _, args := range [][]string{{"import", file}, {"verify"}, {"reindex"}} {
		if _, stderr := runOn(false, args...); stderr != "" {
			t.Errorf("cairn %s, stderr piped: %q", strings.Join(args, " "), stderr)
		}
		if _, stderr := runOn(true, append(args, "--json")...); stderr != "" {
			t.Errorf("cairn %s --json, stderr a terminal: %q", strings.Join(args, " "), stderr)
		}
	}
}
