// Command cairn runs a demo workflow on a checkpoint store and gives
// operators the commands to inspect, repair and migrate one.
//
//	cairn demo                      run a sample workflow, crash it, resume it, verify it
//	cairn ls [flags]                list runs, newest first
//	cairn show RUN_ID               print a checkpoint as JSON
//	cairn rm RUN_ID...              delete runs
//	cairn verify                    check the index against the objects
//	cairn reindex                   rebuild the index from the objects
//	cairn gc [--dry-run]            delete dead objects, expired runs and index objects no longer needed
//	cairn export [--format F]       write checkpoints as JSON lines, or Blazen records
//	cairn import FILE|DIR...        read JSON lines, or Blazen MessagePack or JSON records
//
// Every command takes --store URL (default: $CAIRN_STORE, else a directory
// under the user's data directory): file://DIR, mem://, or
// s3://bucket/prefix?endpoint=…&region=… (see tiered.Open for the
// parameters). Credentials for s3:// come from the AWS default chain; a URL
// holding any is refused, and they are never printed.
//
// Every command takes --timeout DURATION, a deadline for the whole command
// (default none: each S3 request is bounded by the URL's timeout and
// attempt_timeout all the same). SIGINT and SIGTERM, like the timeout,
// stop a command: it stops its work, flushes what it already saved for at
// most $CAIRN_STOP_GRACE (default 10s), prints one line and exits. A
// second signal exits at once, without flushing; a command that has not
// ended a few seconds after its grace is ended all the same.
//
// Exit codes: 0 success, 1 failure (a timeout included), 2 usage error,
// 3 a run not found, 130 interrupted by SIGINT, 143 stopped by SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// env is what a command may use of its process: streams, environment,
// and whether stderr is a terminal (progress bars).
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stderr is a terminal

	// exit, if set, ends the process: run calls it when a stopped
	// command has not returned within its grace and a margin.
	exit func(code int)
	// setTimeout arms the deadline of the running command (--timeout);
	// run sets it.
	setTimeout func(time.Duration)
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, tty: isTerminal(os.Stderr), exit: os.Exit}
	go func() {
		first := <-sigs
		cancel(&stopped{sig: first})
		second := <-sigs
		fmt.Fprintf(e.stderr, "cairn: %s again: exiting without flushing\n", signalName(second))
		os.Exit(signalCode(second))
	}()
	os.Exit(run(ctx, e, os.Args[1:]))
}

// stopped is the cause of a command's context when a signal or --timeout
// stopped it.
type stopped struct {
	sig     os.Signal     // the signal, or nil for the timeout
	timeout time.Duration // --timeout, when sig is nil
}

func (s *stopped) Error() string {
	if s.sig != nil {
		return "interrupted by " + signalName(s.sig)
	}
	return fmt.Sprintf("timed out after %s (--timeout)", s.timeout)
}

// code is the exit code of a command stopped this way: 128 plus the
// signal's number, as shells report, or 1 for a timeout.
func (s *stopped) code() int {
	if s.sig != nil {
		return signalCode(s.sig)
	}
	return exitFailure
}

func signalName(sig os.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func signalCode(sig os.Signal) int {
	if n, ok := sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 128 + int(syscall.SIGINT)
}

// defaultStopGrace is how long a stopped command may flush what it saved.
const defaultStopGrace = 10 * time.Second

// stopMargin is how long past its grace a stopped command may take to
// return before the process ends without it.
const stopMargin = 3 * time.Second

// stopGrace is $CAIRN_STOP_GRACE, else defaultStopGrace.
func stopGrace(e *env) time.Duration {
	if d, err := time.ParseDuration(e.getenv("CAIRN_STOP_GRACE")); err == nil && d > 0 {
		return d
	}
	return defaultStopGrace
}

// run runs one command line and returns the exit code. Errors are printed
// on one line to stderr. When ctx is cancelled with a *stopped cause (a
// signal) or --timeout passes, the command's context ends; the command
// then has stopGrace to flush and return (see finishContext), after which,
// if e.exit is set, the process ends without it.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(e.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(e.stderr, "cairn: unknown command %q (run cairn help)\n", args[0])
		return exitUsage
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx = context.WithValue(ctx, graceKey{}, newGrace(ctx, stopGrace(e)))
	var timers []*time.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	e.setTimeout = func(d time.Duration) {
		timers = append(timers, time.AfterFunc(d, func() { cancel(&stopped{timeout: d}) }))
	}
	if e.exit != nil {
		done := make(chan struct{})
		defer close(done)
		context.AfterFunc(ctx, func() {
			var why *stopped
			if !errors.As(context.Cause(ctx), &why) {
				return
			}
			wait := stopGrace(e) + stopMargin
			select {
			case <-done:
			case <-time.After(wait):
				fmt.Fprintf(e.stderr, "cairn %s: %s, and did not stop within %s: exiting\n", args[0], why, wait)
				e.exit(why.code())
			}
		})
	}

	err := commands[i].run(ctx, e, args[1:])
	var why *stopped
	if errors.As(context.Cause(ctx), &why) && (err != nil || why.sig != nil) {
		msg := why.Error()
		if err != nil && (errors.Is(err, errNotDurable) || !errors.Is(err, context.Canceled) && !errors.As(err, new(*stopped))) {
			msg += "; " + describe(err)
		}
		fmt.Fprintf(e.stderr, "cairn %s: %s\n", args[0], msg)
		return why.code()
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "cairn %s: %s\n", args[0], describe(err))
	return exitCode(err)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: cairn COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --store URL (default $CAIRN_STORE, else "+defaultStoreHint+")\nand --timeout DURATION. Run cairn COMMAND -h for its flags.")
}

// newFlags returns a flag set for a command that reports errors (as usage
// errors) instead of exiting, with --store on it.
func newFlags(e *env, name, args string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: cairn %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	store := fs.String("store", "", "store URL: file://DIR, mem:// or s3://bucket/prefix?endpoint=…&region=… (default $CAIRN_STORE, else "+defaultStoreHint+")")
	fs.Var(&timeoutFlag{e: e}, "timeout", "deadline of the whole command, such as 30s or 10m (default none)")
	return fs, store
}

// timeoutFlag is --timeout: setting it arms the command's deadline.
type timeoutFlag struct {
	e *env
	d time.Duration
}

func (f *timeoutFlag) String() string {
	if f == nil || f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *timeoutFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 30s or 10m")
	}
	f.d = d
	if f.e.setTimeout != nil {
		f.e.setTimeout(d)
	}
	return nil
}

// parse parses args, turning flag errors into usage errors. The usage is
// printed for -h only: a mistake gets the one-line error every failure
// gets, with a pointer to -h.
func parse(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		out.Write(buf.Bytes())
		return err
	case err != nil:
		return usagef("%v (run cairn %s -h)", err, fs.Name())
	}
	return nil
}
