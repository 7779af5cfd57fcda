package cairn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cairnstore/cairn/gen/wire"
	"github.com/google/uuid"
)

// legacyRecord is the JSON record as decoded; a named type keeps decoding
// errors short ("… into Go value of type cairn.legacyRecord").
type legacyRecord struct {
	WorkflowName  *string         `json:"workflow_name"`
	RunID         *string         `json:"run_id"`
	Timestamp     *string         `json:"timestamp"`
	State         *map[string]any `json:"state"`
	PendingEvents *[]legacyEvent  `json:"pending_events"`
	Metadata      *map[string]any `json:"metadata"`
}

type legacyEvent struct {
	EventType *string `json:"event_type"`
	Data      any     `json:"data"`
}

// decodeLegacyJSON decodes the JSON record of older blazen-persist
// versions: the same six fields, with run_id as a hyphenated string.
// Numbers keep their kind: an integer comes back as int64 (uint64 above
// math.MaxInt64), anything else as float64. Text that is not valid UTF-8,
// or a \u escape of half a surrogate pair, is ErrCorrupt, as serde_json
// has it: encoding/json would read either as U+FFFD, so two distinct keys
// could become one and a key be lost.
func decodeLegacyJSON(rec []byte) (*Checkpoint, error) {
	if err := checkJSONText(rec); err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: %w", ErrCorrupt, err)
	}
	var raw legacyRecord
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: legacy JSON: trailing data", ErrCorrupt)
	}
	var missing []string
	for i, present := range []bool{raw.WorkflowName != nil, raw.RunID != nil,
		raw.Timestamp != nil, raw.State != nil, raw.PendingEvents != nil, raw.Metadata != nil} {
		if !present {
			missing = append(missing, _checkpointFields[i])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: legacy JSON: missing field(s) %v", ErrCorrupt, missing)
	}
	id, err := uuid.Parse(*raw.RunID)
	if err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: run_id: %w", ErrCorrupt, err)
	}
	ts, err := wire.ParseTimestamp(*raw.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: timestamp: %w", ErrCorrupt, err)
	}
	cp := &Checkpoint{WorkflowName: *raw.WorkflowName, RunID: id, Timestamp: ts,
		PendingEvents: make([]Event, 0, len(*raw.PendingEvents))}
	if cp.State, err = jsonMap(*raw.State, 0); err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: state: %w", ErrCorrupt, err)
	}
	if cp.Metadata, err = jsonMap(*raw.Metadata, 0); err != nil {
		return nil, fmt.Errorf("%w: legacy JSON: metadata: %w", ErrCorrupt, err)
	}
	for i, e := range *raw.PendingEvents {
		if e.EventType == nil {
			return nil, fmt.Errorf("%w: legacy JSON: pending_events[%d]: missing event_type", ErrCorrupt, i)
		}
		data, err := jsonValue(e.Data, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: legacy JSON: pending_events[%d]: %w", ErrCorrupt, i, err)
		}
		cp.PendingEvents = append(cp.PendingEvents, Event{EventType: *e.EventType, Data: data})
	}
	return cp, nil
}

// checkJSONText reports bytes that are not UTF-8, and \u escapes of a
// lone surrogate, in JSON text.
func checkJSONText(rec []byte) error {
	if !utf8.Valid(rec) {
		i := 0
		for i < len(rec) {
			r, n := utf8.DecodeRune(rec[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("invalid UTF-8 at byte %d", i)
	}
	for i := 0; i < len(rec); i++ {
		if rec[i] != '\\' || i+1 >= len(rec) {
			continue
		}
		i++ // the escaped byte: a second backslash is no escape's start
		if rec[i] != 'u' {
			continue
		}
		r, ok := hex4(rec[i+1:])
		if !ok || !utf16.IsSurrogate(r) {
			continue // a malformed escape is the decoder's to report
		}
		low, ok := rune(0), false
		if r < 0xdc00 && i+6 < len(rec) && rec[i+5] == '\\' && rec[i+6] == 'u' {
			low, ok = hex4(rec[i+7:])
		}
		if !ok || low < 0xdc00 || low > 0xdfff {
			return fmt.Errorf("lone surrogate \\u%04x at byte %d", r, i-1)
		}
		i += 10 // both escapes
	}
	return nil
}

// hex4 parses the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(v), err == nil
}

func jsonMap(m map[string]any, depth int) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	for k, v := range m {
		var err error
		if m[k], err = jsonValue(v, depth+1); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// jsonValue turns json.Numbers into int64, uint64 or float64, in place, and
// bounds nesting as the MessagePack reader does.
func jsonValue(v any, depth int) (any, error) {
	if depth > wire.DefaultMaxDepth {
		return nil, fmt.Errorf("nesting deeper than %d", wire.DefaultMaxDepth)
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			// strconv's message quotes the whole number, which a
			// hostile record can make a megabyte long.
			return nil, fmt.Errorf("number %s: %w", wire.Quote(string(x)), errors.Unwrap(err))
		}
		return f, nil
	case map[string]any:
		return jsonMap(x, depth)
	case []any:
		for i, e := range x {
			var err error
			if x[i], err = jsonValue(e, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// EncodeJSON writes cp as blazen-persist's JSON record (the form
// Unmarshal reads back): the six fields in their order, run_id hyphenated,
// the timestamp as chrono writes it, map keys sorted, and pending_events
// and metadata present even when empty. Integers stay integers and floats
// keep a fraction or an exponent ("1.0", not "1"), so the kinds survive a
// round trip. Values that are not JSON-like give ErrInvalid.
func EncodeJSON(cp *Checkpoint) ([]byte, error) {
	// Normalise through MessagePack: what comes back holds only nil,
	// bool, int64, uint64, float64, string, []any and map[string]any.
	rec, err := DefaultCodec().EncodeRecord(nil, cp)
	if err != nil {
		return nil, err
	}
	n, err := DefaultCodec().DecodeRecord(rec)
	if err != nil {
		return nil, err
	}
	ts, err := FormatTimestamp(n.Timestamp)
	if err != nil {
		return nil, err
	}
	b := []byte(`{"workflow_name":`)
	b = appendJSONString(b, n.WorkflowName)
	b = append(b, `,"run_id":"`...)
	b = append(b, n.RunID.String()...)
	b = append(b, `","timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `","state":`...)
	b = appendJSON(b, n.State)
	b = append(b, `,"pending_events":[`...)
	for i, e := range n.PendingEvents {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event_type":`...)
		b = appendJSONString(b, e.EventType)
		b = append(b, `,"data":`...)
		b = appendJSON(b, e.Data)
		b = append(b, '}')
	}
	b = append(b, `],"metadata":`...)
	b = appendJSON(b, n.Metadata)
	return append(b, '}'), nil
}

// appendJSONString writes s as a JSON string, leaving <, > and & as they
// are (serde_json does not escape them either).
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// appendJSON writes a normalised JSON-like value; a nil map is {}.
func appendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		n := len(b)
		b = strconv.AppendFloat(b, x, 'g', -1, 64)
		if !bytes.ContainsAny(b[n:], ".e") {
			b = append(b, ".0"...)
		}
		return b
	case string:
		return appendJSONString(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(x)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, x[k])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("cairn: appendJSON: %T is not a normalised value", v)) // DecodeRecord makes none
}
