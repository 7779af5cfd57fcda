package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// VersionedBucket is a bucket with the bucket.Versioned capability, as
// the versioned suite needs it.
type VersionedBucket interface {
	bucket.Bucket
	bucket.Versioned
}

// RunVersioned runs the conformance suite of bucket.Versioned as subtests
// of t with stable names. newBucket must return an empty bucket with
// versioning on, a fresh one for every subtest. A versioned bucket is a
// bucket.Bucket too: run Run on it as well.
//
// The suite checks what S3 does with versioning enabled and a caller can
// rely on: a version per Put, delete markers, what Get, List and the
// conditions of Put see, reading and removing any version, the order and
// paging of ListVersions, validation, cancellation and ownership. It does
// not check the form of version IDs and markers (opaque), nor what Delete
// does to a key that is missing or already deleted (AWS S3 adds a delete
// marker, MinIO does not), nor what a page continues with after the
// version its markers name was removed.
func RunVersioned(t *testing.T, newBucket func(t *testing.T) VersionedBucket) {
	RunVersionedWith(t, newBucket, nil)
}

// RunVersionedWith is RunVersioned with opts.
func RunVersionedWith(t *testing.T, newBucket func(t *testing.T) VersionedBucket, opts *Options) {
	if opts != nil && opts.StoredSizesListed {
		listedSizesExact = false
		defer func() { listedSizesExact = true }()
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b VersionedBucket)
	}{
		{"Versioning", testVersioning},
		{"PutAddsVersions", testPutAddsVersions},
		{"GetVersion", testGetVersion},
		{"GetVersionMissing", testGetVersionMissing},
		{"GetVersionOptions", testGetVersionOptions},
		{"DeleteAddsMarker", testDeleteAddsMarker},
		{"DeleteVersionCurrent", testDeleteVersionCurrent},
		{"DeleteVersionNoncurrent", testDeleteVersionNoncurrent},
		{"DeleteVersionMarker", testDeleteVersionMarker},
		{"DeleteVersionMissing", testDeleteVersionMissing},
		{"DeleteVersionAll", testDeleteVersionAll},
		{"IfNoneMatchAfterMarker", testIfNoneMatchAfterMarker},
		{"IfMatchCurrentVersion", testIfMatchCurrentVersion},
		{"ListVersionsOrder", testListVersionsOrder},
		{"ListVersionsPrefix", testListVersionsPrefix},
		{"ListVersionsPaging", testListVersionsPaging},
		{"ListVersionsKeyMarker", testListVersionsKeyMarker},
		{"ListVersionsInvalid", testListVersionsInvalid},
		{"InvalidVersionArgs", testInvalidVersionArgs},
		{"ConcurrentVersions", testConcurrentVersions},
		{"VersionCanceledContext", testVersionCanceledContext},
		{"VersionOwnership", testVersionOwnership},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBucket(t))
		})
	}
}

// Unversioned checks a bucket where versioning was never on: Versioning
// reports false, and each object is its one version, bucket.NullVersion.
// b must be empty.
func Unversioned(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	on, err := b.Versioning(ctx)
	if err != nil || on {
		t.Fatalf("Versioning = %v, %v; want false", on, err)
	}
	e1 := put(t, b, runKey, []byte("one"), nil)
	put(t, b, runKey, []byte("two"), nil) // replaces the null version
	e3 := put(t, b, runKey2, []byte("three"), nil)
	vs := listVersionsAll(t, b, "prefix/", 1)
	if len(vs) != 2 || vs[0].Key != runKey || vs[1].Key != runKey2 || vs[1].ETag != e3 {
		t.Fatalf("ListVersions = %s; want one version of each key", fmtVersions(vs))
	}
	for _, v := range vs {
		if v.VersionID != bucket.NullVersion || !v.Latest || v.DeleteMarker {
			t.Fatalf("ListVersions = %s; want the current null version of each key", fmtVersions(vs))
		}
	}
	if vs[0].ETag == e1 {
		t.Fatal("the overwritten body is still listed")
	}
	obj, err := b.GetVersion(ctx, runKey, bucket.NullVersion, nil)
	if err != nil || string(obj.Body) != "two" {
		t.Fatalf("GetVersion(null) = %v; want the current body", err)
	}
	if err := b.DeleteVersion(ctx, runKey, bucket.NullVersion); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, b, runKey)
	if err := b.Delete(ctx, runKey2); err != nil {
		t.Fatal(err)
	}
	if vs := listVersionsAll(t, b, "", 0); len(vs) != 0 {
		t.Fatalf("after deleting every object, ListVersions = %s; want nothing (no delete markers)", fmtVersions(vs))
	}
}

// --- helpers ---

// listVersionsAll pages through the versions under prefix with the given
// limit, checking the pages' bounds and markers.
func listVersionsAll(t *testing.T, b bucket.Versioned, prefix string, limit int) []bucket.Version {
	t.Helper()
	var all []bucket.Version
	key, version := "", ""
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatalf("ListVersions(%q) does not end", prefix)
		}
		vs, nextKey, nextVersion, more, err := b.ListVersions(t.Context(), prefix, key, version, limit)
		if err != nil {
			t.Fatalf("ListVersions(%q, %q, %q, %d): %v", prefix, key, version, limit, err)
		}
		if n := listLimit(limit); len(vs) > n {
			t.Fatalf("ListVersions(limit %d) returned %d entries", limit, len(vs))
		}
		all = append(all, vs...)
		if !more {
			if nextKey != "" || nextVersion != "" {
				t.Fatalf("ListVersions: last page has markers %q %q", nextKey, nextVersion)
			}
			return all
		}
		if nextKey == "" {
			t.Fatalf("ListVersions(%q, %q, %q) reports more without a key marker", prefix, key, version)
		}
		if nextKey == key && nextVersion == version {
			t.Fatalf("ListVersions(%q, %q, %q) does not advance", prefix, key, version)
		}
		key, version = nextKey, nextVersion
	}
}

func listLimit(limit int) int {
	if limit <= 0 || limit > 1000 {
		return 1000
	}
	return limit
}

// versionsOf returns the versions of key, newest first.
func versionsOf(t *testing.T, b bucket.Versioned, key string) []bucket.Version {
	t.Helper()
	var out []bucket.Version
	for _, v := range listVersionsAll(t, b, key, 0) {
		if v.Key == key {
			out = append(out, v)
		}
	}
	return out
}

// fmtVersions shows versions compactly: key, marker or ETag, and * for the
// current one.
func fmtVersions(vs []bucket.Version) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, v := range vs {
		if i > 0 {
			sb.WriteString(" ")
		}
		what := v.ETag
		if v.DeleteMarker {
			what = "marker"
		}
		star := ""
		if v.Latest {
			star = "*"
		}
		fmt.Fprintf(&sb, "%s:%s@%.8s%s", v.Key, what, v.VersionID, star)
	}
	sb.WriteString("]")
	return sb.String()
}

// wantVersions checks the versions of key, newest first: each an ETag, or
// "" for a delete marker; only the first is current.
func wantVersions(t *testing.T, b bucket.Versioned, key string, etags ...string) []bucket.Version {
	t.Helper()
	vs := versionsOf(t, b, key)
	ok := len(vs) == len(etags)
	for i := 0; ok && i < len(vs); i++ {
		v := vs[i]
		ok = v.Latest == (i == 0) && v.DeleteMarker == (etags[i] == "") && v.ETag == etags[i] && v.VersionID != ""
	}
	if !ok {
		t.Fatalf("versions of %q = %s; want ETags %q (\"\" a delete marker), the first current", key, fmtVersions(vs), etags)
	}
	return vs
}

func getVersion(t *testing.T, b bucket.Versioned, key, id string, opts *bucket.GetOptions) *bucket.Object {
	t.Helper()
	obj, err := b.GetVersion(t.Context(), key, id, opts)
	if err != nil {
		t.Fatalf("GetVersion(%q, %q): %v", key, id, err)
	}
	return obj
}

func deleteVersion(t *testing.T, b bucket.Versioned, key, id string) {
	t.Helper()
	if err := b.DeleteVersion(t.Context(), key, id); err != nil {
		t.Fatalf("DeleteVersion(%q, %q): %v", key, id, err)
	}
}

// --- tests ---

func testVersioning(t *testing.T, b VersionedBucket) {
	on, err := b.Versioning(t.Context())
	if err != nil || !on {
		t.Fatalf("Versioning = %v, %v; want true", on, err)
	}
}

func testPutAddsVersions(t *testing.T, b VersionedBucket) {
	before := time.Now()
	e1 := put(t, b, runKey, []byte("v1"), nil)
	e2 := put(t, b, runKey, []byte("v2 longer"), nil)
	e3 := put(t, b, runKey, []byte("v3"), nil)
	vs := wantVersions(t, b, runKey, e3, e2, e1)
	ids := map[string]bool{}
	for i, v := range vs {
		if ids[v.VersionID] {
			t.Fatalf("version ID %q listed twice: %s", v.VersionID, fmtVersions(vs))
		}
		ids[v.VersionID] = true
		if v.Key != runKey {
			t.Fatalf("version %d has Key %q", i, v.Key)
		}
		if d := v.LastModified.Sub(before); d < -time.Hour || d > time.Hour {
			t.Fatalf("version %d: LastModified %v is far from now (%v)", i, v.LastModified, before)
		}
		if i > 0 && v.LastModified.After(vs[i-1].LastModified) {
			t.Fatalf("version %d is newer (%v) than version %d before it (%v)", i, v.LastModified, i-1, vs[i-1].LastModified)
		}
	}
	if listedSizesExact && (vs[0].Size != 2 || vs[1].Size != 9 || vs[2].Size != 2) {
		t.Fatalf("sizes %d %d %d, want 2 9 2", vs[0].Size, vs[1].Size, vs[2].Size)
	}
	wantBody(t, b, runKey, []byte("v3"))
	if infos, _ := list(t, b, "", "", 0); len(infos) != 1 || infos[0].ETag != e3 {
		t.Fatalf("List = %+v; want the current version only", infos)
	}
}

func testGetVersion(t *testing.T, b VersionedBucket) {
	bodies := [][]byte{[]byte("first"), {}, randomBytes(100000, 3)}
	metas := []map[string]string{{"n": "1"}, nil, {"n": "3", "workflow": "w"}}
	etags := make([]string, len(bodies))
	for i := range bodies {
		etags[len(bodies)-1-i] = put(t, b, runKey, bodies[i], &bucket.PutOptions{Metadata: metas[i]})
	}
	vs := wantVersions(t, b, runKey, etags...)
	for i, v := range vs {
		n := len(bodies) - 1 - i
		obj := getVersion(t, b, runKey, v.VersionID, nil)
		if !bytes.Equal(obj.Body, bodies[n]) || obj.ETag != v.ETag || obj.Size != int64(len(bodies[n])) || obj.Key != runKey {
			t.Fatalf("GetVersion of version %d: body %.20q, ETag %q, Size %d, Key %q; want %.20q %q %d %q",
				n, obj.Body, obj.ETag, obj.Size, obj.Key, bodies[n], v.ETag, len(bodies[n]), runKey)
		}
		if obj.Body == nil {
			t.Fatalf("GetVersion of an empty version: nil Body")
		}
		wantMeta(t, "GetVersion", obj.Metadata, metas[n])
		if obj.LastModified.IsZero() {
			t.Fatal("GetVersion: LastModified is zero")
		}
	}
}

func testGetVersionMissing(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	put(t, b, runKey, []byte("kept"), nil)
	put(t, b, runKey2, []byte("gone"), nil)
	gone := versionsOf(t, b, runKey2)[0].VersionID
	deleteVersion(t, b, runKey2, gone)
	_, err := b.GetVersion(ctx, runKey2, gone, nil)
	wantErr(t, err, bucket.ErrNotFound, "getversion", runKey2)

	// Another key's version ID, on a key that has versions and on one that
	// never had any.
	kept := versionsOf(t, b, runKey)[0].VersionID
	put(t, b, runKey2, []byte("again"), nil)
	_, err = b.GetVersion(ctx, runKey2, kept, nil)
	wantErr(t, err, bucket.ErrNotFound, "getversion", runKey2)
	_, err = b.GetVersion(ctx, logKey, kept, nil)
	wantErr(t, err, bucket.ErrNotFound, "getversion", logKey)

	// A delete marker has no body.
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	marker := versionsOf(t, b, runKey)[0]
	if !marker.DeleteMarker {
		t.Fatalf("after Delete, versions = %s", fmtVersions(versionsOf(t, b, runKey)))
	}
	_, err = b.GetVersion(ctx, runKey, marker.VersionID, nil)
	wantErr(t, err, bucket.ErrNotFound, "getversion", runKey)
}

func testGetVersionOptions(t *testing.T, b VersionedBucket) {
	body := randomBytes(100, 2)
	e1 := put(t, b, runKey, body, nil)
	e2 := put(t, b, runKey, []byte("current"), nil)
	old := versionsOf(t, b, runKey)[1].VersionID

	_, err := b.GetVersion(t.Context(), runKey, old, &bucket.GetOptions{IfNoneMatch: e1})
	wantErr(t, err, bucket.ErrNotModified, "getversion", runKey)
	if obj := getVersion(t, b, runKey, old, &bucket.GetOptions{IfNoneMatch: e2}); !bytes.Equal(obj.Body, body) {
		t.Fatal("GetVersion with the current ETag as IfNoneMatch: wrong body")
	}
	getVersion(t, b, runKey, old, &bucket.GetOptions{MaxSize: 100})
	_, err = b.GetVersion(t.Context(), runKey, old, &bucket.GetOptions{MaxSize: 99})
	wantErr(t, err, bucket.ErrTooLarge, "getversion", runKey)
}

func testDeleteAddsMarker(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	e1 := put(t, b, runKey, []byte("v1"), nil)
	put(t, b, runKey2, []byte("other"), nil)
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get(ctx, runKey, nil)
	wantErr(t, err, bucket.ErrNotFound, "get", runKey)
	wantAbsent(t, b, runKey)
	if infos, _ := list(t, b, "", "", 0); !slices.Equal(keysOf(infos), []string{runKey2}) {
		t.Fatalf("List after Delete = %q; want only %q", keysOf(infos), runKey2)
	}
	vs := wantVersions(t, b, runKey, "", e1)
	if m := vs[0]; m.Size != 0 || m.LastModified.IsZero() || m.LastModified.Before(vs[1].LastModified) {
		t.Fatalf("delete marker: Size %d, LastModified %v (the version before: %v)", m.Size, m.LastModified, vs[1].LastModified)
	}
	if obj := getVersion(t, b, runKey, vs[1].VersionID, nil); string(obj.Body) != "v1" {
		t.Fatalf("GetVersion of the deleted version = %q", obj.Body)
	}
	// A second Delete of the deleted key succeeds and keeps it deleted.
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, b, runKey)
	if vs := versionsOf(t, b, runKey); !vs[0].DeleteMarker || !vs[0].Latest || vs[len(vs)-1].ETag != e1 {
		t.Fatalf("after a second Delete, versions = %s", fmtVersions(vs))
	}
}

func testDeleteVersionCurrent(t *testing.T, b VersionedBucket) {
	e1 := put(t, b, runKey, []byte("v1"), &bucket.PutOptions{Metadata: map[string]string{"n": "1"}})
	e2 := put(t, b, runKey, []byte("v2"), nil)
	vs := wantVersions(t, b, runKey, e2, e1)
	deleteVersion(t, b, runKey, vs[0].VersionID)
	wantVersions(t, b, runKey, e1)
	obj := wantBody(t, b, runKey, []byte("v1"))
	if obj.ETag != e1 {
		t.Fatalf("Get ETag %q, want %q", obj.ETag, e1)
	}
	wantMeta(t, "Head of the version made current again", head(t, b, runKey).Metadata, map[string]string{"n": "1"})
	if infos, _ := list(t, b, "", "", 0); len(infos) != 1 || infos[0].ETag != e1 {
		t.Fatalf("List = %+v; want the earlier version", infos)
	}
	// Conditions see the version made current.
	_, err := b.Put(t.Context(), runKey, []byte("v3"), &bucket.PutOptions{IfMatch: e2})
	wantErr(t, err, bucket.ErrPrecondition, "put", runKey)
	put(t, b, runKey, []byte("v3"), &bucket.PutOptions{IfMatch: e1})
}

func testDeleteVersionNoncurrent(t *testing.T, b VersionedBucket) {
	e1 := put(t, b, runKey, []byte("v1"), nil)
	e2 := put(t, b, runKey, []byte("v2"), nil)
	e3 := put(t, b, runKey, []byte("v3"), nil)
	vs := wantVersions(t, b, runKey, e3, e2, e1)
	deleteVersion(t, b, runKey, vs[1].VersionID)
	wantVersions(t, b, runKey, e3, e1)
	wantBody(t, b, runKey, []byte("v3"))
	deleteVersion(t, b, runKey, vs[2].VersionID)
	wantVersions(t, b, runKey, e3)
	wantBody(t, b, runKey, []byte("v3"))
}

func testDeleteVersionMarker(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	e1 := put(t, b, runKey, []byte("v1"), nil)
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	vs := wantVersions(t, b, runKey, "", e1)
	// Removing the marker undeletes the object.
	deleteVersion(t, b, runKey, vs[0].VersionID)
	wantVersions(t, b, runKey, e1)
	wantBody(t, b, runKey, []byte("v1"))
	if infos, _ := list(t, b, "", "", 0); !slices.Equal(keysOf(infos), []string{runKey}) {
		t.Fatalf("List after removing the marker = %q", keysOf(infos))
	}
	// A noncurrent marker's removal changes nothing visible.
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	e2 := put(t, b, runKey, []byte("v2"), nil)
	vs = wantVersions(t, b, runKey, e2, "", e1)
	deleteVersion(t, b, runKey, vs[1].VersionID)
	wantVersions(t, b, runKey, e2, e1)
	wantBody(t, b, runKey, []byte("v2"))
}

func testDeleteVersionMissing(t *testing.T, b VersionedBucket) {
	put(t, b, runKey, []byte("v1"), nil)
	e2 := put(t, b, runKey, []byte("v2"), nil)
	vs := versionsOf(t, b, runKey)
	deleteVersion(t, b, runKey, vs[1].VersionID)
	// Again: it is missing now.
	deleteVersion(t, b, runKey, vs[1].VersionID)
	// Another key's version, on a key that never had any.
	deleteVersion(t, b, logKey, vs[0].VersionID)
	wantVersions(t, b, runKey, e2)
	wantAbsent(t, b, logKey)
	if vs := versionsOf(t, b, logKey); len(vs) != 0 {
		t.Fatalf("DeleteVersion of a missing version added %s", fmtVersions(vs))
	}
}

func testDeleteVersionAll(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	put(t, b, runKey, []byte("v1"), nil)
	if err := b.Delete(ctx, runKey); err != nil {
		t.Fatal(err)
	}
	put(t, b, runKey, []byte("v2"), nil)
	for _, v := range versionsOf(t, b, runKey) {
		deleteVersion(t, b, runKey, v.VersionID)
	}
	if vs := listVersionsAll(t, b, "", 0); len(vs) != 0 {
		t.Fatalf("after removing every version, ListVersions = %s", fmtVersions(vs))
	}
	wantAbsent(t, b, runKey)
	wantEmptyBucket(t, b)
	// The key can be created again.
	e := put(t, b, runKey, []byte("v3"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantVersions(t, b, runKey, e)
}

func testIfNoneMatchAfterMarker(t *testing.T, b VersionedBucket) {
	e1 := put(t, b, logKey, []byte("one"), &bucket.PutOptions{IfNoneMatch: "*"})
	_, err := b.Put(t.Context(), logKey, []byte("two"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantErr(t, err, bucket.ErrPrecondition, "put", logKey)
	if err := b.Delete(t.Context(), logKey); err != nil {
		t.Fatal(err)
	}
	// The noncurrent version does not count: the key is absent.
	e2 := put(t, b, logKey, []byte("two"), &bucket.PutOptions{IfNoneMatch: "*"})
	wantVersions(t, b, logKey, e2, "", e1)
	wantBody(t, b, logKey, []byte("two"))
}

func testIfMatchCurrentVersion(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	e1 := put(t, b, headKey, []byte("snap 1"), nil)
	e2 := put(t, b, headKey, []byte("snap 2"), nil)
	// A noncurrent version's ETag does not match.
	_, err := b.Put(ctx, headKey, []byte("snap 3"), &bucket.PutOptions{IfMatch: e1})
	wantErr(t, err, bucket.ErrPrecondition, "put", headKey)
	e3 := put(t, b, headKey, []byte("snap 3"), &bucket.PutOptions{IfMatch: e2})
	// Nor does any once the current version is a delete marker.
	if err := b.Delete(ctx, headKey); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{e1, e2, e3} {
		_, err = b.Put(ctx, headKey, []byte("snap 4"), &bucket.PutOptions{IfMatch: e})
		wantErr(t, err, bucket.ErrPrecondition, "put", headKey)
	}
	// Failed Puts add no version.
	wantVersions(t, b, headKey, "", e3, e2, e1)
}

// versionedKeys are keys with no key another's prefix followed by '/'.
var versionedKeys = []string{"a-b", "a.b", "a/b-c", "a/b0", "a0", "aB", "ab", "b", "b."}

// putVersions writes 1 to 3 versions of each key, some of them delete
// markers, interleaved across keys, and returns what ListVersions should
// list: keys ascending, newest first, as ETags ("" a delete marker).
func putVersions(t *testing.T, b VersionedBucket, keys []string, seed uint64) map[string][]string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	var writes []string
	for _, k := range keys {
		for range 1 + r.IntN(3) {
			writes = append(writes, k)
		}
	}
	r.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
	want := map[string][]string{}
	for i, k := range writes {
		// Only a key with a current object is deleted: whether Delete
		// adds a marker otherwise is left open.
		if r.IntN(3) == 0 && len(want[k]) > 0 && want[k][0] != "" {
			if err := b.Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			want[k] = append([]string{""}, want[k]...)
			continue
		}
		e := put(t, b, k, []byte(k+" "+strconv.Itoa(i)), nil)
		want[k] = append([]string{e}, want[k]...)
	}
	return want
}

// wantListing checks a listing against putVersions' expectation for the
// keys under prefix.
func wantListing(t *testing.T, what string, vs []bucket.Version, want map[string][]string, prefix string) {
	t.Helper()
	var wantS []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	}) {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		for i, e := range want[k] {
			wantS = append(wantS, fmt.Sprintf("%s:%s:%v", k, e, i == 0))
		}
	}
	var got []string
	ids := map[string]bool{}
	for _, v := range vs {
		if v.DeleteMarker != (v.ETag == "") {
			t.Fatalf("%s: %s: DeleteMarker %v with ETag %q", what, v.Key, v.DeleteMarker, v.ETag)
		}
		if ids[v.Key+"\x00"+v.VersionID] {
			t.Fatalf("%s: version %s of %q listed twice", what, v.VersionID, v.Key)
		}
		ids[v.Key+"\x00"+v.VersionID] = true
		got = append(got, fmt.Sprintf("%s:%s:%v", v.Key, v.ETag, v.Latest))
	}
	if !slices.Equal(got, wantS) {
		t.Fatalf("%s = %q\nwant %q (key:ETag:current, newest first)", what, got, wantS)
	}
}

func testListVersionsOrder(t *testing.T, b VersionedBucket) {
	want := putVersions(t, b, versionedKeys, 1)
	vs, _, _, more, err := b.ListVersions(t.Context(), "", "", "", 0)
	if err != nil || more {
		t.Fatalf("ListVersions: more %v, %v", more, err)
	}
	wantListing(t, "ListVersions", vs, want, "")
}

func testListVersionsPrefix(t *testing.T, b VersionedBucket) {
	want := putVersions(t, b, versionedKeys, 2)
	for _, prefix := range []string{"a", "a/", "a/b", "a.", "b", "c", "a/b0"} {
		wantListing(t, "ListVersions("+prefix+")", listVersionsAll(t, b, prefix, 0), want, prefix)
	}
}

func testListVersionsPaging(t *testing.T, b VersionedBucket) {
	want := putVersions(t, b, versionedKeys, 3)
	all := listVersionsAll(t, b, "", 0)
	wantListing(t, "ListVersions", all, want, "")
	for _, limit := range []int{1, 2, 3, 7, len(all) - 1, len(all), 1000, -1} {
		wantListing(t, fmt.Sprintf("ListVersions in pages of %d", limit), listVersionsAll(t, b, "", limit), want, "")
	}
	wantListing(t, "ListVersions(a) in pages of 2", listVersionsAll(t, b, "a", 2), want, "a")
}

func testListVersionsKeyMarker(t *testing.T, b VersionedBucket) {
	putVersions(t, b, versionedKeys, 4)
	all := listVersionsAll(t, b, "", 0)
	// After every version of a key, whether or not it exists.
	for _, marker := range []string{"a/b0", "a/b", "a", "ab", "b.", "z"} {
		var wantVs []bucket.Version
		for _, v := range all {
			if v.Key > marker {
				wantVs = append(wantVs, v)
			}
		}
		vs, _, _, _, err := b.ListVersions(t.Context(), "", marker, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmtVersions(vs) != fmtVersions(wantVs) {
			t.Fatalf("ListVersions after key %q = %s\nwant %s", marker, fmtVersions(vs), fmtVersions(wantVs))
		}
	}
	// After each version: the rest of its key, then the next keys.
	for i, v := range all {
		vs, _, _, _, err := b.ListVersions(t.Context(), "", v.Key, v.VersionID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmtVersions(vs) != fmtVersions(all[i+1:]) {
			t.Fatalf("ListVersions after %s = %s\nwant %s", fmtVersions(all[i:i+1]), fmtVersions(vs), fmtVersions(all[i+1:]))
		}
	}
}

func testListVersionsInvalid(t *testing.T, b VersionedBucket) {
	put(t, b, runKey, []byte("x"), nil)
	id := versionsOf(t, b, runKey)[0].VersionID
	_, _, _, _, err := b.ListVersions(t.Context(), "prefix/", "", id, 0)
	wantErr(t, err, bucket.ErrInvalid, "listversions", "prefix/")
}

func testInvalidVersionArgs(t *testing.T, b VersionedBucket) {
	ctx := t.Context()
	put(t, b, runKey, []byte("x"), nil)
	id := versionsOf(t, b, runKey)[0].VersionID
	for _, key := range []string{"", "/abs", "a//b", "prefix/a b"} {
		_, err := b.GetVersion(ctx, key, id, nil)
		wantErr(t, err, bucket.ErrInvalid, "getversion", key)
		err = b.DeleteVersion(ctx, key, id)
		wantErr(t, err, bucket.ErrInvalid, "deleteversion", key)
	}
	// An empty version ID never means "the current version": DeleteVersion
	// with it must not Delete.
	for _, bad := range []string{"", "a b", "\x00"} {
		_, err := b.GetVersion(ctx, runKey, bad, nil)
		wantErr(t, err, bucket.ErrInvalid, "getversion", runKey)
		err = b.DeleteVersion(ctx, runKey, bad)
		wantErr(t, err, bucket.ErrInvalid, "deleteversion", runKey)
	}
	wantBody(t, b, runKey, []byte("x"))
	if vs := versionsOf(t, b, runKey); len(vs) != 1 {
		t.Fatalf("refused calls changed the versions: %s", fmtVersions(vs))
	}
}

func testConcurrentVersions(t *testing.T, b VersionedBucket) {
	const writers, puts = 8, 4
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range puts {
				if _, err := b.Put(ctx, headKey, []byte(fmt.Sprintf("writer %d put %d", w, i)), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs := versionsOf(t, b, headKey)
	if len(vs) != writers*puts {
		t.Fatalf("%d concurrent Puts made %d versions", writers*puts, len(vs))
	}
	ids := map[string]bool{}
	for i, v := range vs {
		if ids[v.VersionID] || v.Latest != (i == 0) {
			t.Fatalf("versions = %s; want distinct IDs, the first current", fmtVersions(vs))
		}
		ids[v.VersionID] = true
	}
	if h := head(t, b, headKey); h.ETag != vs[0].ETag {
		t.Fatalf("Head ETag %q, the current version's %q", h.ETag, vs[0].ETag)
	}
}

func testVersionCanceledContext(t *testing.T, b VersionedBucket) {
	put(t, b, runKey, []byte("kept"), nil)
	id := versionsOf(t, b, runKey)[0].VersionID
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", what, err)
		}
	}
	_, err := b.Versioning(ctx)
	check("Versioning", err)
	_, _, _, _, err = b.ListVersions(ctx, "", "", "", 0)
	check("ListVersions", err)
	_, err = b.GetVersion(ctx, runKey, id, nil)
	check("GetVersion", err)
	check("DeleteVersion", b.DeleteVersion(ctx, runKey, id))
	wantBody(t, b, runKey, []byte("kept"))
	if vs := versionsOf(t, b, runKey); len(vs) != 1 || vs[0].VersionID != id {
		t.Fatalf("canceled calls changed the versions: %s", fmtVersions(vs))
	}
}

func testVersionOwnership(t *testing.T, b VersionedBucket) {
	put(t, b, runKey, []byte("original"), &bucket.PutOptions{Metadata: map[string]string{"workflow": "w"}})
	put(t, b, runKey, []byte("current"), nil)
	id := versionsOf(t, b, runKey)[1].VersionID
	obj := getVersion(t, b, runKey, id, nil)
	copy(obj.Body, "MUTATED!")
	obj.Metadata["workflow"] = "changed"
	obj = getVersion(t, b, runKey, id, nil)
	if string(obj.Body) != "original" || obj.Metadata["workflow"] != "w" {
		t.Fatalf("GetVersion after mutating an earlier result: %q %v", obj.Body, obj.Metadata)
	}
}
