package cairn

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// The errors every Store reports, wrapped in an [*Error] that names the
// operation and the run. Test for them with errors.Is; the cause (an SDK
// error, a decoding error) stays reachable with errors.As.
var (
	// ErrNotFound: the run does not exist (or has expired). Load returns
	// it; Delete never does.
	ErrNotFound = errors.New("cairn: run not found")

	// ErrConflict: another writer changed the run (or the index) first.
	// Re-read the run and retry if that is still what you want.
	ErrConflict = errors.New("cairn: conflicting write")

	// ErrCorrupt: stored bytes cannot be decoded (a truncated or damaged
	// object, a decompression bomb, a hostile length), or a body arrived
	// damaged (cut short, failing its checksum). Never partial data.
	// Retrying helps only in the second case; otherwise the object needs
	// repair or deletion (see the store's Verify).
	ErrCorrupt = errors.New("cairn: corrupt checkpoint")

	// ErrClaimed: another worker's live lease holds the run (see
	// Claimer). Claim another run, or this one after the lease ends.
	ErrClaimed = errors.New("cairn: run claimed by another worker")

	// ErrInvalid: the argument cannot be stored or used (a nil checkpoint,
	// a nil run ID, a value JSON cannot hold, a bad cursor). Nothing was
	// written; fix the input.
	ErrInvalid = errors.New("cairn: invalid argument")

	// ErrTooLarge: the encoded checkpoint exceeds the configured size
	// limit. Nothing was written.
	ErrTooLarge = errors.New("cairn: checkpoint too large")

	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("cairn: store closed")

	// ErrReadOnly: the Store was opened read-only and refuses every
	// write (Save, Delete, a claim). Nothing was written. Open it for
	// writing to write.
	ErrReadOnly = errors.New("cairn: store opened read-only")
)

// Error records a failed operation on a run, like fs.PathError.
type Error struct {
	Op    string    // "save", "load", "list", "delete", "close", "decode", ...
	RunID uuid.UUID // uuid.Nil when the operation concerns no single run
	Err   error
}

func (e *Error) Error() string {
	if e.RunID == uuid.Nil {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.RunID.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// WrapOp wraps err as an [*Error] for op on run, unless err is nil or
// already an *Error for the same operation and run.
func WrapOp(op string, run uuid.UUID, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Op == op && e.RunID == run {
		return err
	}
	return &Error{Op: op, RunID: run, Err: err}
}

// CheckRunID returns ErrInvalid, as an [*Error] for op, when run is
// uuid.Nil, and nil otherwise. No run has the nil ID (Save refuses it), so
// asking for it is a caller's mistake (an unset variable, a failed parse),
// not a missing run: stores call it before looking anything up.
func CheckRunID(op string, run uuid.UUID) error {
	if run == uuid.Nil {
		return &Error{Op: op, RunID: run, Err: fmt.Errorf("%w: nil run ID", ErrInvalid)}
	}
	return nil
}
