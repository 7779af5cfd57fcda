package cairn_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/storetest"
	"github.com/klauspost/compress/zstd"
)

// Encode refuses a string that is not UTF-8 wherever it is, and says where.
func TestEncodeRefusesInvalidUTF8(t *testing.T) {
	const bad = "b\xffd"
	with := func(f func(c *cairn.Checkpoint)) *cairn.Checkpoint {
		c := goldenCheckpoints()[goldenA]
		c.PendingEvents = append(c.PendingEvents, cairn.Event{EventType: "second", Data: map[string]any{"ok": true}})
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		cp   *cairn.Checkpoint
		path string
	}{
		{"workflow name", with(func(c *cairn.Checkpoint) { c.WorkflowName = bad }), "Checkpoint.workflow_name: "},
		{"state key", with(func(c *cairn.Checkpoint) { c.State[bad] = 1 }), `Checkpoint.state["b\xffd"]: `},
		{"nested state", with(func(c *cairn.Checkpoint) {
			c.State["a"] = []any{0, 1, 2, map[string]any{"k": bad}}
		}), `Checkpoint.state["a"][3]["k"]: `},
		{"nested state key", with(func(c *cairn.Checkpoint) {
			c.State["a"] = map[string]any{"x": map[string]any{bad: nil}}
		}), `Checkpoint.state["a"]["x"]["b\xffd"]: `},
		{"typed state", with(func(c *cairn.Checkpoint) { c.State["a"] = map[string][]string{"l": {"", bad}} }),
			`Checkpoint.state["a"]["l"][1]: `},
		{"metadata key", with(func(c *cairn.Checkpoint) { c.Metadata[bad] = "v" }), `Checkpoint.metadata["b\xffd"]: `},
		{"metadata value", with(func(c *cairn.Checkpoint) { c.Metadata["m"] = []any{[]any{bad}} }), `Checkpoint.metadata["m"][0][0]: `},
		{"event type", with(func(c *cairn.Checkpoint) { c.PendingEvents[1].EventType = bad }),
			"Checkpoint.pending_events[1].event_type: "},
		{"event data", with(func(c *cairn.Checkpoint) { c.PendingEvents[1].Data = map[string]any{"in": []any{bad}} }),
			`Checkpoint.pending_events[1].data["in"][0]: `},
		{"event data string", with(func(c *cairn.Checkpoint) { c.PendingEvents[0].Data = bad }),
			"Checkpoint.pending_events[0].data: "},
		// The first bad value in the order of the record is named.
		{"state before event", with(func(c *cairn.Checkpoint) {
			c.State["s"] = bad
			c.PendingEvents[1].Data = bad
		}), `Checkpoint.state["s"]: `},
	} {
		_, err := cairn.DefaultCodec().EncodeRecord(nil, tc.cp)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if !errors.Is(err, cairn.ErrInvalid) || !strings.HasPrefix(msg, "cairn: invalid argument: "+tc.path) || !strings.Contains(msg, "invalid UTF-8") {
			t.Errorf("%s: Encode = %v, want ErrInvalid naming %s", tc.name, err, tc.path)
		}
		if _, err := cairn.EncodeJSON(tc.cp); !errors.Is(err, cairn.ErrInvalid) {
			t.Errorf("%s: EncodeJSON = %v, want ErrInvalid", tc.name, err)
		}
	}
	// Valid text of every width is kept exactly, U+FFFD included.
	c := with(func(c *cairn.Checkpoint) {
		c.WorkflowName = "flüsse"
		c.State["é"], c.State["e\u0301"], c.State["\ufffd"] = "日本語", "🪨", "\ufffd"
	})
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cairn.DefaultCodec().DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.Diff(got, c); d != "" {
		t.Fatal(d)
	}
}

// A stored record holding a string that is not UTF-8 (written by another
// writer, or by Cairn before it checked) is ErrCorrupt, naming where: it
// could not be saved again, and JSON would turn distinct keys into one.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	golden := mustHex(t, goldenA)
	replace := func(old, new string) []byte {
		if len(old) != len(new) || !bytes.Contains(golden, []byte(old)) {
			t.Fatalf("cannot replace %q", old)
		}
		return bytes.Replace(golden, []byte(old), []byte(new), 1)
	}
	twoKeys := bytes.Replace(golden, []byte("\x81\xa7counter\x2a"), []byte("\x82\xa3k\xfe1\x01\xa3k\xff1\x02"), 1)
	for name, tc := range map[string]struct {
		rec  []byte
		path string
	}{
		"workflow name": {replace("\xa4demo", "\xa4dem\xff"), "Checkpoint.workflow_name: invalid UTF-8"},
		"state key":     {replace("counter", "counte\xc3"), `Checkpoint.state["counte\xc3"]: `},
		"two keys":      {twoKeys, `Checkpoint.state["k\xfe1"]: `},
		"event type":    {replace("StartEvent", "StartEven\xe2"), "Checkpoint.pending_events[0].event_type: invalid UTF-8"},
		"event data":    {replace("hello", "hel\xf0\x9f"), `Checkpoint.pending_events[0].data["input"]: `},
	} {
		for _, stored := range [][]byte{tc.rec, cairn.DefaultCodec().Compress(nil, tc.rec)} {
			_, err := cairn.DefaultCodec().Unmarshal(stored)
			if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), "invalid UTF-8") {
				t.Errorf("%s: Unmarshal = %v, want ErrCorrupt naming %s", name, err, tc.path)
			}
		}
	}
}

// Legacy JSON that is not UTF-8, or escapes half a surrogate pair, is
// ErrCorrupt: encoding/json would read both as U+FFFD and could merge two
// keys. Valid escapes, and U+FFFD itself, read as they are.
func TestLegacyJSONUTF8(t *testing.T) {
	record := func(state string) []byte {
		return []byte(`{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8",` +
			`"timestamp":"2024-01-01T00:00:00Z","state":` + state + `,"pending_events":[],"metadata":{}}`)
	}
	for name, state := range map[string]string{
		"raw byte":         "{\"a\xff\":1}",
		"two keys":         "{\"\xfe\":1,\"\xff\":2}",
		"lone high":        `{"\ud800":1}`,
		"lone low":         `{"x":"\udc00"}`,
		"high then char":   `{"\ud800x":1}`,
		"high then high":   `{"\ud800\ud800":1}`,
		"two lone escapes": `{"\ud800":1,"\udbff":2}`,
	} {
		if _, err := cairn.DefaultCodec().Unmarshal(record(state)); !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "legacy JSON") {
			t.Errorf("%s: Unmarshal = %v, want ErrCorrupt", name, err)
		}
	}
	got, err := cairn.DefaultCodec().Unmarshal(record(`{"\ud83e\udea8":1,"\\ud800":2,"\ufffd":3,"é":4,"\\\ud83e\udea8":5}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"🪨": int64(1), `\ud800`: int64(2), "\ufffd": int64(3), "é": int64(4), `\🪨`: int64(5)}
	if d := storetest.Diff(&cairn.Checkpoint{State: got.State}, &cairn.Checkpoint{State: want}); d != "" {
		t.Fatal(d)
	}
}

// An export (EncodeJSON) and an import (Unmarshal) of a checkpoint with
// keys that differ only in ways a lossy decoder would erase keep every key,
// and EncodeJSON never writes a key twice.
func TestJSONRoundTripKeepsKeys(t *testing.T) {
	c := goldenCheckpoints()[goldenA]
	c.State = map[string]any{"é": int64(1), "e\u0301": int64(2), "\ufffd": int64(3), "\u2028": int64(4),
		"<&>": int64(5), `"`: int64(6), "\x00": int64(7),
		"n": map[string]any{"\ufffd": "\ufffd", "\ufffd\ufffd": "x"}}
	j, err := cairn.EncodeJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	if dup := duplicateKey(t, j); dup != "" {
		t.Fatalf("EncodeJSON wrote the key %q twice: %s", dup, j)
	}
	got, err := cairn.DefaultCodec().Unmarshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.Diff(got, c); d != "" {
		t.Fatal(d)
	}
}

// duplicateKey returns a key that some object of j holds twice, or "".
func duplicateKey(t *testing.T, j []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(j))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.keys[s] {
				return s
			}
			top.keys[s] = true
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true // a value was read (or begins)
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].key = true
			}
		}
	}
}

// Errors about stored bytes quote a short prefix of them, never the object.
func TestErrorMessagesShort(t *testing.T) {
	const n = 100 << 10
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, n)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	long := strings.Repeat("7", n)
	legacy := func(field, value string) []byte {
		fields := map[string]string{"workflow_name": `"demo"`, "run_id": `"67e55044-10b1-426f-9247-bb680e5fe0c8"`,
			"timestamp": `"2024-01-01T00:00:00Z"`, "state": `{}`, "pending_events": `[]`, "metadata": `{}`}
		fields[field] = value
		var b strings.Builder
		b.WriteString("{")
		for _, k := range []string{"workflow_name", "run_id", "timestamp", "state", "pending_events", "metadata"} {
			if b.Len() > 1 {
				b.WriteString(",")
			}
			b.WriteString(`"` + k + `":` + fields[k])
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	golden := mustHex(t, goldenA)
	msgpackWith := func(old []byte, new []byte) []byte {
		if !bytes.Contains(golden, old) {
			t.Fatalf("no %x in the golden vector", old)
		}
		return bytes.Replace(golden, old, new, 1)
	}
	ts := []byte("\xb42024-01-01T00:00:00Z")
	inputs := map[string][]byte{
		"random":                     random,
		"zstd magic and random":      append([]byte{0x28, 0xb5, 0x2f, 0xfd}, random...),
		"JSON start and random":      append([]byte("{"), random...),
		"legacy number name":         legacy("workflow_name", long),
		"legacy string run_id":       legacy("run_id", `"`+long+`"`),
		"legacy string timestamp":    legacy("timestamp", `"`+long+`"`),
		"legacy huge float":          legacy("state", `{"f":1`+long+`e999999}`),
		"legacy number event":        legacy("pending_events", `[{"event_type":`+long+`,"data":null}]`),
		"legacy random key":          legacy("state", `{"`+strings.Repeat("\\u00ff", n/6)+`":`),
		"msgpack long timestamp":     msgpackWith(ts, wire.AppendString(nil, long)),
		"msgpack long run_id string": msgpackWith(append([]byte{0xc4, 0x10}, golden[bytes.Index(golden, []byte{0xc4, 0x10})+2:][:16]...), wire.AppendString(nil, long)),
		"msgpack long bad key":       msgpackWith([]byte("\xa7counter"), wire.AppendString(nil, long+"\xff")),
		"msgpack deep long keys":     msgpackWith([]byte("\x81\xa7counter\x2a"), deepKeys(100, 1000)),
		"msgpack long json.Number":   append([]byte{0xdb, 0, 1, 0x90, 0}, random[:n]...),
	}
	for name, data := range inputs {
		for _, codec := range []func([]byte) (*cairn.Checkpoint, error){
			cairn.DefaultCodec().Unmarshal,
			func(b []byte) (*cairn.Checkpoint, error) {
				return cairn.DefaultCodec().Unmarshal(cairn.DefaultCodec().Compress(nil, b))
			},
		} {
			_, err := codec(data)
			if !errors.Is(err, cairn.ErrCorrupt) {
				t.Errorf("%s: %.300v, want ErrCorrupt", name, err)
				continue
			}
			if len(err.Error()) >= 300 {
				t.Errorf("%s: a message of %d bytes: %.400s", name, len(err.Error()), err)
			}
		}
	}
}

// deepKeys is a map nested depth deep, each level's key keyLen bytes long,
// with a string that is not UTF-8 at the bottom.
func deepKeys(depth, keyLen int) []byte {
	b := []byte{0x81, 0xa7, 'c', 'o', 'u', 'n', 't', 'e', 'r'}
	for range depth {
		b = wire.AppendMapHeader(b, 1)
		b = wire.AppendString(b, strings.Repeat("k", keyLen))
	}
	return wire.AppendString(b, "\xff")
}

// Random bytes after the zstd magic number are not a valid frame; only a
// frame that really inflates past the limit says it does.
func TestZstdInvalidFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	codec := cairn.DefaultCodec()
	for i := range 300 {
		b := make([]byte, 4+rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		copy(b, []byte{0x28, 0xb5, 0x2f, 0xfd})
		_, err := codec.Unmarshal(b)
		if !errors.Is(err, cairn.ErrCorrupt) || strings.Contains(err.Error(), "decompresses to more") {
			t.Fatalf("random frame %d (%x): %v", i, b[:min(len(b), 16)], err)
		}
		// Any error about the frame says what is wrong with it.
		if !strings.Contains(err.Error(), "not a valid zstd frame") && !strings.Contains(err.Error(), "declares") {
			t.Fatalf("random frame %d (%x): %v", i, b[:min(len(b), 16)], err)
		}
	}
	// A window over the limit is a claim of the header, not output.
	wide := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00}
	if _, err := codec.Unmarshal(wide); !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "not a valid zstd frame: its header asks for a window") {
		t.Errorf("frame with a 2 TiB window: %v", err)
	}
	// A real bomb, with no content size declared, inflates past the limit.
	if _, err := codec.Unmarshal(bomb(t)); !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "zstd frame decompresses to more than 16777216 bytes") {
		t.Errorf("bomb: %v", err)
	}
	// And one that declares its size says so.
	enc, _ := zstd.NewWriter(nil)
	declared := enc.EncodeAll(make([]byte, 17<<20), nil)
	if _, err := codec.Unmarshal(declared); !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "zstd frame declares 17825792 bytes") {
		t.Errorf("declared bomb: %v", err)
	}
}

// An event type read from a store is quoted short when it is unknown.
func TestUnknownEventMessageShort(t *testing.T) {
	var reg cairn.EventRegistry
	_, err := reg.Decode(cairn.Event{EventType: strings.Repeat("e", 100<<10)})
	if !errors.Is(err, cairn.ErrUnknownEvent) || len(err.Error()) >= 300 {
		t.Fatalf("Decode: %d bytes: %.300v", len(err.Error()), err)
	}
}
