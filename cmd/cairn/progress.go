package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows on stderr what a long command is doing: a bar with the
// count done, the total when it is known (with the percentage and the time
// left), the rate, and a status line of the command's own counts; a
// spinner with the count, rate and time elapsed while the total is not
// known. It is drawn by vbauerster/mpb, redrawn ten times a second and
// erased when the command ends.
//
// It draws only when stderr is a terminal and neither --json nor --debug
// is given, so piped output, scripts and debug logs stay clean, and never
// writes to stdout. Its methods are safe for concurrent use.
type progress struct {
	w      io.Writer     // stderr
	p      *mpb.Progress // nil: nothing is drawn
	bar    *mpb.Bar
	unit   progressUnit
	noun   string
	start  time.Time
	label  atomic.Pointer[string]
	status atomic.Pointer[string]
	once   sync.Once
}

// progressUnit is what a progress counts.
type progressUnit int

const (
	unitItems progressUnit = iota // runs, objects: counted with a noun
	unitBytes                     // bytes read, shown in KiB, MiB...
)

// progressEvery is how often the progress bar is redrawn.
const progressEvery = 100 * time.Millisecond

// startProgress starts showing the progress of a command on e.stderr if
// it is a terminal: label says what it does ("importing"), noun what it
// counts ("runs"; for unitBytes, unused), total how many there are (0:
// not known yet, see setTotal). Call finish before writing the command's
// result or returning its error.
func startProgress(e *env, label string, unit progressUnit, noun string, total int64) *progress {
	pr := &progress{w: e.stderr, unit: unit, noun: noun, start: time.Now()}
	pr.label.Store(&label)
	pr.status.Store(new(string))
	if !e.tty || e.flags.json || e.flags.debug {
		return pr
	}
	pr.p = mpb.New(mpb.WithConsoleWriter(console{Writer: cupwriter.New(e.stderr, true), out: e.stderr}),
		mpb.WithAutoRefresh(), mpb.WithRefreshRate(progressEvery))
	// Created without a total and given it after, so that the bar never
	// completes (and vanishes) by itself before the command is done.
	bar, err := pr.p.Add(0, progressFiller{bar: mpb.BarStyle().Build(), start: pr.start},
		mpb.BarWidth(24),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return *pr.label.Load() })),
		mpb.AppendDecorators(decor.Any(pr.stats)),
	)
	if err != nil { // only after Wait, which finish alone calls
		pr.p = nil
		return pr
	}
	pr.bar = bar
	pr.setTotal(total)
	return pr
}

// add counts n more done.
func (pr *progress) add(n int) {
	if pr.bar != nil {
		pr.bar.IncrBy(n)
	}
}

// set sets the count done to n.
func (pr *progress) set(n int64) {
	if pr.bar != nil {
		pr.bar.SetCurrent(n)
	}
}

// setTotal sets how many there are to do, once known.
func (pr *progress) setTotal(n int64) {
	if pr.bar != nil && n > 0 {
		pr.bar.SetTotal(n, false)
	}
}

// relabel changes what the progress bar says the command is doing.
func (pr *progress) relabel(label string) { pr.label.Store(&label) }

// setStatus sets the command's own counts, shown after the rate
// ("6000 imported, 12 skipped").
func (pr *progress) setStatus(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	pr.status.Store(&s)
}

// warnf prints one line on stderr, above the progress bar when there is
// one.
func (pr *progress) warnf(format string, args ...any) {
	line := fmt.Sprintf(format+"\n", args...)
	if pr.p != nil {
		if _, err := pr.p.Write([]byte(line)); err == nil {
			return
		}
	}
	io.WriteString(pr.w, line)
}

// finish erases the progress bar and stops drawing, once every line warnf
// wrote is out. It may be called more than once.
func (pr *progress) finish() {
	pr.once.Do(func() {
		if pr.p != nil {
			pr.bar.Abort(true)
			pr.p.Wait()
		}
	})
}

// stats is the text after the bar: the count done (of the total), the
// rate, and the time left, or the time elapsed while the total is not
// known; then the command's status. A progress that counts nothing shows
// the time elapsed alone.
func (pr *progress) stats(s decor.Statistics) string {
	elapsed := time.Since(pr.start)
	var b strings.Builder
	counts := pr.unit == unitBytes || pr.noun != ""
	switch {
	case !counts:
		b.WriteString(elapsed.Truncate(time.Second / 10).String())
	case s.Total > 0:
		fmt.Fprintf(&b, "%d%% %s", s.Current*100/s.Total, pr.amount(s.Current, s.Total))
	default:
		b.WriteString(pr.amount(s.Current, 0))
	}
	if secs := elapsed.Seconds(); counts && secs >= 1 && s.Current > 0 {
		rate := float64(s.Current) / secs
		fmt.Fprintf(&b, "  %s/s", pr.amount(int64(rate), 0))
		switch left := time.Duration(float64(s.Total-s.Current) / rate * float64(time.Second)); {
		case s.Total > s.Current:
			fmt.Fprintf(&b, "  ETA %s", left.Round(time.Second))
		case s.Total <= 0:
			fmt.Fprintf(&b, "  %s", elapsed.Round(time.Second))
		}
	}
	if st := *pr.status.Load(); st != "" {
		b.WriteString("  · " + st)
	}
	return b.String()
}

// amount formats n of the progress's unit: "120 runs", "1.5 MiB"; with a
// total, "120/300 runs", "1.5/7.3 MiB".
func (pr *progress) amount(n, total int64) string {
	if pr.unit == unitBytes {
		if total > 0 {
			exp, unit := byteUnit(total)
			return fmt.Sprintf("%.1f/%.1f %s", float64(n)/exp, float64(total)/exp, unit)
		}
		exp, unit := byteUnit(n)
		return fmt.Sprintf("%.1f %s", float64(n)/exp, unit)
	}
	if total > 0 {
		return fmt.Sprintf("%d/%d %s", n, total, pr.noun)
	}
	return fmt.Sprintf("%d %s", n, pr.noun)
}

// byteUnit returns the binary unit to show n bytes in, and its size.
func byteUnit(n int64) (float64, string) {
	size := 1.0
	for _, unit := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if float64(n) < size*1024 || unit == "TiB" {
			return size, unit
		}
		size *= 1024
	}
	panic("unreachable")
}

// console is where mpb draws: stderr, known to be a terminal (e.tty),
// redrawn in place with cursor movements (cupwriter). Its size is the
// terminal's, or 80×24 when stderr is not a file or the terminal does not
// say (a pseudo-terminal never sized reports 0×0, where mpb would draw
// nothing).
type console struct {
	*cupwriter.Writer
	out io.Writer
}

func (console) IsTerminal() bool { return true }

func (c console) GetTermSize() (width, height int, err error) {
	if f, ok := c.out.(*os.File); ok {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			return w, h, nil
		}
	}
	return 80, 24, nil
}

// progressFiller draws a bar once the total is known, else a spinner
// of one character.
type progressFiller struct {
	bar   mpb.BarFiller
	start time.Time
}

// spinner are the frames of the spinner, one every progressEvery.
var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (f progressFiller) Fill(w io.Writer, s decor.Statistics) error {
	if s.Total > 0 {
		return f.bar.Fill(w, s)
	}
	_, err := io.WriteString(w, spinner[int(time.Since(f.start)/progressEvery)%len(spinner)])
	return err
}
