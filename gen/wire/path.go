package wire

import (
	"errors"
	"fmt"
	"strconv"
)

// errUTF8 is the cause of refusing a string that is not valid UTF-8: a
// MessagePack str holds UTF-8, JSON can hold nothing else, and rmp-serde
// and serde_json refuse it.
const errUTF8 = "invalid UTF-8"

// A pathError locates an error inside a JSON-like value: path is the chain
// of map keys and array indexes from the value's root to where it failed,
// such as ["a"][3]["k"]. [FieldError] folds it into the field's name.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// maxPath bounds the path an error message shows: a hostile object nested
// 128 deep with long keys must not make a message of kilobytes. The steps
// nearest the root are kept.
const maxPath = 160

// atKey and atIndex add one step, nearest the root, to the path of err.
func atKey(k string, err error) error { return within("["+quote(k)+"]", err) }

func atIndex(i int, err error) error { return within("["+strconv.Itoa(i)+"]", err) }

func within(step string, err error) error {
	var p *pathError
	if !errors.As(err, &p) {
		return &pathError{path: step, err: err}
	}
	path := step + p.path
	if len(path) > maxPath {
		path = path[:maxPath] + "…"
	}
	return &pathError{path: path, err: p.err}
}

// FieldError adds the struct field being encoded or decoded to err, and the
// path inside the field's JSON-like value when err has one:
// "Checkpoint.state["a"][3]: …".
func FieldError(typ, field string, err error) error {
	var p *pathError
	if errors.As(err, &p) {
		return fmt.Errorf("%s.%s%s: %w", typ, field, p.path, p.err)
	}
	return fmt.Errorf("%s.%s: %w", typ, field, err)
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
