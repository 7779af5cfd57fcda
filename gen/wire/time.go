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
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
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
	i, nanos := 19, 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nanos = nanos*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return time.Time{}, false
		}
		for d := i - start; d < 9; d++ {
			nanos *= 10
		}
	}
	if i >= len(s) {
		return time.Time{}, false
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		sign := 1
		if s[i] == '-' {
			sign = -1
		}
		rest := s[i+1:]
		var oh, om int
		switch {
		case len(rest) == 5 && rest[2] == ':':
			oh, om = num(i+1, 2), num(i+4, 2)
		case len(rest) == 4:
			oh, om = num(i+1, 2), num(i+3, 2)
		case len(rest) == 2:
			oh, om = num(i+1, 2), 0
		default:
			return time.Time{}, false
		}
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return time.Time{}, false
		}
		offset = sign * (oh*3600 + om*60)
		i = len(s)
	default:
		return time.Time{}, false
	}
	if i != len(s) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC)
	if t.Day() != day { // February 30th and the like
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}
