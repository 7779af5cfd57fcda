// Command cairngen generates MessagePack codecs for Go struct types; see
// package github.com/cairnstore/cairn/gen for what it supports and what it
// writes.
//
// Put a directive next to the types and run go generate:
//
//	//go:generate go run github.com/cairnstore/cairn/tools/cairngen -type Checkpoint,Event
//
// go run builds cairngen at the version of the module in go.mod. Or make it
// a tool of the module once, go get -tool
// github.com/cairnstore/cairn/tools/cairngen, and write
// //go:generate go tool cairngen -type …; or install it, go install
// github.com/cairnstore/cairn/tools/cairngen@latest, and write
// //go:generate cairngen -type ….
//
// go generate runs it in the directory of the file that holds the
// directive, so -dir defaults to the current directory; when $GOPACKAGE is
// set (as go generate sets it) and -dir is not given, the package found
// there must have that name. -output is relative to -dir. An output file
// whose content would not change is not rewritten.
//
// -msgpack-shims (off by default) adds MarshalMsgpack, UnmarshalMsgpack,
// EncodeMsgpack and DecodeMsgpack to every type, for code that also hands
// the types to github.com/vmihailenco/msgpack/v5; without it the generated
// file does not import that library. Run cairngen -h for every flag.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cairnstore/cairn/gen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, flag.ErrHelp) || errors.As(err, new(usageError)) {
			fmt.Fprint(os.Stderr, gen.Usage)
		}
		os.Exit(2)
	}
}

type usageError struct{ error }

func run(args []string) error {
	opts, err := gen.ParseArgs(args)
	if err != nil {
		return usageError{fmt.Errorf("cairngen: %w", err)}
	}
	src, err := gen.Generate(opts)
	if err != nil {
		return err
	}
	// Under go generate, the package in the directory of the directive is
	// the one the directive belongs to.
	if want := os.Getenv("GOPACKAGE"); want != "" && opts.Dir == "." &&
		!bytes.Contains(src, []byte("\npackage "+want+"\n")) {
		return fmt.Errorf("cairngen: $GOPACKAGE is %s, but the package in the current directory is not", want)
	}
	out := opts.OutputPath()
	if old, err := os.ReadFile(out); err == nil && bytes.Equal(old, src) {
		return nil // unchanged: keep the file's modification time
	}
	return os.WriteFile(out, src, 0o666)
}
