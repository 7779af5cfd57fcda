package durable

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/gen/wire"
)

// blobExt is the MessagePack extension type of a reference to an
// offloaded value, in place of the value in the record's state map. Blazen
// never writes extension 67 ('C'); a record holding one is Cairn's
// stored form, which Read turns back into the record written.
//
// Its payload: a format byte (1), the value's length (uvarint), the length
// of its head (uvarint, at most 5) and the head, the number of chunks
// (uvarint), then for each chunk its blob epoch (uvarint), its 32-byte
// name and its length (uvarint), then the length of its tail (uvarint, at
// most a chunk's) and the tail. The value is the head, the chunks and the
// tail, in order. Head and tail are kept inline, in the record: the head
// is the MessagePack header of a value that is an array, a map, a string
// or a binary (its length), which
// changes whenever an element is added (a conversation growing by a
// message), and the tail is the value's last chunk, which changes
// whenever something is appended; as blobs, they would be new at every
// Save of a growing value, and cost a PUT each. Only chunks that a later
// content-defined cut closed go to blobs.
const blobExt = 67

// blobRefFormat is the one format of a reference's payload.
const blobRefFormat = 1

// maxBlobEpoch bounds an epoch, so that its key segment keeps 10 digits.
const maxBlobEpoch = 9_999_999_999

// A chunkRef names one chunk of an offloaded value.
type chunkRef struct {
	epoch  uint64
	name   [32]byte
	length int
}

// A blobRef is an offloaded value: its head, its chunks, its tail, and
// its length (theirs together).
type blobRef struct {
	total  int
	head   []byte
	chunks []chunkRef
	tail   []byte
}

// maxHead bounds a reference's inline head: the longest MessagePack
// length header.
const maxHead = 5

// containerHead returns the length of v's header when v is a MessagePack
// array, map, string or binary of a length header (which changes whenever
// the value grows), else 0.
func containerHead(v []byte) int {
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; {
	case c >= 0x80 && c <= 0x9f: // fixmap, fixarray
		return 1
	case c == 0xd9, c == 0xc4: // str8, bin8
		return 2
	case c == 0xdc, c == 0xde, c == 0xda, c == 0xc5: // array16, map16, str16, bin16
		return 3
	case c == 0xdd, c == 0xdf, c == 0xdb, c == 0xc6: // array32, map32, str32, bin32
		return 5
	}
	return 0
}

// refSpan is a reference in a stored record: the bytes [start, end) of
// the record hold its extension value.
type refSpan struct {
	start, end int
	ref        blobRef
}

// valueSpan is a value of a record's state map: the bytes [start, end).
type valueSpan struct{ start, end int }

// appendRef appends ref as a MessagePack extension value.
func appendRef(b []byte, ref *blobRef) []byte {
	p := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(ref.head)+len(ref.tail)+len(ref.chunks)*(32+2*binary.MaxVarintLen64))
	p = append(p, blobRefFormat)
	p = binary.AppendUvarint(p, uint64(ref.total))
	p = binary.AppendUvarint(p, uint64(len(ref.head)))
	p = append(p, ref.head...)
	p = binary.AppendUvarint(p, uint64(len(ref.chunks)))
	for _, c := range ref.chunks {
		p = binary.AppendUvarint(p, c.epoch)
		p = append(p, c.name[:]...)
		p = binary.AppendUvarint(p, uint64(c.length))
	}
	p = binary.AppendUvarint(p, uint64(len(ref.tail)))
	p = append(p, ref.tail...)
	switch n := len(p); {
	case n <= 0xff:
		b = append(b, 0xc7, byte(n))
	case n <= 0xffff:
		b = append(b, 0xc8, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc9, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, blobExt)
	return append(b, p...)
}

// errBadRef is the cause of every malformed reference.
var errBadRef = errors.New("malformed blob reference")

// decodeRef decodes the extension value v (a whole MessagePack value of
// our type) whose value may be at most maxTotal bytes. It allocates only
// in proportion to len(v).
func decodeRef(v []byte, maxTotal int) (blobRef, error) {
	var p []byte
	switch {
	case len(v) >= 3 && v[0] == 0xc7:
		p = v[3:]
	case len(v) >= 4 && v[0] == 0xc8:
		p = v[4:]
	case len(v) >= 6 && v[0] == 0xc9:
		p = v[6:]
	default:
		return blobRef{}, fmt.Errorf("%w: not an extension of variable length", errBadRef)
	}
	if len(p) < 1 || p[0] != blobRefFormat {
		return blobRef{}, fmt.Errorf("%w: unknown format", errBadRef)
	}
	p = p[1:]
	uv := func() (uint64, bool) {
		x, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return x, true
	}
	total, ok1 := uv()
	hl, ok := uv()
	if !ok || hl > maxHead || hl > uint64(len(p)) {
		return blobRef{}, fmt.Errorf("%w: a head of %d bytes", errBadRef, hl)
	}
	head := p[:hl:hl]
	p = p[hl:]
	n, ok2 := uv()
	// Each chunk takes at least 34 bytes: the count is bounded by what
	// remains before anything is allocated for it.
	if !ok1 || !ok2 || n == 0 || n > uint64(len(p)/34) || total > uint64(maxTotal) {
		return blobRef{}, fmt.Errorf("%w: %d chunks, %d bytes", errBadRef, n, total)
	}
	ref := blobRef{total: int(total), head: head, chunks: make([]chunkRef, n)}
	sum := hl
	for i := range ref.chunks {
		c := &ref.chunks[i]
		var ok bool
		if c.epoch, ok = uv(); !ok || c.epoch > maxBlobEpoch || len(p) < 32 {
			return blobRef{}, fmt.Errorf("%w: chunk %d", errBadRef, i)
		}
		copy(c.name[:], p)
		p = p[32:]
		l, ok := uv()
		if !ok || l == 0 || l > chunkMax {
			return blobRef{}, fmt.Errorf("%w: chunk %d of %d bytes", errBadRef, i, l)
		}
		c.length = int(l)
		sum += l
	}
	tl, ok := uv()
	if !ok || tl > chunkMax || tl != uint64(len(p)) {
		return blobRef{}, fmt.Errorf("%w: a tail of %d bytes", errBadRef, tl)
	}
	ref.tail, p = p[:tl:tl], p[tl:]
	sum += tl
	if len(p) != 0 || sum != total {
		return blobRef{}, fmt.Errorf("%w: chunks of %d bytes for a value of %d", errBadRef, sum, total)
	}
	return ref, nil
}

// walkState calls f with the extent of each value of rec's state map, in
// order. A record that is not a map, or has no state map, has none; an
// error is a record whose framing is broken.
func walkState(rec []byte, f func(start, end int) error) error {
	r := wire.NewReader(rec)
	n, err := r.ReadMapHeader()
	if err != nil {
		return nil // not a map (a positional or JSON record): never offloaded
	}
	for range n {
		k, err := r.ReadStr()
		if err != nil {
			return err
		}
		if string(k) != "state" {
			if err := r.Skip(); err != nil {
				return err
			}
			continue
		}
		if c, err := r.Peek(); err != nil || c == 0xc0 || (c&0xf0 != 0x80 && c != 0xde && c != 0xdf) {
			if err := r.Skip(); err != nil { // nil or not a map: nothing offloaded
				return err
			}
			continue
		}
		m, err := r.ReadMapHeader()
		if err != nil {
			return err
		}
		for range m {
			if err := r.Skip(); err != nil { // the key
				return err
			}
			start := r.Offset()
			if err := r.Skip(); err != nil {
				return err
			}
			if err := f(start, r.Offset()); err != nil {
				return err
			}
		}
	}
	return nil
}

// isRef reports whether v, one whole MessagePack value, is an extension
// of type blobExt (in any form: a fixext of the type is a malformed
// reference, not a value).
func isRef(v []byte) bool {
	switch {
	case len(v) >= 2 && v[0] >= 0xd4 && v[0] <= 0xd8:
		return int8(v[1]) == blobExt
	case len(v) >= 3 && v[0] == 0xc7:
		return int8(v[2]) == blobExt
	case len(v) >= 4 && v[0] == 0xc8:
		return int8(v[3]) == blobExt
	case len(v) >= 6 && v[0] == 0xc9:
		return int8(v[5]) == blobExt
	}
	return false
}

// findRefs returns the references of a stored record, in order. A
// reference that does not decode, or references whose values would make
// the record larger than maxSize, are ErrCorrupt; so is a record whose
// framing breaks before its state ends.
func findRefs(rec []byte, maxSize int) ([]refSpan, error) {
	var spans []refSpan
	size := len(rec)
	err := walkState(rec, func(start, end int) error {
		v := rec[start:end]
		if !isRef(v) {
			return nil
		}
		ref, err := decodeRef(v, maxSize)
		if err != nil {
			return err
		}
		if size += ref.total - len(v); size > maxSize {
			return fmt.Errorf("%w: values of a record of more than %d bytes", errBadRef, maxSize)
		}
		spans = append(spans, refSpan{start: start, end: end, ref: ref})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: stored record: %w", cairn.ErrCorrupt, err)
	}
	return spans, nil
}

// splicedSize is the size of rec with its references replaced by their
// values.
func splicedSize(rec []byte, spans []refSpan) int {
	n := len(rec)
	for _, sp := range spans {
		n += sp.ref.total - (sp.end - sp.start)
	}
	return n
}

// splice returns rec with each reference replaced by its value, read from
// chunk (by name; each of the length its reference gives, as the caller
// checked). spans are findRefs' for rec.
func splice(rec []byte, spans []refSpan, chunk func(chunkRef) []byte) ([]byte, error) {
	out := make([]byte, 0, splicedSize(rec, spans))
	at := 0
	for _, sp := range spans {
		out = append(append(out, rec[at:sp.start]...), sp.ref.head...)
		for _, c := range sp.ref.chunks {
			b := chunk(c)
			if len(b) != c.length {
				return nil, fmt.Errorf("%w: blob %x of %d bytes, %d expected", cairn.ErrCorrupt, c.name, len(b), c.length)
			}
			out = append(out, b...)
		}
		out = append(out, sp.ref.tail...)
		at = sp.end
	}
	return append(out, rec[at:]...), nil
}

// stub returns rec with each reference replaced by a nil: a record that
// decodes without its blobs, for what needs its summary only.
func stub(rec []byte, spans []refSpan) []byte {
	out := make([]byte, 0, len(rec))
	at := 0
	for _, sp := range spans {
		out = append(append(out, rec[at:sp.start]...), 0xc0)
		at = sp.end
	}
	return append(out, rec[at:]...)
}
