package durable_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// blobClock is a controllable blobClock, shared by the stores of a test.
type blobClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *blobClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *blobClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// blobCounting counts the Puts of blobs and of run objects.
type blobCounting struct {
	bucket.Bucket
	mu         sync.Mutex
	blobs, run int
}

func (c *blobCounting) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	c.mu.Lock()
	switch {
	case strings.Contains(key, "/blobs/"):
		c.blobs++
	case strings.Contains(key, "/runs/"):
		c.run++
	}
	c.mu.Unlock()
	return c.Bucket.Put(ctx, key, body, o)
}

func (c *blobCounting) blobPuts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobs
}

func offloadStore(t testing.TB, b bucket.Bucket, clk *blobClock) *durable.Store {
	t.Helper()
	o := &durable.Options{Prefix: "cairn", Index: smallIndex, Offload: &durable.OffloadOptions{Threshold: 16 << 10}}
	if clk != nil {
		o.Now = clk.Now
	}
	return newStore(t, b, o)
}

// randomText returns n bytes of incompressible text.
func randomText(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// compressible returns n bytes of text that compresses well.
func compressible(n int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, "step %d: the agent said something long-winded. ", i)
	}
	return sb.String()[:n]
}

func encoded(t testing.TB, c *cairn.Checkpoint) []byte {
	t.Helper()
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// blobKeys returns the keys of the blobs in b.
func blobKeys(t testing.TB, b bucket.Bucket) []string {
	t.Helper()
	var keys []string
	for start := ""; ; {
		infos, more, err := b.List(context.Background(), "cairn/blobs/", start, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			keys = append(keys, in.Key)
		}
		if !more || len(infos) == 0 {
			return keys
		}
		start = infos[len(infos)-1].Key
	}
}

// checkLoads checks that s reads c's run as the record c encodes to, and
// loads it equal.
func checkLoads(t testing.TB, s *durable.Store, c *cairn.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	rec, _, err := s.Read(ctx, c.RunID, "")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if want := encoded(t, c); !bytes.Equal(rec, want) {
		t.Fatalf("Read gave %d bytes, not the %d written", len(rec), len(want))
	}
	got, err := s.Load(ctx, c.RunID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(encoded(t, got), encoded(t, c)) {
		t.Fatal("Load gave another checkpoint")
	}
}

func TestOffloadRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		state map[string]any
		blobs bool
	}{
		{"small", map[string]any{"a": "x", "b": int64(3)}, false},
		{"under threshold", map[string]any{"a": randomText(15 << 10)}, false},
		{"one random", map[string]any{"a": randomText(300 << 10), "b": int64(1)}, true},
		{"several", map[string]any{"a": randomText(100 << 10), "b": compressible(500 << 10), "c": "small",
			"d": []any{randomText(20 << 10), int64(4)}, "e": map[string]any{"k": compressible(70 << 10)}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := bucket.NewMem()
			s := offloadStore(t, mem, nil)
			c := cp(1, t0)
			c.State = tc.state
			if err := s.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			checkLoads(t, s, c)
			if got := len(blobKeys(t, mem)) > 0; got != tc.blobs {
				t.Fatalf("blobs stored: %v, want %v", got, tc.blobs)
			}
			info, err := mem.Head(ctx, "cairn/runs/"+c.RunID.String())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := info.Metadata["cairn-blobs"]; ok != tc.blobs {
				t.Fatalf("cairn-blobs metadata: %v, want %v", ok, tc.blobs)
			}
			// What stays inline: the heads and last chunks of the values
			// (at most 64 KiB each) and the references.
			if whole := int64(len(encoded(t, c))); tc.blobs && info.Size > whole/4 {
				t.Fatalf("run object of %d bytes for a record of %d: values not offloaded", info.Size, whole)
			}
			// Another process, without the option and its cache.
			checkLoads(t, newStore(t, mem, nil), c)
			if rep, err := s.Verify(ctx); err != nil || !rep.OK() || tc.blobs && rep.Blobs == 0 {
				t.Fatalf("Verify: %+v, %v", rep, err)
			}
			// Reindex needs no blob.
			for _, k := range blobKeys(t, mem) {
				_ = mem.Delete(ctx, k)
			}
			if rep, err := s.Reindex(ctx, &durable.ReindexOptions{Full: true}); err != nil || rep.Indexed != 1 || len(rep.Corrupt) != 0 {
				t.Fatalf("Reindex: %+v, %v", rep, err)
			}
		})
	}
}

func TestOffloadUnchangedValueCostsNoPut(t *testing.T) {
	ctx := context.Background()
	b := &blobCounting{Bucket: bucket.NewMem()}
	s := offloadStore(t, b, nil)
	c := cp(1, t0)
	big := randomText(200 << 10)
	c.State = map[string]any{"conv": big, "step": int64(0)}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	first := b.blobPuts()
	if first < 200/64 {
		t.Fatalf("%d blob PUTs for 200 KiB", first)
	}
	for i := 1; i <= 5; i++ {
		c.State = map[string]any{"conv": big, "step": int64(i)}
		c.Timestamp = c.Timestamp.Add(time.Second)
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.blobPuts(); n != first {
		t.Fatalf("unchanged value: %d blob PUTs after the first %d", n-first, first)
	}
	if st := s.Stats(); st.BlobsReused == 0 || st.BlobsPut != int64(first) {
		t.Fatalf("stats %+v", st)
	}
	checkLoads(t, s, c)
}

func TestOffloadGrowingValue(t *testing.T) {
	ctx := context.Background()
	b := &blobCounting{Bucket: bucket.NewMem()}
	s := offloadStore(t, b, nil)
	c := cp(1, t0)
	conv := randomText(256 << 10)
	for i := range 30 {
		conv += randomText(2 << 10)
		c.State = map[string]any{"conv": conv}
		c.Timestamp = t0.Add(time.Duration(i) * time.Second)
		before := b.blobPuts()
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if n := b.blobPuts() - before; n > 3 {
				t.Fatalf("save %d: %d blob PUTs for 2 KiB appended", i, n)
			}
		}
	}
	checkLoads(t, s, c)
}

// storedRecord returns the run's stored (decompressed) record and the
// object's metadata.
func storedRecord(t testing.TB, b bucket.Bucket, run uuid.UUID) ([]byte, map[string]string) {
	t.Helper()
	obj, err := b.Get(context.Background(), "cairn/runs/"+run.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := cairn.DefaultCodec().Decompress(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec, obj.Metadata
}

// refAt returns the offset of the reference stored for the state key
// "big" (whose value follows the key's string).
func refAt(t testing.TB, rec []byte) int {
	i := bytes.Index(rec, []byte("\xa3big"))
	if i < 0 || rec[i+4] != 0xc7 && rec[i+4] != 0xc8 {
		t.Fatalf("no reference in the stored record")
	}
	return i + 4
}

func putStored(t testing.TB, b bucket.Bucket, run uuid.UUID, rec []byte, meta map[string]string) {
	t.Helper()
	if _, err := b.Put(context.Background(), "cairn/runs/"+run.String(), cairn.DefaultCodec().Compress(nil, rec), &bucket.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func TestOffloadHostile(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*bucket.Mem, *durable.Store, *cairn.Checkpoint) {
		mem := bucket.NewMem()
		s := offloadStore(t, mem, nil)
		c := cp(1, t0)
		c.State = map[string]any{"big": randomText(100 << 10), "other": compressible(80 << 10)}
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		return mem, newStore(t, mem, nil), c // a reader with an empty cache
	}
	ref := func(total uint64, n int, length uint64) []byte {
		p := []byte{1}
		p = binary.AppendUvarint(p, total)
		p = binary.AppendUvarint(p, uint64(n))
		for range n {
			p = binary.AppendUvarint(p, 500000)
			p = append(p, make([]byte, 32)...)
			p = binary.AppendUvarint(p, length)
		}
		return append([]byte{0xc8, byte(len(p) >> 8), byte(len(p)), 67}, p...)
	}
	replaceRef := func(t *testing.T, mem *bucket.Mem, run uuid.UUID, with []byte) {
		rec, meta := storedRecord(t, mem, run)
		at := refAt(t, rec)
		end := at + 3 + int(rec[at+1])
		if rec[at] == 0xc8 {
			end = at + 4 + int(binary.BigEndian.Uint16(rec[at+1:]))
		}
		out := append(append(append([]byte{}, rec[:at]...), with...), rec[end:]...)
		putStored(t, mem, run, out, meta)
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint)
		want   string
	}{
		{"missing blob", func(t *testing.T, mem *bucket.Mem, _ *cairn.Checkpoint) {
			_ = mem.Delete(ctx, blobKeys(t, mem)[0])
		}, "missing"},
		{"swapped blob", func(t *testing.T, mem *bucket.Mem, _ *cairn.Checkpoint) {
			keys := blobKeys(t, mem)
			other, err := mem.Get(ctx, keys[1], nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = mem.Put(ctx, keys[0], other.Body, nil)
		}, "blob"},
		{"truncated blob", func(t *testing.T, mem *bucket.Mem, _ *cairn.Checkpoint) {
			k := blobKeys(t, mem)[0]
			obj, err := mem.Get(ctx, k, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = mem.Put(ctx, k, obj.Body[:len(obj.Body)/2], nil)
		}, "blob"},
		{"garbage reference", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			replaceRef(t, mem, c.RunID, []byte{0xc7, 5, 67, 9, 9, 9, 9, 9})
		}, "malformed blob reference"},
		{"huge total", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			replaceRef(t, mem, c.RunID, ref(1<<40, 1, 1<<40))
		}, "malformed blob reference"},
		{"lengths disagree", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			replaceRef(t, mem, c.RunID, ref(100, 2, 60))
		}, "malformed blob reference"},
		{"many chunks over the cap", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			replaceRef(t, mem, c.RunID, ref(600*(64<<10), 600, 64<<10))
		}, "malformed blob reference"},
		{"a reference the metadata does not count", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			rec, meta := storedRecord(t, mem, c.RunID)
			delete(meta, "cairn-blobs")
			putStored(t, mem, c.RunID, rec, meta)
		}, "does not count"},
		{"a count without references", func(t *testing.T, mem *bucket.Mem, c *cairn.Checkpoint) {
			_, meta := storedRecord(t, mem, c.RunID)
			putStored(t, mem, c.RunID, encoded(t, c), meta)
		}, "references none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, s, c := setup(t)
			tc.damage(t, mem, c)
			_, err := s.Load(ctx, c.RunID)
			if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want ErrCorrupt (%s)", err, tc.want)
			}
			if _, _, err := s.Read(ctx, c.RunID, ""); !errors.Is(err, cairn.ErrCorrupt) {
				t.Fatalf("Read: %v", err)
			}
			rep, err := s.Verify(ctx)
			if err != nil || rep.OK() {
				t.Fatalf("Verify: %+v, %v", rep, err)
			}
		})
	}
}

func TestVerifyReportsMissingBlob(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	s := offloadStore(t, mem, nil)
	c := cp(1, t0)
	c.State = map[string]any{"big": randomText(100 << 10)}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	keys := blobKeys(t, mem)
	if err := mem.Delete(ctx, keys[len(keys)-1]); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx) // the blob is in s's cache: Verify must not use it
	if err != nil {
		t.Fatal(err)
	}
	berr := rep.BrokenBlobs[c.RunID]
	if rep.OK() || berr == nil || !strings.Contains(berr.Error(), keys[len(keys)-1]) || len(rep.Corrupt) != 0 || len(rep.Mismatched) != 0 {
		t.Fatalf("Verify: %+v", rep)
	}
	if rep.Blobs != len(keys) {
		t.Fatalf("Verify counted %d blobs of %d", rep.Blobs, len(keys))
	}
}

func TestBlobGC(t *testing.T) {
	ctx := context.Background()
	clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
	mem := bucket.NewMem()
	s := offloadStore(t, mem, clk)
	live, dead := cp(1, clk.Now()), cp(2, clk.Now())
	live.State = map[string]any{"big": randomText(100 << 10)}
	dead.State = map[string]any{"big": randomText(100 << 10)}
	for _, c := range []*cairn.Checkpoint{live, dead} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	all := blobKeys(t, mem)
	if err := s.Delete(ctx, dead.RunID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	rep, err := s.GC(ctx, nil)
	if err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("GC within the grace: %+v, %v", rep, err)
	}
	clk.Advance(6 * time.Hour)
	rep, err = s.GC(ctx, &durable.GCOptions{DryRun: true})
	if err != nil || len(rep.Blobs) == 0 || len(blobKeys(t, mem)) != len(all) {
		t.Fatalf("dry GC: %+v, %v", rep, err)
	}
	dry := rep.Blobs
	rep, err = s.GC(ctx, nil)
	if err != nil || fmt.Sprint(rep.Blobs) != fmt.Sprint(dry) || len(blobKeys(t, mem)) != len(all)-len(dry) {
		t.Fatalf("GC: %+v, %v (dry run said %v)", rep, err, dry)
	}
	// What is left is exactly the live run's.
	fresh := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: clk.Now})
	checkLoads(t, fresh, live)
	if vr, err := fresh.Verify(ctx); err != nil || !vr.OK() || vr.Blobs != len(all)-len(dry) {
		t.Fatalf("Verify: %+v, %v", vr, err)
	}
	clk.Advance(1000 * time.Hour)
	if rep, err := s.GC(ctx, nil); err != nil || len(rep.Blobs) != 0 {
		t.Fatalf("GC deleted live blobs: %+v, %v", rep, err)
	}
	checkLoads(t, fresh, live)
}

// pausing pauses the first Delete of a blob until released, after
// signalling that it was reached: GC between its scan and its deletes.
type pausing struct {
	bucket.Bucket
	once            sync.Once
	reached, resume chan struct{}
}

func (p *pausing) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "/blobs/") {
		p.once.Do(func() {
			close(p.reached)
			<-p.resume
		})
	}
	return p.Bucket.Delete(ctx, key)
}

func TestBlobGCRacesASave(t *testing.T) {
	for _, knows := range []bool{true, false} {
		t.Run(fmt.Sprintf("writer knows the blob %v", knows), func(t *testing.T) {
			ctx := context.Background()
			clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
			mem := bucket.NewMem()
			w := offloadStore(t, mem, clk)
			old := cp(1, clk.Now())
			big := randomText(150 << 10)
			old.State = map[string]any{"big": big}
			if err := w.Save(ctx, old); err != nil {
				t.Fatal(err)
			}
			if err := w.Delete(ctx, old.RunID); err != nil {
				t.Fatal(err)
			}
			if !knows {
				w = offloadStore(t, mem, clk)
			}
			clk.Advance(10 * time.Hour)
			p := &pausing{Bucket: mem, reached: make(chan struct{}), resume: make(chan struct{})}
			gc := newStore(t, p, &durable.Options{Prefix: "cairn", Now: clk.Now})
			done := make(chan error, 1)
			var rep *durable.GCReport
			go func() {
				var err error
				rep, err = gc.GC(ctx, nil)
				done <- err
			}()
			<-p.reached
			// The scan found the blobs unreferenced; a Save starts
			// referencing the same content again.
			again := cp(2, clk.Now())
			again.State = map[string]any{"big": big}
			if err := w.Save(ctx, again); err != nil {
				t.Fatal(err)
			}
			close(p.resume)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(rep.Blobs) == 0 {
				t.Fatal("GC deleted nothing: the race was not run")
			}
			reader := newStore(t, mem, &durable.Options{Prefix: "cairn", Now: clk.Now})
			checkLoads(t, reader, again)
			if vr, err := reader.Verify(ctx); err != nil || !vr.OK() {
				t.Fatalf("Verify: %+v, %v", vr, err)
			}
		})
	}
}

// A Write whose blob PUTs succeed and whose object PUT fails loses
// nothing: the run keeps its earlier state, and a later Save goes on.
func TestBlobWriteCrash(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
	crash := true
	f := &failing{Bucket: mem, put: func(key string) bool { return crash && strings.Contains(key, "/runs/") }}
	s := offloadStore(t, f, clk)
	c := cp(1, clk.Now())
	c.State = map[string]any{"big": randomText(100 << 10)}
	crash = false
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	crash = true
	c2 := cp(1, clk.Now().Add(time.Second))
	c2.State = map[string]any{"big": randomText(100 << 10)}
	if err := s.Save(ctx, c2); !errors.Is(err, errCrash) {
		t.Fatalf("Save: %v", err)
	}
	crash = false
	checkLoads(t, s, c)
	clk.Advance(20 * time.Hour)
	if _, err := s.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	checkLoads(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Now: clk.Now}), c)
	if err := s.Save(ctx, c2); err != nil {
		t.Fatal(err)
	}
	checkLoads(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Now: clk.Now}), c2)
	if vr, err := s.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("Verify: %+v, %v", vr, err)
	}
}

// A blob PUT that fails fails the Save, and commits nothing.
func TestBlobPutFails(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	f := &failing{Bucket: mem, put: func(key string) bool { return strings.Contains(key, "/blobs/") }}
	s := offloadStore(t, f, nil)
	c := cp(1, t0)
	c.State = map[string]any{"big": randomText(100 << 10)}
	if err := s.Save(ctx, c); !errors.Is(err, errCrash) {
		t.Fatalf("Save: %v", err)
	}
	if _, err := s.Load(ctx, c.RunID); !errors.Is(err, cairn.ErrNotFound) {
		t.Fatalf("Load: %v", err)
	}
}

// A GC whose deletes fail midway, or that meets a run object it cannot
// read, loses nothing referenced.
func TestBlobGCCrash(t *testing.T) {
	ctx := context.Background()
	clk := &blobClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
	mem := bucket.NewMem()
	s := offloadStore(t, mem, clk)
	live, dead := cp(1, clk.Now()), cp(2, clk.Now())
	live.State = map[string]any{"big": randomText(200 << 10)}
	dead.State = map[string]any{"big": randomText(200 << 10)}
	for _, c := range []*cairn.Checkpoint{live, dead} {
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, dead.RunID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Hour)
	n := 0
	f := &failing{Bucket: mem, del: func(key string) bool { n++; return strings.Contains(key, "/blobs/") && n > 2 }}
	g := newStore(t, f, &durable.Options{Prefix: "cairn", Now: clk.Now})
	if _, err := g.GC(ctx, nil); !errors.Is(err, errCrash) {
		t.Fatalf("GC: %v", err)
	}
	checkLoads(t, g, live)

	// An unreadable run object that counts blobs stops the blob phase.
	bad := cp(3, clk.Now())
	putStored(t, mem, bad.RunID, []byte("not a record"), map[string]string{"cairn-blobs": "1", "cairn-timestamp": "2026-03-01T00:00:00Z"})
	before := len(blobKeys(t, mem))
	if rep, err := s.GC(ctx, nil); !errors.Is(err, cairn.ErrCorrupt) || len(rep.Blobs) != 0 || len(blobKeys(t, mem)) != before {
		t.Fatalf("GC over an unreadable object: %+v, %v", rep, err)
	}
	if err := mem.Delete(ctx, "cairn/runs/"+bad.RunID.String()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(ctx, nil)
	if err != nil || len(rep.Blobs) == 0 {
		t.Fatalf("GC again: %+v, %v", rep, err)
	}
	checkLoads(t, newStore(t, mem, &durable.Options{Prefix: "cairn", Now: clk.Now}), live)
	if vr, err := s.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("Verify: %+v, %v", vr, err)
	}
}

func TestOffloadOptionsInvalid(t *testing.T) {
	_, err := durable.New(bucket.NewMem(), &durable.Options{Offload: &durable.OffloadOptions{Threshold: 100}})
	if !errors.Is(err, cairn.ErrInvalid) {
		t.Fatalf("New: %v", err)
	}
}
