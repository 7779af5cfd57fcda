package durable_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
	"github.com/google/uuid"
)

// S3 Standard list prices (us-east-1) the agent workload's cost uses, in
// dollars per request: PUT, COPY, POST and LIST $0.005 per 1,000; GET and
// HEAD (and every other read) $0.0004 per 1,000; DELETE free. Storage
// ($0.023 per GB-month) is left out of the per-Save cost: the workload
// reports what it leaves stored instead.
const (
	pricePUTorLIST = 0.005 / 1000
	priceGETorHEAD = 0.0004 / 1000
)

// billed is a bucket that counts what S3 would bill: requests by kind
// and the bytes PUT (bodies as sent, after compression and sealing).
type billed struct {
	bucket.Bucket
	puts, putBytes, gets, heads, lists, deletes atomic.Int64
}

func (c *billed) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	c.gets.Add(1)
	return c.Bucket.Get(ctx, key, o)
}

func (c *billed) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	c.puts.Add(1)
	c.putBytes.Add(int64(len(body)))
	return c.Bucket.Put(ctx, key, body, o)
}

func (c *billed) Head(ctx context.Context, key string) (*bucket.Info, error) {
	c.heads.Add(1)
	return c.Bucket.Head(ctx, key)
}

func (c *billed) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Bucket.Delete(ctx, key)
}

func (c *billed) List(ctx context.Context, prefix, after string, limit int) ([]bucket.Info, bool, error) {
	c.lists.Add(1)
	return c.Bucket.List(ctx, prefix, after, limit)
}

// bill is a snapshot of a billed bucket's counters.
type bill struct{ puts, putBytes, gets, heads, lists, deletes int64 }

func (c *billed) bill() bill {
	return bill{c.puts.Load(), c.putBytes.Load(), c.gets.Load(), c.heads.Load(), c.lists.Load(), c.deletes.Load()}
}

func (a bill) minus(b bill) bill {
	return bill{a.puts - b.puts, a.putBytes - b.putBytes, a.gets - b.gets, a.heads - b.heads, a.lists - b.lists, a.deletes - b.deletes}
}

// dollars is what the requests of a cost at S3 Standard list prices.
func (a bill) dollars() float64 {
	return float64(a.puts+a.lists)*pricePUTorLIST + float64(a.gets+a.heads)*priceGETorHEAD
}

// Agent workload parameters: a conversation growing by one message of
// about 2 KB per step, to about 1 MB of state after agentSteps Saves.
const (
	agentSteps   = 500
	agentLastN   = 10 // the steps "near 1 MB"
	agentMsgText = 1900
)

// agentWords are the vocabulary of the messages' text: words drawn at
// random compress about as well as prose does under zstd (3 to 4 times),
// unlike repeated sentences.
var agentWords = strings.Fields(`the a an of to in and or for with on by from at as is was are were be been
order orders customer customers invoice invoices shipment shipments warehouse inventory stock item items
price prices total subtotal tax discount refund refunds payment payments card account accounts balance
checked approved rejected pending shipped delivered returned cancelled updated created deleted queried
tool call result results error errors retry retried timeout latency request response status code
assistant user system model tokens context summary plan step steps next previous first last final
because however therefore although while until unless whether which that this these those there
address city country postal region zone carrier tracking number date time week month year quarter
report reports metric metrics revenue margin cost costs forecast budget variance trend growth decline
search found missing duplicate matching record records field fields value values table tables row rows`)

// agentMessage returns message i of the conversation: structured like an
// LLM transcript entry, with about agentMsgText bytes of text-like content,
// the same for the same i.
func agentMessage(i int) map[string]any {
	r := rand.New(rand.NewPCG(uint64(i), 0x6167656e74))
	var sb strings.Builder
	for sb.Len() < agentMsgText {
		if sb.Len() > 0 {
			if r.IntN(12) == 0 {
				sb.WriteString(". ")
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(agentWords[r.IntN(len(agentWords))])
		if r.IntN(20) == 0 {
			fmt.Fprintf(&sb, " %d", r.IntN(100000))
		}
	}
	roles := []string{"user", "assistant", "tool"}
	m := map[string]any{
		"id":      fmt.Sprintf("msg-%06d", i),
		"role":    roles[i%3],
		"step":    int64(i),
		"tokens":  int64(sb.Len() / 4),
		"content": sb.String(),
	}
	if i%3 == 1 {
		m["tool_calls"] = []any{map[string]any{"name": "lookup_order", "args": map[string]any{"order_id": int64(r.IntN(1e6)), "fields": []any{"status", "total"}}}}
	}
	return m
}

// agentCase is a configuration of the agent workload.
type agentCase struct {
	name    string
	offload bool
	sealed  bool
}

var agentCases = []agentCase{{"plain", false, false}, {"offload", true, false}, {"offload-sealed", true, true}}

// agentResult is what one agent workload measured.
type agentResult struct {
	saves       int
	total, last bill  // every Save's requests (background index work included), the last agentLastN's
	stored      int64 // bytes under the store's prefix at the end
	stateBytes  int   // MessagePack bytes of the last state value
	stats       durable.Stats
}

// agentStart is the workload's simulated clock at step 0: the start of a
// blob epoch, so that every step, a second apart, lies in it (a run that
// crosses an epoch PUTs its chunks once more; see "Blobs").
var agentStart = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// runAgent saves one run agentSteps times with durable options of c over
// a fresh in-memory bucket, its state holding messages 0..step-1 at step
// (the first Save holds from messages), and counts what the bucket sees.
func runAgent(tb testing.TB, c agentCase, kr *seal.Keyring, from int) agentResult {
	tb.Helper()
	ctx := context.Background()
	mem := bucket.NewMem()
	bk := &billed{Bucket: mem}
	var now atomic.Int64
	o := durable.Options{Prefix: "agent", Now: func() time.Time { return agentStart.Add(time.Duration(now.Load()) * time.Second) }}
	if c.offload {
		o.Offload = &durable.OffloadOptions{}
	}
	if c.sealed {
		o.Keyring = kr
	}
	s, err := durable.New(bk, &o)
	if err != nil {
		tb.Fatal(err)
	}
	run := uuid.New()
	msgs := make([]any, 0, agentSteps)
	for i := range from {
		msgs = append(msgs, agentMessage(i))
	}
	var res agentResult
	var lastFrom bill
	start := bk.bill()
	for step := from; step < agentSteps; step++ {
		now.Store(int64(step))
		msgs = append(msgs, agentMessage(step))
		if step == agentSteps-agentLastN {
			durable.WaitBackground(s)
			lastFrom = bk.bill()
		}
		cpt := &cairn.Checkpoint{WorkflowName: "agent", RunID: run, Timestamp: agentStart.Add(time.Duration(step) * time.Second),
			State: map[string]any{"step": int64(step), "model": "some-model-2026", "messages": msgs}}
		if err := s.Save(ctx, cpt); err != nil {
			tb.Fatal(err)
		}
		res.saves++
	}
	durable.WaitBackground(s)
	end := bk.bill()
	res.total, res.last = end.minus(start), end.minus(lastFrom)
	res.stats = s.Stats()

	got, err := s.Load(ctx, run)
	if err != nil {
		tb.Fatal(err)
	}
	if n := len(got.State["messages"].([]any)); n != agentSteps {
		tb.Fatalf("%s: Load returned %d messages, want %d", c.name, n, agentSteps)
	}
	enc, err := cairn.DefaultCodec().EncodeRecord(nil, got)
	if err != nil {
		tb.Fatal(err)
	}
	res.stateBytes = len(enc)
	if err := s.Close(ctx); err != nil {
		tb.Fatal(err)
	}
	after := ""
	for {
		infos, more, err := mem.List(ctx, "agent/", after, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		for _, in := range infos {
			res.stored += in.Size
			after = in.Key
		}
		if !more {
			break
		}
	}
	return res
}

var (
	agentKeyOnce sync.Once
	agentKey     *seal.Keyring
	agentKeyErr  error
)

func agentKeyring(tb testing.TB) *seal.Keyring {
	agentKeyOnce.Do(func() {
		k, err := seal.GenerateKey("agent")
		if err != nil {
			agentKeyErr = err
			return
		}
		agentKey, agentKeyErr = seal.NewKeyring(k)
	})
	if agentKeyErr != nil {
		tb.Fatal(agentKeyErr)
	}
	return agentKey
}

// BenchmarkAgent runs the agent workload: one run whose state is a
// conversation growing by a message of about 2 KB per step, saved 500
// times to about 1 MB (MessagePack), with durable.Store (write-through)
// over an in-memory bucket that counts requests and bytes, without
// offload, with it (default threshold, 64 KiB), and with it and sealed.
// Metrics, per Save: PUT-B/save (bytes PUT, averaged over the run),
// PUT-B/save-last10 (over the last 10 Saves, near 1 MB), PUTs/save and
// reads/save (GET+HEAD+LIST) over the run, and $/M-saves, the requests
// of a million such Saves at S3 Standard list prices (see pricePUTorLIST);
// MB-stored is what the run leaves in the bucket. Background index work
// (compaction) is waited for and counted.
func BenchmarkAgent(b *testing.B) {
	kr := agentKeyring(b)
	for _, c := range agentCases {
		b.Run(c.name, func(b *testing.B) {
			var total, last bill
			saves := 0
			var r agentResult
			for b.Loop() {
				r = runAgent(b, c, kr, 0)
				total, last = addBill(total, r.total), addBill(last, r.last)
				saves += r.saves
			}
			n := float64(saves)
			lastN := float64(agentLastN * b.N)
			b.ReportMetric(float64(total.putBytes)/n, "PUT-B/save")
			b.ReportMetric(float64(last.putBytes)/lastN, "PUT-B/save-last10")
			b.ReportMetric(float64(total.puts)/n, "PUTs/save")
			b.ReportMetric(float64(total.gets+total.heads+total.lists)/n, "reads/save")
			b.ReportMetric(total.dollars()/n*1e6, "$/M-saves")
			b.ReportMetric(float64(r.stored)/1e6, "MB-stored")
			b.Logf("%s: %d Saves, last state %d B; requests PUT %d, GET %d, HEAD %d, LIST %d, DELETE %d; blobs PUT %d (%d B), reused %d",
				c.name, r.saves, r.stateBytes, r.total.puts, r.total.gets, r.total.heads, r.total.lists, r.total.deletes,
				r.stats.BlobsPut, r.stats.BlobBytesPut, r.stats.BlobsReused)
		})
	}
}

func addBill(a, b bill) bill {
	return bill{a.puts + b.puts, a.putBytes + b.putBytes, a.gets + b.gets, a.heads + b.heads, a.lists + b.lists, a.deletes + b.deletes}
}

// TestAgentOffloadFloor: near 1 MB of state, the agent workload with
// offload PUTs at least 10 times fewer bytes per Save than without (the
// floor of the issue), sealed or not. It counts bytes, not time, so it is
// deterministic. To stay quick it starts the run 20 steps before the end
// (its first Save holds 480 messages): the last 10 Saves are the steady
// state of a run that grew there step by step, as the store knows the
// chunks its first Save wrote either way.
func TestAgentOffloadFloor(t *testing.T) {
	kr := agentKeyring(t)
	from := agentSteps - 2*agentLastN
	res := map[string]agentResult{}
	for _, c := range agentCases {
		res[c.name] = runAgent(t, c, kr, from)
	}
	plain := res["plain"]
	if plain.stateBytes < 900_000 {
		t.Fatalf("the last state is %d B, not near 1 MB", plain.stateBytes)
	}
	perSave := func(r agentResult) float64 { return float64(r.last.putBytes) / agentLastN }
	for _, name := range []string{"offload", "offload-sealed"} {
		r := res[name]
		if r.stats.BlobsPut == 0 || r.stats.BlobsReused == 0 {
			t.Fatalf("%s: blobs PUT %d, reused %d: the state was not offloaded", name, r.stats.BlobsPut, r.stats.BlobsReused)
		}
		ratio := perSave(plain) / perSave(r)
		t.Logf("near 1 MB (%d B of state): %.0f B PUT per Save without offload, %.0f B with %s: %.1fx fewer",
			plain.stateBytes, perSave(plain), perSave(r), name, ratio)
		if ratio < 10 {
			t.Errorf("%s: %.1fx fewer bytes PUT per Save near 1 MB than without offload, want at least 10x", name, ratio)
		}
	}
}
