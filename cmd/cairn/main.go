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
//	cairn reconcile                 restore the winning state of runs two regions wrote
//	cairn export [--format F]       write checkpoints as JSON lines, or Blazen records
//	cairn import FILE|DIR|-...      read JSON lines, or Blazen MessagePack or JSON records
//	cairn keyring new|rotate|retire|show FILE
//	                                create and rotate the keyring that seals a store
//	cairn rekey                     reseal every object under the keyring's primary key, and verify
//	cairn version                   the build: module version, VCS revision, Go version
//	cairn completion SHELL          a shell completion script (bash, zsh, fish, powershell)
//	cairn help [COMMAND]            help, on stdout
//
// The command line follows kubectl, gh and docker (spf13/cobra): flags
// may come before or after the arguments (cairn show RUN_ID --store URL),
// "--" ends them, and the single-dash spelling of a long flag that older
// releases accepted (-store URL) still works. Every command takes the
// global flags:
//
//	--store URL         default $CAIRN_STORE, else a directory under the user's
//	                    data directory: file://DIR, mem://, or
//	                    s3://bucket/prefix?endpoint=…&region=… (see tiered.Open).
//	                    Credentials for s3:// come from the AWS default chain; a
//	                    URL holding any is refused, and they are never printed.
//	--json              one JSON document on stdout instead of text (and no
//	                    progress bar)
//	--debug             a debug log on stderr (log/slog text)
//	--keyring FILE      default $CAIRN_KEYRING: the keyring file (cairn keyring)
//	                    the store's objects are sealed with (package seal);
//	                    none: the store is not sealed
//	--timeout DURATION  a deadline for the whole command (default none: each
//	                    S3 request is bounded by the URL's timeout and
//	                    attempt_timeout all the same)
//
// Commands that only read (ls, show, verify, export, gc --dry-run, import
// --dry-run) open the store read-only: a file:// store that does not exist
// is an error naming its path, not a new empty store.
//
// SIGINT and SIGTERM, like the timeout, stop a command: its context is
// cancelled, so it stops its work, flushes what it already saved for at
// most $CAIRN_STOP_GRACE (default 10s), prints one line and exits. A
// second signal exits at once, without flushing; a command that has not
// ended a few seconds after its grace is ended all the same.
//
// Exit codes: 0 success, 1 failure (a timeout and a permission error
// included), 2 usage error (a bad flag, argument or store URL), 3 a run
// not found, 130 interrupted by SIGINT, 143 stopped by SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
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
// whether stderr is a terminal (progress bars), and the global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stderr is a terminal

	// now is the clock of --since and --until given as durations; nil
	// means time.Now.
	now func() time.Time

	// exit, if set, ends the process: run calls it when a stopped
	// command has not returned within its grace and a margin.
	exit func(code int)
	// setTimeout arms the deadline of the running command (--timeout);
	// run sets it.
	setTimeout func(time.Duration)

	// flags are the global flags, parsed by the root command.
	flags globalFlags
	// started: the command line is parsed and checked, and the command
	// itself runs. An error before that is a usage error.
	started bool
	// log is the --debug log (slog's text handler on stderr), or a
	// logger that discards everything.
	log *slog.Logger
	// keyring is the keyring the command's stores are sealed with, loaded
	// once (storeKeyring); newRoot sets it.
	keyring *keyringOnce
	// rekeyProgress, if set, is called after each object rekey counts
	// (tests stop a rekey partway with it).
	rekeyProgress func(done, total int)
}

// logger returns the --debug log, or one that discards everything (an
// env made without run, in tests).
func (e *env) logger() *slog.Logger {
	if e.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.log
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

// hintTimeout bounds the look at the store that a failed command makes to
// tell whether the store is sealed (keyringHint).
const hintTimeout = 10 * time.Second

// maxStopGrace bounds $CAIRN_STOP_GRACE: a day is more than any flush
// needs, and the waits built on it must not overflow.
const maxStopGrace = 24 * time.Hour

// stopGrace is $CAIRN_STOP_GRACE (at most maxStopGrace), else
// defaultStopGrace.
func stopGrace(e *env) time.Duration {
	if d, err := time.ParseDuration(e.getenv("CAIRN_STOP_GRACE")); err == nil && d > 0 {
		return min(d, maxStopGrace)
	}
	return defaultStopGrace
}

// run runs one command line and returns the exit code. Errors are printed
// on one line to stderr, after the command's path ("cairn ls: ..."). When
// ctx is cancelled with a *stopped cause (a signal) or --timeout passes,
// the command's context ends; the command then has stopGrace to flush and
// return (see finishContext), after which, if e.exit is set, the process
// ends without it.
func run(ctx context.Context, e *env, args []string) int {
	e.log = e.logger()
	root := newRoot(e)
	args = longFlags(root, args)
	root.SetArgs(args)
	name := root.CommandPath()
	if cmd, _, err := root.Find(args); err == nil {
		name = cmd.CommandPath()
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
				fmt.Fprintf(e.stderr, "%s: %s, and did not stop within %s: exiting\n", name, why, wait)
				e.exit(why.code())
			}
		})
	}

	_, err := root.ExecuteContextC(ctx)
	err = commandStarted(e, err)
	var why *stopped
	if errors.As(context.Cause(ctx), &why) && (err != nil || why.sig != nil) {
		msg := why.Error()
		if err != nil && (errors.Is(err, errNotDurable) || !errors.Is(err, context.Canceled) && !errors.As(err, new(*stopped))) {
			msg += "; " + describe(err)
		}
		fmt.Fprintf(e.stderr, "%s: %s\n", name, msg)
		return why.code()
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", name, describe(err))
	hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), hintTimeout)
	defer hcancel()
	if hint := keyringHint(hctx, e, storeURL(e), err); hint != "" {
		fmt.Fprintf(e.stderr, "%s: hint: %s\n", name, hint)
	}
	return exitCode(err)
}
