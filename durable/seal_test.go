package durable_test

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/storetest"
	"github.com/google/uuid"
)

func sealKey(t testing.TB, id string) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealRing(t testing.TB, keys ...seal.Key) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// A sealed store is a store like any other.
func TestConformanceSealed(t *testing.T) {
	kr := sealRing(t, sealKey(t, "k1"))
	storetest.Run(t, func(t *testing.T) cairn.Store {
		return newStore(t, bucket.NewMem(), &durable.Options{Prefix: "cairn", Index: smallIndex, Keyring: kr})
	})
}

func rawCopy(t *testing.T, raw bucket.Bucket, from, to string) {
	t.Helper()
	obj, err := raw.Get(context.Background(), from, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(context.Background(), to, obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
		t.Fatal(err)
	}
}

// Run objects swapped, index pages swapped, an object moved across
// prefixes: every Load and List refuses with ErrCorrupt, and nothing in
// the raw bucket shows state or workflow names.
func TestSealedSwapsAreCorrupt(t *testing.T) {
	ctx := context.Background()
	raw := bucket.NewMem()
	kr := sealRing(t, sealKey(t, "k1"))
	opts := func(prefix string) *durable.Options {
		return &durable.Options{Prefix: prefix, Index: smallIndex, Keyring: kr}
	}
	a := newStore(t, raw, opts("a"))
	b := newStore(t, raw, opts("b"))
	var ids []uuid.UUID
	for i := range 12 {
		c := cp(i+1, t0.Add(time.Duration(i)*time.Minute))
		c.WorkflowName = "secret-workflow"
		c.State = map[string]any{"secret": fmt.Sprintf("state-%d", i)}
		if err := a.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.RunID)
	}
	if err := a.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing in the clear.
	infos, _, err := raw.List(ctx, "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		obj, err := raw.Get(ctx, in.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(obj.Body, []byte("secret")) || bytes.Contains(obj.Body, []byte("state-")) {
			t.Fatalf("%s holds plaintext", in.Key)
		}
		for k, v := range obj.Metadata {
			if k != "cairn-seal" && k != "cairn-sealed-meta" || strings.Contains(v, "secret") {
				t.Fatalf("%s has metadata %s=%s", in.Key, k, v)
			}
		}
	}

	run := func(id uuid.UUID) string { return "a/runs/" + id.String() }
	// Two run objects swapped.
	rawCopy(t, raw, run(ids[0]), "tmp/x")
	rawCopy(t, raw, run(ids[1]), run(ids[0]))
	rawCopy(t, raw, "tmp/x", run(ids[1]))
	// An object of prefix b over one of prefix a.
	rawCopy(t, raw, "b/runs/"+ids[2].String(), run(ids[2]))
	for _, id := range ids[:3] {
		if _, err := a.Load(ctx, id); !errors.Is(err, cairn.ErrCorrupt) {
			t.Errorf("Load of a swapped run: %v, want ErrCorrupt", err)
		}
	}
	if _, err := a.Load(ctx, ids[3]); err != nil {
		t.Errorf("Load of an untouched run: %v", err)
	}

	// Index pages swapped: a List either refuses with ErrCorrupt or, when
	// the index falls back to an intact snapshot whose logs are unbroken,
	// lists exactly the runs saved; never anything else. With every page
	// and log swapped, nothing intact is left: it refuses.
	indexKeys := func(part string) []string {
		infos, _, err := raw.List(ctx, "a/index/", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, in := range infos {
			if strings.Contains(in.Key, part) {
				keys = append(keys, in.Key)
			}
		}
		return keys
	}
	rotate := func(keys []string) {
		if len(keys) < 2 {
			t.Fatalf("want two objects to swap, have %v", keys)
		}
		rawCopy(t, raw, keys[0], "tmp/p")
		for i := 0; i+1 < len(keys); i++ {
			rawCopy(t, raw, keys[i+1], keys[i])
		}
		rawCopy(t, raw, "tmp/p", keys[len(keys)-1])
	}
	listed := func() error {
		page, err := newStore(t, raw, opts("a")).List(ctx, &cairn.ListOptions{Limit: 100})
		if err != nil {
			return err
		}
		if len(page.Runs) != len(ids) {
			t.Fatalf("List over swapped pages listed %d runs, want %d", len(page.Runs), len(ids))
		}
		for i, r := range page.Runs {
			if r.RunID != ids[len(ids)-1-i] {
				t.Fatalf("List over swapped pages: run %d is %v, want %v", i, r.RunID, ids[len(ids)-1-i])
			}
		}
		return nil
	}
	pages := indexKeys("/pages/")
	rotate(pages[:2])
	if err := listed(); err != nil && !errors.Is(err, cairn.ErrCorrupt) {
		t.Errorf("List over two swapped pages: %v, want ErrCorrupt or the runs", err)
	}
	rotate(pages)
	rotate(indexKeys("/log"))
	if err := listed(); !errors.Is(err, cairn.ErrCorrupt) {
		t.Errorf("List over swapped pages and logs: %v, want ErrCorrupt", err)
	}

	// A store without the keyring, or with another, reads nothing.
	plain := newStore(t, raw, &durable.Options{Prefix: "b", Index: smallIndex})
	if _, err := plain.Load(ctx, ids[5]); !errors.Is(err, cairn.ErrCorrupt) {
		t.Errorf("Load without the keyring: %v, want ErrCorrupt", err)
	}
	other := newStore(t, raw, &durable.Options{Prefix: "b", Index: smallIndex, Keyring: sealRing(t, sealKey(t, "k9"))})
	if _, err := other.Load(ctx, ids[5]); !errors.Is(err, cairn.ErrCorrupt) || !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("Load with another keyring: %v, want ErrCorrupt and ErrUnknownKey", err)
	}
	// Reindex of the sealed store rebuilds from sealed metadata.
	if _, err := b.Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	page, err := b.List(ctx, nil)
	if err != nil || len(page.Runs) != 12 || page.Runs[0].WorkflowName != "secret-workflow" {
		t.Fatalf("List after Reindex: %v, %v", page, err)
	}
}

// Rotating keys with writers running and a rekey cut short in the middle:
// nothing lost, and at the end every object opens with the new key alone.
func TestSealedRotationWithWriters(t *testing.T) {
	ctx := context.Background()
	raw := bucket.NewMem()
	k1, k2 := sealKey(t, "k1"), sealKey(t, "k2")
	old := sealRing(t, k1)
	rotated, err := old.Rotate(k2)
	if err != nil {
		t.Fatal(err)
	}
	w1 := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: old})
	var mu sync.Mutex
	latest := map[uuid.UUID]int{}
	save := func(s *durable.Store, n, v int) {
		c := cp(n, t0.Add(time.Duration(v)*time.Second))
		c.State = map[string]any{"v": int64(v)}
		if err := s.Save(ctx, c); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		latest[c.RunID] = v
		mu.Unlock()
	}
	for n := 1; n <= 40; n++ {
		save(w1, n, 1)
	}
	// Writers move to the rotated keyring (the old key still opens): the
	// process with the old one stops. They keep saving while rekey runs,
	// is cut short, and runs again.
	if err := w1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w2 := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: rotated})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := 2; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				save(w2, 1+(v*7+g*13)%40, v)
			}
		}()
	}
	cctx, cancel := context.WithCancel(ctx)
	_, err = seal.Rekey(cctx, raw, rotated, "p", &seal.RekeyOptions{Concurrency: 2, Progress: func(done, _ int) {
		if done == 10 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cut Rekey: %v", err)
	}
	rep, err := seal.Rekey(ctx, raw, rotated, "p", nil)
	close(stop)
	wg.Wait()
	if err != nil || !rep.Verified {
		t.Fatalf("Rekey = %+v, %v", rep, err)
	}
	// Old key retired: everything reads, the index too, and each run is
	// its last save.
	retired, err := rotated.Retire("k1")
	if err != nil {
		t.Fatal(err)
	}
	r := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: retired})
	for id, v := range latest {
		got, err := r.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load %v: %v", id, err)
		}
		if got.State["v"] != int64(v) {
			t.Fatalf("run %v = %v, want %d", id, got.State["v"], v)
		}
	}
	page, err := r.List(ctx, &cairn.ListOptions{Limit: 100})
	if err != nil || len(page.Runs) != 40 {
		t.Fatalf("List: %d runs, %v", len(page.Runs), err)
	}
	rep2, err := r.Verify(ctx)
	if err != nil || len(rep2.Corrupt) > 0 || len(rep2.Missing) > 0 || len(rep2.Unindexed) > 0 || len(rep2.Mismatched) > 0 {
		t.Fatalf("Verify = %+v, %v", rep2, err)
	}
}

// Offload in a sealed store: blobs are sealed and named by a keyed HMAC,
// not by the hash of their content; values round-trip; and a store
// opened without the keyring says the store is sealed.
func TestSealedOffload(t *testing.T) {
	ctx := context.Background()
	raw := bucket.NewMem()
	kr := sealRing(t, sealKey(t, "k1"))
	s := newStore(t, raw, &durable.Options{Prefix: "cairn", Index: smallIndex, Keyring: kr, Offload: &durable.OffloadOptions{}})
	c := cp(1, t0)
	big := randomText(200 << 10)
	c.State = map[string]any{"doc": big}
	if err := s.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	keys := blobKeys(t, raw)
	if len(keys) == 0 {
		t.Fatal("nothing offloaded")
	}
	for _, k := range keys {
		obj, err := raw.Get(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if obj.Metadata["cairn-seal"] == "" {
			t.Errorf("blob %s is not sealed", k)
		}
		opened, err := seal.Wrap(raw, kr).Get(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		chunk, err := cairn.DefaultCodec().Decompress(opened.Body)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(chunk); strings.HasSuffix(k, hex.EncodeToString(sum[:])) {
			t.Errorf("blob %s is named by the plain hash of its content", k)
		}
	}
	checkLoads(t, s, c)
	checkLoads(t, newStore(t, raw, &durable.Options{Prefix: "cairn", Index: smallIndex, Keyring: kr}), c)
	_, err := newStore(t, raw, &durable.Options{Prefix: "cairn", Index: smallIndex}).Load(ctx, c.RunID)
	if !errors.Is(err, cairn.ErrCorrupt) || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("Load without the keyring: %v, want ErrCorrupt saying the store is sealed", err)
	}
}

// A process with the wrong keyring, or none, writes nothing into a sealed
// store (its index logs would be unreadable to the processes that have the
// right one), and a sealed process nothing into an unsealed store: Save,
// Delete and Reindex fail, and the store still lists and loads for its
// own processes.
func TestWrongKeyringWritesNothing(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	for _, tc := range []struct {
		name        string
		right, want *seal.Keyring
	}{
		{"another keyring", kr, sealRing(t, sealKey(t, "k2"))},
		{"no keyring", kr, nil},
		{"a keyring on an unsealed store", nil, kr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := bucket.NewMem()
			good := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: tc.right})
			c := cp(1, t0)
			if err := good.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			before, _, _ := raw.List(ctx, "", "", 1000)
			bad := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: tc.want})
			if err := bad.Save(ctx, cp(2, t0)); !seal.WrongKeyring(err) {
				t.Errorf("Save: %v, want a keyring error", err)
			}
			if err := bad.Delete(ctx, c.RunID); !seal.WrongKeyring(err) {
				t.Errorf("Delete: %v, want a keyring error", err)
			}
			if _, err := bad.Reindex(ctx, nil); !seal.WrongKeyring(err) {
				t.Errorf("Reindex: %v, want a keyring error", err)
			}
			after, _, _ := raw.List(ctx, "", "", 1000)
			if len(after) != len(before) {
				t.Errorf("%d objects before, %d after", len(before), len(after))
			}
			page, err := good.List(ctx, nil)
			if err != nil || len(page.Runs) != 1 {
				t.Fatalf("List by the right store: %v, %v", page, err)
			}
		})
	}
}
