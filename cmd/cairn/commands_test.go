package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The command table is sorted by name, without duplicates, every command
// with a summary and a function; help lists them in that order.
func TestCommandTable(t *testing.T) {
	for i, c := range commands {
		if c.summary == "" || c.run == nil {
			t.Errorf("command %q has no summary or no function", c.name)
		}
		if i > 0 && commands[i-1].name >= c.name {
			t.Errorf("command %q after %q: the table is not sorted by name, or repeats one", c.name, commands[i-1].name)
		}
	}
	var stderr bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	if code := run(context.Background(), e, []string{"help"}); code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	var listed []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "  ") && len(f) > 1 {
			listed = append(listed, f[0])
		}
	}
	var want []string
	for _, c := range commands {
		want = append(want, c.name)
	}
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Errorf("help lists %v, want %v", listed, want)
	}
}
