package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// testLs checks ls: its JSON document and table, filters, paging by
// cursor, and its usage errors.
func testLs(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	golden(t, "ls_empty.json", c.ok("ls", "--json"))
	seed(c)
	golden(t, "ls_all.json", c.ok("ls", "--json", "--limit", "0"))
	golden(t, "ls_orders.json", c.ok("ls", "--json", "--workflow", "orders"))
	golden(t, "ls_window.json", c.ok("ls", "--json", "--since", "2024-03-01T10:00:00Z", "--until", "2024-03-02T22:00:00Z"))

	// Paging: two pages of two and a last one of one, by cursor.
	var all []string
	cursor := ""
	for page := 1; ; page++ {
		args := []string{"ls", "--json", "--limit", "2"}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		out := c.ok(args...)
		golden(t, fmt.Sprintf("ls_page%d.json", page), out)
		var doc struct {
			Runs []struct {
				RunID string `json:"run_id"`
			} `json:"runs"`
			Next *string `json:"next"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Next == nil {
			t.Fatalf("ls --json: %v, or no next:\n%s", err, out)
		}
		for _, r := range doc.Runs {
			all = append(all, r.RunID)
		}
		if cursor = *doc.Next; cursor == "" {
			break
		}
	}
	if want := []string{run5, run3, run1, run2, run4}; strings.Join(all, " ") != strings.Join(want, " ") {
		t.Errorf("paged ls: %v\nwant %v", all, want)
	}

	// The table, with the cursor of the next page on stderr.
	r := c.run("", "ls", "--limit", "3")
	if r.code != 0 {
		t.Fatalf("ls: exit %d: %s", r.code, r.stderr)
	}
	golden(t, "ls_table.txt", r.stdout)
	if !regexp.MustCompile(`^more runs: repeat with --cursor [A-Za-z0-9_-]+\n$`).MatchString(r.stderr) {
		t.Errorf("ls stderr: %q", r.stderr)
	}
	if out := c.ok("ls", "--limit", "0"); strings.Count(out, "\n") != 6 {
		t.Errorf("ls --limit 0 is not a header and five runs:\n%s", out)
	}

	c.fails(exitUsage, []string{`--limit -1`}, "ls", "--limit", "-1")
	c.fails(exitUsage, []string{`--since "yesterday": want a date \(2024-01-01\), an RFC 3339 time`}, "ls", "--since", "yesterday")
	c.fails(exitUsage, []string{`--cursor: "xyz" is not a cursor`}, "ls", "--cursor", "xyz")
	if r := c.fails(exitUsage, []string{`--cursor: "x{64}"…\(100000 bytes\) is not a cursor`}, "ls", "--cursor", strings.Repeat("x", 100000)); len(r.stderr) > 300 {
		t.Errorf("a 100 KB cursor makes a %d-byte error", len(r.stderr))
	}
	c.fails(exitUsage, []string{`^cairn ls: unknown flag: --bogus \(run cairn ls --help\)\n$`}, "ls", "--bogus")
	c.fails(exitUsage, []string{`unexpected argument "extra"`}, "ls", "extra")
}
