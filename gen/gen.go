// Package gen is cairngen as a library: it reads the struct declarations of
// a Go package and writes MessagePack codecs for them that call the runtime
// in [github.com/cairnstore/cairn/gen/wire].
//
// For each requested type T the generated file declares
//
//	var _tFields []string                                    // wire names, in declaration order
//	func (x *T) AppendMsgpack(b []byte) ([]byte, error)       // wire.Marshaler
//	func (x *T) AppendMsgpackValue(b []byte) ([]byte, error)  // wire.ValueMarshaler
//	func (x *T) ReadMsgpack(r *wire.Reader) error             // wire.Unmarshaler
//
// and needs no MessagePack package but the runtime;
// [github.com/cairnstore/cairn/gen/wire.Unmarshal] decodes a byte slice that
// holds one value.
//
// AppendMsgpack writes a value as a map of its fields in declaration
// order (UUIDs as bin, as rmp-serde writes them). AppendMsgpackValue
// writes the JSON-like form a checkpoint's state holds: the fields sorted
// by wire name, UUIDs as strings, float32 as float64, and raw bytes, NaN,
// infinities and invalid UTF-8 refused; it is what cairn.Typed stores and
// cairn.ToValue converts. ReadMsgpack reads either, from a map (fields in
// any order, unknown keys skipped) or from a positional array (as
// rmp-serde's to_vec and vmihailenco's as_array write records).
//
// # Fields
//
// Struct tags follow vmihailenco/msgpack: `msgpack:"name"` sets the wire
// name, `msgpack:"-"` skips the field, an exported field without a tag uses
// its Go name, and unexported fields are skipped. The options understood
// are:
//
//   - `,required`: the field must be present when reading; its absence is
//     an error naming it. Fields are optional otherwise: one that is
//     absent is set to its default, which lets a type gain fields while
//     records written before are still read.
//   - `,alias:old` (repeatable): the field is also read under the name old,
//     so a renamed field reads records written under its former name. It
//     is always written under its wire name.
//   - `,optional`: the default, accepted for older declarations.
//   - `,unknown`, on one field of type map[string]any with no name: the
//     keys of a map that no field reads (by name or alias) are kept there,
//     as JSON-like values, and written back after the fields (sorted among
//     them by AppendMsgpackValue); a key a field reads is never written
//     from it. A type without one skips unknown keys. Elements past the
//     fields of a positional array are skipped either way.
//
// When a map holds both a field's name and an alias of it, the name wins,
// whatever their order.
//
// A separate `default:"…"` tag gives the value an absent field takes
// (otherwise its zero value), for strings, bools, numbers (checked
// against the field's type when generating; an int or uint field's
// default must fit 32 bits, the size of int on some platforms) and
// time.Duration and named types over it (as time.ParseDuration reads it,
// or nanoseconds). An absent field of a struct type is its zero value:
// its own fields' defaults apply only when it is present (as an empty
// map, say), and its required fields are not checked. Other options (omitempty
// among them) are refused rather than silently ignored, because a
// generated codec always writes every field. A type may have at most 64
// fields; embedded fields are refused.
//
// Errors, when encoding or decoding, name the path from the outermost
// type to the value: "OrderState.lines[3].sku: …".
//
// Field types may be:
//
//   - string, bool, int, int8…int64, uint, uint8…uint64, float32, float64,
//     []byte, and named types of the package whose underlying type is one
//     of those (type Status string). Integers are written in their
//     smallest form and range-checked when read; float64 is written as
//     float64 and float32 as float32 (the reflective decoder refuses a
//     float64 for a float32 field); a nil []byte is written as an empty bin
//     and a nil on the wire reads as an empty slice;
//   - time.Time (a string in chrono's RFC 3339 form), time.Duration (an
//     integer of nanoseconds), uuid.UUID from github.com/google/uuid (bin of
//     16 bytes);
//   - any or interface{} (a JSON-like value) and map[string]any;
//   - []T and map[string]T of any supported T, nested freely; nil slices
//     and maps are written empty and read back non-nil, map keys are
//     written sorted;
//   - structs and pointers to structs, of this package or another, which
//     must have a codec generated too (nil pointers are written and read
//     back as nil). A qualified type other than time.Time, time.Duration
//     and uuid.UUID is taken to be such a struct.
//
// Everything else (channels, funcs, arrays, interfaces with methods,
// non-string map keys, pointers to non-structs, generic types) is refused
// with an error naming the type and field.
//
// The generator reads source only; it never type-checks, so it runs even
// while the package does not compile (for instance before its generated
// file exists). Its output depends on nothing but the source, so it is
// deterministic.
//
// # Shims for vmihailenco/msgpack
//
// With [Options.MsgpackShims] (cairngen -msgpack-shims) each type also gets
//
//	func (x *T) MarshalMsgpack() ([]byte, error)         // msgpack.Marshaler
//	func (x *T) UnmarshalMsgpack(b []byte) error         // msgpack.Unmarshaler
//	func (x *T) EncodeMsgpack(*msgpack.Encoder) error    // msgpack.CustomEncoder
//	func (x *T) DecodeMsgpack(*msgpack.Decoder) error    // msgpack.CustomDecoder
//
// so that github.com/vmihailenco/msgpack/v5, which the generated file then
// imports, encodes and decodes T with the generated codec instead of by
// reflection, also where T is a field of a value it handles reflectively. They are off by
// default: the reflective codec is what the generated one replaces, and a
// package that does not hand its types to it should not have to import it.
package gen

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cairnstore/cairn/gen/internal/model"
)

// Options says what to generate; it holds the command line of cairngen.
type Options struct {
	// Types are the names of the struct types to generate codecs for, in
	// the order their code appears in the output. Required.
	Types []string
	// Output is the name of the generated file, relative to Dir unless it
	// is absolute. Empty means "<first type, lowercased>_gen.go".
	Output string
	// Dir is the package directory. Empty means the current directory.
	Dir string
	// Tags are build tags that select the package's files, as go build's
	// -tags does.
	Tags []string
	// MsgpackShims adds the methods through which vmihailenco/msgpack uses
	// the generated codec (see the package doc). False leaves them out, and
	// the generated file does not import that library.
	MsgpackShims bool
}

// Usage describes the command line that [ParseArgs] accepts.
const Usage = `usage: cairngen -type A[,B...] [-output file] [-dir dir] [-tags tag,...] [-msgpack-shims]

Flags:
  -type           comma-separated names of the struct types to generate codecs for (required)
  -output         generated file, relative to -dir (default <first type lowercased>_gen.go)
  -dir            package directory (default ".", the directory of the file holding the
                  //go:generate directive when run by go generate)
  -tags           comma-separated build tags selecting the package's files
  -msgpack-shims  also write MarshalMsgpack, UnmarshalMsgpack, EncodeMsgpack and
                  DecodeMsgpack, so that github.com/vmihailenco/msgpack/v5 uses the
                  generated codec; the generated file then imports that library
                  (default off)
`

// ParseArgs parses cairngen's command line (without the program name).
func ParseArgs(args []string) (Options, error) {
	fs := flag.NewFlagSet("cairngen", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	types := fs.String("type", "", "")
	output := fs.String("output", "", "")
	dir := fs.String("dir", ".", "")
	tags := fs.String("tags", "", "")
	shims := fs.Bool("msgpack-shims", false, "")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := Options{Output: *output, Dir: *dir, Types: splitList(*types), Tags: splitList(*tags), MsgpackShims: *shims}
	if len(opts.Types) == 0 {
		return Options{}, errors.New("-type is required")
	}
	return opts, nil
}

func splitList(s string) []string {
	var list []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			list = append(list, f)
		}
	}
	return list
}

// OutputPath returns the path of the file that o generates.
func (o Options) OutputPath() string {
	name := o.Output
	if name == "" && len(o.Types) > 0 {
		name = strings.ToLower(o.Types[0]) + "_gen.go"
	}
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(o.dir(), name)
}

func (o Options) dir() string {
	if o.Dir == "" {
		return "."
	}
	return o.Dir
}

// Generate reads the package in o.Dir and returns the gofmt'd source of the
// codecs for o.Types. It does not write anything. Every problem found is
// reported at once.
func Generate(o Options) ([]byte, error) {
	if len(o.Types) == 0 {
		return nil, errors.New("cairngen: no types given")
	}
	p, err := model.LoadDir(o.dir(), o.Tags, o.OutputPath())
	if err != nil {
		return nil, fmt.Errorf("cairngen: %w", err)
	}
	return generate(p, o)
}

// generate builds the model of o.Types in p and emits their codecs.
func generate(p *model.Package, o Options) ([]byte, error) {
	structs, err := p.Structs(o.Types)
	if err != nil {
		return nil, fmt.Errorf("cairngen: %w", err)
	}
	src, err := emit(p.Name, o, structs)
	if err != nil {
		return nil, fmt.Errorf("cairngen: %w", err)
	}
	return src, nil
}
