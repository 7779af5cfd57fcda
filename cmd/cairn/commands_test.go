package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runIn runs a command line in this process, on a store given by the
// command line, and returns stdout, stderr and the exit code.
func runIn(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := run(context.Background(), e, args)
	return stdout.String(), stderr.String(), code
}

// Every command has a summary and a function, and the help lists them
// all, by name, on stdout.
func TestCommandTable(t *testing.T) {
	var names []string
	for _, c := range subcommands(&env{}) {
		if c.Short == "" || c.RunE == nil {
			t.Errorf("command %q has no summary or no function", c.Name())
		}
		names = append(names, c.Name())
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("commands %v: not sorted by name, or one repeated", names)
	}
	stdout, stderr, code := runIn(t, "help")
	if code != exitOK || stderr != "" {
		t.Fatalf("help: exit %d, stderr %q", code, stderr)
	}
	var listed []string
	inList := false
	for _, l := range strings.Split(stdout, "\n") {
		switch {
		case l == "Available Commands:":
			inList = true
		case inList && strings.HasPrefix(l, "  "):
			listed = append(listed, strings.Fields(l)[0])
		case inList:
			inList = false
		}
	}
	want := slices.Sorted(slices.Values(append(names, "completion", "help")))
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Errorf("help lists %v, want %v\n%s", listed, want, stdout)
	}
}

// Flag names have one kind in every command: a name that takes a value
// in one command and not in another would make longFlags and cobra's
// command search read a command line two ways.
func TestFlagKinds(t *testing.T) {
	kinds := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(name string, takesValue bool) {
			if k, ok := kinds[name]; ok && k != takesValue {
				t.Errorf("flag --%s takes a value in one command and not in another (%s)", name, c.CommandPath())
			}
			kinds[name] = takesValue
		}
		c.Flags().VisitAll(func(f *pflag.Flag) { check(f.Name, f.NoOptDefVal == "") })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { check(f.Name, f.NoOptDefVal == "") })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&env{getenv: func(string) string { return "" }}))
	if len(kinds) < 20 {
		t.Fatalf("only %d flags found", len(kinds))
	}
}
