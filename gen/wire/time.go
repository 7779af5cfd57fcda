package wire

import (
	"errors"
	"fmt"
	"time"
)

// Layouts of chrono's RFC 3339 form with AutoSi seconds: the fraction is
// omitted when zero, else written with 3, 6 or 9 digits, the shortest that
// is exact.
const (
	layout0 = "2006-01-02T15:04:05Z"
	layout3 = "2006-01-02T15:04:05.000Z"
	layout6 = "2006-01-02T15:04:05.000000Z"
	layout9 = "2006-01-02T15:04:05.000000000Z"
)

var errYear = fmt.Errorf("%w: timestamp year outside 0000-9999", ErrUnsupported)

// AppendTimestamp appends t in chrono's RFC 3339 form to b as plain text
// (no MessagePack header). t is converted to UTC first.
func AppendTimestamp(b []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, errYear
	}
	ns := t.Nanosecond()
	layout := layout9
	switch {
	case ns == 0:
		layout = layout0
	case ns%1e6 == 0:
		layout = layout3
	case ns%1e3 == 0:
		layout = layout6
	}
	return t.AppendFormat(b, layout), nil
}

// AppendTime appends t as a MessagePack str in chrono's RFC 3339 form, never
// as MessagePack's timestamp extension (rmp-serde cannot read that).
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	var buf [40]byte
	s, err := AppendTimestamp(buf[:0], t)
	if err != nil {
		return b, err
	}
	b = append(b, 0xa0|byte(len(s))) // at most 30 bytes: always a fixstr
	return append(b, s...), nil
}

var errTimestamp = errors.New("not an RFC 3339 timestamp")

// ParseTimestamp parses an RFC 3339 timestamp leniently, as chrono does and
// a little more: 't' or a space may stand for 'T', 'z' for 'Z', the offset
// may be written with or without its colon, and a fraction may have any
// number of digits (beyond nine they are truncated). The result is in UTC.
func ParseTimestamp(s string) (time.Time, error) {
	t, ok := parseTimestamp(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%w %s", errTimestamp, quote(s))
	}
	return t, nil
}

func parseTimestamp(s string) (time.Time, bool) {
	const dateTime = len("2006-01-02T15:04:05")
	if len(s) < dateTime+len("Z") {
		return time.Time{}, false
	}
	t, ok := parseDateTime(s[:dateTime])
	if !ok {
		return time.Time{}, false
	}
	nanos, rest, ok := parseFraction(s[dateTime:])
	if !ok {
		return time.Time{}, false
	}
	offset, ok := parseOffset(rest)
	if !ok {
		return time.Time{}, false
	}
	return t.Add(time.Duration(nanos) - time.Duration(offset)*time.Second), true
}

// parseDateTime parses "2006-01-02T15:04:05" ('t' or a space for 'T') as
// a time in UTC, refusing a day its month does not have.
func parseDateTime(s string) (time.Time, bool) {
	year, month, day := digits(s, 0, 4), digits(s, 5, 2), digits(s, 8, 2)
	hour, minute, sec := digits(s, 11, 2), digits(s, 14, 2), digits(s, 17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
		minute < 0 || minute > 59 || sec < 0 || sec > 59 ||
		s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // February 30th and the like
		return time.Time{}, false
	}
	return t, true
}

// parseFraction parses the fraction of a second that may start s (a '.'
// and at least one digit; digits beyond nine are dropped) and returns it in
// nanoseconds with the rest of s.
func parseFraction(s string) (nanos int, rest string, ok bool) {
	if s == "" || s[0] != '.' {
		return 0, s, true
	}
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if i <= 9 {
			nanos = nanos*10 + int(s[i]-'0')
		}
		i++
	}
	if i == 1 {
		return 0, "", false
	}
	for d := i - 1; d < 9; d++ {
		nanos *= 10
	}
	return nanos, s[i:], true
}

// parseOffset parses what must be all of s: 'Z' (or 'z'), or an offset
// from UTC written +hh:mm, +hhmm or +hh (or with '-'), in seconds east.
func parseOffset(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	switch s[0] {
	case 'Z', 'z':
		return 0, len(s) == 1
	case '+', '-':
	default:
		return 0, false
	}
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	rest := s[1:]
	var oh, om int
	switch {
	case len(rest) == 5 && rest[2] == ':':
		oh, om = digits(rest, 0, 2), digits(rest, 3, 2)
	case len(rest) == 4:
		oh, om = digits(rest, 0, 2), digits(rest, 2, 2)
	case len(rest) == 2:
		oh, om = digits(rest, 0, 2), 0
	default:
		return 0, false
	}
	if oh < 0 || oh > 23 || om < 0 || om > 59 {
		return 0, false
	}
	return sign * (oh*3600 + om*60), true
}

// digits returns the number written in decimal in s[i:i+n], or -1 if a
// byte there is not a digit.
func digits(s string, i, n int) int {
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return -1
		}
		v = v*10 + int(c-'0')
	}
	return v
}
