package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The runs of testdata/labeled.jsonl, newest first.
var (
	lab3 = "00000000-0000-4000-8000-0000000000a3" // 12:00, running, globex (and a note)
	lab5 = "00000000-0000-4000-8000-0000000000a5" // 12:00, running, acme
	lab2 = "00000000-0000-4000-8000-0000000000a2" // 11:00, done, acme
	lab1 = "00000000-0000-4000-8000-0000000000a1" // 10:00, running, acme
	lab4 = "00000000-0000-4000-8000-0000000000a4" // 09:00, no labels
)

// seedLabeled imports testdata/labeled.jsonl into the cli's store.
func seedLabeled(c *cli) {
	c.t.Helper()
	if out := c.ok("import", filepath.Join("testdata", "labeled.jsonl")); out != "imported 5 runs\n" {
		c.t.Fatalf("import: %q", out)
	}
}

// lsDoc is ls --json's document as a script reads it.
type lsDoc struct {
	Runs []struct {
		RunID  string             `json:"run_id"`
		Labels *map[string]string `json:"labels"`
	} `json:"runs"`
	Next string `json:"next"`
}

func parseLs(t *testing.T, out string) lsDoc {
	t.Helper()
	var doc lsDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	return doc
}

// lsRuns returns the run IDs of every page of ls with args, following the
// cursors.
func lsRuns(t *testing.T, c *cli, args ...string) []string {
	t.Helper()
	var ids []string
	for cursor, page := "", 0; page == 0 || cursor != ""; page++ {
		a := append([]string{"ls", "--json"}, args...)
		if cursor != "" {
			a = append(a, "--cursor", cursor)
		}
		doc := parseLs(t, c.ok(a...))
		for _, r := range doc.Runs {
			ids = append(ids, r.RunID)
		}
		cursor = doc.Next
	}
	return ids
}

// testLsLabels checks ls --label: one label, two (ANDed), with paging and
// the other filters; labels in the JSON document ({} for none) and the
// table; and its usage errors.
func testLsLabels(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	seedLabeled(c)
	golden(t, "ls_labels.json", c.ok("ls", "--json", "--label", "status=running"))
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--label", "status=running"}, []string{lab3, lab5, lab1}},
		{[]string{"--label", "status=running", "--label", "tenant=acme"}, []string{lab5, lab1}},
		{[]string{"--label", "tenant=acme", "--label", "status=running", "--limit", "1"}, []string{lab5, lab1}},
		{[]string{"--label", "tenant=acme", "--limit", "1"}, []string{lab5, lab2, lab1}},
		{[]string{"--label", "status=running", "--workflow", "billing"}, []string{lab3}},
		{[]string{"--label", "status=running", "--until", "2024-04-01T12:00:00Z"}, []string{lab1}},
		{[]string{"--label", `note=a, "b" ✓`}, []string{lab3}},
		{[]string{"--label", "status=paused"}, nil},
		{[]string{"--label", "status=run"}, nil},
	} {
		if got := lsRuns(t, c, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %s: %v, want %v", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	for _, r := range parseLs(t, c.ok("ls", "--json")).Runs {
		if r.Labels == nil || (r.RunID == lab4) != (len(*r.Labels) == 0) {
			t.Errorf("ls --json: run %s has labels %v (want an object, {} for run %s only)", r.RunID, r.Labels, lab4)
		}
	}
	golden(t, "ls_labels_table.txt", c.ok("ls"))

	c.fails(exitUsage, []string{`--label "status": want KEY=VALUE`}, "ls", "--label", "status")
	c.fails(exitUsage, []string{`--label "status=": label "status": value of 0 bytes`}, "ls", "--label", "status=")
	c.fails(exitUsage, []string{`--label "=running": label key "": 0 bytes`}, "ls", "--label", "=running")
	c.fails(exitUsage, []string{`--label "cairn.lease=1": .*reserved`}, "ls", "--label", "cairn.lease=1")
	c.fails(exitUsage, []string{`--label "sta tus=x": label key "sta tus": byte 3`}, "ls", "--label", "sta tus=x")
	c.fails(exitUsage, []string{`--label "status=done": label "status" given twice`}, "ls", "--label", "status=running", "--label", "status=done")
	many := []string{"ls"}
	for _, k := range strings.Split("a b c d e f g h i j k l m n o p q", " ") {
		many = append(many, "--label", k+"=1")
	}
	c.fails(exitUsage, []string{`^cairn ls: --label: 17 labels, at most 16 allowed\n$`}, many...)
}

// testLabelsTransfer checks that show prints a run's labels (in its
// metadata, under "cairn.labels") and that labels survive export and
// import in every format: the new store lists the same runs, labels and
// all, by label too. A record whose labels break the rules is refused.
func testLabelsTransfer(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	seedLabeled(c)
	if out := c.ok("show", lab1); !strings.Contains(out, "\"cairn.labels\": {\n      \"status\": \"running\",\n      \"tenant\": \"acme\"\n    }") {
		t.Errorf("show of a labeled run does not print its labels:\n%s", out)
	}
	all := c.ok("ls", "--json", "--limit", "0")
	running := c.ok("ls", "--json", "--label", "status=running")
	dir := t.TempDir()
	c.ok("export", "--out", filepath.Join(dir, "all.jsonl"))
	for _, format := range []string{"msgpack", "json"} {
		c.ok("export", "--format", format, "--out", filepath.Join(dir, format))
	}
	for _, src := range []string{"all.jsonl", "msgpack", "json"} {
		d, _, _ := b.newCLI(t)
		if out := d.ok("import", filepath.Join(dir, src)); out != "imported 5 runs\n" {
			t.Fatalf("import %s: %q", src, out)
		}
		if got := d.ok("ls", "--json", "--limit", "0"); got != all {
			t.Errorf("ls after export and import of %s:\n%s\nwant:\n%s", src, got, all)
		}
		if got := d.ok("ls", "--json", "--label", "status=running"); got != running {
			t.Errorf("ls --label status=running after export and import of %s:\n%s\nwant:\n%s", src, got, running)
		}
	}

	bad := filepath.Join(dir, "bad.jsonl")
	line := `{"workflow_name":"x","run_id":"00000000-0000-4000-8000-0000000000b1","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{"cairn.labels":{"status":1}}}`
	if err := os.WriteFile(bad, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.run("", "import", bad)
	want := regexp.MustCompile(`^cairn import: .*bad.jsonl line 1: run 00000000-0000-4000-8000-0000000000b1: .*metadata\["cairn.labels"\]\["status"\] is int64, not a string\ncairn import: 1 record could not be imported \(listed above\)\n$`)
	if r.code != exitFailure || r.stdout != "imported 0 runs\n" || !want.MatchString(r.stderr) {
		t.Errorf("import of a record with bad labels: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	c.fails(exitNotFound, nil, "show", "00000000-0000-4000-8000-0000000000b1")
}
