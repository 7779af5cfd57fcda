package wire

import (
	"errors"
	"strings"
	"testing"
)

type named string

// Every string of a JSON-like value, keys included, at any depth and of any
// Go type, must be UTF-8; the error names where the bad one is.
func TestAppendRefusesInvalidUTF8(t *testing.T) {
	bad := "ok\xffok"
	for _, tc := range []struct {
		name string
		v    any
		path string // the error starts with it
	}{
		{"string", bad, "value not representable"},
		{"named string", named(bad), "value not representable"},
		{"map key", map[string]any{"a": 1, bad: 2}, `["ok\xffok"]: value not representable: invalid UTF-8 in a map key`},
		{"map value", map[string]any{"a": bad}, `["a"]: `},
		{"nested", map[string]any{"a": []any{0, 1, 2, map[string]any{"k": bad}}}, `["a"][3]["k"]: `},
		{"many keys", map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": map[string]any{"k": bad}}, `["i"]["k"]: `},
		{"typed map key", map[string]int{bad: 1}, `["ok\xffok"]: `},
		{"typed map value", map[string]string{"x": bad}, `["x"]: `},
		{"typed slice", []string{"a", bad}, `[1]: `},
		{"pointer", &bad, "value not representable"},
	} {
		_, err := AppendValue(nil, tc.v)
		if !errors.Is(err, ErrUnsupported) || !strings.HasPrefix(err.Error(), tc.path) || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("%s: AppendValue = %v, want ErrUnsupported starting %s", tc.name, err, tc.path)
		}
	}
	// The generated codecs name the field before the path.
	_, err := AppendValueMap(nil, map[string]any{"a": []any{bad}})
	if err := FieldError("Checkpoint", "state", err); err.Error() != `Checkpoint.state["a"][0]: value not representable: invalid UTF-8` ||
		!errors.Is(err, ErrUnsupported) {
		t.Errorf("FieldError = %v", err)
	}
	// Valid text of every width, and U+FFFD itself, is accepted.
	if _, err := AppendValue(nil, map[string]any{"é": "日本語", "🪨": "\ufffd", "": ""}); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}

func TestReadRefusesInvalidUTF8(t *testing.T) {
	str := func(s string) []byte { return AppendString(nil, s) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		path string
	}{
		{"string", str("\xff"), "malformed msgpack: invalid UTF-8"},
		{"map key", cat(AppendMapHeader(nil, 1), str("\xfe"), str("v")), `["\xfe"]: malformed msgpack: invalid UTF-8 in a map key`},
		// Two keys that would both read as U+FFFD: never one of them lost.
		{"two keys", cat(AppendMapHeader(nil, 2), str("\xfe"), str("1"), str("\xff"), str("2")), `["\xfe"]: `},
		{"nested", cat(AppendMapHeader(nil, 1), str("a"), AppendArrayHeader(nil, 2), str("x"),
			AppendMapHeader(nil, 1), str("k"), str("\xc3")), `["a"][1]["k"]: malformed msgpack: invalid UTF-8`},
	} {
		r := NewReader(tc.in)
		_, err := r.ReadValue()
		if !errors.Is(err, ErrMalformed) || !strings.HasPrefix(err.Error(), tc.path) || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("%s: ReadValue = %v, want ErrMalformed starting %s", tc.name, err, tc.path)
		}
	}
}

// A path through long keys, 128 levels deep, stays short in a message.
func TestErrorPathBounded(t *testing.T) {
	key := strings.Repeat("k", 1000)
	var v any = "\xff"
	for range DefaultMaxDepth - 1 {
		v = map[string]any{key: v}
	}
	_, err := AppendValue(nil, v)
	if !errors.Is(err, ErrUnsupported) || len(err.Error()) > 300 {
		t.Errorf("AppendValue: %d bytes: %v", len(err.Error()), err)
	}
	b, _ := AppendValue(nil, strings.Repeat("x", 100<<10))
	if _, err := ParseTimestamp(strings.Repeat("9", 100<<10)); err == nil || len(err.Error()) > 100 {
		t.Errorf("ParseTimestamp: %v", err)
	}
	r := NewReader(b)
	if _, err := r.ReadTime(); err == nil || len(err.Error()) > 150 {
		t.Errorf("ReadTime: %v", err)
	}
	r = NewReader(b)
	if _, err := r.ReadUUID(); err == nil || len(err.Error()) > 150 || !strings.HasSuffix(err.Error(), "…(102400 bytes) at byte 0") {
		t.Errorf("ReadUUID: %v", err)
	}
}

// isASCII reads words, overlapping ones and single bytes, and textASCII
// rounds of 32 bytes: a high bit at any position of a string of any
// length is seen.
func TestIsASCII(t *testing.T) {
	for name, isASCII := range map[string]func(string) bool{"isASCII": isASCII, "textASCII": textASCII} {
		for n := range 130 {
			s := []byte(strings.Repeat("a", n))
			if !isASCII(string(s)) {
				t.Fatalf("%s: %d ASCII bytes: false", name, n)
			}
			for i := range n {
				s[i] = 0x80
				if isASCII(string(s)) {
					t.Fatalf("%s: high byte at %d of %d: true", name, i, n)
				}
				s[i] = 'a'
			}
		}
	}
}
