package main

import "context"

// A command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands are all of cairn's subcommands, sorted by name: the order cairn
// help lists them in.
var commands = []command{
	{name: "demo", summary: "run a sample workflow, crash it, resume it from the store, verify it", run: runDemo},
	{name: "export", summary: "write checkpoints as JSON lines, or Blazen records", run: runExport},
	{name: "gc", summary: "delete dead objects, expired runs and index objects no longer needed", run: runGC},
	{name: "import", summary: "read JSON lines, or Blazen MessagePack or JSON records", run: runImport},
	{name: "ls", summary: "list runs, newest first", run: runLs},
	{name: "reconcile", summary: "restore the winning state of runs two regions wrote", run: runReconcile},
	{name: "reindex", summary: "rebuild the index from the objects", run: runReindex},
	{name: "rm", summary: "delete runs", run: runRm},
	{name: "show", summary: "print a checkpoint as JSON", run: runShow},
	{name: "verify", summary: "check the index against the objects", run: runVerify},
}
