package wire

import (
	"errors"
	"strconv"
)

// errUTF8 is the cause of refusing a string that is not valid UTF-8: a
// MessagePack str holds UTF-8, JSON can hold nothing else, and rmp-serde
// and serde_json refuse it.
const errUTF8 = "invalid UTF-8"

// A pathError locates an error inside a value: typ is the struct type at
// its root ("" for a JSON-like value), path the chain of fields, map keys
// and array indexes from there to where it failed, such as
// .lines[3].sku or ["a"][3]["k"]. Each level of a generated decoder or
// encoder adds its step, nearest the root, so the message reads
// "OrderState.lines[3].sku: …".
type pathError struct {
	typ  string
	path string
	err  error
}

func (e *pathError) Error() string {
	if e.typ == "" && e.path == "" {
		return e.err.Error()
	}
	return e.typ + e.path + ": " + e.err.Error()
}

func (e *pathError) Unwrap() error { return e.err }

// maxPath bounds the path an error message shows: a hostile object nested
// 128 deep with long keys must not make a message of kilobytes. The steps
// nearest the root are kept.
const maxPath = 160

// atKey and atIndex add one step, nearest the root, to the path of err.
func atKey(k string, err error) error { return within("", "["+quote(k)+"]", err) }

func atIndex(i int, err error) error { return within("", "["+strconv.Itoa(i)+"]", err) }

// AtKey adds the map key k to the path of err, as generated code does for
// an element of a map field.
func AtKey(k string, err error) error { return atKey(k, err) }

// AtIndex adds the index i to the path of err, as generated code does for
// an element of a slice field.
func AtIndex(i int, err error) error { return atIndex(i, err) }

// within adds step to the path of err, nearest the root, and makes typ its
// root type (when typ is not "": a struct's type replaces that of the
// struct inside it, whose place the step now names). A step added above a
// root type keeps it: an element of a slice of structs is still read by
// that struct.
func within(typ, step string, err error) error {
	var p *pathError
	if !errors.As(err, &p) {
		return &pathError{typ: typ, path: step, err: err}
	}
	path := step + p.path
	if len(path) > maxPath {
		path = path[:maxPath] + "…"
	}
	if typ == "" {
		typ = p.typ
	}
	return &pathError{typ: typ, path: path, err: p.err}
}

// FieldError adds the struct field being encoded or decoded to err, and
// the path below it when err has one: "Checkpoint.state["a"][3]: …",
// "OrderState.lines[3].sku: …". An empty field is the struct itself.
func FieldError(typ, field string, err error) error {
	step := ""
	if field != "" {
		step = "." + field
	}
	return within(typ, step, err)
}

// maxQuote bounds how much of one string (stored bytes, or a caller's
// value) an error message quotes.
const maxQuote = 32

// quote returns s quoted for an error message: at most its first 32 bytes,
// then "…(N bytes)" when s is longer. Invalid UTF-8 shows as \x escapes.
func quote(s string) string {
	if len(s) <= maxQuote {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuote]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote is quote for the packages that decode stored records: at most the
// first 32 bytes of s, quoted, then "…(N bytes)" when s is longer.
func Quote(s string) string { return quote(s) }
