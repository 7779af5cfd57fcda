package gen

// Review tests of cairngen's tag rules. Tests named TestReviewFixed*
// fail on purpose: each documents a defect.

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"strings"
	"sync"
	"testing"
)

// reviewCompile type-checks the package made of src and the code cairngen
// generates for types, with the real wire runtime: an error from either
// step is returned.
func reviewCompile(t *testing.T, src string, types_ ...string) (genErr, typeErr error) {
	t.Helper()
	out, err := generateSource(t, src, types_...)
	if err != nil {
		return err, nil
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for name, text := range map[string]string{"x.go": src, "x_gen.go": string(out)} {
		f, err := parser.ParseFile(fset, name, text, 0)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, text)
		}
		files = append(files, f)
	}
	reviewImporterOnce.Do(func() { reviewImporter = importer.ForCompiler(token.NewFileSet(), "source", nil) })
	reviewImporterMu.Lock()
	defer reviewImporterMu.Unlock()
	conf := types.Config{Importer: reviewImporter}
	_, err = conf.Check("x", fset, files, nil)
	return nil, err
}

// One source importer for all the checks: it caches what it has
// type-checked (the wire runtime and its dependencies).
var (
	reviewImporterOnce sync.Once
	reviewImporterMu   sync.Mutex
	reviewImporter     types.Importer
)

const reviewHeader = "package x\n\nimport (\n\t\"time\"\n\n\t\"github.com/google/uuid\"\n)\n\nvar _ time.Time\nvar _ uuid.UUID\n\n"

// Tag rules that hold: every field kind with a default compiles; the
// refused combinations are refused with the field named.
func TestReviewTagRules(t *testing.T) {
	ok := reviewHeader + "type Status string\ntype N uint16\ntype D = time.Duration\n\n" +
		"type T struct {\n" +
		"\tS  string        `msgpack:\"s\" default:\"a \\\"q\\\" \\\\ é\"`\n" +
		"\tB  bool          `msgpack:\"b,optional\" default:\"T\"`\n" +
		"\tI  int           `msgpack:\"i\" default:\"-0x7fffffff\"`\n" +
		"\tI6 int64         `msgpack:\"i6\" default:\"1_000\"`\n" +
		"\tU  uint          `msgpack:\"u\" default:\"0b101\"`\n" +
		"\tF  float32       `msgpack:\"f\" default:\"0x1p-2\"`\n" +
		"\tG  float64       `msgpack:\"g\" default:\"1e308\"`\n" +
		"\tW  time.Duration `msgpack:\"w\" default:\"-1h2m3.5s\"`\n" +
		"\tA  D             `msgpack:\"a\" default:\"2ms\"`\n" +
		"\tSt Status        `msgpack:\"st\" default:\"open\"`\n" +
		"\tN  N             `msgpack:\"n,alias:count,alias:num\" default:\"65535\"`\n" +
		"\tR  string        `msgpack:\"r,required,alias:old_r\"`\n" +
		"}\n"
	if genErr, typeErr := reviewCompile(t, ok, "T"); genErr != nil || typeErr != nil {
		t.Fatalf("generate: %v; compile: %v", genErr, typeErr)
	}
	for name, decl := range map[string]string{
		"default on time":        "type T struct {\n\tW time.Time `default:\"2024-01-01T00:00:00Z\"`\n}",
		"default on uuid":        "type T struct {\n\tW uuid.UUID `default:\"00000000-0000-0000-0000-000000000001\"`\n}",
		"default on pointer":     "type U struct{}\ntype T struct {\n\tW *U `default:\"x\"`\n}",
		"default on any":         "type T struct {\n\tW any `default:\"1\"`\n}",
		"default on map":         "type T struct {\n\tW map[string]int `default:\"1\"`\n}",
		"default on bytes":       "type T struct {\n\tW []byte `default:\"x\"`\n}",
		"default on struct":      "type U struct{}\ntype T struct {\n\tW U `default:\"x\"`\n}",
		"int default beyond 32":  "type T struct {\n\tW int `default:\"5000000000\"`\n}",
		"float32 overflow":       "type T struct {\n\tW float32 `default:\"1e39\"`\n}",
		"float NaN":              "type T struct {\n\tW float64 `default:\"NaN\"`\n}",
		"bool":                   "type T struct {\n\tW bool `default:\"yes\"`\n}",
		"negative uint":          "type T struct {\n\tW uint8 `default:\"-1\"`\n}",
		"required and optional":  "type T struct {\n\tW int `msgpack:\"w,required,optional\"`\n}",
		"required and default":   "type T struct {\n\tW int `msgpack:\"w,required\" default:\"1\"`\n}",
		"alias of earlier field": "type T struct {\n\tA int\n\tW int `msgpack:\"w,alias:A\"`\n}",
		"field named as alias":   "type T struct {\n\tW int `msgpack:\"w,alias:a\"`\n\tA int `msgpack:\"a\"`\n}",
		"two fields one alias":   "type T struct {\n\tW int `msgpack:\"w,alias:o\"`\n\tV int `msgpack:\"v,alias:o\"`\n}",
	} {
		genErr, typeErr := reviewCompile(t, reviewHeader+decl+"\n", "T")
		if genErr == nil {
			t.Errorf("%s: generated (compile: %v); want a generator error", name, typeErr)
		} else if !strings.Contains(genErr.Error(), "T.W") && !strings.Contains(genErr.Error(), "used by field W") {
			t.Errorf("%s: error does not name W: %v", name, genErr)
		}
	}
}

// DEFECT. An alias equal to the field's own wire name, or the same alias
// twice, passes the generator's duplicate check (it compares each name
// with the names of earlier fields only), and the generated ReadMsgpack
// has a duplicate case in its switch: the package no longer compiles
// ("duplicate case "a" in expression switch"). Expected: cairngen reports
// the repeated name, as it does for a name another field uses, or writes
// each name once.
func TestReviewFixedRepeatedAliasGeneratesUncompilableCode(t *testing.T) {
	for name, decl := range map[string]string{
		"alias equal to own name": "type T struct {\n\tW int `msgpack:\"a,alias:a\"`\n}",
		"alias twice":             "type T struct {\n\tW int `msgpack:\"w,alias:old,alias:old\"`\n}",
		"alias equal to Go name":  "type T struct {\n\tW int `msgpack:\",alias:W\"`\n}",
	} {
		genErr, typeErr := reviewCompile(t, reviewHeader+decl+"\n", "T")
		if genErr == nil && typeErr != nil {
			t.Errorf("%s: cairngen succeeded but its output does not compile: %v", name, typeErr)
		}
	}
}

// DEFECT. The doc promises defaults for time.Duration "as
// time.ParseDuration reads it", but a field of a named duration type of
// the package (type Timeout time.Duration, the usual way to give a
// duration methods) refuses default:"5s" with "not an integer of 64
// bits": resolveNamed drops the import that marks the type as a duration.
// An alias (type D = time.Duration) works. Expected: "5s" accepted for a
// named duration too (or the doc says only time.Duration itself).
func TestReviewFixedNamedDurationDefault(t *testing.T) {
	src := reviewHeader + "type Timeout time.Duration\n\ntype T struct {\n\tW Timeout `msgpack:\"w\" default:\"5s\"`\n}\n"
	if genErr, typeErr := reviewCompile(t, src, "T"); genErr != nil || typeErr != nil {
		t.Errorf("generate: %v; compile: %v", genErr, typeErr)
	}
}

// DEFECT. A wire name, alias or string default given with a \x escape in
// the tag (reflect.StructTag unquotes it) may be invalid UTF-8. cairngen
// accepts it; AppendMsgpackValue then writes the key without checking, so
// a typed Save stores a state key that is not UTF-8 (which no Blazen
// engine, ToValue, or the map path reads: ReadValue refuses it), and a
// default that is not UTF-8 makes every Save of a record lacking the field
// fail. Expected: cairngen refuses wire names, aliases and string defaults
// that are not valid UTF-8, naming the field.
func TestReviewFixedInvalidUTF8WireName(t *testing.T) {
	for name, decl := range map[string]string{
		"wire name": "type T struct {\n\tW int `msgpack:\"\\xff\"`\n}",
		"alias":     "type T struct {\n\tW int `msgpack:\"w,alias:\\xfe\"`\n}",
		"default":   "type T struct {\n\tW string `msgpack:\"w\" default:\"\\xff\"`\n}",
	} {
		genErr, _ := reviewCompile(t, reviewHeader+decl+"\n", "T")
		if genErr == nil {
			t.Errorf("%s: a tag that is not valid UTF-8 was accepted", name)
		}
	}
}
