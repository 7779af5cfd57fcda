package gen

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/gen/internal/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the generator's current output")

// TestGolden generates code for each testdata/*.go, as the //go:generate
// directive in it says, and compares it with testdata/*.golden.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.go")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".go")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			dirs, err := findDirectives(in, src)
			if err != nil || len(dirs) != 1 {
				t.Fatalf("want one cairngen directive in %s, got %d (%v)", in, len(dirs), err)
			}
			opts, err := ParseArgs(dirs[0].args)
			if err != nil {
				t.Fatal(err)
			}
			p, err := model.LoadFiles([]string{in})
			if err != nil {
				t.Fatal(err)
			}
			got, err := generate(p, opts)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o666); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (if the change is intended, run go test -run Golden -update):\n%s",
					golden, diffSummary(want, got))
			}
		})
	}
}

// The golden Checkpoint codec is the hand-written specification that the
// root package's golden wire-format vectors were checked against.
func TestGoldenCheckpointMatchesRoot(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "checkpoint.golden"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(moduleRoot(t), "checkpoint_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, root) {
		t.Errorf("testdata/checkpoint.golden and checkpoint_gen.go differ:\n%s", diffSummary(root, golden))
	}
}

func TestParseArgs(t *testing.T) {
	o, err := ParseArgs([]string{"-type", " A, B ,", "-tags", "x,y"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Types, "|") != "A|B" || strings.Join(o.Tags, "|") != "x|y" || o.Dir != "." || o.MsgpackShims {
		t.Errorf("got %+v", o)
	}
	if o, err := ParseArgs([]string{"-type", "A", "-msgpack-shims"}); err != nil || !o.MsgpackShims {
		t.Errorf("-msgpack-shims: got %+v, %v", o, err)
	}
	if got := o.OutputPath(); got != "a_gen.go" {
		t.Errorf("default output = %q", got)
	}
	o.Dir, o.Output = "pkg", "x_gen.go"
	if got := o.OutputPath(); got != filepath.Join("pkg", "x_gen.go") {
		t.Errorf("output = %q", got)
	}
	for _, args := range [][]string{nil, {"-type", ","}, {"-type", "A", "extra"}, {"-bogus"}} {
		if _, err := ParseArgs(args); err == nil {
			t.Errorf("ParseArgs(%q) succeeded", args)
		}
	}
}

func TestLowerName(t *testing.T) {
	for in, want := range map[string]string{
		"Checkpoint": "checkpoint", "Event": "event", "HTTPServer": "httpServer",
		"ID": "id", "X": "x", "RunID": "runID", "already": "already",
	} {
		if got := lowerName(in); got != want {
			t.Errorf("lowerName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeyLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"run_id":                 `"\xa6run_id"`,
		"":                       `"\xa0"`,
		`a"b`:                    `"\xa3a\"b"`,
		strings.Repeat("x", 32):  `"\xd9\x20` + strings.Repeat("x", 32) + `"`,
		strings.Repeat("y", 300): `"\xda\x01\x2c` + strings.Repeat("y", 300) + `"`,
	} {
		if got := keyLiteral(in); got != want {
			t.Errorf("keyLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}
