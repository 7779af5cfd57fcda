package cairn_test

import (
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/google/uuid"
)

// The golden vectors of blazen-persist (rmp-serde to_vec_named), as
// DESIGN.md gives them.
const (
	goldenA = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70b4323032342d30312d30315430303a30303a30305aa5737461746581a7636f756e7465722aae70656e64696e675f6576656e74739182aa6576656e745f74797065b2626c617a656e3a3a53746172744576656e74a46461746181a5696e707574a568656c6c6fa86d6574616461746180"
	goldenB = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8a974696d657374616d70be323032342d30362d31305430363a31333a32302e3132333435363738395aa5737461746581a7636f756e74657281a44a736f6e2aae70656e64696e675f6576656e747390a86d6574616461746181a672756e5f6964d92436376535353034342d313062312d343236662d393234372d626236383065356665306338"
)

var goldenRun = uuid.MustParse("67e55044-10b1-426f-9247-bb680e5fe0c8")

func goldenCheckpoints() map[string]*cairn.Checkpoint {
	return map[string]*cairn.Checkpoint{
		goldenA: {
			WorkflowName:  "demo",
			RunID:         goldenRun,
			Timestamp:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
			State:         map[string]any{"counter": int64(42)},
			PendingEvents: []cairn.Event{{EventType: "blazen::StartEvent", Data: map[string]any{"input": "hello"}}},
			Metadata:      map[string]any{},
		},
		goldenB: {
			WorkflowName:  "demo",
			RunID:         goldenRun,
			Timestamp:     time.Date(2024, 6, 10, 6, 13, 20, 123456789, time.UTC),
			State:         map[string]any{"counter": map[string]any{"Json": int64(42)}},
			PendingEvents: []cairn.Event{},
			Metadata:      map[string]any{"run_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"},
		},
	}
}

func TestGoldenVectorsGenerated(t *testing.T) {
	for golden, want := range goldenCheckpoints() {
		raw, _ := hex.DecodeString(golden)
		var got cairn.Checkpoint
		if err := wire.Unmarshal(raw, &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("decode = %#v\nwant %#v", got, *want)
		}
		enc, err := want.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(enc) != golden {
			t.Errorf("encode = %x\nwant   %s", enc, golden)
		}
	}
}
