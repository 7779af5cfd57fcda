package durable_test

import (
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
)

// labeledCP returns cp(n, ts) with labels.
func labeledCP(n int, ts time.Time, labels map[string]string) *cairn.Checkpoint {
	c := cp(n, ts)
	for k, v := range labels {
		c.SetLabel(k, v)
	}
	return c
}

// byLabel lists the runs of s carrying selector, with their summaries.
func byLabel(t *testing.T, s cairn.Store, selector map[string]string) map[uuid.UUID]cairn.Summary {
	t.Helper()
	out := map[uuid.UUID]cairn.Summary{}
	for sum, err := range cairn.All(context.Background(), s, &cairn.ListOptions{Labels: selector, Limit: 3}) {
		if err != nil {
			t.Fatalf("List(labels %v): %v", selector, err)
		}
		out[sum.RunID] = sum
	}
	return out
}

// loseIndex deletes every index object of the store under prefix cairn.
func loseIndex(t *testing.T, b bucket.Bucket) {
	t.Helper()
	deleteAll(t, b, "cairn/index/")
}

func reindex(t *testing.T, s *durable.Store) *durable.ReindexReport {
	t.Helper()
	rep, err := s.Reindex(context.Background(), nil)
	if err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	return rep
}

// runMeta returns the metadata of run's object.
func runMeta(t *testing.T, b bucket.Bucket, run uuid.UUID) map[string]string {
	t.Helper()
	info, err := b.Head(context.Background(), "cairn/runs/"+run.String())
	if err != nil {
		t.Fatal(err)
	}
	return info.Metadata
}

// Labels survive a lost index: Reindex rebuilds them from the objects'
// metadata, so List by label is as before, summaries included.
func TestReindexRebuildsLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	want := map[uuid.UUID]map[string]string{}
	for i := range 10 {
		labels := map[string]string{"status": "done", "tenant": "acme ✓"}
		if i%3 == 0 {
			labels["status"] = "running"
		}
		c := labeledCP(i, t0.Add(time.Duration(i)*time.Second), labels)
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		want[c.RunID] = labels
	}
	if got := runMeta(t, mem, cp(3, t0).RunID)["cairn-labels"]; got != "status=running&tenant=acme+%E2%9C%93" {
		t.Fatalf("cairn-labels metadata = %q, want the stored form", got)
	}
	loseIndex(t, mem)
	fresh := newStore(t, mem, nil)
	if rep := reindex(t, fresh); rep.Indexed != 10 || len(rep.Corrupt) != 0 {
		t.Fatalf("Reindex = %+v, want 10 runs indexed", rep)
	}
	running := byLabel(t, fresh, map[string]string{"status": "running"})
	if len(running) != 4 {
		t.Fatalf("List(status=running) after Reindex = %v, want runs 0, 3, 6, 9", running)
	}
	for id, sum := range running {
		if !maps.Equal(sum.Labels, want[id]) || want[id]["status"] != "running" {
			t.Errorf("run %v: labels %v after Reindex, want %v", id, sum.Labels, want[id])
		}
	}
	if n := len(byLabel(t, fresh, map[string]string{"status": "done", "tenant": "acme ✓"})); n != 6 {
		t.Errorf("List(status=done, tenant=acme ✓) after Reindex: %d runs, want 6", n)
	}
	if rep, err := fresh.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after Reindex = %+v, %v", rep, err)
	}
}

// A workflow name and labels that would take the object's metadata past
// S3's 2 KB: the labels stay in the metadata, the name leaves it, and
// Reindex reads the body for both. Either alone fits.
func TestLabelsMetadataBudget(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	heavy := map[string]string{}
	for i := range 8 {
		heavy[strings.Repeat(string(rune('a'+i)), 20)] = strings.Repeat("v", 100)
	}
	long := strings.Repeat("w", 1000)
	both := labeledCP(1, t0, heavy)
	both.WorkflowName = long
	nameOnly := cp(2, t0.Add(time.Second))
	nameOnly.WorkflowName = long
	labelsOnly := labeledCP(3, t0.Add(2*time.Second), heavy)
	for _, c := range []*cairn.Checkpoint{both, nameOnly, labelsOnly} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	for _, tt := range []struct {
		c                *cairn.Checkpoint
		workflow, labels bool
	}{{both, false, true}, {nameOnly, true, false}, {labelsOnly, true, true}} {
		meta := runMeta(t, mem, tt.c.RunID)
		_, wf := meta["cairn-workflow"]
		_, lb := meta["cairn-labels"]
		if wf != tt.workflow || lb != tt.labels {
			t.Errorf("run %v: metadata has workflow %v, labels %v; want %v, %v", tt.c.RunID, wf, lb, tt.workflow, tt.labels)
		}
	}
	loseIndex(t, mem)
	fresh := newStore(t, mem, nil)
	reindex(t, fresh)
	p, err := fresh.List(ctx, &cairn.ListOptions{Labels: map[string]string{"aaaaaaaaaaaaaaaaaaaa": strings.Repeat("v", 100)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 2 || p.Runs[1].RunID != both.RunID || p.Runs[1].WorkflowName != long || !maps.Equal(p.Runs[1].Labels, heavy) {
		t.Fatalf("List by label after Reindex = %+v, want runs 3 and 1, run 1 with its long workflow and labels", p.Runs)
	}
}

// A cairn-labels metadata entry that does not parse or breaks the label
// rules is bad metadata, as a bad timestamp is: Reindex reads the body,
// and indexes the record's labels.
func TestReindexMalformedLabelsMetadata(t *testing.T) {
	for _, bad := range []string{"%zz=1", "status", "cairn.lease=1", "=running", "status=running&status=done", "status=a%0Ab"} {
		t.Run(bad, func(t *testing.T) {
			mem := bucket.NewMem()
			s := newStore(t, mem, nil)
			ctx := context.Background()
			c := labeledCP(1, t0, map[string]string{"status": "running"})
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			key := "cairn/runs/" + c.RunID.String()
			obj, err := mem.Get(ctx, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			obj.Metadata["cairn-labels"] = bad
			if _, err := mem.Put(ctx, key, obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
				t.Fatal(err)
			}
			loseIndex(t, mem)
			fresh := newStore(t, mem, nil)
			if rep := reindex(t, fresh); rep.Indexed != 1 || len(rep.Corrupt) != 0 {
				t.Fatalf("Reindex = %+v, want the run indexed", rep)
			}
			got := byLabel(t, fresh, map[string]string{"status": "running"})
			if len(got) != 1 || !maps.Equal(got[c.RunID].Labels, map[string]string{"status": "running"}) {
				t.Fatalf("List(status=running) after Reindex = %v, want the run with its record's labels", got)
			}
		})
	}
}

// A Save whose index commit was lost leaves the index with the run's
// older labels: Verify reports the run as mismatched, and Reindex lists
// it by its newer labels.
func TestVerifyReportsLabelMismatch(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	c := labeledCP(1, t0, map[string]string{"status": "running"})
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	crashing := newStore(t, &failing{Bucket: mem, put: func(k string) bool { return strings.Contains(k, "/index/log/") }},
		&durable.Options{Prefix: "cairn", Index: &index.Options{RetryFor: 50 * time.Millisecond}})
	c.SetLabel("status", "done") // same time and workflow: only the labels differ
	if err := crashing.Save(ctx, c); err == nil {
		t.Fatal("Save succeeded without its index commit")
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Mismatched, []uuid.UUID{c.RunID}) {
		t.Fatalf("Verify = %+v, want the run mismatched", rep)
	}
	reindex(t, s)
	if got := byLabel(t, s, map[string]string{"status": "done"}); len(got) != 1 {
		t.Fatalf("List(status=done) after Reindex = %v, want the run", got)
	}
	if got := byLabel(t, s, map[string]string{"status": "running"}); len(got) != 0 {
		t.Fatalf("List(status=running) after Reindex = %v, want none", got)
	}
}

// An index entry whose labels disagree with its object's record (a
// Write whose Labels are not the record's) is mismatched for Verify,
// even though its ETag, time and workflow agree.
func TestVerifyComparesLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	c := labeledCP(1, t0, map[string]string{"status": "running"})
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	r := durable.Record{RunID: c.RunID, Workflow: c.WorkflowName, Timestamp: c.Timestamp, Labels: map[string]string{"status": "running"}, Data: rec}
	if _, err := s.Write(ctx, []durable.Record{r}, nil); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify of agreeing labels = %+v, %v", rep, err)
	}
	r.Labels = map[string]string{"status": "done"}
	if _, err := s.Write(ctx, []durable.Record{r}, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || !reflect.DeepEqual(rep.Mismatched, []uuid.UUID{c.RunID}) {
		t.Fatalf("Verify = %+v, %v; want the run mismatched", rep, err)
	}
}

// blazenLabeled is a record as blazen-persist's rmp-serde writes it
// (golden vector A of DESIGN.md), whose metadata holds labels the way
// Cairn keeps them: {"cairn.labels": {"status": "running"}}, a JSON
// object of strings, which Blazen's metadata (a map of serde_json values)
// holds like any other entry.
const blazenLabeled = "86ad776f726b666c6f775f6e616d65a464656d6fa672756e5f6964c41067e5504410b1426f9247bb680e5fe0c8" +
	"a974696d657374616d70b4323032342d30312d30315430303a30303a30305aa5737461746581a7636f756e7465722a" +
	"ae70656e64696e675f6576656e74739182aa6576656e745f74797065b2626c617a656e3a3a53746172744576656e74" +
	"a46461746181a5696e707574a568656c6c6f" +
	"a86d6574616461746181" + // metadata: a map of one entry
	"ac636169726e2e6c6162656c73" + // "cairn.labels"
	"81a6737461747573a772756e6e696e67" // {"status": "running"}

// blazenRecord is blazen-persist's Checkpoint as a reader that knows
// nothing of labels decodes it (field names and types of the Rust struct).
type blazenRecord struct {
	WorkflowName  string         `msgpack:"workflow_name"`
	RunID         []byte         `msgpack:"run_id"`
	Timestamp     string         `msgpack:"timestamp"`
	State         map[string]any `msgpack:"state"`
	PendingEvents []struct {
		EventType string `msgpack:"event_type"`
		Data      any    `msgpack:"data"`
	} `msgpack:"pending_events"`
	Metadata map[string]any `msgpack:"metadata"`
}

// Labels live in the record as plain metadata: a Blazen-shaped record
// with labels decodes, for Blazen, as a valid checkpoint; Cairn reads its
// labels, writes the very same bytes (an uncompressed store's object is
// what Blazen reads), and indexes the labels of such an object found
// without Cairn's metadata.
func TestBlazenRecordWithLabels(t *testing.T) {
	raw, _ := hex.DecodeString(blazenLabeled)
	var br blazenRecord
	if err := msgpack.Unmarshal(raw, &br); err != nil {
		t.Fatalf("decoding as Blazen's struct: %v", err)
	}
	wantMeta := map[string]any{cairn.LabelsKey: map[string]any{"status": "running"}}
	if br.WorkflowName != "demo" || len(br.RunID) != 16 || br.Timestamp != "2024-01-01T00:00:00Z" || !reflect.DeepEqual(br.Metadata, wantMeta) {
		t.Fatalf("as Blazen reads it: %+v", br)
	}
	codec, err := cairn.NewCodec(&cairn.CodecOptions{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if labels, err := c.Labels(); err != nil || !maps.Equal(labels, map[string]string{"status": "running"}) {
		t.Fatalf("Labels() = %v, %v", labels, err)
	}
	mem := bucket.NewMem()
	s := newStore(t, mem, &durable.Options{Prefix: "cairn", Codec: codec, Index: smallIndex})
	ctx := context.Background()
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	key := "cairn/runs/" + c.RunID.String()
	obj, err := mem.Get(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(obj.Body) != blazenLabeled {
		t.Fatalf("stored object = %x\nwant Blazen's bytes %s", obj.Body, blazenLabeled)
	}
	// The same bytes with none of Cairn's metadata, as a foreign writer
	// leaves them: Reindex reads the body for the summary, labels too.
	if _, err := mem.Put(ctx, key, raw, nil); err != nil {
		t.Fatal(err)
	}
	loseIndex(t, mem)
	fresh := newStore(t, mem, &durable.Options{Prefix: "cairn", Codec: codec, Index: smallIndex})
	reindex(t, fresh)
	got := byLabel(t, fresh, map[string]string{"status": "running"})
	if sum, ok := got[c.RunID]; len(got) != 1 || !ok || sum.WorkflowName != "demo" || !maps.Equal(sum.Labels, map[string]string{"status": "running"}) {
		t.Fatalf("List(status=running) after Reindex = %v, want the Blazen run with its labels", got)
	}
}

// A record another program wrote with a labels entry that breaks the
// rules still loads and is still a run: Reindex indexes it without
// labels, and Verify agrees with that.
func TestReindexRecordWithBadLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	c := cp(1, t0)
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Metadata[cairn.LabelsKey] = map[string]any{"status": int64(1)}
	rec, err := c.AppendMsgpack(nil) // what another program would write
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Put(ctx, "cairn/runs/"+c.RunID.String(), cairn.DefaultCodec().Compress(nil, rec), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, c.RunID); err != nil {
		t.Fatalf("Load of a record with bad labels: %v", err)
	}
	loseIndex(t, mem)
	fresh := newStore(t, mem, nil)
	if rep := reindex(t, fresh); rep.Indexed != 1 || len(rep.Corrupt) != 0 {
		t.Fatalf("Reindex = %+v, want the run indexed", rep)
	}
	p, err := fresh.List(ctx, nil)
	if err != nil || len(p.Runs) != 1 || p.Runs[0].Labels != nil {
		t.Fatalf("List = %+v, %v; want the run without labels", p, err)
	}
	if rep, err := fresh.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// Write refuses a record whose labels break the rules, before writing
// anything.
func TestWriteRefusesBadLabels(t *testing.T) {
	mem := bucket.NewMem()
	s := newStore(t, mem, nil)
	ctx := context.Background()
	good := cp(1, t0)
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, good)
	if err != nil {
		t.Fatal(err)
	}
	recs := []durable.Record{
		{RunID: good.RunID, Workflow: "wf", Timestamp: t0, Data: rec},
		{RunID: cp(2, t0).RunID, Workflow: "wf", Timestamp: t0, Labels: map[string]string{"cairn.x": "1"}, Data: rec},
	}
	if _, err := s.Write(ctx, recs, nil); !errors.Is(err, cairn.ErrInvalid) || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("Write = %v, want ErrInvalid about the reserved key", err)
	}
	if ks := keys(t, mem, "cairn/runs/"); len(ks) != 0 {
		t.Fatalf("a refused Write left %v", ks)
	}
}
