// Package wire is the MessagePack runtime that cairngen-generated codecs call.
//
// Writing is append-style: every Append function appends one value to a
// byte slice and returns the extended slice, so an encoder allocates only
// when the slice grows. Integers are written in their smallest form, floats
// always as float64, strings as MessagePack str, map keys in sorted order;
// the same input therefore always encodes to the same bytes.
//
// Reading goes through a [Reader], which trusts nothing it is given: every
// declared length is checked against the bytes that remain before anything
// is allocated, and nesting depth is bounded, so hostile input costs at most
// a small multiple of its own size and never panics. Every reading error
// wraps [ErrMalformed].
//
// JSON-like values (the `any` slots of a checkpoint) are nil, bool, int64,
// uint64 (only above math.MaxInt64), float64, string, []any and
// map[string]any when read. When written, any Go integer or float width,
// json.Number, named string/number types, pointers, and slices, arrays and
// string-keyed maps of those are accepted as well; what JSON cannot hold
// (channels, funcs, structs, raw bytes, non-string map keys, NaN and
// infinities, cycles, strings and keys that are not valid UTF-8) is refused
// with [ErrUnsupported]. Reading a JSON-like value refuses a string or key
// that is not valid UTF-8 with [ErrMalformed], so whatever is read can be
// written again. Errors inside a value name the path to it, such as
// ["a"][3]["k"]; [FieldError] puts the field first. Strings of generated
// struct fields are read, and written by AppendMsgpack, without a UTF-8
// check; AppendMsgpackValue (see [ValueMarshaler]) checks them.
//
// The package sits under gen, not beside the root package, because its API
// is the contract between cairngen's output and the runtime: generated
// files call [FieldError], [ReadSlice], [MissingFields] and the rest by name, so
// the two change together, as msgp's generated code and its msgp runtime
// do. It imports nothing of the generator, so the root package and index,
// which use it for JSON-like values and timestamps, link none of it.
package wire

import "errors"

// ErrMalformed is wrapped by every error a [Reader] returns: the bytes are
// not a valid encoding of what was asked for. Retrying will not help.
var ErrMalformed = errors.New("malformed msgpack")

// ErrUnsupported is wrapped by errors from the Append functions when a
// value cannot be represented on the wire (see the package doc).
var ErrUnsupported = errors.New("value not representable")

// DefaultMaxDepth bounds nesting of maps and arrays, on reading and on
// writing. It matches serde_json's recursion limit, so anything a Blazen
// process can hold, Cairn can too.
const DefaultMaxDepth = 128
