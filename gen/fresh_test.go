package gen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/gen/internal/model"
)

// TestGeneratedFilesAreFresh fails when go generate ./... would change a
// file that cairngen generated: it finds every such file in the module,
// runs the generator as the //go:generate directive beside it says, in
// memory, and compares.
func TestGeneratedFilesAreFresh(t *testing.T) {
	root := moduleRoot(t)
	generated := map[string]bool{} // files that start with the header
	directives := map[string][]directive{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || isFile(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(src, []byte(model.HeaderPrefix)) {
			generated[path] = true
		}
		dirs, err := findDirectives(path, src)
		if err != nil {
			return err
		}
		directives[filepath.Dir(path)] = append(directives[filepath.Dir(path)], dirs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !generated[filepath.Join(root, "checkpoint_gen.go")] {
		t.Errorf("checkpoint_gen.go at the module root was not found (or does not start with %q)", model.HeaderPrefix)
	}

	claimed := map[string]bool{}
	for _, dir := range slices.Sorted(maps.Keys(directives)) {
		for _, d := range directives[dir] {
			opts, err := d.options(dir)
			if err != nil {
				t.Errorf("%s: %v", d.pos, err)
				continue
			}
			out := opts.OutputPath()
			rel, _ := filepath.Rel(root, out)
			claimed[out] = true
			want, err := Generate(opts)
			if err != nil {
				t.Errorf("%s: %v", d.pos, err)
				continue
			}
			got, err := os.ReadFile(out)
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %s does not exist; run go generate ./...", d.pos, rel)
				continue
			} else if err != nil {
				t.Error(err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale (go generate ./... would change it; run it and commit the result):\n%s",
					rel, diffSummary(got, want))
			} else {
				t.Logf("%s is fresh", rel)
			}
		}
	}
	for path := range generated {
		if !claimed[path] {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s says cairngen generated it, but no //go:generate directive in its directory writes it", rel)
		}
	}
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// moduleRoot finds go.mod upward from the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// directive is a //go:generate line that runs cairngen.
type directive struct {
	pos  string   // file:line
	file string   // the file that holds it
	pkg  string   // its package clause
	args []string // cairngen's arguments
}

// findDirectives returns the //go:generate lines of a file that run
// cairngen with go run.
func findDirectives(path string, src []byte) ([]directive, error) {
	var list []directive
	pkgName := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if pkgName == "" {
			if rest, ok := strings.CutPrefix(text, "package "); ok {
				pkgName = strings.TrimSpace(rest)
			}
		}
		rest, ok := strings.CutPrefix(text, "//go:generate ")
		if !ok {
			continue
		}
		words, err := splitWords(rest)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if args, ok := cairngenArgs(words); ok {
			list = append(list, directive{pos: fmt.Sprintf("%s:%d", path, line), file: path, pkg: pkgName, args: args})
		}
	}
	return list, sc.Err()
}

// cairngenArgs returns the arguments after "go run <...>/cairngen[@v]".
func cairngenArgs(words []string) ([]string, bool) {
	if len(words) < 3 || words[0] != "go" || words[1] != "run" {
		return nil, false
	}
	for i := 2; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") {
			continue // a flag of go run
		}
		w, _, _ = strings.Cut(w, "@")
		if w == "cairngen" || strings.HasSuffix(w, "/cairngen") {
			return words[i+1:], true
		}
		return nil, false
	}
	return nil, false
}

// splitWords splits a directive as go generate does: on spaces, with
// double-quoted strings as single words, and $GOFILE, $GOPACKAGE expanded.
func splitWords(s string) ([]string, error) {
	var words []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, errors.New("unterminated quoted string")
			}
			w, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, err
			}
			words = append(words, w)
			s = s[end+1:]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
	return words, nil
}

// options turns the directive's arguments into Options for a run in dir,
// as go generate would run it there.
func (d directive) options(dir string) (Options, error) {
	env := map[string]string{"GOFILE": filepath.Base(d.file), "GOPACKAGE": d.pkg}
	args := make([]string, len(d.args))
	for i, a := range d.args {
		args[i] = os.Expand(a, func(k string) string { return env[k] })
	}
	opts, err := ParseArgs(args)
	if err != nil {
		return Options{}, err
	}
	if !filepath.IsAbs(opts.Dir) {
		opts.Dir = filepath.Join(dir, opts.Dir)
	}
	return opts, nil
}

// diffSummary describes how two versions of a file differ: the number of
// lines that changed and the first few of them.
func diffSummary(old, new []byte) string {
	a := strings.Split(string(old), "\n")
	b := strings.Split(string(new), "\n")
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	da, db := a[pre:len(a)-suf], b[pre:len(b)-suf]
	var s strings.Builder
	fmt.Fprintf(&s, "committed lines %d-%d (%d lines) differ from generated lines %d-%d (%d lines); first differences:\n",
		pre+1, pre+len(da), len(da), pre+1, pre+len(db), len(db))
	const show = 8
	for i, l := range da[:min(len(da), show)] {
		fmt.Fprintf(&s, "  %4d - %s\n", pre+1+i, l)
	}
	for i, l := range db[:min(len(db), show)] {
		fmt.Fprintf(&s, "  %4d + %s\n", pre+1+i, l)
	}
	return s.String()
}

func TestSplitWords(t *testing.T) {
	got, err := splitWords(`go run ./tools/cairngen  -type "A,B" -output $GOFILE`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go", "run", "./tools/cairngen", "-type", "A,B", "-output", "$GOFILE"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tc := range []struct {
		words []string
		ok    bool
	}{
		{[]string{"go", "run", "./tools/cairngen", "-type", "A"}, true},
		{[]string{"go", "run", "-mod=mod", "github.com/cairnstore/cairn/tools/cairngen@v1.0.0", "-type", "A"}, true},
		{[]string{"go", "run", "golang.org/x/tools/cmd/stringer", "-type", "A"}, false},
		{[]string{"stringer", "-type", "A"}, false},
	} {
		if _, ok := cairngenArgs(tc.words); ok != tc.ok {
			t.Errorf("cairngenArgs(%q) = %v, want %v", tc.words, ok, tc.ok)
		}
	}
}

func TestDiffSummary(t *testing.T) {
	s := diffSummary([]byte("a\nb\nc\nd\n"), []byte("a\nB\nc\nd\n"))
	if !strings.Contains(s, "2 - b") || !strings.Contains(s, "2 + B") || !strings.Contains(s, "(1 lines)") {
		t.Errorf("summary:\n%s", s)
	}
}
