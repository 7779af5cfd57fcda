package orders_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cairnstore/cairn/examples/orders"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// reflOrder mirrors OrderState without generated methods, with string
// timestamps so both codecs write the same bytes.
type reflOrder struct {
	Customer string     `msgpack:"customer" json:"customer"`
	Lines    []reflLine `msgpack:"lines" json:"lines"`
	Total    float64    `msgpack:"total" json:"total"`
	Placed   string     `msgpack:"placed" json:"placed"`
	Note     string     `msgpack:"note" json:"note"`
}

type reflLine struct {
	SKU      string `msgpack:"sku" json:"sku"`
	Quantity int    `msgpack:"quantity" json:"quantity"`
}

func typedOrder(lines int) (*orders.OrderState, *reflOrder) {
	o := &orders.OrderState{Customer: "c-42", Total: 1234.5, Placed: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC), Note: "gift"}
	r := &reflOrder{Customer: o.Customer, Total: o.Total, Placed: "2025-05-01T12:00:00Z", Note: o.Note}
	for i := range lines {
		l := orders.Line{SKU: fmt.Sprintf("sku-%06d", i), Quantity: 1 + i%5}
		o.Lines = append(o.Lines, l)
		r.Lines = append(r.Lines, reflLine(l))
	}
	return o, r
}

func TestTypedMatchesReflective(t *testing.T) {
	o, r := typedOrder(50)
	gen, err := o.AppendMsgpack(nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gen, buf.Bytes()) {
		t.Fatalf("generated %x\nreflective %x", gen, buf.Bytes())
	}
}

// BenchmarkTyped compares the generated codec of a typed struct (an order
// of 200 lines, about 4 KB) with vmihailenco/msgpack's reflective codec and
// encoding/json on the same data.
func BenchmarkTyped(b *testing.B) {
	o, r := typedOrder(200)
	rec, _ := o.AppendMsgpack(nil)
	js, _ := json.Marshal(r)
	b.Run("encode/generated", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		buf := make([]byte, 0, len(rec))
		for b.Loop() {
			buf, _ = o.AppendMsgpack(buf[:0])
		}
	})
	b.Run("encode/reflective", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		for b.Loop() {
			buf.Reset()
			if err := enc.Encode(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/generated", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			var out orders.OrderState
			if err := wire.Unmarshal(rec, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/reflective", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			var out reflOrder
			if err := msgpack.Unmarshal(rec, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			var out reflOrder
			if err := json.Unmarshal(js, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
