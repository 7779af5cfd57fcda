package cairn

import (
	"fmt"
	"time"

	"github.com/cairnstore/cairn/gen/wire"
)

// FormatTimestamp formats t as chrono does for a DateTime<Utc>: RFC 3339 in
// UTC with a 'Z', the fraction omitted when zero, else with 3, 6 or 9
// digits, the shortest that is exact. Years outside 0000-9999 cannot be
// written and give ErrInvalid.
func FormatTimestamp(t time.Time) (string, error) {
	var buf [32]byte
	b, err := wire.AppendTimestamp(buf[:0], t)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return string(b), nil
}

// ParseTimestamp parses an RFC 3339 timestamp leniently: any offset (the
// result is converted to UTC), 'T', 't' or a space between date and time,
// and any number of fractional digits (truncated to nanoseconds). A string
// that is not a timestamp gives ErrInvalid.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := wire.ParseTimestamp(s)
	if err != nil {
		return t, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return t, nil
}
