package cairn_test

import (
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/vmihailenco/msgpack/v5"
)

// Checkpoint and Event carry the shims through which vmihailenco/msgpack
// uses the generated codec: code that marshals them with that library
// writes and reads Blazen's bytes, and a hostile length is refused within
// the codec's bounds rather than allocated by the reflective decoder.
func TestMsgpackLibraryUsesTheGeneratedCodec(t *testing.T) {
	for golden, want := range goldenCheckpoints() {
		enc, err := msgpack.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(enc) != golden {
			t.Errorf("msgpack.Marshal = %x\nwant            %s", enc, golden)
		}
		raw, _ := hex.DecodeString(golden)
		var got cairn.Checkpoint
		if err := msgpack.Unmarshal(raw, &got); err != nil {
			t.Fatalf("msgpack.Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("msgpack.Unmarshal = %#v\nwant %#v", got, *want)
		}
	}
	// A map whose one value claims 4 GiB of string: the reflective decoder
	// would try to allocate it.
	var cp cairn.Checkpoint
	if err := msgpack.Unmarshal([]byte("\x81\xa5state\x81\xa1x\xdd\xff\xff\xff\xff"), &cp); err == nil {
		t.Error("msgpack.Unmarshal of a hostile length succeeded")
	}
}
