package main

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"
)

// On a terminal the progress line is redrawn in place every tick, a
// warning clears it before printing its own line, and finish erases it.
func TestProgressOnTerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stderr, stdout bytes.Buffer
		p := startProgress(&env{stdout: &stdout, stderr: &stderr, tty: true}, "importing", "runs")
		p.add(3)
		time.Sleep(2*progressEvery + progressEvery/2)
		p.warnf("bad record %d", 7)
		p.add(1)
		p.relabel("writing")
		time.Sleep(progressEvery)
		p.finish()
		p.finish() // a second finish is harmless
		const clear = "\r\x1b[K"
		want := clear + "| importing: 3 runs (100ms)" +
			clear + "/ importing: 3 runs (200ms)" +
			clear + "bad record 7\n" +
			clear + "- writing: 4 runs (300ms)" +
			clear
		if got := stderr.String(); got != want {
			t.Errorf("stderr:\n%q\nwant:\n%q", got, want)
		}
		if stdout.Len() != 0 {
			t.Errorf("progress wrote to stdout: %q", stdout.String())
		}
	})
}

// Piped, only the warnings appear.
func TestProgressPiped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stderr bytes.Buffer
		p := startProgress(&env{stderr: &stderr}, "verifying", "")
		time.Sleep(5 * progressEvery)
		p.warnf("one line")
		p.finish()
		if got := stderr.String(); got != "one line\n" {
			t.Errorf("stderr: %q", got)
		}
	})
}
