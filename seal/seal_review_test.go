package seal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/seal"
)

// recording wraps a raw bucket and records, for every Get, the MaxSize
// asked for and the bytes returned.
type recording struct {
	bucket.Bucket
	mu   sync.Mutex
	gets []recordedGet
}

type recordedGet struct {
	key     string
	maxSize int64
	n       int
}

func (r *recording) Get(ctx context.Context, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	var max int64
	if opts != nil {
		max = opts.MaxSize
	}
	obj, err := r.Bucket.Get(ctx, key, opts)
	n := 0
	if err == nil {
		n = len(obj.Body)
	}
	r.mu.Lock()
	r.gets = append(r.gets, recordedGet{key, max, n})
	r.mu.Unlock()
	return obj, err
}

// Review: metadata the bucket accepts must come back. bucket.CheckPut
// accepts up to 2 KiB of printable ASCII metadata; seal's Put stores it as
// JSON inside the body, where encoding/json writes '<', '>' and '&' as
// six bytes each (\u003c), so 1,900 of them take 11 KB, over the 8 KiB
// (maxMetaJSON) that open accepts. Put succeeds; every later Get and Head
// refuses the object as failing authentication: the write is lost.
func TestReviewHTMLMetadataRoundTrips(t *testing.T) {
	raw := bucket.NewMem()
	b := seal.Wrap(raw, mustRing(t, mustKey(t, "k1")))
	for _, c := range []string{"<", ">", "&"} {
		meta := map[string]string{"note": strings.Repeat(c, 1900)}
		key := fmt.Sprintf("p/runs/%x", c)
		if _, err := bucket.NewMem().Put(ctx, key, []byte("x"), &bucket.PutOptions{Metadata: meta}); err != nil {
			t.Fatalf("the plain bucket refuses the metadata (%v): the test is wrong", err)
		}
		if _, err := b.Put(ctx, key, []byte("body"), &bucket.PutOptions{Metadata: meta}); err != nil {
			continue // refusing at Put would be fine: nothing is lost
		}
		obj, err := b.Get(ctx, key, nil)
		if err != nil {
			t.Errorf("%q x1900: Put succeeded but Get fails: %v", c, err)
			continue
		}
		if obj.Metadata["note"] != meta["note"] || string(obj.Body) != "body" {
			t.Errorf("%q x1900: Get returned other metadata or body", c)
		}
		if _, err := b.Head(ctx, key); err != nil {
			t.Errorf("%q x1900: Put succeeded but Head fails: %v", c, err)
		}
	}
}

// plantUnknown puts at key a raw object of n bytes whose seal names a key
// ID no keyring here holds, as someone with write access can.
func plantUnknown(t *testing.T, raw bucket.Bucket, key string, n int) {
	t.Helper()
	seal := "v1.stranger." + base64.RawURLEncoding.EncodeToString(make([]byte, 16+48))
	if _, err := raw.Put(ctx, key, bytes.Repeat([]byte{'x'}, n), &bucket.PutOptions{Metadata: map[string]string{"cairn-seal": seal, "cairn-sealed-meta": "-"}}); err != nil {
		t.Fatal(err)
	}
}

// Review: Rekey and Verify read bodies without a bound. Every Get they
// make of the raw bucket should carry a MaxSize (a hostile object of
// gigabytes under the prefix is otherwise read whole, Concurrency at a
// time), and an object whose seal names a key the keyring lacks, which
// the HEAD shows, should not be read at all.
func TestReviewRekeyReadsAreBounded(t *testing.T) {
	mem := bucket.NewMem()
	rec := &recording{Bucket: mem}
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := seal.Wrap(mem, mustRing(t, k1))
	if _, err := old.Put(ctx, "p/runs/1", []byte("state"), nil); err != nil {
		t.Fatal(err)
	}
	plantUnknown(t, mem, "p/runs/hostile", 4<<20)
	rep, err := seal.Rekey(ctx, rec, mustRing(t, k2, k1), "p", nil)
	if !errors.Is(err, seal.ErrNotRekeyed) || rep == nil || rep.Failed["p/runs/hostile"] == nil {
		t.Fatalf("Rekey = %+v, %v; want the hostile object failed", rep, err)
	}
	if !errors.Is(rep.Failed["p/runs/hostile"], seal.ErrUnknownKey) {
		t.Errorf("hostile object failed with %v, want ErrUnknownKey", rep.Failed["p/runs/hostile"])
	}
	var hostileBytes int
	for _, g := range rec.gets {
		if g.maxSize <= 0 {
			t.Errorf("Rekey/Verify read %s with no MaxSize (%d bytes returned)", g.key, g.n)
		}
		if g.key == "p/runs/hostile" {
			hostileBytes += g.n
		}
	}
	if hostileBytes > 0 {
		t.Errorf("Rekey read %d bytes of an object whose HEAD shows a key the keyring lacks", hostileBytes)
	}
}

// Review (holds): Rekey of prefix "p" leaves the store at "p2" alone,
// though "p" is a prefix of "p2".
func TestReviewRekeyPrefixOfAnotherPrefix(t *testing.T) {
	raw := bucket.NewMem()
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := seal.Wrap(raw, mustRing(t, k1))
	for _, k := range []string{"p/runs/1", "p2/runs/1", "p/index/head"} {
		if _, err := old.Put(ctx, k, []byte(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := seal.Rekey(ctx, raw, mustRing(t, k2, k1), "p", nil)
	if err != nil || rep.Objects != 2 || rep.Resealed != 2 || !rep.Verified {
		t.Fatalf("Rekey = %+v, %v", rep, err)
	}
	if _, err := seal.Wrap(raw, mustRing(t, k1)).Get(ctx, "p2/runs/1", nil); err != nil {
		t.Errorf("p2's object no longer opens with k1 alone: %v", err)
	}
	if _, err := seal.Wrap(raw, mustRing(t, k2)).Get(ctx, "p/runs/1", nil); err != nil {
		t.Errorf("p's object does not open with k2 alone: %v", err)
	}
}

// Review (holds): Rekey keeps every object's ETag on the memory and
// directory buckets, so conditional writers carry on; and a conditional
// write with the ETag read before the rekey succeeds after it.
func TestReviewRekeyKeepsETags(t *testing.T) {
	dir, err := bucket.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]bucket.Bucket{"mem": bucket.NewMem(), "memversioned": bucket.NewMemVersioned(), "dir": dir} {
		t.Run(name, func(t *testing.T) {
			k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
			w := seal.Wrap(raw, mustRing(t, k1))
			etags := map[string]string{}
			for i := range 20 {
				k := fmt.Sprintf("p/runs/%02d", i)
				e, err := w.Put(ctx, k, []byte(k), &bucket.PutOptions{Metadata: map[string]string{"cairn-epoch": fmt.Sprint(i)}})
				if err != nil {
					t.Fatal(err)
				}
				etags[k] = e
			}
			rotated := mustRing(t, k2, k1)
			rep, err := seal.Rekey(ctx, raw, rotated, "p", &seal.RekeyOptions{Concurrency: 3})
			if err != nil || rep.Resealed != 20 {
				t.Fatalf("Rekey = %+v, %v", rep, err)
			}
			nw := seal.Wrap(raw, rotated)
			for k, e := range etags {
				info, err := nw.Head(ctx, k)
				if err != nil || info.ETag != e || info.Metadata["cairn-epoch"] == "" {
					t.Fatalf("%s after rekey: %+v, %v; want ETag %s", k, info, err, e)
				}
				if _, err := nw.Put(ctx, k, []byte("next"), &bucket.PutOptions{IfMatch: e}); err != nil {
					t.Errorf("%s: conditional write on the pre-rekey ETag: %v", k, err)
				}
			}
		})
	}
}

// Review (holds): tampering with the seal's format is refused without
// panics or large allocations: other versions, missing or empty fields,
// over-long key IDs, huge base64, a key ID switched to the primary's.
func TestReviewSealMetadataTricks(t *testing.T) {
	raw := bucket.NewMem()
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	b := seal.Wrap(raw, mustRing(t, k2, k1))
	if _, err := seal.Wrap(raw, mustRing(t, k1)).Put(ctx, "p/runs/1", []byte("state"), &bucket.PutOptions{Metadata: map[string]string{"m": "1"}}); err != nil {
		t.Fatal(err)
	}
	orig, err := raw.Get(ctx, "p/runs/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	sealV := orig.Metadata["cairn-seal"]
	rest := strings.TrimPrefix(sealV, "v1.k1.")
	std := strings.NewReplacer("-", "+", "_", "/").Replace(rest)
	if std == rest { // no '-' or '_' to swap: still spell it in the standard alphabet only
		std = "+" + rest[1:]
	}
	cases := map[string]map[string]string{
		"v2":             {"cairn-seal": "v2.k1." + rest, "cairn-sealed-meta": orig.Metadata["cairn-sealed-meta"]},
		"V1 upper":       {"cairn-seal": "V1.k1." + rest},
		"key switched":   {"cairn-seal": "v1.k2." + rest, "cairn-sealed-meta": orig.Metadata["cairn-sealed-meta"]},
		"empty":          {"cairn-seal": ""},
		"no rest":        {"cairn-seal": "v1.k1"},
		"empty rest":     {"cairn-seal": "v1.k1."},
		"padded b64":     {"cairn-seal": sealV + "=="},
		"std b64":        {"cairn-seal": "v1.k1." + std},
		"long id":        {"cairn-seal": "v1." + strings.Repeat("a", 33) + "." + rest},
		"huge rest":      {"cairn-seal": "v1.k1." + strings.Repeat("A", 1900)},
		"meta dash":      {"cairn-seal": sealV, "cairn-sealed-meta": "-"}, // opens: Head reads the body
		"meta empty":     {"cairn-seal": sealV, "cairn-sealed-meta": ""},
		"meta missing":   {"cairn-seal": sealV},
		"meta garbage":   {"cairn-seal": sealV, "cairn-sealed-meta": "AAAA"},
		"stripped":       nil,
		"other metadata": {"cairn-seal": sealV, "cairn-sealed-meta": orig.Metadata["cairn-sealed-meta"], "cairn-workflow": "planted"},
	}
	for name, meta := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := raw.Put(ctx, "p/runs/1", orig.Body, &bucket.PutOptions{Metadata: meta}); err != nil {
				t.Fatal(err)
			}
			info, herr := b.Head(ctx, "p/runs/1")
			obj, gerr := b.Get(ctx, "p/runs/1", nil)
			switch name {
			case "meta dash", "other metadata":
				if herr != nil || gerr != nil || info.Metadata["m"] != "1" || len(info.Metadata) != 1 || obj.Metadata["m"] != "1" || len(obj.Metadata) != 1 {
					t.Fatalf("Head = %+v, %v; Get = %v", info, herr, gerr)
				}
			case "meta empty", "meta missing", "meta garbage":
				if gerr != nil {
					t.Fatalf("Get: %v", gerr)
				}
				if !errors.Is(herr, seal.ErrAuth) {
					t.Fatalf("Head = %+v, %v; want ErrAuth", info, herr)
				}
			default:
				if herr == nil || gerr == nil || !errors.Is(herr, bucket.ErrUnreadable) || !errors.Is(gerr, bucket.ErrUnreadable) {
					t.Fatalf("Head err %v, Get err %v: want both unreadable", herr, gerr)
				}
			}
		})
	}
}

// Review: a Keyring reaches logs and JSON through ordinary formatting
// (slog attributes, %#v, json.Marshal of a config struct that holds it).
// None of them should write a secret; today its MarshalJSON does, so
// slog's JSON handler (and any json.Marshal of options) prints every
// secret, and %#v prints the raw secret bytes.
func TestReviewKeyringSecretsNotFormatted(t *testing.T) {
	k := mustKey(t, "k1")
	kr := mustRing(t, k)
	b64 := base64.StdEncoding.EncodeToString(k.Secret)
	raw := fmt.Sprint(k.Secret) // e.g. [12 200 ...]
	hex := fmt.Sprintf("%x", k.Secret)
	goSyntax := strings.TrimPrefix(fmt.Sprintf("%#v", k.Secret), "[]byte") // {0xe0, 0x83, ...}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("open store", "keyring", kr)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("open store", "keyring", kr)
	outs := map[string]string{
		"%v":          fmt.Sprintf("%v", kr),
		"%+v":         fmt.Sprintf("%+v", kr),
		"%#v":         fmt.Sprintf("%#v", kr),
		"slog json":   jsonLog.String(),
		"slog text":   textLog.String(),
		"%+v options": fmt.Sprintf("%+v", struct{ Keyring *seal.Keyring }{kr}),
	}
	for name, out := range outs {
		if strings.Contains(out, b64) || strings.Contains(out, strings.Trim(raw, "[]")) || strings.Contains(out, hex) || strings.Contains(out, strings.Trim(goSyntax, "{}")) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
	}
}
