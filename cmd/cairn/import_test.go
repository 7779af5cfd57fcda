package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cairnstore/cairn"
)

// testImport checks that every form export writes (a JSON lines file,
// directories of msgpack and json records, stdin) imports into an empty
// store that then exports the same bytes.
func testImport(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	seed(c)
	jsonl := c.ok("export")
	dir := t.TempDir()
	file := filepath.Join(dir, "all.jsonl")
	c.ok("export", "--out", file)
	for _, format := range []string{"msgpack", "json"} {
		c.ok("export", "--format", format, "--out", filepath.Join(dir, format))
	}

	// Each form imports into an empty store and exports the same.
	for _, args := range [][]string{{file}, {filepath.Join(dir, "msgpack")}, {filepath.Join(dir, "json")}, {"-"}} {
		d, _, _ := b.newCLI(t)
		stdin := ""
		if args[0] == "-" {
			stdin = jsonl
		}
		if out := d.okIn(stdin, append([]string{"import"}, args...)...); out != "imported 5 runs\n" {
			t.Errorf("import %v: %q", args, out)
		}
		if got := d.ok("export"); got != jsonl {
			t.Errorf("export after import %v:\n%s\nwant:\n%s", args, got, jsonl)
		}
	}
}

// testImportBlazen checks the import of Blazen's records: MessagePack
// (bare, zstd-compressed, positional), legacy JSON, a directory of them;
// and that export gives Blazen's bytes back.
func testImportBlazen(t *testing.T, bk backend) {
	c, _, _ := bk.newCLI(t)
	dir := t.TempDir()
	a, _ := hex.DecodeString(goldenA)
	b, _ := hex.DecodeString(goldenB)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wantA := indentJSON(t, `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{"counter":42},"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"hello"}}],"metadata":{}}`)
	wantB := indentJSON(t, `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-06-10T06:13:20.123456789Z","state":{"counter":{"Json":42}},"pending_events":[],"metadata":{"run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8"}}`)
	// Vector B is newer than A: imported after it, it replaces it; A
	// imported again is skipped, unless with --overwrite.
	const skippedA = "imported 0 runs, skipped 1 (the store's copy is as new or newer)\n"
	for _, tc := range []struct {
		name string
		data []byte
		mode []string
		out  string
		want string
	}{
		{"a.msgpack", a, nil, "imported 1 run\n", wantA},
		{"b.msgpack", b, nil, "imported 1 run\n", wantB},
		{"a.zst", cairn.DefaultCodec().Compress(nil, a), nil, skippedA, wantB},
		{"a.zst", cairn.DefaultCodec().Compress(nil, a), []string{"--overwrite"}, "imported 1 run\n", wantA},
		{"b.msgpack", b, []string{"--skip-existing"}, "imported 0 runs, skipped 1 (already in the store)\n", wantA},
		{"a-array.msgpack", positionalA(t), []string{"--overwrite"}, "imported 1 run\n", wantA},
	} {
		if out := c.ok(append([]string{"import", write(tc.name, tc.data)}, tc.mode...)...); out != tc.out {
			t.Errorf("import %s %v: %q, want %q", tc.name, tc.mode, out, tc.out)
		}
		if got := c.ok("show", goldenRunID); got != tc.want {
			t.Errorf("show after importing %s %v:\n%s\nwant:\n%s", tc.name, tc.mode, got, tc.want)
		}
	}
	// Export gives back Blazen's bytes exactly.
	out := filepath.Join(dir, "out")
	c.ok("export", "--format", "msgpack", "--out", out)
	if got, err := os.ReadFile(filepath.Join(out, goldenRunID+".msgpack")); err != nil || !bytes.Equal(got, a) {
		t.Errorf("exported record:\n%x, %v\nwant golden vector A:\n%x", got, err, a)
	}

	// A legacy JSON record, indented, with a field Cairn does not know.
	if out := c.ok("import", filepath.Join("testdata", "legacy.json")); out != "imported 1 run\n" {
		t.Fatalf("import legacy.json: %q", out)
	}
	want := indentJSON(t, `{"workflow_name":"legacy","run_id":"9b2f6c1e-4d3a-4e8b-a1c2-3d4e5f6a7b8c","timestamp":"2023-12-31T23:59:59.500Z","state":{"attempt":3,"payload":{"ids":[1,2,3],"ratio":0.25}},"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"from an older Blazen"}}],"metadata":{"engine":"blazen"}}`)
	if got := c.ok("show", "9b2f6c1e-4d3a-4e8b-a1c2-3d4e5f6a7b8c"); got != want {
		t.Errorf("show of the legacy record:\n%s\nwant:\n%s", got, want)
	}

	// A directory: every file in it, not hidden files or subdirectories.
	d, _, _ := bk.newCLI(t)
	in := t.TempDir()
	for name, data := range map[string][]byte{"b.msgpack": b, ".hidden": []byte("garbage"), "sub/x": []byte("garbage")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(in, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(in, "legacy.json"), must(os.ReadFile(filepath.Join("testdata", "legacy.json"))), 0o644); err != nil {
		t.Fatal(err)
	}
	// The subdirectory is named on stderr, the hidden file is not.
	if r := d.run("", "import", in); r.code != 0 || r.stdout != "imported 2 runs\n" ||
		r.stderr != "cairn import: "+filepath.Join(in, "sub")+": skipped: a directory (import reads the files of "+in+", not its subdirectories)\n" {
		t.Errorf("import DIR: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := d.ok("show", goldenRunID); got != wantB {
		t.Errorf("show after importing a directory:\n%s", got)
	}
}

// testImportBadRecords checks that import goes on past bad records,
// names each, and fails at the end; and refuses records over the limit
// without reading them whole.
func testImportBadRecords(t *testing.T, b backend) {
	c, _, _ := b.newCLI(t)
	dir := t.TempDir()
	lines := readLines(t, filepath.Join("testdata", "runs.jsonl"))
	bad := filepath.Join(dir, "bad.jsonl")
	content := lines[0] + "\n" + `{"workflow_name":"x","run_id":"not-a-uuid","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{}}` +
		"\n" + lines[1] + "\n" + `{"workflow_name":"x"}` + "\n" + "\x01garbage\n" + `{"truncated": ` + "\n"
	if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.run("", "import", bad)
	if r.code != exitFailure || r.stdout != "imported 2 runs\n" {
		t.Fatalf("import of a file with bad records: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []string{
		`^cairn import: .*bad.jsonl line 2: legacy JSON: run_id: invalid UUID`,
		`^cairn import: .*bad.jsonl line 4: legacy JSON: missing field\(s\) \[run_id timestamp state pending_events metadata\]$`,
		`^cairn import: .*bad.jsonl line 5: unknown format \(first byte 0x01\)$`,
		`^cairn import: .*bad.jsonl line 6: legacy JSON: unexpected EOF$`,
		`^cairn import: 4 records could not be imported \(listed above\)$`,
	}
	got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("stderr:\n%s\nwant %d lines", r.stderr, len(want))
	}
	for i, p := range want {
		if !regexp.MustCompile(p).MatchString(got[i]) {
			t.Errorf("stderr line %d: %q does not match %q", i+1, got[i], p)
		}
	}
	c.ok("show", run1)
	c.ok("show", run2)

	// A hostile line longer than the record limit is refused once the
	// limit is read, not buffered whole.
	huge := filepath.Join(dir, "huge.jsonl")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s\n{\"workflow_name\":\"", lines[2])
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range cairn.DefaultCodec().MaxSize()>>20 + 1 {
		f.Write(chunk)
	}
	f.Close()
	r = c.run("", "import", huge)
	if r.code != exitFailure || r.stdout != "imported 1 run\n" || !strings.Contains(r.stderr, "huge.jsonl line 2: record longer than the limit of 16777216 bytes") {
		t.Errorf("import of a huge line: stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
	// The same for a binary file.
	big := filepath.Join(dir, "big.msgpack")
	if err := os.WriteFile(big, append([]byte{0xde}, make([]byte, cairn.DefaultCodec().MaxSize()*2)...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.run("", "import", big)
	if r.code != exitFailure || !strings.Contains(r.stderr, "big.msgpack: larger than the limit of") {
		t.Errorf("import of a huge binary file: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	c.fails(exitFailure, []string{`no such file or directory`}, "import", filepath.Join(dir, "missing.jsonl"))
	c.fails(exitUsage, []string{`missing argument`}, "import")
}

// goldenRunID is the run of DESIGN.md's golden vectors (golden_test.go at
// the root holds them as goldenA and goldenB; a test package cannot import
// them).
const (
	goldenRunID = "67e55044-10b1-426f-9247-bb680e5fe0c8"
	goldenA     = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70b4323032342d30312d30315430303a30303a30305aa5737461746581a7636f756e7465722aae70656e64696e675f6576656e74739182aa6576656e745f74797065b2626c617a656e3a3a53746172744576656e74a46461746181a5696e707574a568656c6c6fa86d6574616461746180"
	goldenB     = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70be323032342d30362d31305430363a31333a32302e3132333435363738395aa5737461746581a7636f756e74657281a44a736f6e2aae70656e64696e675f6576656e747390a86d6574616461746181a672756e5f6964d92436376535353034342d313062312d343236662d393234372d626236383065356665306338"
)

// positionalA is vector A as rmp-serde's to_vec writes it: structs as
// arrays of their fields, in order.
func positionalA(t *testing.T) []byte {
	s := "96" + // [workflow_name, run_id, timestamp, state, pending_events, metadata]
		"a464656d6f" + "c41067e5504410b1426f9247bb680e5fe0c8" +
		"b4323032342d30312d30315430303a30303a30305a" +
		"81a7636f756e7465722a" +
		"91" + "92" + "b2626c617a656e3a3a53746172744576656e74" + "81a5696e707574a568656c6c6f" +
		"80"
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indentJSON(t *testing.T, s string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.String() + "\n"
}

// In a directory, a link counts as what it points to: a link to a file is
// read, a link to a directory is skipped like a directory. What is not a
// regular file is named on stderr, never skipped silently; hidden names
// are left alone; a link to nothing fails the import before it reads
// anything.
func TestImportDirNamesWhatItSkips(t *testing.T) {
	t.Parallel()
	runs, err := filepath.Abs(filepath.Join("testdata", "runs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, err := range []error{
		os.Symlink(runs, filepath.Join(dir, "b-runs.jsonl")),
		os.Symlink(t.TempDir(), filepath.Join(dir, "c-linked-dir")),
		os.Mkdir(filepath.Join(dir, "d-sub"), 0o755),
		syscall.Mkfifo(filepath.Join(dir, "a-fifo"), 0o600),
		os.WriteFile(filepath.Join(dir, ".hidden"), []byte("garbage"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	store := "file://" + t.TempDir()
	out, stderr, code := runIn(t, "import", dir, "--store", store)
	want := "cairn import: " + filepath.Join(dir, "a-fifo") + ": skipped: not a regular file (a named pipe)\n" +
		"cairn import: " + filepath.Join(dir, "c-linked-dir") + ": skipped: a directory (import reads the files of " + dir + ", not its subdirectories)\n" +
		"cairn import: " + filepath.Join(dir, "d-sub") + ": skipped: a directory (import reads the files of " + dir + ", not its subdirectories)\n"
	if code != 0 || out != "imported 5 runs\n" || stderr != want {
		t.Errorf("import DIR: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, stderr, want)
	}

	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "e-dangling")); err != nil {
		t.Fatal(err)
	}
	empty := "file://" + t.TempDir()
	out, stderr, code = runIn(t, "import", dir, "--store", empty)
	if code != exitFailure || out != "" || !strings.Contains(stderr, "e-dangling: no such file or directory") {
		t.Errorf("import DIR with a link to nothing: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	if out, _, _ := runIn(t, "ls", "--store", empty, "--json"); !strings.Contains(out, `"runs": []`) {
		t.Errorf("the failed import imported something:\n%s", out)
	}
}
