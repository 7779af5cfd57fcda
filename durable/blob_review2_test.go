package durable_test

// Review tests of the large-value offload, second part: round trips of
// records in every form, the state cap, Reindex without blobs, and what GC
// must keep.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/google/uuid"
)

func brV(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wire.AppendValue(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brMap encodes a map: kv alternates a key (a string, or an encoded
// []byte key) and an encoded value, in the order given.
func brMap(kv ...any) []byte {
	b := wire.AppendMapHeader(nil, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		switch k := kv[i].(type) {
		case string:
			b = wire.AppendString(b, k)
		case []byte:
			b = append(b, k...)
		}
		b = append(b, kv[i+1].([]byte)...)
	}
	return b
}

func brArr(vs ...[]byte) []byte {
	b := wire.AppendArrayHeader(nil, len(vs))
	for _, v := range vs {
		b = append(b, v...)
	}
	return b
}

func brTime(t testing.TB, ts time.Time) []byte {
	b, err := wire.AppendTime(nil, ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRaw writes rec as run's record and returns what Read gives back.
func writeRaw(t testing.TB, s *durable.Store, run uuid.UUID, rec []byte) []byte {
	t.Helper()
	ctx := context.Background()
	res, err := s.Write(ctx, []durable.Record{{RunID: run, Workflow: "wf", Timestamp: t0, Data: rec}}, nil)
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, _, err := s.Read(ctx, run, "")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

// TestBlobReviewRoundTrip: whatever the record's form, Read gives back
// the bytes written, byte for byte, with Offload on (a fresh reader with
// an empty cache too), and offloads where it should.
func TestBlobReviewRoundTrip(t *testing.T) {
	const th = 16 << 10
	run := uuid.MustParse("00000000-0000-4000-8000-000000000042")
	std := func(state []byte) []byte {
		return brMap("workflow_name", brV(t, "wf"), "run_id", wire.AppendUUID(nil, run), "timestamp", brTime(t, t0),
			"state", state, "pending_events", brArr(), "metadata", brMap())
	}
	big := randomText(100 << 10)
	exact := func(n int) []byte { // a str value of exactly n bytes, encoded
		v := brV(t, randomText(n-3)) // str16
		if len(v) != n {
			t.Fatalf("value of %d bytes, want %d", len(v), n)
		}
		return v
	}
	many := []any{}
	for i := range 150 {
		many = append(many, fmt.Sprintf("k%03d", i), brV(t, randomText(20<<10)))
	}
	nested := brMap("deep", brMap("deeper", brArr(brV(t, big), brV(t, compressible(50<<10)))))
	arrHead := []any{}
	for range 70000 { // an array16/32 header with a large body of tiny elements
		arrHead = append(arrHead, int64(1))
	}
	for _, tc := range []struct {
		name    string
		rec     []byte
		offload bool
	}{
		{"state first, other order", brMap("state", brMap("big", brV(t, big)), "metadata", brMap(), "pending_events", brArr(),
			"timestamp", brTime(t, t0), "run_id", wire.AppendUUID(nil, run), "workflow_name", brV(t, "wf")), true},
		{"exactly at the threshold", std(brMap("v", exact(th))), true},
		{"one under the threshold", std(brMap("v", exact(th-1))), false},
		{"nested big values", std(brMap("n", nested)), true},
		{"unicode", std(brMap("ü", brV(t, strings.Repeat("日本語テキスト🙂", 8<<10)))), true},
		{"empty arrays and maps beside", std(brMap("a", brArr(), "m", brMap(), "big", brV(t, big), "z", brArr())), true},
		{"many large values", std(brMap(many...)), true},
		{"array header with a large body", std(brMap("arr", brV(t, arrHead))), true},
		{"map32 of many small entries", std(func() []byte {
			kv := []any{}
			for i := range 70000 {
				kv = append(kv, fmt.Sprintf("%06d", i), brV(t, int64(i)))
			}
			return brMap("m", brMap(kv...))
		}()), true},
		{"duplicate state keys", brMap("workflow_name", brV(t, "wf"), "run_id", wire.AppendUUID(nil, run), "timestamp", brTime(t, t0),
			"state", brMap("big", brV(t, big)), "state", brMap("big", brV(t, compressible(90<<10)), "big", brV(t, big)),
			"pending_events", brArr(), "metadata", brMap()), true},
		{"positional (Blazen arrays)", brArr(brV(t, "wf"), wire.AppendUUID(nil, run), brTime(t, t0),
			brMap("big", brV(t, big)), brArr(), brMap()), false},
		{"state an array", std(brArr(brV(t, big), brV(t, big))), false},
		{"state nil", std(brV(t, nil)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := bucket.NewMem()
			s := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Offload: &durable.OffloadOptions{Threshold: th}})
			if got := writeRaw(t, s, run, tc.rec); !bytes.Equal(got, tc.rec) {
				t.Fatalf("Read gave %d bytes, not the %d written", len(got), len(tc.rec))
			}
			fresh := newStore(t, mem, nil)
			got, _, err := fresh.Read(context.Background(), run, "")
			if err != nil || !bytes.Equal(got, tc.rec) {
				t.Fatalf("fresh Read: %d bytes, %v", len(got), err)
			}
			if offloaded := len(blobKeys(t, mem)) > 0; offloaded != tc.offload {
				_, meta := storedRecord(t, mem, run)
				t.Fatalf("offloaded %v (blobs %d, metadata %v), want %v", offloaded, len(blobKeys(t, mem)), meta["cairn-blobs"], tc.offload)
			}
			// (A state that is an array is Typed's positional form, which
			// Verify's map decoding refuses whatever the offload.)
			if v, err := fresh.Verify(context.Background()); err != nil || (len(v.Corrupt) != 0 && tc.name != "state an array") || len(v.BrokenBlobs) != 0 {
				t.Fatalf("Verify: %+v %v", v, err)
			}
		})
	}
}

// TestBlobReviewStateCap: a record over the codec's MaxSize is refused
// even though offloading would make its stored form small, and nothing
// of it (no blob) is written.
func TestBlobReviewStateCap(t *testing.T) {
	ctx := context.Background()
	codec, err := cairn.NewCodec(&cairn.CodecOptions{MaxSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	mem := bucket.NewMem()
	s := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Codec: codec, Offload: &durable.OffloadOptions{}})
	c := cp(1, t0)
	c.State = map[string]any{"big": compressible(300 << 10)}
	if err := s.Save(ctx, c); !errors.Is(err, cairn.ErrTooLarge) {
		t.Fatalf("Save of a record over MaxSize: %v, want ErrTooLarge", err)
	}
	if n := len(blobKeys(t, mem)); n != 0 {
		t.Fatalf("%d blobs written for a refused record", n)
	}
	// Just under the cap: saved, offloaded, read back.
	c.State = map[string]any{"big": compressible(250 << 10)}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	checkLoads(t, s, c)
}

// TestBlobReviewReindexWithoutBlobs: Reindex rebuilds a lost index from
// run objects whose every blob is gone, with the sizes of the records as
// written; Load then reports those runs ErrCorrupt.
func TestBlobReviewReindexWithoutBlobs(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := offloadStore(t, mem, nil)
	var cps []*cairn.Checkpoint
	for i := range 5 {
		c := cp(i+1, t0.Add(time.Duration(i)*time.Second))
		c.State = map[string]any{"big": randomText(80 << 10), "i": int64(i)}
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, c)
	}
	before, err := s.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range blobKeys(t, mem) {
		if err := mem.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// Lose the index and every run object's metadata but one's: Reindex
	// must read bodies, without blobs.
	infos, _, err := mem.List(ctx, "cairn/", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if !strings.HasPrefix(in.Key, "cairn/runs/") {
			_ = mem.Delete(ctx, in.Key)
		}
	}
	for _, c := range cps[1:] {
		rec, _ := storedRecord(t, mem, c.RunID)
		putStored(t, mem, c.RunID, rec, nil)
	}
	r := newStore(t, mem, nil)
	if _, err := r.Reindex(ctx, nil); err != nil {
		t.Fatalf("Reindex with every blob gone: %v", err)
	}
	after, err := r.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Runs) != len(before.Runs) {
		t.Fatalf("Reindex listed %d runs of %d", len(after.Runs), len(before.Runs))
	}
	for i := range after.Runs {
		a, b := after.Runs[i], before.Runs[i]
		if a.RunID != b.RunID || a.Size != b.Size || !a.Timestamp.Equal(b.Timestamp) {
			t.Fatalf("run %d: %+v after Reindex, %+v before", i, a, b)
		}
	}
	if _, err := r.Load(ctx, cps[0].RunID); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("Load without its blobs: %v", err)
	}
}

// gcFixture saves a run with a big value in a store whose clock is clk,
// and returns it.
func gcFixture(t *testing.T, mem bucket.Bucket, clk *blobClock, n int) (*durable.Store, *cairn.Checkpoint) {
	s := offloadStore(t, mem, clk)
	c := cp(n, clk.Now())
	c.State = map[string]any{"big": randomText(120 << 10)}
	if err := s.Save(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestBlobReviewGCKeeps: GC, long after, keeps the blobs of a run object
// without metadata, of an unindexed run object, of a leased Save, and of
// a sealed store's runs; it deletes only an unreferenced one.
func TestBlobReviewGCKeeps(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []string{"no metadata", "unindexed", "leased", "sealed"} {
		t.Run(tc, func(t *testing.T) {
			clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
			mem := bucket.NewMem()
			var s *durable.Store
			c := cp(1, clk.Now())
			c.State = map[string]any{"big": randomText(120 << 10)}
			opts := &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now, Offload: &durable.OffloadOptions{Threshold: 16 << 10}}
			if tc == "sealed" {
				opts.Keyring = sealRing(t, sealKey(t, "k1"))
			}
			s = newStore(t, mem, opts)
			switch tc {
			case "leased":
				l, err := s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w"})
				if err != nil && !errors.Is(err, cairn.ErrNotFound) {
					t.Fatal(err)
				}
				if l == nil {
					if err := s.Save(ctx, cp(1, clk.Now().Add(-time.Second))); err != nil {
						t.Fatal(err)
					}
					if l, err = s.Claim(ctx, c.RunID, &cairn.ClaimOptions{Owner: "w"}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.SaveLeased(ctx, l, c); err != nil {
					t.Fatal(err)
				}
			default:
				if err := s.Save(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			// An unreferenced blob beside, old enough: GC must delete it.
			other := cp(2, clk.Now())
			other.State = map[string]any{"big": randomText(120 << 10)}
			if err := s.Save(ctx, other); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, other.RunID); err != nil {
				t.Fatal(err)
			}
			switch tc {
			case "no metadata":
				rec, _ := storedRecord(t, mem, c.RunID)
				putStored(t, mem, c.RunID, rec, nil)
			case "unindexed":
				// The run's object copied under a run the index never saw.
				obj, err := mem.Get(ctx, "cairn/runs/"+c.RunID.String(), nil)
				if err != nil {
					t.Fatal(err)
				}
				ghost := cp(3, clk.Now())
				if _, err := mem.Put(ctx, "cairn/runs/"+ghost.RunID.String(), obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
					t.Fatal(err)
				}
				if err := s.Delete(ctx, c.RunID); err != nil {
					t.Fatal(err)
				}
				c.RunID = ghost.RunID
			}
			clk.Advance(100 * time.Hour)
			gcStore := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now, Keyring: opts.Keyring})
			rep, err := gcStore.GC(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Blobs) == 0 {
				t.Fatal("GC deleted nothing: the unreferenced blobs should go")
			}
			reader := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now, Keyring: opts.Keyring})
			rec, _, err := reader.Read(ctx, c.RunID, "")
			if err != nil {
				t.Fatalf("after GC: %v", err)
			}
			got, err := cairn.DefaultCodec().DecodeRecord(rec)
			if err != nil || got.State["big"] != c.State["big"] {
				t.Fatalf("after GC the state differs: %v", err)
			}
		})
	}
}

// failingList fails the listings of a prefix once armed.
type failingList struct {
	bucket.Bucket
	prefix string
	armed  atomic.Bool
}

func (f *failingList) List(ctx context.Context, prefix, start string, n int) ([]bucket.Info, bool, error) {
	if f.armed.Load() && strings.HasPrefix(prefix, f.prefix) {
		return nil, false, errors.New("listing failed")
	}
	return f.Bucket.List(ctx, prefix, start, n)
}

// TestBlobReviewGCListErrorDeletesNothing: a failing listing of the blobs
// or of the run objects in the blob phase deletes no blob.
func TestBlobReviewGCListErrorDeletesNothing(t *testing.T) {
	ctx := context.Background()
	for _, prefix := range []string{"cairn/blobs/", "cairn/runs/"} {
		t.Run(prefix, func(t *testing.T) {
			clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
			mem := bucket.NewMem()
			s, c := gcFixture(t, mem, clk, 1)
			if err := s.Delete(ctx, c.RunID); err != nil {
				t.Fatal(err)
			}
			_, live := gcFixture(t, mem, clk, 2)
			n := len(blobKeys(t, mem))
			clk.Advance(100 * time.Hour)
			f := &failingList{Bucket: mem, prefix: prefix}
			g := newStore(t, f, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now})
			if prefix == "cairn/runs/" {
				// Let GC's own run listing pass; fail the blob phase's.
				_, err := g.GC(ctx, &durable.GCOptions{DryRun: true})
				if err != nil {
					t.Fatal(err)
				}
			}
			f.armed.Store(true)
			rep, err := g.GC(ctx, nil)
			if err == nil {
				t.Fatalf("GC with a failing listing of %s: no error (%+v)", prefix, rep)
			}
			if got := len(blobKeys(t, mem)); got != n || (rep != nil && len(rep.Blobs) != 0) {
				t.Fatalf("GC deleted blobs (%d of %d left, report %v)", got, n, rep)
			}
			checkLoads(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now}), live)
		})
	}
}

// cancelAfterDelete cancels the context after the first blob deletion.
type cancelAfterDelete struct {
	bucket.Bucket
	cancel context.CancelFunc
	n      atomic.Int32
}

func (c *cancelAfterDelete) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "/blobs/") && c.n.Add(1) == 1 {
		err := c.Bucket.Delete(ctx, key)
		c.cancel()
		return err
	}
	return c.Bucket.Delete(ctx, key)
}

// TestBlobReviewGCCancelled: GC cut short mid-deletion reports exactly
// the blobs it deleted, leaves the live run whole, and a later GC
// finishes.
func TestBlobReviewGCCancelled(t *testing.T) {
	clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
	mem := bucket.NewMem()
	s, dead := gcFixture(t, mem, clk, 1)
	if err := s.Delete(context.Background(), dead.RunID); err != nil {
		t.Fatal(err)
	}
	_, live := gcFixture(t, mem, clk, 2)
	all := blobKeys(t, mem)
	clk.Advance(100 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cd := &cancelAfterDelete{Bucket: mem, cancel: cancel}
	g := newStore(t, cd, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now})
	rep, err := g.GC(ctx, nil)
	if err == nil {
		t.Fatal("GC cancelled mid-deletion: no error")
	}
	left := blobKeys(t, mem)
	if rep == nil || len(all)-len(left) != len(rep.Blobs) {
		t.Fatalf("GC deleted %d blobs, reported %v", len(all)-len(left), rep)
	}
	g2 := newStore(t, mem, &durable.Options{Prefix: "cairn", Index: smallIndex, Now: clk.Now})
	if _, err := g2.GC(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	checkLoads(t, g2, live)
	if v, err := g2.Verify(context.Background()); err != nil || !v.OK() {
		t.Fatalf("Verify: %+v %v", v, err)
	}
}
