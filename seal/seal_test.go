package seal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/bucket/buckettest"
	"github.com/cairnstore/cairn/seal"
)

func mustKey(t testing.TB, id string) seal.Key {
	t.Helper()
	k, err := seal.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, keys ...seal.Key) *seal.Keyring {
	t.Helper()
	kr, err := seal.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// The sealed bucket passes the conformance suite every bucket passes:
// sealing changes nothing a caller relies on.
func TestSealedConformance(t *testing.T) {
	kr := mustRing(t, mustKey(t, "k1"))
	buckettest.RunWith(t, func(t *testing.T) bucket.Bucket { return seal.Wrap(bucket.NewMem(), kr) }, sealedSizes)
}

func TestSealedVersionedConformance(t *testing.T) {
	kr := mustRing(t, mustKey(t, "k1"))
	buckettest.RunVersionedWith(t, func(t *testing.T) buckettest.VersionedBucket {
		return seal.Wrap(bucket.NewMemVersioned(), kr).(buckettest.VersionedBucket)
	}, sealedSizes)
}

func TestSealedDirConformance(t *testing.T) {
	kr := mustRing(t, mustKey(t, "k1"))
	buckettest.RunWith(t, func(t *testing.T) bucket.Bucket {
		d, err := bucket.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return seal.Wrap(d, kr)
	}, sealedSizes)
}

var ctx = context.Background()

// sealedSizes: List's sizes are the sealed objects'.
var sealedSizes = &buckettest.Options{StoredSizesListed: true}

// The raw bucket holds neither the body nor the metadata in the clear.
func TestNothingInTheClear(t *testing.T) {
	raw := bucket.NewMem()
	b := seal.Wrap(raw, mustRing(t, mustKey(t, "k1")))
	body := []byte("the secret state of workflow order-processing")
	meta := map[string]string{"cairn-workflow": "order-processing", "cairn-labels": "tenant=acme"}
	if _, err := b.Put(ctx, "p/runs/1", body, &bucket.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	obj, err := raw.Get(ctx, "p/runs/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"secret state", "order-processing", "acme", "tenant"} {
		if bytes.Contains(obj.Body, []byte(secret)) {
			t.Errorf("raw body holds %q", secret)
		}
		for k, v := range obj.Metadata {
			if strings.Contains(k+v, secret) {
				t.Errorf("raw metadata %s=%s holds %q", k, v, secret)
			}
		}
	}
	got, err := b.Get(ctx, "p/runs/1", nil)
	if err != nil || !bytes.Equal(got.Body, body) || got.Metadata["cairn-labels"] != "tenant=acme" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	info, err := b.Head(ctx, "p/runs/1")
	if err != nil || info.Metadata["cairn-workflow"] != "order-processing" || len(info.Metadata) != 2 {
		t.Fatalf("Head = %+v, %v", info, err)
	}
}

// copyRaw copies the raw object at from over to, metadata and all: what
// someone with write access to the bucket can do.
func copyRaw(t *testing.T, raw bucket.Bucket, from, to string) {
	t.Helper()
	obj, err := raw.Get(ctx, from, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, to, obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
		t.Fatal(err)
	}
}

func wantAuth(t *testing.T, what string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) || !errors.Is(err, bucket.ErrUnreadable) {
		t.Errorf("%s: err = %v, want %v inside bucket.ErrUnreadable", what, err, want)
	}
}

// Objects moved between keys, bodies and metadata swapped between
// objects or versions, and flipped bits all fail to open.
func TestSwapsRefused(t *testing.T) {
	raw := bucket.NewMem()
	kr := mustRing(t, mustKey(t, "k1"))
	b := seal.Wrap(raw, kr)
	for _, k := range []string{"a/runs/1", "a/runs/2", "b/runs/1", "a/index/log-1"} {
		if _, err := b.Put(ctx, k, []byte("body of "+k), &bucket.PutOptions{Metadata: map[string]string{"m": k}}); err != nil {
			t.Fatal(err)
		}
	}
	// Another run's object copied over this one's, a page into a run's
	// key, an object into another prefix.
	copyRaw(t, raw, "a/runs/2", "a/runs/1")
	copyRaw(t, raw, "a/index/log-1", "a/runs/2")
	copyRaw(t, raw, "a/runs/1", "b/runs/1")
	for _, k := range []string{"a/runs/1", "a/runs/2", "b/runs/1"} {
		_, err := b.Get(ctx, k, nil)
		wantAuth(t, "Get "+k, err, seal.ErrAuth)
		_, err = b.Head(ctx, k)
		wantAuth(t, "Head "+k, err, seal.ErrAuth)
	}

	// Body of one write with the metadata of another write of the same key.
	if _, err := b.Put(ctx, "c/1", []byte("v1"), &bucket.PutOptions{Metadata: map[string]string{"v": "1"}}); err != nil {
		t.Fatal(err)
	}
	v1, _ := raw.Get(ctx, "c/1", nil)
	if _, err := b.Put(ctx, "c/1", []byte("v2"), &bucket.PutOptions{Metadata: map[string]string{"v": "2"}}); err != nil {
		t.Fatal(err)
	}
	v2, _ := raw.Get(ctx, "c/1", nil)
	if _, err := raw.Put(ctx, "c/1", v2.Body, &bucket.PutOptions{Metadata: v1.Metadata}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get(ctx, "c/1", nil)
	wantAuth(t, "Get with another version's metadata", err, seal.ErrAuth)
	// The sealed metadata copy of version 1 beside version 2's data key.
	mixed := map[string]string{"cairn-seal": v2.Metadata["cairn-seal"], "cairn-sealed-meta": v1.Metadata["cairn-sealed-meta"]}
	if _, err := raw.Put(ctx, "c/1", v2.Body, &bucket.PutOptions{Metadata: mixed}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Head(ctx, "c/1")
	wantAuth(t, "Head with another version's sealed metadata", err, seal.ErrAuth)

	// Every single flipped byte of the body, and truncations.
	if _, err := b.Put(ctx, "d/1", []byte("0123456789"), nil); err != nil {
		t.Fatal(err)
	}
	good, _ := raw.Get(ctx, "d/1", nil)
	for i := range good.Body {
		bad := bytes.Clone(good.Body)
		bad[i] ^= 0x40
		raw.Put(ctx, "d/1", bad, &bucket.PutOptions{Metadata: good.Metadata})
		_, err := b.Get(ctx, "d/1", nil)
		wantAuth(t, fmt.Sprintf("byte %d flipped", i), err, seal.ErrAuth)
	}
	for n := range len(good.Body) {
		raw.Put(ctx, "d/1", good.Body[:n], &bucket.PutOptions{Metadata: good.Metadata})
		_, err := b.Get(ctx, "d/1", nil)
		wantAuth(t, fmt.Sprintf("truncated to %d", n), err, seal.ErrAuth)
	}
	// A key ID altered in the seal.
	meta := map[string]string{"cairn-seal": strings.Replace(good.Metadata["cairn-seal"], ".k1.", ".k2.", 1)}
	raw.Put(ctx, "d/1", good.Body, &bucket.PutOptions{Metadata: meta})
	_, err = b.Get(ctx, "d/1", nil)
	wantAuth(t, "unknown key ID", err, seal.ErrUnknownKey)
	// The same key ID with another secret.
	raw.Put(ctx, "d/1", good.Body, &bucket.PutOptions{Metadata: good.Metadata})
	other := seal.Wrap(raw, mustRing(t, mustKey(t, "k1")))
	_, err = other.Get(ctx, "d/1", nil)
	wantAuth(t, "another secret", err, seal.ErrAuth)
	// A plain object.
	raw.Put(ctx, "d/2", []byte("plain"), nil)
	_, err = b.Get(ctx, "d/2", nil)
	wantAuth(t, "plain", err, seal.ErrNotSealed)
	_, err = b.Head(ctx, "d/2")
	wantAuth(t, "plain Head", err, seal.ErrNotSealed)
}

// Metadata too large to fit twice is read from the body by Head.
func TestLargeMetadataHead(t *testing.T) {
	b := seal.Wrap(bucket.NewMem(), mustRing(t, mustKey(t, "k1")))
	meta := map[string]string{"big": strings.Repeat("x", bucket.MaxMetadataSize-64)}
	if _, err := b.Put(ctx, "k", []byte("body"), &bucket.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	info, err := b.Head(ctx, "k")
	if err != nil || info.Metadata["big"] != meta["big"] {
		t.Fatalf("Head = %v, %v", info, err)
	}
}

// MaxSize bounds the opened body: an object larger is ErrTooLarge.
func TestMaxSize(t *testing.T) {
	b := seal.Wrap(bucket.NewMem(), mustRing(t, mustKey(t, "k1")))
	b.Put(ctx, "k", make([]byte, 1000), nil)
	if _, err := b.Get(ctx, "k", &bucket.GetOptions{MaxSize: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k", &bucket.GetOptions{MaxSize: 999}); !errors.Is(err, bucket.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestKeyring(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	kr := mustRing(t, k1)
	kr2, err := kr.Rotate(k2)
	if err != nil || kr2.Primary() != "k2" || !kr2.Has("k1") {
		t.Fatalf("Rotate = %v, %v", kr2, err)
	}
	data, err := kr2.Export()
	if err != nil {
		t.Fatal(err)
	}
	back, err := seal.ParseKeyring(data)
	if err != nil || back.Primary() != "k2" || fmt.Sprint(back.IDs()) != "[k2 k1]" {
		t.Fatalf("ParseKeyring = %v, %v", back, err)
	}
	if _, err := kr2.Retire("k2"); !errors.Is(err, seal.ErrBadKeyring) {
		t.Errorf("retiring the primary: %v", err)
	}
	ret, err := kr2.Retire("k1")
	if err != nil || ret.Has("k1") {
		t.Errorf("Retire = %v, %v", ret, err)
	}
	if strings.Contains(kr2.String(), string(k1.Secret)) {
		t.Error("String shows a secret")
	}
	for _, bad := range []string{
		``, `{}`, `{"primary":"a","keys":[]}`,
		`{"primary":"a","keys":[{"id":"a","secret":"AAAA"}]}`,
		`{"primary":"A","keys":[{"id":"A","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`,
		`{"primary":"a","keys":[{"id":"a","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},{"id":"a","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`,
		`{"primary":"a","keys":[{"id":"a","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"extra":1}`,
		`{"primary":"a","keys":[{"id":"a","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]} trailing`,
	} {
		if _, err := seal.ParseKeyring([]byte(bad)); !errors.Is(err, seal.ErrBadKeyring) {
			t.Errorf("ParseKeyring(%s) = %v, want ErrBadKeyring", bad, err)
		}
	}
	if _, err := seal.ParseKeyring([]byte(`{"primary":"a","keys":[{"id":"a","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`)); err != nil {
		t.Errorf("good keyring: %v", err)
	}
}

// Rotation: the new primary seals, the old key still opens; Rekey moves
// every object to the new key in place, keeping ETags, and then the old
// key is not needed.
func TestRekey(t *testing.T) {
	raw := bucket.NewMem()
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := mustRing(t, k1)
	b1 := seal.Wrap(raw, old)
	etags := map[string]string{}
	for i := range 50 {
		k := fmt.Sprintf("p/runs/%02d", i)
		e, err := b1.Put(ctx, k, []byte(k), &bucket.PutOptions{Metadata: map[string]string{"i": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		etags[k] = e
	}
	b1.Put(ctx, "other/x", []byte("outside the prefix"), nil)
	rotated, _ := old.Rotate(k2)
	b2 := seal.Wrap(raw, rotated)
	if _, err := b2.Get(ctx, "p/runs/00", nil); err != nil {
		t.Fatalf("old key does not open after rotation: %v", err)
	}
	// Before Rekey, the new key alone opens nothing.
	if bad, err := seal.Verify(ctx, raw, rotated, "p", 4); err != nil || len(bad) != 50 {
		t.Fatalf("Verify before Rekey: %d bad, %v", len(bad), err)
	}
	var last int
	rep, err := seal.Rekey(ctx, raw, rotated, "p", &seal.RekeyOptions{Progress: func(done, total int) { last = done }})
	if err != nil || rep.Resealed != 50 || !rep.Verified || last != 50 {
		t.Fatalf("Rekey = %+v, %v (progress %d)", rep, err, last)
	}
	retired, _ := rotated.Retire("k1")
	b3 := seal.Wrap(raw, retired)
	for k, e := range etags {
		obj, err := b3.Get(ctx, k, nil)
		if err != nil || string(obj.Body) != k || obj.ETag != e {
			t.Fatalf("%s after rekey: %v, %v (etag %s, was %s)", k, obj, err, obj.ETag, e)
		}
		// A writer holding the ETag from before writes on, conditionally.
		if _, err := b3.Put(ctx, k, []byte("next"), &bucket.PutOptions{IfMatch: e}); err != nil {
			t.Fatalf("conditional write after rekey: %v", err)
		}
	}
	if _, err := b3.Get(ctx, "other/x", nil); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("outside the prefix: %v, want untouched (ErrUnknownKey)", err)
	}
	// Rerun: nothing left to do.
	rep, err = seal.Rekey(ctx, raw, rotated, "p", nil)
	if err != nil || rep.Resealed != 0 || rep.Current != 50 {
		t.Fatalf("rerun = %+v, %v", rep, err)
	}
}

// Rekey cut short at any point and run again finishes, while a writer
// keeps writing: nothing is lost and everything opens with the new key.
func TestRekeyInterruptedWithWriters(t *testing.T) {
	raw := bucket.NewMem()
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := mustRing(t, k1)
	b1 := seal.Wrap(raw, old)
	for i := range 200 {
		k := fmt.Sprintf("p/o/%03d", i)
		if _, err := b1.Put(ctx, k, []byte("v0"), nil); err != nil {
			t.Fatal(err)
		}
	}
	rotated, _ := old.Rotate(k2)
	writer := seal.Wrap(raw, rotated)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	want := sync.Map{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("p/o/%03d", n*7%200)
			v := fmt.Sprintf("v%d", n)
			if _, err := writer.Put(ctx, k, []byte(v), nil); err != nil {
				t.Error(err)
				return
			}
			want.Store(k, v)
		}
	}()
	// Three runs cut short after a few objects each.
	for cut := range 3 {
		cctx, cancel := context.WithCancel(ctx)
		_, err := seal.Rekey(cctx, raw, rotated, "p", &seal.RekeyOptions{Concurrency: 2, Progress: func(done, total int) {
			if done >= 30*(cut+1) {
				cancel()
			}
		}})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}
	rep, err := seal.Rekey(ctx, raw, rotated, "p", nil)
	close(stop)
	wg.Wait()
	if err != nil || !rep.Verified {
		t.Fatalf("final Rekey = %+v, %v", rep, err)
	}
	only := seal.Wrap(raw, rotated.PrimaryOnly())
	for i := range 200 {
		k := fmt.Sprintf("p/o/%03d", i)
		obj, err := only.Get(ctx, k, nil)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		v, ok := want.Load(k)
		if !ok {
			v = "v0"
		}
		if string(obj.Body) != v.(string) {
			t.Fatalf("%s = %q, want %q", k, obj.Body, v)
		}
	}
}

// A Rekey with a keyring that lacks the key of some objects reports them
// and fails with ErrNotRekeyed.
func TestRekeyUnknownKey(t *testing.T) {
	raw := bucket.NewMem()
	seal.Wrap(raw, mustRing(t, mustKey(t, "k1"))).Put(ctx, "p/a", []byte("a"), nil)
	raw.Put(ctx, "p/plain", []byte("plain"), nil)
	kr := mustRing(t, mustKey(t, "k2"))
	rep, err := seal.Rekey(ctx, raw, kr, "p", nil)
	if !errors.Is(err, seal.ErrNotRekeyed) || len(rep.Failed) != 2 || rep.Verified {
		t.Fatalf("Rekey = %+v, %v", rep, err)
	}
	if !errors.Is(rep.Failed["p/a"], seal.ErrUnknownKey) || !errors.Is(rep.Failed["p/plain"], seal.ErrNotSealed) {
		t.Fatalf("Failed = %v", rep.Failed)
	}
}

// FuzzOpen feeds arbitrary bodies and seals to the opening reader: it
// never panics, never returns a body it did not authenticate, and never
// allocates beyond the object.
func FuzzOpen(f *testing.F) {
	kr := mustRing(f, seal.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	raw := bucket.NewMem()
	b := seal.Wrap(raw, kr)
	b.Put(ctx, "k", []byte("seed body"), &bucket.PutOptions{Metadata: map[string]string{"a": "b"}})
	good, _ := raw.Get(ctx, "k", nil)
	f.Add(good.Body, good.Metadata["cairn-seal"], good.Metadata["cairn-sealed-meta"])
	f.Add([]byte("CSB1"), "v1.k1.", "-")
	f.Add([]byte{}, "", "")
	f.Fuzz(func(t *testing.T, body []byte, sealV, metaV string) {
		meta := map[string]string{}
		if sealV != "" {
			meta["cairn-seal"] = sealV
		}
		if metaV != "" {
			meta["cairn-sealed-meta"] = metaV
		}
		fb := &fixed{obj: &bucket.Object{Info: bucket.Info{Key: "k", Metadata: meta}, Body: body}}
		sb := seal.Wrap(fb, kr)
		obj, err := sb.Get(ctx, "k", &bucket.GetOptions{MaxSize: 1 << 20})
		// The only thing ever sealed under this key is the seed (in this
		// process or the fuzzing coordinator's): nothing else may open.
		if err == nil && (string(obj.Body) != "seed body" || len(obj.Metadata) != 1 || obj.Metadata["a"] != "b") {
			t.Fatalf("opened an object it did not seal: %q %v", obj.Body, obj.Metadata)
		}
		if err != nil && !errors.Is(err, bucket.ErrUnreadable) {
			t.Fatalf("err = %v, want ErrUnreadable", err)
		}
		if info, err := sb.Head(ctx, "k"); err == nil && (len(info.Metadata) != 1 || info.Metadata["a"] != "b") {
			t.Fatalf("Head opened metadata it did not seal: %v", info.Metadata)
		}
	})
}

// fixed is a bucket holding one object as given.
type fixed struct {
	bucket.Bucket
	obj *bucket.Object
}

func (f *fixed) Get(_ context.Context, key string, _ *bucket.GetOptions) (*bucket.Object, error) {
	o := *f.obj
	o.Body = bytes.Clone(o.Body)
	return &o, nil
}

func (f *fixed) Head(_ context.Context, key string) (*bucket.Info, error) {
	i := f.obj.Info
	return &i, nil
}
