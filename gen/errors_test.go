package gen

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/gen/internal/model"
)

// generateSource writes src as x.go of a fresh package and generates types.
func generateSource(t *testing.T, src string, types ...string) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o666); err != nil {
		t.Fatal(err)
	}
	return Generate(Options{Dir: dir, Types: types})
}

func TestUnsupported(t *testing.T) {
	const header = "package x\n\nimport (\n\t\"fmt\"\n\t\"time\"\n)\n\nvar _ fmt.Stringer\n\nvar _ time.Time\n\n"
	for _, tc := range []struct {
		name, decl string
		want       string // the whole error after "x.go:"
	}{
		{"chan", "type T struct {\n\tC chan int\n}",
			"13:2: T.C: unsupported type chan int: channels cannot be encoded"},
		{"func", "type T struct {\n\tF func() error\n}",
			"13:2: T.F: unsupported type func() error: funcs cannot be encoded"},
		{"array", "type T struct {\n\tA [4]byte\n}",
			"13:2: T.A: unsupported type [4]byte: arrays are not supported; use a slice"},
		{"map key", "type T struct {\n\tM map[int]string\n}",
			"13:2: T.M: unsupported type map[int]string: map keys must be string"},
		{"pointer to basic", "type T struct {\n\tP *string\n}",
			"13:2: T.P: unsupported type *string: only pointers to structs are supported"},
		{"pointer to slice", "type T struct {\n\tP *[]T\n}",
			"13:2: T.P: unsupported type *[]T: only pointers to structs are supported"},
		{"error", "type T struct {\n\tE error\n}",
			"13:2: T.E: unsupported type error"},
		{"interface", "type T struct {\n\tS fmt.Stringer\n}",
			// A qualified name is assumed to be a generated struct; the
			// compiler reports it. An interface literal is refused here.
			""},
		{"interface literal", "type T struct {\n\tS interface{ String() string }\n}",
			"13:2: T.S: unsupported type interface{String() string}: only the empty interface is supported"},
		{"complex", "type T struct {\n\tC complex128\n}",
			"13:2: T.C: unsupported type complex128"},
		{"uintptr", "type T struct {\n\tU uintptr\n}",
			"13:2: T.U: unsupported type uintptr"},
		{"struct literal", "type T struct {\n\tS struct{ A int }\n}",
			"13:2: T.S: unsupported type struct{A int}: declare the struct as a named type and generate its codec"},
		{"embedded", "type U struct{}\n\ntype T struct {\n\tU\n}",
			"15:2: T.U: embedded fields are not supported; name the field"},
		{"generic type", "type T[K any] struct {\n\tK K\n}",
			"12:6: T: generic types are not supported"},
		{"generic field", "type G[K any] struct{ K K }\n\ntype T struct {\n\tG G[int]\n}",
			"15:2: T.G: unsupported type G[int]: generic types are not supported"},
		{"unknown", "type T struct {\n\tU Unknown\n}",
			"13:2: T.U: unknown type Unknown (not declared in package x, or in a file the build tags exclude)"},
		{"unimported", "type T struct {\n\tU other.Thing\n}",
			"13:2: T.U: type other.Thing: package other is not imported under that name (import it with an explicit name)"},
		{"named time", "type Stamp time.Time\n\ntype T struct {\n\tS Stamp\n}",
			"15:2: T.S: unsupported type Stamp: a named type over time.Time is not supported; use time.Time itself"},
		{"named byte slice", "type B byte\n\ntype T struct {\n\tS []B\n}",
			"15:2: T.S: unsupported type []B: a slice of a named byte type; use []byte"},
		{"cycle", "type A B\n\ntype B A\n\ntype T struct {\n\tX A\n}",
			"17:2: T.X: A: B: type A is defined in terms of itself"},
		{"omitempty", "type T struct {\n\tS string `msgpack:\"s,omitempty\"`\n}",
			"13:2: T.S: unsupported msgpack tag option \"omitempty\" (cairngen knows \"required\", \"optional\", \"alias:name\" and \"unknown\"; a generated codec always writes every field)"},
		{"unknown of a string", "type T struct {\n\tS string `msgpack:\",unknown\"`\n}",
			"13:2: T.S: a field that keeps unknown keys is a map[string]any tagged `msgpack:\",unknown\"` and nothing else"},
		{"unknown with a name", "type T struct {\n\tS map[string]any `msgpack:\"s,unknown\"`\n}",
			"13:2: T.S: a field that keeps unknown keys is a map[string]any tagged `msgpack:\",unknown\"` and nothing else"},
		{"two unknown", "type T struct {\n\tA map[string]any `msgpack:\",unknown\"`\n\tB map[string]any `msgpack:\",unknown\"`\n}",
			"14:2: T.B: field A already keeps the unknown keys"},
		{"empty alias", "type T struct {\n\tS string `msgpack:\"s,alias:\"`\n}",
			"13:2: T.S: unsupported msgpack tag option \"alias:\""},
		{"alias taken", "type T struct {\n\tA string `msgpack:\"a\"`\n\tB string `msgpack:\"b,alias:a\"`\n}",
			"14:2: T.B: wire name \"a\" is already used by field A"},
		{"required with default", "type T struct {\n\tS string `msgpack:\"s,required\" default:\"x\"`\n}",
			"13:2: T.S: a required field can be neither optional nor have a default"},
		{"bad int default", "type T struct {\n\tN int8 `msgpack:\"n\" default:\"300\"`\n}",
			"13:2: T.N: default \"300\": not an integer of 8 bits"},
		{"bad duration default", "type T struct {\n\tD time.Duration `msgpack:\"d\" default:\"soon\"`\n}",
			"13:2: T.D: default \"soon\": not an integer of 64 bits"},
		{"default of a slice", "type T struct {\n\tS []string `msgpack:\"s\" default:\"a\"`\n}",
			"13:2: T.S: default \"a\": defaults are supported for strings, bools, numbers and time.Duration only"},
		{"duplicate", "type T struct {\n\tA string `msgpack:\"a\"`\n\tB string `msgpack:\"a\"`\n}",
			"14:2: T.B: wire name \"a\" is already used by field A"},
		{"not a struct", "type T []string",
			"12:6: T: not a struct type"},
		{"alias", "type U struct{}\n\ntype T = U",
			"14:6: T: not a struct type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := generateSource(t, header+tc.decl+"\n", "T")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			if i := strings.Index(got, "x.go:"); i >= 0 {
				got = got[i+len("x.go:"):]
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestTooManyFields(t *testing.T) {
	var fields []string
	for i := range model.MaxFields + 1 {
		fields = append(fields, fmt.Sprintf("F%d", i))
	}
	src := "package x\n\ntype T struct {\n\t" + strings.Join(fields, ", ") + " int\n}\n"
	_, err := generateSource(t, src, "T")
	if err == nil || !strings.Contains(err.Error(), "x.go:3:6: T: 65 fields; at most 64 are supported") {
		t.Errorf("got %v", err)
	}
	// 64 is fine.
	src = "package x\n\ntype T struct {\n\t" + strings.Join(fields[:model.MaxFields], ", ") + " int\n}\n"
	if _, err := generateSource(t, src, "T"); err != nil {
		t.Error(err)
	}
}

// TestAllErrorsAtOnce checks that every problem is reported, in source
// order, not just the first.
func TestAllErrorsAtOnce(t *testing.T) {
	src := "package x\n\ntype T struct {\n\tA chan int\n\tB [2]int\n}\n\ntype U struct {\n\tC func()\n}\n"
	_, err := generateSource(t, src, "U", "T", "Missing")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	var want = []string{"type Missing not found in package x", "x.go:4:2: T.A", "x.go:5:2: T.B", "x.go:9:2: U.C"}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Generate(Options{Dir: t.TempDir(), Types: []string{"T"}}); err == nil || !strings.Contains(err.Error(), "no Go files") {
		t.Errorf("empty dir: got %v", err)
	}
	if _, err := generateSource(t, "package x\n\ntype T struct {", "T"); err == nil || !strings.Contains(err.Error(), "x.go:3") {
		t.Errorf("syntax error: got %v", err)
	}
	if _, err := Generate(Options{Dir: ".", Types: nil}); err == nil {
		t.Error("no types: no error")
	}
}

// TestSkipsOwnOutput checks that a stale or broken generated file does not
// stop the generator from regenerating it, and that build tags select files.
func TestSkipsOwnOutputAndHonoursTags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	write("t.go", "package x\n\ntype T struct{ A string }\n")
	write("t_gen.go", model.HeaderPrefix+" -type T; DO NOT EDIT.\n\npackage x\n\nthis does not parse\n")
	write("other_gen.go", "package x\n\nthis does not parse either\n")
	write("tagged.go", "//go:build special\n\npackage x\n\ntype U struct{ B int }\n")
	write("x_test.go", "package x_test\n\ntype V struct{}\n")
	if _, err := Generate(Options{Dir: dir, Types: []string{"T"}, Output: "other_gen.go"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(Options{Dir: dir, Types: []string{"U"}, Output: "other_gen.go"}); err == nil {
		t.Error("U is behind a build tag, but was found")
	}
	if _, err := Generate(Options{Dir: dir, Types: []string{"U"}, Output: "other_gen.go", Tags: []string{"special"}}); err != nil {
		t.Error(err)
	}
}
