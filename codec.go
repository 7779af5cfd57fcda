package cairn

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/cairnstore/cairn/gen/wire"
	"github.com/klauspost/compress/zstd"
)

// DefaultMaxSize is the default bound on a checkpoint's MessagePack record,
// before compression: 16 MiB.
const DefaultMaxSize = 16 << 20

// zstdMagic starts every zstd frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// CodecOptions configures a Codec. Nil and zero fields mean defaults.
type CodecOptions struct {
	// MaxSize bounds the MessagePack record of one checkpoint, in bytes
	// before compression. Encoding a larger one gives ErrTooLarge;
	// reading an object that is, or decompresses to, more gives
	// ErrCorrupt without allocating past the bound. Zero means
	// DefaultMaxSize.
	MaxSize int
	// Uncompressed writes bare MessagePack records, which a Blazen
	// process reads without knowing about zstd. Reading always accepts
	// both.
	Uncompressed bool
}

// Codec turns checkpoints into stored bytes and back: a MessagePack record
// (the blazen-persist wire format) inside a zstd frame. A Codec is safe for
// concurrent use; make one and share it. All codecs share one zstd encoder,
// and all codecs with the same MaxSize share one decoder.
type Codec struct {
	maxSize      int
	uncompressed bool
	dec          *decoderPair
}

// encoderWindow is the encoder's window: how far back a match may reach.
// Each of the encoder's states (one per CPU) keeps a history of a window
// plus a block; at zstd's default of 8 MiB that was 16 MiB per CPU, 256 MiB
// on a 16-CPU host, whatever the records' size. A checkpoint's repeats are
// mostly near each other: 1 MiB costs records under 1 MiB nothing and
// larger ones a little ratio, and any zstd decoder reads the frames.
const encoderWindow = 1 << 20

var (
	encoderOnce = sync.OnceValues(func() (*zstd.Encoder, error) {
		// EncodeAll is safe for concurrent use; one encoder serves the
		// process, as klauspost/compress recommends.
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
	})
	decoders     sync.Map // maxSize → *zstd.Decoder
	defaultCodec = sync.OnceValue(func() *Codec {
		c, err := NewCodec(nil)
		if err != nil {
			panic(err) // the defaults are valid; this cannot happen
		}
		return c
	})
)

// DefaultCodec returns the process-wide Codec with default options.
func DefaultCodec() *Codec { return defaultCodec() }

// NewCodec returns a Codec for opts (nil means defaults). A negative
// MaxSize is ErrInvalid.
func NewCodec(opts *CodecOptions) (*Codec, error) {
	var o CodecOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("%w: negative MaxSize %d", ErrInvalid, o.MaxSize)
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	dec, err := decoderFor(o.MaxSize)
	if err != nil {
		return nil, err
	}
	if _, err := encoderOnce(); err != nil {
		return nil, err
	}
	return &Codec{maxSize: o.MaxSize, uncompressed: o.Uncompressed, dec: dec}, nil
}

// decoderPair holds the two decoders of one size limit. full stops a
// frame once it has produced more than the limit; capped stops it once it
// outgrows the buffer it was given, which lets a frame of unknown size be
// tried in small buffers first.
type decoderPair struct {
	full, capped *zstd.Decoder
}

func decoderFor(maxSize int) (*decoderPair, error) {
	if d, ok := decoders.Load(maxSize); ok {
		return d.(*decoderPair), nil
	}
	// The caps make a frame that declares a larger window or content size
	// fail before anything is allocated for it.
	// Below zstd's smallest window (1 KiB), which every frame may
	// declare, the memory bound is the window: a record larger than
	// maxSize is still refused, by the size checks after decoding.
	opts := []zstd.DOption{
		zstd.WithDecoderMaxMemory(uint64(max(maxSize, zstd.MinWindowSize))),
		zstd.WithDecoderMaxWindow(uint64(max(maxSize, zstd.MinWindowSize))),
		zstd.WithDecoderConcurrency(0),
	}
	full, err := zstd.NewReader(nil, opts...)
	if err != nil {
		return nil, err
	}
	capped, err := zstd.NewReader(nil, append(opts, zstd.WithDecodeAllCapLimit(true))...)
	if err != nil {
		return nil, err
	}
	d := &decoderPair{full: full, capped: capped}
	if prev, loaded := decoders.LoadOrStore(maxSize, d); loaded {
		full.Close()
		capped.Close()
		return prev.(*decoderPair), nil
	}
	return d, nil
}

// Compressed reports whether Compress writes zstd frames (false for an
// Uncompressed codec).
func (c *Codec) Compressed() bool { return !c.uncompressed }

// MaxSize returns the bound on a record's size.
func (c *Codec) MaxSize() int { return c.maxSize }

// EncodeRecord validates cp and appends its MessagePack record to dst. A nil
// checkpoint, a nil run ID, a zero timestamp or one outside the years
// 0000-9999, a string that is not valid UTF-8 (the workflow name, an event
// type, a map key or a string value at any depth), and values JSON cannot
// hold give ErrInvalid, with the path to the value in the message (such
// as Checkpoint.state["a"][3]["k"]); a record over MaxSize gives
// ErrTooLarge. On error dst is returned unchanged.
func (c *Codec) EncodeRecord(dst []byte, cp *Checkpoint) ([]byte, error) {
	if err := checkFields(cp); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := LabelsOf(cp.Metadata); err != nil {
		return dst, err
	}
	if err := checkLeaseStamp(cp.Metadata); err != nil {
		return dst, err
	}
	out, err := cp.AppendMsgpack(dst)
	if err != nil {
		if errors.Is(err, wire.ErrUnsupported) {
			return dst, fmt.Errorf("%w: %w", ErrInvalid, locateEvent(cp, err))
		}
		return dst, err
	}
	if n := len(out) - len(dst); n > c.maxSize {
		return dst, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrTooLarge, n, c.maxSize)
	}
	return out, nil
}

// checkFields checks what the generated encoder does not: the run ID, the
// timestamp, and the strings it writes without looking (the generated
// codec validates the UTF-8 of JSON-like values only).
func checkFields(cp *Checkpoint) error {
	switch {
	case cp == nil:
		return errors.New("nil checkpoint")
	case cp.RunID == [16]byte{}:
		return errors.New("nil run ID")
	case cp.Timestamp.IsZero():
		return errors.New("zero timestamp")
	}
	return checkStrings(cp)
}

// checkStrings reports a workflow name or an event type that is not valid
// UTF-8.
func checkStrings(cp *Checkpoint) error {
	if !utf8.ValidString(cp.WorkflowName) {
		return errors.New("Checkpoint.workflow_name: invalid UTF-8")
	}
	for i := range cp.PendingEvents {
		if !utf8.ValidString(cp.PendingEvents[i].EventType) {
			return fmt.Errorf("Checkpoint.pending_events[%d].event_type: invalid UTF-8", i)
		}
	}
	return nil
}

// locateEvent adds the index of the failing event to an encoding error of
// pending_events, which the generated encoder reports without it. It
// re-encodes, in the generated encoder's order, the fields that can fail
// before the events: if one of them fails, err is about it. Only an error
// pays for this.
func locateEvent(cp *Checkpoint, err error) error {
	buf := getBuf()
	defer putBuf(buf)
	b, terr := wire.AppendTime((*buf)[:0], cp.Timestamp)
	if terr != nil {
		return err
	}
	b, serr := wire.AppendValueMap(b[:0], cp.State)
	*buf = b
	if serr != nil {
		return err
	}
	for i := range cp.PendingEvents {
		b, eerr := cp.PendingEvents[i].AppendMsgpack((*buf)[:0])
		*buf = b
		if eerr != nil {
			return wire.FieldError("Checkpoint", "pending_events", wire.AtIndex(i, eerr))
		}
	}
	return err
}

// Validate reports whether c could be saved: it returns the error EncodeRecord
// would, without keeping the encoding.
func (c *Codec) Validate(cp *Checkpoint) error {
	buf := getBuf()
	defer putBuf(buf)
	_, err := c.EncodeRecord((*buf)[:0], cp)
	return err
}

// Compress appends the stored form of a record to dst: a zstd frame, or
// the record itself when the codec is Uncompressed.
func (c *Codec) Compress(dst, record []byte) []byte {
	if c.uncompressed {
		return append(dst, record...)
	}
	enc, _ := encoderOnce() // NewCodec checked the error
	return enc.EncodeAll(record, dst)
}

// Marshal returns the stored form of cp: EncodeRecord, then Compress.
func (c *Codec) Marshal(cp *Checkpoint) ([]byte, error) {
	buf := getBuf()
	defer putBuf(buf)
	rec, err := c.EncodeRecord((*buf)[:0], cp)
	*buf = rec
	if err != nil {
		return nil, err
	}
	return c.Compress(nil, rec), nil
}

// Unmarshal decodes stored bytes of any form Cairn or Blazen writes: a
// zstd frame or a bare record; MessagePack as a map or a positional array,
// or Blazen's legacy JSON. Unknown fields are ignored. Anything else — a
// missing field, a truncated or damaged object, trailing bytes, a record
// over MaxSize — gives ErrCorrupt. The result is the caller's.
func (c *Codec) Unmarshal(data []byte) (*Checkpoint, error) {
	if !bytes.HasPrefix(data, zstdMagic) {
		return c.DecodeRecord(data)
	}
	buf := getBuf()
	defer putBuf(buf)
	rec, err := c.decompress(data, buf)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(rec, zstdMagic) {
		return nil, fmt.Errorf("%w: zstd frame inside a zstd frame", ErrCorrupt)
	}
	return c.DecodeRecord(rec)
}

// blockSlack is room past the end of a decode buffer for the one block
// (at most 128 KiB) that the decoder writes before it notices a limit is
// passed; without it the decoder would reallocate the buffer then.
const blockSlack = 128<<10 + 64

// decompress inflates a zstd frame into buffers whose size it chooses, so
// that memory stays close to the output and a bomb is refused after at most
// about twice MaxSize. A frame that declares its content size (as Cairn's
// and zstd's one-shot encoders write) is decoded once into a buffer of that
// size. A frame that does not (a streaming encoder's) is tried in buffers
// of 64 KiB, 512 KiB and 4 MiB by the capped decoder, which gives up when
// the buffer is full (reporting that as one of several errors, so any error
// moves to the next size), and finally in one of MaxSize.
func (c *Codec) decompress(data []byte, buf *[]byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(data); err != nil {
		return nil, fmt.Errorf("%w: not a valid zstd frame: %w", ErrCorrupt, err)
	}
	final := c.maxSize
	if h.HasFCS {
		if h.FrameContentSize > uint64(c.maxSize) {
			return nil, fmt.Errorf("%w: zstd frame declares %d bytes, over the limit of %d", ErrCorrupt, h.FrameContentSize, c.maxSize)
		}
		final = int(h.FrameContentSize)
	} else {
		for size := 64 << 10; size < c.maxSize; size *= 8 {
			if cap(*buf) < size {
				*buf = make([]byte, 0, size)
			}
			if rec, err := c.dec.capped.DecodeAll(data, (*buf)[:0]); err == nil {
				return rec, nil
			}
		}
	}
	if cap(*buf) < final+blockSlack {
		*buf = make([]byte, 0, final+blockSlack)
	}
	rec, err := c.dec.full.DecodeAll(data, (*buf)[:0])
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		// A claim of the header, not output: random bytes after the
		// magic number mostly fail here.
		return nil, fmt.Errorf("%w: not a valid zstd frame: its header asks for a window of %d bytes, over the limit of %d",
			ErrCorrupt, h.WindowSize, c.maxSize)
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// The declared content size was checked above, so this is
		// output that grew past the limit.
		return nil, fmt.Errorf("%w: zstd frame decompresses to more than %d bytes", ErrCorrupt, c.maxSize)
	}
	return nil, fmt.Errorf("%w: not a valid zstd frame: %w", ErrCorrupt, err)
}

// Decompress returns the record inside stored bytes: data itself (not a
// copy) when it is not a zstd frame, else a new slice the caller owns, no
// larger than the record (give or take an eighth), so it may be kept. The
// bounds of Unmarshal apply: anything over MaxSize or damaged is ErrCorrupt.
func (c *Codec) Decompress(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, zstdMagic) {
		if len(data) > c.maxSize {
			return nil, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrCorrupt, len(data), c.maxSize)
		}
		return data, nil
	}
	var buf []byte
	rec, err := c.decompress(data, &buf)
	if err != nil {
		return nil, err
	}
	return fit(rec), nil
}

// fit returns rec with its capacity clipped to its length, copied into a
// slice of its own size when the buffer behind it is much larger: a
// decoder's buffer (up to 128 KiB of slack, blockSlack, and 64 KiB at
// least), or an encoder's sized from an earlier, larger record of the run
// (a state that shrank, or Typed's size hint from another run). A caller
// may keep the record for long, as a cache does, counting len(rec): the
// slack must not stay with it, or a cache of small records would hold
// several times the bytes it reports.
func fit(rec []byte) []byte {
	if cap(rec)-len(rec) <= len(rec)/8+512 {
		return rec[:len(rec):len(rec)]
	}
	return append(make([]byte, 0, len(rec)), rec...)
}

// DecodeRecord decodes an uncompressed record: MessagePack (map or
// positional array) or legacy JSON. The result does not alias rec. A
// string that is not valid UTF-8, anywhere, makes the record ErrCorrupt
// (naming where it is), as it does for Blazen: it could not be saved
// again, nor written as JSON without losing a key to U+FFFD.
func (c *Codec) DecodeRecord(rec []byte) (*Checkpoint, error) { return c.decodeRecord(rec, false) }

// DecodeSharedRecord is DecodeRecord of a record that never changes
// afterwards, such as one a Store caches: the checkpoint's strings may
// alias rec instead of a copy of it, which spares copying it.
func (c *Codec) DecodeSharedRecord(rec []byte) (*Checkpoint, error) { return c.decodeRecord(rec, true) }

func (c *Codec) decodeRecord(rec []byte, shared bool) (*Checkpoint, error) {
	if len(rec) > c.maxSize {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrCorrupt, len(rec), c.maxSize)
	}
	if len(rec) == 0 {
		return nil, fmt.Errorf("%w: empty object", ErrCorrupt)
	}
	switch b := rec[0]; {
	case b&0xe0 == 0x80 || b >= 0xdc && b <= 0xdf: // map or array
		cp := new(Checkpoint)
		r := wire.NewReader(rec)
		if shared {
			r.Share()
		}
		err := cp.ReadMsgpack(&r)
		if err == nil && r.Len() != 0 {
			err = fmt.Errorf("%w: %d trailing bytes", wire.ErrMalformed, r.Len())
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if err := checkStrings(cp); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return cp, nil
	case b == '{' || b == ' ' || b == '\t' || b == '\r' || b == '\n':
		return decodeLegacyJSON(rec)
	}
	return nil, fmt.Errorf("%w: unknown format (first byte 0x%02x)", ErrCorrupt, rec[0])
}

// bufPool recycles encode and decompress buffers; only modest ones are
// kept, so one huge checkpoint does not pin its memory forever.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}
