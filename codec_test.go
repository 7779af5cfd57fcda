package cairn_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The blazen-persist golden vectors through the whole envelope: bare, as a
// Blazen process writes them, and compressed, as Cairn writes them.
func TestGoldenVectorsEnvelope(t *testing.T) {
	bare, err := cairn.NewCodec(&cairn.CodecOptions{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	for golden, want := range goldenCheckpoints() {
		raw := mustHex(t, golden)
		got, err := cairn.DefaultCodec().Unmarshal(raw)
		if err != nil {
			t.Fatalf("Unmarshal(golden): %v", err)
		}
		if d := storetest.Diff(got, want); d != "" {
			t.Fatalf("golden decodes to: %s", d)
		}
		out, err := bare.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, raw) {
			t.Fatalf("uncompressed Marshal = %x\nwant %s", out, golden)
		}
		z, err := cairn.DefaultCodec().Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(z, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("compressed Marshal does not start with the zstd magic: %x", z[:4])
		}
		got, err = bare.Unmarshal(z) // every codec reads every form
		if err != nil {
			t.Fatal(err)
		}
		if d := storetest.Diff(got, want); d != "" {
			t.Fatalf("compressed round trip: %s", d)
		}
	}
}

func TestLegacyJSON(t *testing.T) {
	const vectorA = `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8",
		"timestamp":"2024-01-01T00:00:00Z","state":{"counter":42},
		"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"hello"}}],"metadata":{}}`
	got, err := cairn.DefaultCodec().Unmarshal([]byte(vectorA))
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.Diff(got, goldenCheckpoints()[goldenA]); d != "" {
		t.Fatal(d)
	}
	if _, ok := got.State["counter"].(int64); !ok {
		t.Fatalf("counter came back as %T, want int64", got.State["counter"])
	}
	big := strings.Replace(vectorA, `{"counter":42}`, `{"f":1.5,"u":18446744073709551615,"n":-3,"e":1e3}`, 1)
	got, err = cairn.DefaultCodec().Unmarshal([]byte(big))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"f": 1.5, "u": uint64(18446744073709551615), "n": int64(-3), "e": 1000.0}
	for k, v := range want {
		if got.State[k] != v {
			t.Errorf("state[%q] = %#v, want %#v", k, got.State[k], v)
		}
	}
	for name, bad := range map[string]string{
		"missing metadata": strings.Replace(vectorA, `,"metadata":{}`, ``, 1),
		"run_id not uuid":  strings.Replace(vectorA, `67e55044-10b1`, `zz`, 1),
		"bad timestamp":    strings.Replace(vectorA, `2024-01-01T`, `2024-13-01T`, 1),
		"trailing":         vectorA + `{}`,
		"truncated":        vectorA[:len(vectorA)/2],
		"deep":             strings.Replace(vectorA, `{"counter":42}`, `{"x":`+strings.Repeat("[", 500)+strings.Repeat("]", 500)+`}`, 1),
	} {
		if _, err := cairn.DefaultCodec().Unmarshal([]byte(bad)); !errors.Is(err, cairn.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// rmp-serde's to_vec writes structs as positional arrays; readers accept
// them, and ignore unknown fields of the map form.
func TestRecordForms(t *testing.T) {
	want := goldenCheckpoints()[goldenA]
	b := wire.AppendArrayHeader(nil, 6)
	b = wire.AppendString(b, "demo")
	b = wire.AppendUUID(b, goldenRun)
	b, _ = wire.AppendTime(b, want.Timestamp)
	b, _ = wire.AppendValueMap(b, want.State)
	b = wire.AppendArrayHeader(b, 1)
	b = wire.AppendArrayHeader(b, 2)
	b = wire.AppendString(b, "blazen::StartEvent")
	b, _ = wire.AppendValue(b, map[string]any{"input": "hello"})
	b, _ = wire.AppendValueMap(b, nil)
	got, err := cairn.DefaultCodec().Unmarshal(b)
	if err != nil {
		t.Fatalf("positional record: %v", err)
	}
	if d := storetest.Diff(got, want); d != "" {
		t.Fatalf("positional record: %s", d)
	}

	golden := mustHex(t, goldenA)
	extra := append([]byte{0x87}, golden[1:]...)
	extra = wire.AppendString(extra, "added_later")
	extra = wire.AppendArrayHeader(extra, 2)
	extra = append(extra, 0x01, 0xc0)
	if got, err = cairn.DefaultCodec().Unmarshal(extra); err != nil {
		t.Fatalf("record with an unknown field: %v", err)
	}
	if d := storetest.Diff(got, want); d != "" {
		t.Fatalf("record with an unknown field: %s", d)
	}

	// Drop the trailing "metadata" key and its value: 5 keys remain.
	missing := append([]byte{0x85}, golden[1:len(golden)-len("\xa8metadata\x80")]...)
	_, err = cairn.DefaultCodec().Unmarshal(missing)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("record without metadata: %v, want ErrCorrupt naming the field", err)
	}
}

func TestEncodeDeterministic(t *testing.T) {
	c := storetestCheckpoint()
	first, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := cairn.DefaultCodec().EncodeRecord(nil, c)
		if !bytes.Equal(first, again) {
			t.Fatal("the same checkpoint encoded to different bytes")
		}
	}
}

func storetestCheckpoint() *cairn.Checkpoint {
	c := goldenCheckpoints()[goldenA]
	for i := range 50 {
		c.State[strings.Repeat("k", i%7)+string(rune('a'+i%26))] = map[string]any{"i": i, "s": "v"}
	}
	return c
}

func TestSizeLimit(t *testing.T) {
	small, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	c := goldenCheckpoints()[goldenA]
	if _, err := small.Marshal(c); err != nil {
		t.Fatalf("a 167-byte record under a 300-byte limit: %v", err)
	}
	c.State["pad"] = strings.Repeat("x", 200)
	if _, err := small.Marshal(c); !errors.Is(err, cairn.ErrTooLarge) {
		t.Fatalf("Marshal over the limit: %v, want ErrTooLarge", err)
	}
	stored, err := cairn.DefaultCodec().Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Unmarshal(stored); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("Unmarshal of a frame over the limit: %v, want ErrCorrupt", err)
	}
	if _, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: -1}); !errors.Is(err, cairn.ErrInvalid) {
		t.Fatalf("NewCodec(MaxSize -1): %v, want ErrInvalid", err)
	}
}

// bomb returns a zstd frame, without a declared content size, that
// inflates to 256 MiB of zeros.
func bomb(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, zeros{}, 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// hostileInputs are the attacks of DESIGN.md §2 and more; each must be
// refused with ErrCorrupt.
func hostileInputs(t testing.TB) map[string][]byte {
	golden := mustHex(t, goldenA)
	compressed, err := cairn.DefaultCodec().Marshal(goldenCheckpoints()[goldenA])
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	in := map[string][]byte{
		"array32 of 4G":         {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 of 4G":           {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 of 4G":           {0xdb, 0xff, 0xff, 0xff, 0xff},
		"zstd bomb 256 MiB":     bomb(t),
		"zstd of array32 of 4G": enc.EncodeAll([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, nil),
		"zstd in zstd":          enc.EncodeAll(compressed, nil),
		"deep nesting":          append(append([]byte{0x81, 0xa5, 's', 't', 'a', 't', 'e'}, bytes.Repeat([]byte{0x91}, 100_000)...), 0xc0),
		"state str32 of 4G":     append(append([]byte{}, golden[:bytes.Index(golden, []byte("\xa5state"))+6]...), 0xdb, 0xff, 0xff, 0xff, 0xff),
		"events array32 of 4G":  append(append([]byte{}, golden[:bytes.Index(golden, []byte("\xaepending_events"))+15]...), 0xdd, 0x7f, 0xff, 0xff, 0xff),
		"bin in a JSON slot":    bytes.Replace(golden, []byte{0xa7, 'c', 'o', 'u', 'n', 't', 'e', 'r', 0x2a}, []byte{0xa7, 'c', 'o', 'u', 'n', 't', 'e', 'r', 0xc4, 0x00}, 1),
		"ext in a JSON slot":    bytes.Replace(golden, []byte{0xa7, 'c', 'o', 'u', 'n', 't', 'e', 'r', 0x2a}, []byte{0xa7, 'c', 'o', 'u', 'n', 't', 'e', 'r', 0xd4, 0x01}, 1),
		"run id of 15 bytes":    bytes.Replace(golden, []byte{0xc4, 0x10}, []byte{0xc4, 0x0f}, 1),
		"trailing bytes":        append(append([]byte{}, golden...), 0xc0),
		"empty":                 {},
		"garbage":               []byte("\x00\x01\x02 not a checkpoint"),
		"zstd magic only":       {0x28, 0xb5, 0x2f, 0xfd},
		"invalid UTF-8 key":     bytes.Replace(golden, []byte("counter"), []byte("counte\xff"), 1),
		"invalid UTF-8 name":    bytes.Replace(golden, []byte("\xa4demo"), []byte("\xa4dem\xc3"), 1),
		"JSON lone surrogate":   []byte(`{"workflow_name":"\udc00","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{}}`),
	}
	for i := 1; i < len(golden); i += 7 {
		in["truncated record at "+itoa(i)] = golden[:i]
	}
	for i := 1; i < len(compressed); i++ {
		in["truncated frame at "+itoa(i)] = compressed[:i]
	}
	for i := range compressed {
		flipped := append([]byte{}, compressed...)
		flipped[i] ^= 0x55
		in["flipped frame byte "+itoa(i)] = flipped
	}
	return in
}

func itoa(i int) string {
	return strings.TrimLeft(hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), "0")
}

func TestHostileInput(t *testing.T) {
	codec := cairn.DefaultCodec()
	for name, data := range hostileInputs(t) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cp, err := codec.Unmarshal(data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, cairn.ErrCorrupt) {
			if strings.HasPrefix(name, "flipped frame byte") && err == nil {
				// A flip in the frame header can leave a valid frame
				// (a dropped checksum flag, say); it must then hold
				// the original checkpoint, never other data.
				if d := storetest.Diff(cp, goldenCheckpoints()[goldenA]); d == "" {
					continue
				}
			}
			t.Errorf("%s: Unmarshal = %v, want ErrCorrupt", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%s: allocated %d MiB, want under 64 MiB", name, alloc>>20)
		}
	}
}

// Frames with and without a declared content size, small and large, all
// decode; the second kind goes through the growing-buffer path.
func TestCompressedSizes(t *testing.T) {
	for _, n := range []int{0, 1 << 10, 100 << 10, 3 << 20} {
		c := goldenCheckpoints()[goldenA]
		c.State["blob"] = strings.Repeat("abcdefghij", n/10)
		stored, err := cairn.DefaultCodec().Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cairn.DefaultCodec().Unmarshal(stored)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if d := storetest.Diff(got, c); d != "" {
			t.Fatalf("%d bytes: %s", n, d)
		}
		rec, _ := cairn.DefaultCodec().EncodeRecord(nil, c)
		var streamed bytes.Buffer
		w, _ := zstd.NewWriter(&streamed)
		w.Write(rec)
		w.Close()
		if got, err = cairn.DefaultCodec().Unmarshal(streamed.Bytes()); err != nil {
			t.Fatalf("%d bytes, streamed frame: %v", n, err)
		}
		if d := storetest.Diff(got, c); d != "" {
			t.Fatalf("%d bytes, streamed frame: %s", n, d)
		}
	}
}

// EncodeJSON writes what Unmarshal reads back, kinds included, and the
// bytes of golden vector A as Blazen writes them.
func TestEncodeJSON(t *testing.T) {
	for name, want := range goldenCheckpoints() {
		j, err := cairn.EncodeJSON(want)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := cairn.DefaultCodec().Unmarshal(j)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, j, err)
		}
		if d := storetest.Diff(got, want); d != "" {
			t.Fatalf("%s: %s", name, d)
		}
	}
	a, err := cairn.EncodeJSON(goldenCheckpoints()[goldenA])
	if err != nil {
		t.Fatal(err)
	}
	const wantA = `{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{"counter":42},"pending_events":[{"event_type":"blazen::StartEvent","data":{"input":"hello"}}],"metadata":{}}`
	if string(a) != wantA {
		t.Fatalf("vector A as JSON:\n got %s\nwant %s", a, wantA)
	}
	kinds := &cairn.Checkpoint{RunID: uuid.New(), Timestamp: time.Unix(1, 5).UTC(),
		State: map[string]any{"f": 1.0, "g": 2.5, "big": 1e300, "i": 3, "u": uint64(1 << 63), "s": "é\"\n", "n": nil, "l": []any{true, -1}, "h": "<a&b>"}}
	j, err := cairn.EncodeJSON(kinds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cairn.DefaultCodec().Unmarshal(j)
	if err != nil {
		t.Fatalf("%s: %v", j, err)
	}
	if !bytes.Contains(j, []byte(`"h":"<a&b>"`)) {
		t.Errorf("<, > and & escaped: %s", j)
	}
	for k, v := range map[string]any{"f": 1.0, "g": 2.5, "big": 1e300, "i": int64(3), "u": uint64(1 << 63), "s": "é\"\n", "n": nil, "h": "<a&b>"} {
		if got.State[k] != v {
			t.Errorf("state[%q] = %#v after JSON, want %#v (%s)", k, got.State[k], v, j)
		}
	}
	if _, err := cairn.EncodeJSON(&cairn.Checkpoint{State: map[string]any{"c": make(chan int)}}); !errors.Is(err, cairn.ErrInvalid) {
		t.Fatalf("a channel in state: %v, want ErrInvalid", err)
	}
}
