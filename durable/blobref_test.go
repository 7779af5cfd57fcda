package durable

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
)

func FuzzBlobRefs(f *testing.F) {
	c := &cairn.Checkpoint{WorkflowName: "wf", RunID: [16]byte{1, 6: 0x40, 8: 0x80}, Timestamp: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		State: map[string]any{"a": "x", "big": "placeholder"}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		f.Fatal(err)
	}
	ref := blobRef{total: 20, chunks: []chunkRef{{epoch: 5, length: 12}, {epoch: 6, length: 8}}}
	i := bytes.Index(rec, []byte("\xabplaceholder"))
	withRef := appendRef(append([]byte{}, rec[:i]...), &ref)
	withRef = append(withRef, rec[i+12:]...)
	f.Add(rec)
	f.Add(withRef)
	f.Add(withRef[:len(withRef)-3])
	f.Add([]byte{0x81, 0xa5, 's', 't', 'a', 't', 'e', 0x81, 0xa1, 'a', 0xd4, 67, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		const maxSize = 1 << 20
		spans, err := findRefs(rec, maxSize)
		if err != nil {
			return
		}
		if n := splicedSize(rec, spans); n > maxSize && len(spans) > 0 {
			t.Fatalf("spliced size %d over %d", n, maxSize)
		}
		out, err := splice(rec, spans, func(c chunkRef) []byte { return make([]byte, c.length) })
		if err != nil || len(out) != splicedSize(rec, spans) {
			t.Fatalf("splice: %d bytes, %v", len(out), err)
		}
		if st := stub(rec, spans); len(spans) == 0 && !bytes.Equal(st, rec) {
			t.Fatal("stub changed a record without references")
		}
	})
}

func TestRefRoundTrip(t *testing.T) {
	ref := blobRef{total: 0}
	for i := range 300 {
		c := chunkRef{epoch: uint64(i) * 1000, length: 1 + i*200}
		c.name[0], c.name[31] = byte(i), byte(i>>8)
		ref.chunks = append(ref.chunks, c)
		ref.total += c.length
	}
	v := appendRef(nil, &ref)
	if !isRef(v) {
		t.Fatal("not a reference")
	}
	got, err := decodeRef(v, 1<<30)
	if err != nil || got.total != ref.total || len(got.chunks) != len(ref.chunks) || got.chunks[299] != ref.chunks[299] {
		t.Fatalf("decodeRef: %v", err)
	}
	if _, err := decodeRef(v, ref.total-1); err == nil {
		t.Fatal("a value over the cap decoded")
	}
}

// The chunker is deterministic and content-defined: chunks are within
// bounds, and an append leaves the chunks before it as they were.
func TestChunker(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	cs := chunks(data)
	total := 0
	for i, c := range cs {
		if len(c) > chunkMax || len(c) < chunkMin && i != len(cs)-1 {
			t.Fatalf("chunk %d of %d bytes", i, len(c))
		}
		total += len(c)
	}
	if total != len(data) || len(cs) < 1<<20/chunkMax*2 {
		t.Fatalf("%d chunks of %d bytes", len(cs), total)
	}
	grown := chunks(append(data[:len(data):len(data)], 'x'))
	same := 0
	for i := range min(len(cs), len(grown)) {
		if bytes.Equal(cs[i], grown[i]) {
			same++
		}
	}
	if same < len(cs)-1 {
		t.Fatalf("append changed %d of %d chunks", len(cs)-same, len(cs))
	}
}
