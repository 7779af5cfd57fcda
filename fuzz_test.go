package cairn_test

import (
	"errors"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
)

// FuzzUnmarshal feeds the envelope anything: it must refuse with
// ErrCorrupt or return a checkpoint that survives its own round trip.
func FuzzUnmarshal(f *testing.F) {
	for _, data := range hostileInputs(f) {
		if len(data) < 4096 {
			f.Add(data)
		}
	}
	f.Add(bomb(f))
	f.Add(mustHex(f, goldenA))
	f.Add(mustHex(f, goldenB))
	f.Add([]byte(`{"workflow_name":"demo","run_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{}}`))
	codec := cairn.DefaultCodec()
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := codec.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, cairn.ErrCorrupt) {
				t.Fatalf("Unmarshal error is not ErrCorrupt: %v", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("an error message of %d bytes: %.500s", len(err.Error()), err)
			}
			return
		}
		stored, err := codec.Marshal(cp)
		if err != nil {
			// A record may name the nil run or the zero time, which
			// Save refuses; nothing else read may be unwritable.
			if !errors.Is(err, cairn.ErrInvalid) || (cp.RunID != uuid.Nil && !cp.Timestamp.IsZero()) {
				t.Fatalf("a decoded checkpoint cannot be written: %v", err)
			}
			return
		}
		again, err := codec.Unmarshal(stored)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		if d := storetest.Diff(again, cp); d != "" {
			t.Fatalf("round trip changed the checkpoint: %s", d)
		}
	})
}
