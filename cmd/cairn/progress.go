package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows on stderr what a long command is doing: a spinner, the
// count of what it has done so far (when it counts) and the time elapsed,
// redrawn on one line ten times a second and erased when the command ends.
// It draws only when stderr is a terminal, so piped output and logs stay
// clean, and never writes to stdout. Verify, Reindex and GC report nothing
// until they are done, so for them it is a spinner with the elapsed time.
//
// A few dozen lines instead of a progress-bar module: an indeterminate
// spinner with a count is all these commands can show, and a dependency
// for it is not worth its weight.
type progress struct {
	w     io.Writer
	unit  string // what add counts ("runs"); empty: no count
	draw  bool   // stderr is a terminal
	n     atomic.Int64
	start time.Time

	mu    sync.Mutex // serializes writes to w, guards what follows
	label string
	shown bool // a progress line is on the screen
	stop  chan struct{}
	done  chan struct{}
}

// progressEvery is how often the progress line is redrawn.
const progressEvery = 100 * time.Millisecond

// startProgress starts showing progress on e.stderr if it is a terminal.
// Call finish before writing the command's result or returning its error.
func startProgress(e *env, label, unit string) *progress {
	p := &progress{w: e.stderr, label: label, unit: unit, draw: e.tty, start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if !p.draw {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

// add counts n more things done.
func (p *progress) add(n int) { p.n.Add(int64(n)) }

// relabel changes what the progress line says the command is doing.
func (p *progress) relabel(label string) {
	p.mu.Lock()
	p.label = label
	p.mu.Unlock()
}

// warnf prints one line on stderr without mixing it into the progress
// line, which is drawn again below it on the next tick.
func (p *progress) warnf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// finish erases the progress line and stops drawing. It may be called
// more than once.
func (p *progress) finish() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	<-p.done
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for frame := 0; ; frame++ {
		select {
		case <-p.stop:
			p.mu.Lock()
			p.clearLocked()
			p.mu.Unlock()
			return
		case <-t.C:
		}
		p.mu.Lock()
		fmt.Fprint(p.w, "\r\x1b[K"+p.line(frame))
		p.shown = true
		p.mu.Unlock()
	}
}

func (p *progress) line(frame int) string {
	var b strings.Builder
	b.WriteByte(`|/-\`[frame%4])
	b.WriteString(" " + p.label)
	if p.unit != "" {
		fmt.Fprintf(&b, ": %d %s", p.n.Load(), p.unit)
	}
	fmt.Fprintf(&b, " (%s)", time.Since(p.start).Truncate(time.Second/10))
	return b.String()
}

func (p *progress) clearLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
