// Package buckettest is the conformance suite of bucket.Bucket. Every
// implementation runs it from its own tests, in a few lines:
//
//	func TestConformance(t *testing.T) {
//		buckettest.Run(t, func(t *testing.T) bucket.Bucket { return bucket.NewMem() })
//	}
//
// The suite checks what a caller of the interface can observe, as S3
// behaves: missing keys, conditional writes and their atomicity under
// concurrent writers, revalidation, size bounds, validation, listing order
// and paging, cancellation, and who owns the bytes. It does not check
// ETag values (they are opaque) beyond "non-empty, stable, and different
// when the body differs".
//
// RunVersioned is the suite of the optional bucket.Versioned, for buckets
// with versioning on; Unversioned checks one where it never was.
package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// Run runs the suite as subtests of t with stable names. newBucket must
// return an empty bucket, a fresh one for every subtest; it may register
// cleanups on the t it is given. Subtests do not run in parallel with each
// other, but several of them use the bucket from many goroutines.
//
// An implementation may answer a racing conditional Put with
// bucket.ErrBusy; the suite then retries that Put, as a caller would,
// and still expects exactly one winner.
func Run(t *testing.T, newBucket func(t *testing.T) bucket.Bucket) {
	RunWith(t, newBucket, nil)
}

// Options relax the suite for buckets that wrap another. Nil means none.
type Options struct {
	// StoredSizesListed: List's (and ListVersions') Info.Size is the size
	// of the object as the wrapped bucket stores it, not the body's (a
	// sealed bucket, package seal); Get's and Head's are still checked.
	StoredSizesListed bool
}

// listedSizesExact is false while a suite with StoredSizesListed runs.
// The suites' subtests never run in parallel.
var listedSizesExact = true

// RunWith is Run with opts.
func RunWith(t *testing.T, newBucket func(t *testing.T) bucket.Bucket, opts *Options) {
	if opts != nil && opts.StoredSizesListed {
		listedSizesExact = false
		defer func() { listedSizesExact = true }()
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b bucket.Bucket)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Metadata", testMetadata},
		{"MetadataReplaced", testMetadataReplaced},
		{"MetadataAtLimit", testMetadataAtLimit},
		{"Overwrite", testOverwrite},
		{"Head", testHead},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"IfNoneMatchCreate", testIfNoneMatchCreate},
		{"IfNoneMatchExisting", testIfNoneMatchExisting},
		{"IfNoneMatchAfterDelete", testIfNoneMatchAfterDelete},
		{"IfMatchCurrent", testIfMatchCurrent},
		{"IfMatchStale", testIfMatchStale},
		{"IfMatchMissing", testIfMatchMissing},
		{"GetIfNoneMatch", testGetIfNoneMatch},
		{"MaxSize", testMaxSize},
		{"InvalidKey", testInvalidKey},
		{"InvalidPutOptions", testInvalidPutOptions},
		{"KeyCharacters", testKeyCharacters},
		{"LongKey", testLongKey},
		{"ListOrder", testListOrder},
		{"ListPrefix", testListPrefix},
		{"ListStartAfter", testListStartAfter},
		{"ListLimit", testListLimit},
		{"ListPaging", testListPaging},
		{"ListInfo", testListInfo},
		{"EmptyBody", testEmptyBody},
		{"LargeBody", testLargeBody},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentCAS", testConcurrentCAS},
		{"CanceledContext", testCanceledContext},
		{"BodyOwnership", testBodyOwnership},
		{"MetadataOwnership", testMetadataOwnership},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBucket(t))
		})
	}
}

// Keys shaped like the store's.
const (
	runKey  = "prefix/runs/0190c6a2-7b7e-7c3a-9f1e-2d6b8e4a5c10"
	runKey2 = "prefix/runs/0190c6a2-7b7e-7c3a-9f1e-2d6b8e4a5c11"
	logKey  = "prefix/index/log/00000000000000000042"
	headKey = "prefix/index/head"
)

func logKeyN(n int) string { return fmt.Sprintf("prefix/index/log/%020d", n) }

// --- helpers ---

func put(t *testing.T, b bucket.Bucket, key string, body []byte, opts *bucket.PutOptions) string {
	t.Helper()
	etag, err := b.Put(t.Context(), key, body, opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if etag == "" {
		t.Fatalf("Put(%q) returned an empty ETag", key)
	}
	return etag
}

func get(t *testing.T, b bucket.Bucket, key string, opts *bucket.GetOptions) *bucket.Object {
	t.Helper()
	obj, err := b.Get(t.Context(), key, opts)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return obj
}

func head(t *testing.T, b bucket.Bucket, key string) *bucket.Info {
	t.Helper()
	info, err := b.Head(t.Context(), key)
	if err != nil {
		t.Fatalf("Head(%q): %v", key, err)
	}
	return info
}

func list(t *testing.T, b bucket.Bucket, prefix, startAfter string, limit int) ([]bucket.Info, bool) {
	t.Helper()
	infos, more, err := b.List(t.Context(), prefix, startAfter, limit)
	if err != nil {
		t.Fatalf("List(%q, %q, %d): %v", prefix, startAfter, limit, err)
	}
	return infos, more
}

func keysOf(infos []bucket.Info) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

// listAll pages through everything under prefix with the given limit.
func listAll(t *testing.T, b bucket.Bucket, prefix string, limit int) []string {
	t.Helper()
	var keys []string
	after := ""
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatalf("List(%q) does not end", prefix)
		}
		infos, more := list(t, b, prefix, after, limit)
		keys = append(keys, keysOf(infos)...)
		if !more {
			return keys
		}
		if len(infos) == 0 {
			t.Fatalf("List(%q, %q) returned no keys but more", prefix, after)
		}
		after = infos[len(infos)-1].Key
	}
}

// wantErr checks that err is sentinel, inside a *bucket.Error for op and key.
func wantErr(t *testing.T, err, sentinel error, op, key string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s %q: got error %v, want %v", op, key, err, sentinel)
	}
	var be *bucket.Error
	if !errors.As(err, &be) {
		t.Fatalf("%s %q: error %v (%T) is not a *bucket.Error", op, key, err, err)
	}
	if be.Op != op || be.Key != key {
		t.Errorf("%s %q: *bucket.Error has Op %q, Key %q", op, key, be.Op, be.Key)
	}
}

// wantAbsent checks that key is not stored.
func wantAbsent(t *testing.T, b bucket.Bucket, key string) {
	t.Helper()
	_, err := b.Head(t.Context(), key)
	if !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("Head(%q) = %v, want ErrNotFound", key, err)
	}
}

// wantBody checks that key holds body.
func wantBody(t *testing.T, b bucket.Bucket, key string, body []byte) *bucket.Object {
	t.Helper()
	obj := get(t, b, key, nil)
	if !bytes.Equal(obj.Body, body) {
		t.Fatalf("Get(%q) body = %.40q (%d bytes), want %.40q (%d bytes)", key, obj.Body, len(obj.Body), body, len(body))
	}
	return obj
}

func wantMeta(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%s metadata = %v, want %v", what, got, want)
	}
}

func wantEmptyBucket(t *testing.T, b bucket.Bucket) {
	t.Helper()
	if infos, _ := list(t, b, "", "", 0); len(infos) != 0 {
		t.Fatalf("bucket holds %q, want nothing", keysOf(infos))
	}
}

// putAll stores every key (body: the key) from a few goroutines, since a
// remote bucket takes a round trip per Put.
func putAll(t *testing.T, b bucket.Bucket, keys []string) {
	t.Helper()
	ctx := t.Context()
	work := make(chan string)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if _, err := b.Put(ctx, k, []byte(k), nil); err != nil {
					select {
					case errc <- fmt.Errorf("Put(%q): %w", k, err):
					default:
					}
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// --- tests ---

func testGetMissing(t *testing.T, b bucket.Bucket) {
	_, err := b.Get(t.Context(), runKey, nil)
	wantErr(t, err, bucket.ErrNotFound, "get", runKey)
	_, err = b.Get(t.Context(), runKey, &bucket.GetOptions{IfNoneMatch: `"0123"`, MaxSize: 1})
	wantErr(t, err, bucket.ErrNotFound, "get", runKey)
	_, err = b.Head(t.Context(), runKey)
	wantErr(t, err, bucket.ErrNotFound, "head", runKey)

	// A key that is only a prefix of stored keys is missing too.
	put(t, b, runKey, []byte("x"), nil)
	_, err = b.Get(t.Context(), "prefix/runs", nil)
	wantErr(t, err, bucket.ErrNotFound, "get", "prefix/runs")
}

func testPutGet(t *testing.T, b bucket.Bucket) {
	body := []byte(`{"run":"0190c6a2","step":3}`)
	before := time.Now()
	etag := put(t, b, runKey, body, nil)
	obj := wantBody(t, b, runKey, body)
	if obj.Key != runKey || obj.ETag != etag || obj.Size != int64(len(body)) {
		t.Fatalf("Get Info = {Key %q ETag %q Size %d}, want {%q %q %d}", obj.Key, obj.ETag, obj.Size, runKey, etag, len(body))
	}
	if obj.LastModified.IsZero() {
		t.Fatal("Get: LastModified is zero")
	}
	// A remote clock may be off a little, and S3 keeps whole seconds.
	if d := obj.LastModified.Sub(before); d < -time.Hour || d > time.Hour {
		t.Errorf("LastModified %v is far from now (%v)", obj.LastModified, before)
	}
	// A second Get gives the same.
	if again := wantBody(t, b, runKey, body); again.ETag != etag {
		t.Fatalf("second Get ETag = %q, want %q", again.ETag, etag)
	}
}

func testMetadata(t *testing.T, b bucket.Bucket) {
	md := map[string]string{
		"workflow": "order%2Fshipping",
		"ts":       "2026-11-25T19:39:35.123456789Z",
		"codec":    "zstd",
		"size":     "123",
		"note":     "two words, and punctuation: !#$&'()*+,/;=?@[]~",
		"empty":    "",
		"x-dash-9": "v",
	}
	etag := put(t, b, runKey, []byte("body"), &bucket.PutOptions{Metadata: md})
	obj := get(t, b, runKey, nil)
	wantMeta(t, "Get", obj.Metadata, md)
	info := head(t, b, runKey)
	wantMeta(t, "Head", info.Metadata, md)
	if info.ETag != etag {
		t.Fatalf("Head ETag = %q, want %q", info.ETag, etag)
	}
}

func testMetadataReplaced(t *testing.T, b bucket.Bucket) {
	put(t, b, runKey, []byte("v1"), &bucket.PutOptions{Metadata: map[string]string{"a": "1", "b": "2"}})
	put(t, b, runKey, []byte("v2"), &bucket.PutOptions{Metadata: map[string]string{"c": "3"}})
	wantMeta(t, "Head after replacing", head(t, b, runKey).Metadata, map[string]string{"c": "3"})
	put(t, b, runKey, []byte("v3"), nil)
	wantMeta(t, "Head after a Put without metadata", head(t, b, runKey).Metadata, nil)
}

func testMetadataAtLimit(t *testing.T, b bucket.Bucket) {
	md := map[string]string{
		"workflow": strings.Repeat("w", 1000),
		"extra":    "",
	}
	md["extra"] = strings.Repeat("e", bucket.MaxMetadataSize-2*len(bucket.MetadataHeaderPrefix)-len("workflow")-1000-len("extra"))
	put(t, b, runKey, []byte("x"), &bucket.PutOptions{Metadata: md})
	wantMeta(t, "Get", get(t, b, runKey, nil).Metadata, md)
}

func testOverwrite(t *testing.T, b bucket.Bucket) {
	e1 := put(t, b, runKey, []byte("first"), nil)
	e2 := put(t, b, runKey, []byte("second"), nil)
	if e1 == e2 {
		t.Fatalf("overwriting with another body kept the ETag %q", e1)
	}
	if obj := wantBody(t, b, runKey, []byte("second")); obj.ETag != e2 {
		t.Fatalf("Get ETag = %q, want %q", obj.ETag, e2)
	}
	if infos, _ := list(t, b, "", "", 0); len(infos) != 1 {
		t.Fatalf("List after overwrite = %q, want one key", keysOf(infos))
	}
}

func testHead(t *testing.T, b bucket.Bucket) {
	md := map[string]string{"workflow": "w"}
	body := []byte("twelve bytes")
	etag := put(t, b, runKey, body, &bucket.PutOptions{Metadata: md})
	info := head(t, b, runKey)
	obj := get(t, b, runKey, nil)
	if info.Key != runKey || info.ETag != etag || info.Size != int64(len(body)) || info.LastModified.IsZero() {
		t.Fatalf("Head = {Key %q ETag %q Size %d LastModified %v}, want {%q %q %d non-zero}",
			info.Key, info.ETag, info.Size, info.LastModified, runKey, etag, len(body))
	}
	if !info.LastModified.Equal(obj.LastModified) {
		t.Fatalf("Head LastModified %v, Get %v", info.LastModified, obj.LastModified)
	}
	wantMeta(t, "Head", info.Metadata, md)
}

func testDelete(t *testing.T, b bucket.Bucket) {
	put(t, b, runKey, []byte("a"), nil)
	put(t, b, runKey2, []byte("b"), nil)
	if err := b.Delete(t.Context(), runKey); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := b.Get(t.Context(), runKey, nil)
	wantErr(t, err, bucket.ErrNotFound, "get", runKey)
	wantAbsent(t, b, runKey)
	if infos, _ := list(t, b, "", "", 0); !slices.Equal(keysOf(infos), []string{runKey2}) {
		t.Fatalf("List after Delete = %q, want [%q]", keysOf(infos), runKey2)
	}
	wantBody(t, b, runKey2, []byte("b"))
	// Deleting again is not an error.
	if err := b.Delete(t.Context(), runKey); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func testDeleteMissing(t *testing.T, b bucket.Bucket) {
	if err := b.Delete(t.Context(), runKey); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	wantEmptyBucket(t, b)
}

func testIfNoneMatchCreate(t *testing.T, b bucket.Bucket) {
	etag := put(t, b, logKey, []byte("batch"), &bucket.PutOptions{IfNoneMatch: "*"})
	if info := head(t, b, logKey); info.ETag != etag {
		t.Fatalf("Head ETag = %q, want the created %q", info.ETag, etag)
	}
	wantBody(t, b, logKey, []byte("batch"))
}

func testIfNoneMatchExisting(t *testing.T, b bucket.Bucket) {
	etag := put(t, b, logKey, []byte("mine"), nil)
	_, err := b.Put(t.Context(), logKey, []byte("theirs"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantErr(t, err, bucket.ErrPrecondition, "put", logKey)
	// Even with the same body.
	_, err = b.Put(t.Context(), logKey, []byte("mine"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantErr(t, err, bucket.ErrPrecondition, "put", logKey)
	if obj := wantBody(t, b, logKey, []byte("mine")); obj.ETag != etag {
		t.Fatalf("ETag changed by a failed Put: %q, want %q", obj.ETag, etag)
	}
}

func testIfNoneMatchAfterDelete(t *testing.T, b bucket.Bucket) {
	put(t, b, logKey, []byte("one"), &bucket.PutOptions{IfNoneMatch: "*"})
	if err := b.Delete(t.Context(), logKey); err != nil {
		t.Fatal(err)
	}
	put(t, b, logKey, []byte("two"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantBody(t, b, logKey, []byte("two"))
}

func testIfMatchCurrent(t *testing.T, b bucket.Bucket) {
	e1 := put(t, b, headKey, []byte("snap 1"), nil)
	e2 := put(t, b, headKey, []byte("snap 2"), &bucket.PutOptions{IfMatch: e1})
	if e2 == e1 {
		t.Fatalf("IfMatch Put of another body kept the ETag %q", e1)
	}
	if obj := wantBody(t, b, headKey, []byte("snap 2")); obj.ETag != e2 {
		t.Fatalf("Get ETag = %q, want %q", obj.ETag, e2)
	}
	e3 := put(t, b, headKey, []byte("snap 3"), &bucket.PutOptions{IfMatch: e2})
	if head(t, b, headKey).ETag != e3 {
		t.Fatal("Head ETag is not the one the last Put returned")
	}
}

func testIfMatchStale(t *testing.T, b bucket.Bucket) {
	e1 := put(t, b, headKey, []byte("snap 1"), nil)
	e2 := put(t, b, headKey, []byte("snap 2"), nil)
	_, err := b.Put(t.Context(), headKey, []byte("snap 3"), &bucket.PutOptions{IfMatch: e1})
	wantErr(t, err, bucket.ErrPrecondition, "put", headKey)
	if obj := wantBody(t, b, headKey, []byte("snap 2")); obj.ETag != e2 {
		t.Fatalf("ETag changed by a failed Put: %q, want %q", obj.ETag, e2)
	}
}

func testIfMatchMissing(t *testing.T, b bucket.Bucket) {
	_, err := b.Put(t.Context(), headKey, []byte("x"), &bucket.PutOptions{IfMatch: `"9e107d9d372bb6826bd81d3542a419d6"`})
	wantErr(t, err, bucket.ErrPrecondition, "put", headKey)
	wantAbsent(t, b, headKey)

	// The ETag of a deleted object no longer matches anything.
	etag := put(t, b, headKey, []byte("x"), nil)
	if err := b.Delete(t.Context(), headKey); err != nil {
		t.Fatal(err)
	}
	_, err = b.Put(t.Context(), headKey, []byte("x"), &bucket.PutOptions{IfMatch: etag})
	wantErr(t, err, bucket.ErrPrecondition, "put", headKey)
	wantAbsent(t, b, headKey)
}

func testGetIfNoneMatch(t *testing.T, b bucket.Bucket) {
	e1 := put(t, b, runKey, []byte("v1"), nil)
	obj, err := b.Get(t.Context(), runKey, &bucket.GetOptions{IfNoneMatch: e1})
	wantErr(t, err, bucket.ErrNotModified, "get", runKey)
	if obj != nil {
		t.Fatal("Get with ErrNotModified returned an object")
	}
	e2 := put(t, b, runKey, []byte("v2"), nil)
	obj = get(t, b, runKey, &bucket.GetOptions{IfNoneMatch: e1})
	if string(obj.Body) != "v2" || obj.ETag != e2 {
		t.Fatalf("Get with a stale IfNoneMatch = %q %q, want %q %q", obj.Body, obj.ETag, "v2", e2)
	}
}

func testMaxSize(t *testing.T, b bucket.Bucket) {
	body := randomBytes(100, 1)
	put(t, b, runKey, body, nil)
	for _, max := range []int64{0, -1, 100, 101, 1 << 30} {
		obj := get(t, b, runKey, &bucket.GetOptions{MaxSize: max})
		if !bytes.Equal(obj.Body, body) {
			t.Fatalf("Get with MaxSize %d: wrong body", max)
		}
	}
	for _, max := range []int64{99, 1} {
		obj, err := b.Get(t.Context(), runKey, &bucket.GetOptions{MaxSize: max})
		wantErr(t, err, bucket.ErrTooLarge, "get", runKey)
		if obj != nil {
			t.Fatalf("Get with MaxSize %d returned an object with ErrTooLarge", max)
		}
	}
}

var invalidKeys = []string{
	"",
	"/prefix/runs/x",
	"prefix//runs",
	"prefix/runs/",
	"prefix/./runs",
	"prefix/../runs",
	".",
	"..",
	"prefix/a b",
	"prefix/a\\b",
	"prefix/\x00",
	"prefix/tab\there",
	"prefix/\x7f",
	"prefix/caf\u00e9",
	strings.Repeat("k", 1025),
}

func testInvalidKey(t *testing.T, b bucket.Bucket) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		_, err := b.Put(ctx, key, []byte("x"), nil)
		wantErr(t, err, bucket.ErrInvalid, "put", key)
		_, err = b.Put(ctx, key, []byte("x"), &bucket.PutOptions{IfNoneMatch: "*"})
		wantErr(t, err, bucket.ErrInvalid, "put", key)
		_, err = b.Get(ctx, key, nil)
		wantErr(t, err, bucket.ErrInvalid, "get", key)
		_, err = b.Head(ctx, key)
		wantErr(t, err, bucket.ErrInvalid, "head", key)
		err = b.Delete(ctx, key)
		wantErr(t, err, bucket.ErrInvalid, "delete", key)
	}
	wantEmptyBucket(t, b)
}

func testInvalidPutOptions(t *testing.T, b bucket.Bucket) {
	cases := []struct {
		name string
		opts bucket.PutOptions
	}{
		{"IfNoneMatchETag", bucket.PutOptions{IfNoneMatch: `"abc"`}},
		{"IfMatchAndIfNoneMatch", bucket.PutOptions{IfMatch: `"abc"`, IfNoneMatch: "*"}},
		{"UpperCaseKey", bucket.PutOptions{Metadata: map[string]string{"Workflow": "w"}}},
		{"UnderscoreKey", bucket.PutOptions{Metadata: map[string]string{"work_flow": "w"}}},
		{"EmptyKey", bucket.PutOptions{Metadata: map[string]string{"": "w"}}},
		{"NonASCIIValue", bucket.PutOptions{Metadata: map[string]string{"workflow": "caf\u00e9"}}},
		{"NewlineValue", bucket.PutOptions{Metadata: map[string]string{"workflow": "a\nb"}}},
		{"DELValue", bucket.PutOptions{Metadata: map[string]string{"workflow": "a\x7f"}}},
		{"TooBig", bucket.PutOptions{Metadata: map[string]string{
			"workflow": strings.Repeat("w", bucket.MaxMetadataSize-len(bucket.MetadataHeaderPrefix)-len("workflow")+1),
		}}},
	}
	for _, tc := range cases {
		_, err := b.Put(t.Context(), runKey, []byte("x"), &tc.opts)
		if !errors.Is(err, bucket.ErrInvalid) {
			t.Errorf("%s: Put = %v, want ErrInvalid", tc.name, err)
			continue
		}
		wantErr(t, err, bucket.ErrInvalid, "put", runKey)
	}
	wantEmptyBucket(t, b)

	// A refused Put leaves an existing object alone.
	put(t, b, runKey, []byte("kept"), nil)
	_, err := b.Put(t.Context(), runKey, []byte("lost"), &bucket.PutOptions{Metadata: map[string]string{"Bad": "x"}})
	wantErr(t, err, bucket.ErrInvalid, "put", runKey)
	wantBody(t, b, runKey, []byte("kept"))
}

// keyCharacters are valid keys that a bucket built on a filesystem could
// mix up: case, dot files, escapes, names like temporary files.
var keyCharacters = []string{
	"prefix/Run",
	"prefix/run",
	"prefix/RUN",
	"prefix/.hidden",
	"prefix/.tmp/x",
	".tmp/x",
	".cairn-tmp/x",
	".cairn-lock",
	"prefix/x.obj",
	"prefix/y.obj/z",
	"prefix/x",
	"prefix/%41",
	"prefix/A",
	"prefix/^a",
	"prefix/%",
	"prefix/..x",
	"prefix/x..",
	"prefix/...",
	"prefix/-",
	"prefix/_",
	"prefix/~",
	"prefix/!$&'()*+,;=:@[]{}|<>\"`",
	"prefix/q?x#y",
}

func testKeyCharacters(t *testing.T, b bucket.Bucket) {
	for i, key := range keyCharacters {
		put(t, b, key, []byte(strconv.Itoa(i)), nil)
	}
	for i, key := range keyCharacters {
		obj := wantBody(t, b, key, []byte(strconv.Itoa(i)))
		if obj.Key != key {
			t.Fatalf("Get(%q).Key = %q", key, obj.Key)
		}
	}
	want := slices.Clone(keyCharacters)
	slices.Sort(want)
	if got := listAll(t, b, "", 0); !slices.Equal(got, want) {
		t.Fatalf("List = %q\nwant %q", got, want)
	}
	for _, key := range keyCharacters {
		if err := b.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
	}
	wantEmptyBucket(t, b)
}

// KeyAndChildren checks a capability beyond the Bucket contract, which
// the in-memory and directory buckets have and MinIO lacks: a key and keys
// below it ("a" and "a/b") stored and listed together.
func KeyAndChildren(t *testing.T, b bucket.Bucket) {
	parent, child, grandchild := "prefix/a", "prefix/a/b", "prefix/a/b/c"
	put(t, b, child, []byte("child"), nil)
	put(t, b, parent, []byte("parent"), nil)
	put(t, b, grandchild, []byte("grandchild"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantBody(t, b, parent, []byte("parent"))
	wantBody(t, b, child, []byte("child"))
	if got := listAll(t, b, "", 0); !slices.Equal(got, []string{parent, child, grandchild}) {
		t.Fatalf("List = %q", got)
	}
	if err := b.Delete(t.Context(), child); err != nil {
		t.Fatal(err)
	}
	wantBody(t, b, grandchild, []byte("grandchild"))
	if err := b.Delete(t.Context(), parent); err != nil {
		t.Fatal(err)
	}
	wantBody(t, b, grandchild, []byte("grandchild"))
	if err := b.Delete(t.Context(), grandchild); err != nil {
		t.Fatal(err)
	}
	wantEmptyBucket(t, b)
	put(t, b, child, []byte("again"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantBody(t, b, child, []byte("again"))
}

func testLongKey(t *testing.T, b bucket.Bucket) {
	// 1024 bytes, the longest valid key, in segments of 64.
	seg := strings.Repeat("s", 63)
	key := strings.Repeat(seg+"/", 16)
	key = key[:len(key)-1] + "x"
	if len(key) != 1024 {
		t.Fatalf("test key of %d bytes", len(key))
	}
	put(t, b, key, []byte("long"), nil)
	wantBody(t, b, key, []byte("long"))
	if got := listAll(t, b, "", 0); !slices.Equal(got, []string{key}) {
		t.Fatalf("List = %q", got)
	}
}

// orderKeys sort differently byte-wise than segment-wise ('-' and '.' sort
// before '/', '0' after) and differ only in case.
// No key is another's prefix followed by '/' (see bucket.Bucket).
var orderKeys = []string{
	"a-b", "a.b", "a/b-c", "a/b0", "a/b/c/d", "a/c", "a0", "aB", "ab",
	"B", "b", "b.", "z~", "Z",
}

func testListOrder(t *testing.T, b bucket.Bucket) {
	keys := orderKeys
	shuffled := slices.Clone(keys)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		put(t, b, k, []byte(k), nil)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got, _ := list(t, b, "", "", 0); !slices.Equal(keysOf(got), want) {
		t.Fatalf("List = %q\nwant %q", keysOf(got), want)
	}
	// The same order a page at a time, and from every starting point.
	if got := listAll(t, b, "", 1); !slices.Equal(got, want) {
		t.Fatalf("List one at a time = %q\nwant %q", got, want)
	}
	for i, after := range want {
		if got, _ := list(t, b, "", after, 0); !slices.Equal(keysOf(got), want[i+1:]) {
			t.Fatalf("List after %q = %q\nwant %q", after, keysOf(got), want[i+1:])
		}
	}
	// Prefixes that cut a segment.
	for _, prefix := range []string{"a", "a/", "a/b", "a/b/", "a.", "b", "c"} {
		var wantP []string
		for _, k := range want {
			if strings.HasPrefix(k, prefix) {
				wantP = append(wantP, k)
			}
		}
		if got, _ := list(t, b, prefix, "", 0); !slices.Equal(keysOf(got), wantP) {
			t.Fatalf("List(%q) = %q\nwant %q", prefix, keysOf(got), wantP)
		}
	}
}

func testListPrefix(t *testing.T, b bucket.Bucket) {
	runs := []string{runKey, runKey2}
	logs := []string{logKeyN(1), logKeyN(2), logKeyN(3)}
	others := []string{headKey, "prefix/runsx", "prefix2/runs/x", "other/runs/x"}
	putAll(t, b, slices.Concat(runs, logs, others))

	cases := []struct {
		prefix string
		want   []string
	}{
		{"prefix/runs/", runs},
		{"prefix/index/log/", logs},
		{"prefix/runs", append(slices.Clone(runs), "prefix/runsx")},
		{"prefix/index/", append([]string{headKey}, logs...)}, // "head" sorts before "log/
		{runKey, []string{runKey}},
		{"prefix/runs/0190c6a2-7b7e-7c3a-9f1e-2d6b8e4a5c1", runs},
		{"nothing/", nil},
		{"prefix/runs/z", nil},
		{"", slices.Sorted(slices.Values(slices.Concat(runs, logs, others)))},
	}
	for _, tc := range cases {
		got, more := list(t, b, tc.prefix, "", 0)
		if !slices.Equal(keysOf(got), tc.want) || more {
			t.Errorf("List(%q) = %q, more %v; want %q", tc.prefix, keysOf(got), more, tc.want)
		}
	}
}

func testListStartAfter(t *testing.T, b bucket.Bucket) {
	var logs []string
	for n := 40; n <= 45; n++ {
		logs = append(logs, logKeyN(n))
	}
	putAll(t, b, append(slices.Clone(logs), runKey, "prefix/index/logz"))
	const p = "prefix/index/log/"
	cases := []struct {
		after string
		want  []string
	}{
		{logKeyN(42), logs[3:]},       // the tail after a known log
		{logKeyN(40) + "-", logs[1:]}, // between two keys
		{"", logs},
		{"a", logs},                        // before the prefix
		{"prefix/index/log", logs},         // the prefix without its slash
		{p, logs},                          // the prefix itself
		{logKeyN(45), nil},                 // the last key
		{logKeyN(99), nil},                 // after every key
		{"prefix/index/logz", nil},         // after the prefix
		{"prefix/index/log/0000000", logs}, // a prefix of every key
	}
	for _, tc := range cases {
		got, more := list(t, b, p, tc.after, 0)
		if !slices.Equal(keysOf(got), tc.want) || more {
			t.Errorf("List(%q, after %q) = %q, more %v; want %q", p, tc.after, keysOf(got), more, tc.want)
		}
	}
}

func testListLimit(t *testing.T, b bucket.Bucket) {
	var keys []string
	for n := range 5 {
		keys = append(keys, logKeyN(n))
	}
	putAll(t, b, keys)
	cases := []struct {
		limit int
		want  []string
		more  bool
	}{
		{1, keys[:1], true},
		{2, keys[:2], true},
		{4, keys[:4], true},
		{5, keys, false},
		{6, keys, false},
		{0, keys, false},
		{1000, keys, false},
		{5000, keys, false},
	}
	for _, tc := range cases {
		got, more := list(t, b, "prefix/", "", tc.limit)
		if !slices.Equal(keysOf(got), tc.want) || more != tc.more {
			t.Errorf("List(limit %d) = %q, more %v; want %q, more %v", tc.limit, keysOf(got), more, tc.want, tc.more)
		}
	}
	got, more := list(t, b, "prefix/", keys[1], 2)
	if !slices.Equal(keysOf(got), keys[2:4]) || !more {
		t.Errorf("List(after %q, limit 2) = %q, more %v", keys[1], keysOf(got), more)
	}
	got, more = list(t, b, "prefix/", keys[2], 2)
	if !slices.Equal(keysOf(got), keys[3:]) || more {
		t.Errorf("List(after %q, limit 2) = %q, more %v", keys[2], keysOf(got), more)
	}
}

func testListPaging(t *testing.T, b bucket.Bucket) {
	const n = 2500
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("prefix/runs/%08x-run", uint32(i)*2654435761) // not in creation order
	}
	putAll(t, b, keys)
	slices.Sort(keys)

	// Pages of 1000, and the limits that mean 1000.
	for _, limit := range []int{1000, 0, 5000} {
		var got []string
		after := ""
		var sizes []int
		var mores []bool
		for range 10 {
			infos, more := list(t, b, "prefix/runs/", after, limit)
			sizes = append(sizes, len(infos))
			mores = append(mores, more)
			got = append(got, keysOf(infos)...)
			if !more {
				break
			}
			after = infos[len(infos)-1].Key
		}
		if !slices.Equal(sizes, []int{1000, 1000, 500}) || !slices.Equal(mores, []bool{true, true, false}) {
			t.Errorf("limit %d: pages of %v, more %v; want [1000 1000 500], [true true false]", limit, sizes, mores)
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("limit %d: paging returned %d keys, not each of the %d once in order", limit, len(got), n)
		}
	}
	// Small pages too.
	if got := listAll(t, b, "prefix/runs/", 333); !slices.Equal(got, keys) {
		t.Fatalf("pages of 333 returned %d keys, not each of the %d once in order", len(got), n)
	}
}

func testListInfo(t *testing.T, b bucket.Bucket) {
	md := map[string]string{"workflow": "w", "size": "5"}
	e1 := put(t, b, runKey, []byte("hello"), &bucket.PutOptions{Metadata: md})
	e2 := put(t, b, runKey2, []byte(""), &bucket.PutOptions{Metadata: md})
	infos, _ := list(t, b, "prefix/runs/", "", 0)
	if len(infos) != 2 {
		t.Fatalf("List = %q", keysOf(infos))
	}
	for i, want := range []struct {
		key  string
		etag string
		size int64
	}{{runKey, e1, 5}, {runKey2, e2, 0}} {
		got := infos[i]
		if got.Key != want.key || got.ETag != want.etag || (listedSizesExact && got.Size != want.size) {
			t.Errorf("List[%d] = {%q %q %d}, want {%q %q %d}", i, got.Key, got.ETag, got.Size, want.key, want.etag, want.size)
		}
		if got.Metadata != nil {
			t.Errorf("List[%d].Metadata = %v, want nil", i, got.Metadata)
		}
		if got.LastModified.IsZero() {
			t.Errorf("List[%d].LastModified is zero", i)
		}
		// To the second: S3 lists whole seconds, and its HEAD too.
		if h := head(t, b, want.key); h.LastModified.Truncate(time.Second) != got.LastModified.Truncate(time.Second) {
			t.Errorf("List[%d].LastModified %v, Head %v", i, got.LastModified, h.LastModified)
		}
	}
}

func testEmptyBody(t *testing.T, b bucket.Bucket) {
	for i, body := range [][]byte{nil, {}} {
		key := logKeyN(i)
		etag := put(t, b, key, body, &bucket.PutOptions{IfNoneMatch: "*"})
		obj := get(t, b, key, nil)
		if len(obj.Body) != 0 || obj.Size != 0 || obj.ETag != etag {
			t.Fatalf("Get of an empty object = %d bytes, Size %d, ETag %q (Put gave %q)", len(obj.Body), obj.Size, obj.ETag, etag)
		}
		if info := head(t, b, key); info.Size != 0 || info.ETag != etag {
			t.Fatalf("Head of an empty object: Size %d, ETag %q", info.Size, info.ETag)
		}
		get(t, b, key, &bucket.GetOptions{MaxSize: 1})
		_, err := b.Get(t.Context(), key, &bucket.GetOptions{IfNoneMatch: etag})
		wantErr(t, err, bucket.ErrNotModified, "get", key)
	}
	infos, _ := list(t, b, "", "", 0)
	if len(infos) != 2 || listedSizesExact && (infos[0].Size != 0 || infos[1].Size != 0) {
		t.Fatalf("List of empty objects = %+v", infos)
	}
}

func testLargeBody(t *testing.T, b bucket.Bucket) {
	const size = 5 << 20
	body := randomBytes(size, 5)
	etag := put(t, b, runKey, body, nil)
	obj := wantBody(t, b, runKey, body)
	if obj.Size != size || obj.ETag != etag {
		t.Fatalf("Get: Size %d, ETag %q; want %d, %q", obj.Size, obj.ETag, size, etag)
	}
	if info := head(t, b, runKey); info.Size != size {
		t.Fatalf("Head Size = %d, want %d", info.Size, size)
	}
	get(t, b, runKey, &bucket.GetOptions{MaxSize: size})
	_, err := b.Get(t.Context(), runKey, &bucket.GetOptions{MaxSize: size - 1})
	wantErr(t, err, bucket.ErrTooLarge, "get", runKey)
	// One byte changed is another ETag.
	body[size/2] ^= 1
	if e2 := put(t, b, runKey, body, nil); e2 == etag {
		t.Fatal("a body one bit different got the same ETag")
	}
}

// retryConflict runs put until it gives an answer other than ErrBusy.
func retryConflict(ctx context.Context, put func() (string, error)) (string, error) {
	for {
		etag, err := put()
		if !errors.Is(err, bucket.ErrBusy) {
			return etag, err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(time.Millisecond):
		}
	}
}

func testConcurrentCreate(t *testing.T, b bucket.Bucket) {
	const writers = 16
	ctx := t.Context()
	start := make(chan struct{})
	type result struct {
		etag string
		err  error
	}
	results := make([]result, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			body := []byte("writer " + strconv.Itoa(i))
			etag, err := retryConflict(ctx, func() (string, error) {
				return b.Put(ctx, logKey, body, &bucket.PutOptions{IfNoneMatch: "*"})
			})
			results[i] = result{etag, err}
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both created %q", winner, i, logKey)
			}
			winner = i
		case errors.Is(r.err, bucket.ErrPrecondition):
		default:
			t.Fatalf("writer %d: %v", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the key")
	}
	obj := wantBody(t, b, logKey, []byte("writer "+strconv.Itoa(winner)))
	if obj.ETag != results[winner].etag {
		t.Fatalf("stored ETag %q, the winner's Put returned %q", obj.ETag, results[winner].etag)
	}
}

// Increment is the read-modify-write loop the suite's CAS test runs: it
// adds one to the decimal counter at key with an IfMatch Put, re-reading
// after each lost race (ErrPrecondition) and retrying after ErrBusy.
// Tests of implementations use it to race several buckets (or processes)
// sharing storage.
func Increment(ctx context.Context, b bucket.Bucket, key string) error {
	for attempt := 0; ; attempt++ {
		if attempt == 100000 {
			return fmt.Errorf("increment %q: no success in %d attempts", key, attempt)
		}
		obj, err := b.Get(ctx, key, nil)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(obj.Body))
		if err != nil {
			return fmt.Errorf("counter %q holds %q", key, obj.Body)
		}
		_, err = b.Put(ctx, key, []byte(strconv.Itoa(n+1)), &bucket.PutOptions{IfMatch: obj.ETag})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, bucket.ErrPrecondition), errors.Is(err, bucket.ErrBusy):
			continue
		default:
			return err
		}
	}
}

func testConcurrentCAS(t *testing.T, b bucket.Bucket) {
	const workers, increments = 8, 20
	ctx := t.Context()
	put(t, b, headKey, []byte("0"), &bucket.PutOptions{IfNoneMatch: "*"})
	start := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			for range increments {
				if err := Increment(ctx, b, headKey); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantBody(t, b, headKey, []byte(strconv.Itoa(workers*increments)))
}

func testCanceledContext(t *testing.T, b bucket.Bucket) {
	put(t, b, runKey2, []byte("kept"), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", what, err)
		}
	}
	_, err := b.Put(ctx, runKey, []byte("x"), nil)
	check("Put", err)
	_, err = b.Put(ctx, logKey, []byte("x"), &bucket.PutOptions{IfNoneMatch: "*"})
	check("Put IfNoneMatch", err)
	_, err = b.Get(ctx, runKey2, nil)
	check("Get", err)
	_, err = b.Head(ctx, runKey2)
	check("Head", err)
	check("Delete", b.Delete(ctx, runKey2))
	_, _, err = b.List(ctx, "", "", 0)
	check("List", err)

	wantAbsent(t, b, runKey)
	wantAbsent(t, b, logKey)
	wantBody(t, b, runKey2, []byte("kept"))
}

func testBodyOwnership(t *testing.T, b bucket.Bucket) {
	body := []byte("original")
	put(t, b, runKey, body, nil)
	copy(body, "MUTATED!")
	obj := wantBody(t, b, runKey, []byte("original"))
	copy(obj.Body, "mutated!")
	wantBody(t, b, runKey, []byte("original"))

	// Same for a conditional Put.
	body = []byte("created")
	put(t, b, logKey, body, &bucket.PutOptions{IfNoneMatch: "*"})
	copy(body, "CHANGED")
	wantBody(t, b, logKey, []byte("created"))
}

func testMetadataOwnership(t *testing.T, b bucket.Bucket) {
	md := map[string]string{"workflow": "w"}
	put(t, b, runKey, []byte("x"), &bucket.PutOptions{Metadata: md})
	md["workflow"] = "changed"
	md["added"] = "1"
	want := map[string]string{"workflow": "w"}
	obj := get(t, b, runKey, nil)
	wantMeta(t, "Get after mutating the Put's map", obj.Metadata, want)
	obj.Metadata["workflow"] = "changed by reader"
	obj.Metadata["added"] = "1"
	info := head(t, b, runKey)
	wantMeta(t, "Head after mutating Get's map", info.Metadata, want)
	info.Metadata["workflow"] = "changed by header"
	wantMeta(t, "Get after mutating Head's map", get(t, b, runKey, nil).Metadata, want)
}
