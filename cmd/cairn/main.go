// Command cairn runs a demo workflow on a checkpoint store and gives
// operators the commands to inspect, repair and migrate one.
//
//	cairn demo                      run a sample workflow, crash it, resume it, verify it
//	cairn ls [flags]                list runs, newest first
//	cairn show RUN_ID               print a checkpoint as JSON
//	cairn rm RUN_ID...              delete runs
//	cairn verify                    check the index against the objects
//	cairn reindex                   rebuild the index from the objects
//	cairn gc [--dry-run]            delete orphans, expired runs and index objects no longer needed
//	cairn export [--format F]       write checkpoints as JSON lines, or Blazen records
//	cairn import FILE|DIR...        read JSON lines, or Blazen MessagePack or JSON records
//
// Every command takes --store URL (default: $CAIRN_STORE, else a directory
// under the user's data directory): file://DIR, mem://, or
// s3://bucket/prefix?endpoint=…&region=…&path_style=true. Credentials for
// s3:// come from the AWS default chain and are never printed.
//
// Exit codes: 0 success, 1 failure, 2 usage error, 3 a run not found.
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
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// A command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands is filled by the files that implement them, in their init.
var commands []command

func register(c command) { commands = append(commands, c) }

// env is what a command may use of its process: streams, environment,
// and whether stderr is a terminal (progress bars).
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stderr is a terminal
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, tty: isTerminal(os.Stderr)}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs one command line and returns the exit code. Errors are printed
// on one line to stderr.
func run(ctx context.Context, e *env, args []string) int {
	slices.SortFunc(commands, func(a, b command) int { return strings.Compare(a.name, b.name) })
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
	err := commands[i].run(ctx, e, args[1:])
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
	fmt.Fprintln(w, "\nEvery command takes --store URL (default $CAIRN_STORE, else "+defaultStoreHint+").\nRun cairn COMMAND -h for its flags.")
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
	store := fs.String("store", "", "store URL: file://DIR, mem:// or s3://bucket/prefix?endpoint=…&region=…&path_style=true (default $CAIRN_STORE, else "+defaultStoreHint+")")
	return fs, store
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
