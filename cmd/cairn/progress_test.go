package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vbauerster/mpb/v8/decor"
)

// erase is what the progress bar's console writes to move up onto the
// bar's line and erase it before drawing again.
const erase = "\x1b[1A\x1b[J"

// lastFrame returns the last bar drawn in out (the text between the last
// two erasures).
func lastFrame(out string) string {
	frames := strings.Split(out, erase)
	if len(frames) < 2 {
		return ""
	}
	return frames[len(frames)-2]
}

// On a terminal, a progress with a total draws a bar with the count of
// the total, the percentage, the rate and the time left, and the status;
// a warning is printed above it on its own line; finish erases the bar.
// Nothing goes to stdout.
func TestProgressOnTerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stderr, stdout bytes.Buffer
		p := startProgress(&env{stdout: &stdout, stderr: &stderr, tty: true}, "importing", unitItems, "runs", 10)
		p.add(3)
		time.Sleep(1500 * time.Millisecond)
		p.warnf("bad record %d", 7)
		p.setStatus("3 imported")
		p.add(1)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		frame := lastFrame(stderr.String())
		p.finish()
		p.finish() // a second finish is harmless
		out := stderr.String()
		if !regexp.MustCompile(`^importing \[=+>-+\] 40% 4/10 runs  2 runs/s  ETA [34]s  · 3 imported\n$`).MatchString(frame) {
			t.Errorf("last bar drawn: %q", frame)
		}
		if !strings.Contains(out, erase+"bad record 7\n") {
			t.Errorf("the warning is not a line of its own:\n%q", out)
		}
		if !strings.HasSuffix(out, erase) {
			t.Errorf("finish did not erase the bar: ends with %q", out[max(0, len(out)-80):])
		}
		if stdout.Len() != 0 {
			t.Errorf("progress wrote to stdout: %q", stdout.String())
		}
	})
}

// Without a total, a spinner; a total given later turns it into a bar.
func TestProgressWithoutTotal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stderr bytes.Buffer
		e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, tty: true}
		p := startProgress(e, "exporting", unitItems, "runs", 0)
		p.add(5)
		time.Sleep(2050 * time.Millisecond)
		synctest.Wait()
		spin := regexp.MustCompile(`^exporting [` + strings.Join(spinner, "") + `] 5 runs  [23] runs/s  2s\n$`)
		if frame := lastFrame(stderr.String()); !spin.MatchString(frame) {
			t.Errorf("spinner: %q", frame)
		}
		p.setTotal(20)
		p.set(10)
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if frame := lastFrame(stderr.String()); !regexp.MustCompile(`^exporting \[=+>-+\] 50% 10/20 runs  `).MatchString(frame) {
			t.Errorf("after setTotal: %q", frame)
		}
		p.finish()
	})
}

// The text after the bar, for each kind of progress.
func TestProgressStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			unit         progressUnit
			noun, status string
			total, done  int64
			after        time.Duration
			want         string
		}{
			{unitItems, "runs", "", 10, 4, 2 * time.Second, "40% 4/10 runs  2 runs/s  ETA 3s"},
			{unitItems, "runs", "4 imported", 10, 10, 2 * time.Second, "100% 10/10 runs  5 runs/s  · 4 imported"},
			{unitItems, "runs", "", 10, 4, 500 * time.Millisecond, "40% 4/10 runs"}, // no rate in the first second
			{unitItems, "objects", "", 0, 300, 3 * time.Second, "300 objects  100 objects/s  3s"},
			{unitItems, "", "", 0, 0, 1550 * time.Millisecond, "1.5s"},
			{unitBytes, "", "", 8 << 20, 2 << 20, 2 * time.Second, "25% 2.0/8.0 MiB  1.0 MiB/s  ETA 6s"},
			{unitBytes, "", "", 0, 1536, 1 * time.Second, "1.5 KiB  1.5 KiB/s  1s"},
			{unitBytes, "", "", 3 << 40, 1 << 30, 1 * time.Second, "0% 0.0/3.0 TiB  1.0 GiB/s  ETA 51m11s"},
		} {
			pr := &progress{unit: tc.unit, noun: tc.noun, start: time.Now()}
			pr.status.Store(&tc.status)
			time.Sleep(tc.after)
			if got := pr.stats(decor.Statistics{Total: tc.total, Current: tc.done}); got != tc.want {
				t.Errorf("%d of %d %s after %s: %q, want %q", tc.done, tc.total, tc.noun, tc.after, got, tc.want)
			}
		}
	})
}

// Piped, with --json or with --debug, no bar: only the warnings appear.
func TestProgressOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    env
	}{
		{"piped", env{}},
		{"--json", env{tty: true, flags: globalFlags{json: true}}},
		{"--debug", env{tty: true, flags: globalFlags{debug: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var stderr bytes.Buffer
				e := tc.e
				e.stderr = &stderr
				p := startProgress(&e, "verifying", unitItems, "objects", 100)
				p.add(10)
				time.Sleep(5 * progressEvery)
				p.warnf("one line")
				p.finish()
				if got := stderr.String(); got != "one line\n" {
					t.Errorf("stderr: %q", got)
				}
			})
		})
	}
}
