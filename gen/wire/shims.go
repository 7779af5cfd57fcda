package wire

// This is the only file of the package that imports vmihailenco/msgpack.
// Shims generated with -msgpack-shims do not call it (they hold these
// bodies themselves); only shims written by an earlier cairngen do. Without
// it the package imports nothing outside the standard library but
// github.com/google/uuid.

import "github.com/vmihailenco/msgpack/v5"

// EncodeMsgpack writes m's generated encoding to a vmihailenco/msgpack
// encoder, as the EncodeMsgpack methods of files generated before
// -msgpack-shims existed do.
//
// Deprecated: cairngen -msgpack-shims writes this into the generated method
// itself, so that this package need not import vmihailenco/msgpack;
// regenerate the file that calls it.
func EncodeMsgpack(enc *msgpack.Encoder, m Marshaler) error {
	b, err := m.AppendMsgpack(nil)
	if err != nil {
		return err
	}
	return enc.Encode(msgpack.RawMessage(b))
}

// DecodeMsgpack reads the next value of a vmihailenco/msgpack decoder
// into u with u's generated decoder, as the DecodeMsgpack methods of files
// generated before -msgpack-shims existed do.
//
// Deprecated: cairngen -msgpack-shims writes this into the generated method
// itself, so that this package need not import vmihailenco/msgpack;
// regenerate the file that calls it.
func DecodeMsgpack(dec *msgpack.Decoder, u Unmarshaler) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	return Unmarshal(raw, u)
}
