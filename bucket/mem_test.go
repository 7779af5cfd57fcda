package bucket_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/bucket/buckettest"
)

func TestMemConformance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return bucket.NewMem() })
}

func TestMemKeyAndChildren(t *testing.T) { buckettest.KeyAndChildren(t, bucket.NewMem()) }

func TestMemVersionedConformance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return bucket.NewMemVersioned() })
}

func TestMemVersioned(t *testing.T) {
	buckettest.RunVersioned(t, func(t *testing.T) buckettest.VersionedBucket { return bucket.NewMemVersioned() })
}

func TestMemUnversioned(t *testing.T) { buckettest.Unversioned(t, bucket.NewMem()) }

func TestMemStats(t *testing.T) {
	ctx := t.Context()
	m := bucket.NewMem()
	m.Put(ctx, "a", []byte("1"), nil)
	m.Put(ctx, "a", []byte("2"), &bucket.PutOptions{IfNoneMatch: "*"}) // fails, still a request
	m.Get(ctx, "a", nil)
	m.Get(ctx, "missing", nil)
	m.Head(ctx, "a")
	m.Delete(ctx, "a")
	m.List(ctx, "", "", 0)
	m.List(ctx, "p/", "", 0)
	// Refused before sending: not requests.
	m.Put(ctx, "/bad", nil, nil)
	m.Get(ctx, "", nil)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	m.Get(canceled, "a", nil)

	want := bucket.MemStats{Gets: 2, Puts: 2, Heads: 1, Deletes: 1, Lists: 2}
	if got := m.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestMemHook(t *testing.T) {
	ctx := t.Context()
	m := bucket.NewMem()
	injected := errors.New("injected")
	var mu sync.Mutex
	var calls []string
	m.SetHook(func(ctx context.Context, op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, op+" "+key)
		if op == "put" && strings.HasPrefix(key, "fail/") {
			return injected
		}
		return nil
	})
	if _, err := m.Put(ctx, "fail/x", []byte("x"), nil); err != injected {
		t.Fatalf("Put with a failing hook = %v, want the hook's error as is", err)
	}
	if _, err := m.Head(ctx, "fail/x"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("a Put failed by the hook stored the object: Head = %v", err)
	}
	if _, err := m.Put(ctx, "ok/x", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	m.List(ctx, "ok/", "", 0)
	m.Delete(ctx, "ok/x")
	want := []string{"put fail/x", "head fail/x", "put ok/x", "list ok/", "delete ok/x"}
	if !slices.Equal(calls, want) {
		t.Fatalf("hook calls = %q, want %q", calls, want)
	}

	// A hook that waits sees the request's context; a request canceled
	// meanwhile fails with the context's error and has no effect.
	m.SetHook(func(ctx context.Context, op, key string) error {
		<-ctx.Done()
		return nil
	})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := m.Put(cctx, "slow", []byte("x"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put delayed past its deadline = %v", err)
	}
	m.SetHook(nil)
	if _, err := m.Head(ctx, "slow"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("a Put canceled in the hook stored the object: Head = %v", err)
	}
}

func TestMemClock(t *testing.T) {
	m := bucket.NewMem()
	at := time.Date(2026, 11, 25, 19, 39, 35, 0, time.FixedZone("CET", 3600))
	m.SetClock(func() time.Time { return at })
	if _, err := m.Put(t.Context(), "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	info, err := m.Head(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if !info.LastModified.Equal(at) || info.LastModified.Location() != time.UTC {
		t.Fatalf("LastModified = %v, want %v in UTC", info.LastModified, at)
	}
	m.SetClock(nil)
	m.Put(t.Context(), "k", nil, nil)
	if info, _ := m.Head(t.Context(), "k"); time.Since(info.LastModified) > time.Minute {
		t.Fatalf("after SetClock(nil), LastModified = %v", info.LastModified)
	}
}

// TestMemListModel checks List against a plain sorted slice through many
// inserts and deletes, enough for the key index to split and drop chunks.
func TestMemListModel(t *testing.T) {
	ctx := t.Context()
	r := rand.New(rand.NewPCG(7, 7))
	m := bucket.NewMem()
	model := map[string]bool{}
	key := func() string {
		return fmt.Sprintf("p%d/%04d", r.IntN(3), r.IntN(2000))
	}
	check := func() {
		t.Helper()
		all := slices.Sorted(func(yield func(string) bool) {
			for k := range model {
				if !yield(k) {
					return
				}
			}
		})
		for range 20 {
			prefix := []string{"", "p", "p1", "p1/", "p2/1", "q"}[r.IntN(6)]
			after := ""
			if r.IntN(2) == 0 {
				after = key()
			}
			limit := r.IntN(1200)
			var want []string
			for _, k := range all {
				if strings.HasPrefix(k, prefix) && k > after {
					want = append(want, k)
				}
			}
			n := limit
			if n <= 0 || n > 1000 {
				n = 1000
			}
			wantMore := len(want) > n
			want = want[:min(n, len(want))]
			infos, more, err := m.List(ctx, prefix, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(infos))
			for i, info := range infos {
				got[i] = info.Key
			}
			if !slices.Equal(got, want) || more != wantMore {
				t.Fatalf("List(%q, %q, %d) = %d keys, more %v; want %d, more %v", prefix, after, limit, len(got), more, len(want), wantMore)
			}
		}
	}
	for round := range 12 {
		for range 1000 {
			k := key()
			// Grow for the first rounds, then shrink.
			if r.IntN(12) > round {
				m.Put(ctx, k, nil, nil)
				model[k] = true
			} else {
				m.Delete(ctx, k)
				delete(model, k)
			}
		}
		check()
	}
}

// A conditional create tells the second writer it lost.
func ExampleMem() {
	ctx := context.Background()
	b := bucket.NewMem()
	create := &bucket.PutOptions{IfNoneMatch: "*"}

	_, err := b.Put(ctx, "prefix/index/log/00000000000000000001", []byte("batch A"), create)
	fmt.Println(err)
	_, err = b.Put(ctx, "prefix/index/log/00000000000000000001", []byte("batch B"), create)
	fmt.Println(errors.Is(err, bucket.ErrPrecondition))
	fmt.Println(err)
	obj, _ := b.Get(ctx, "prefix/index/log/00000000000000000001", nil)
	fmt.Printf("%s\n", obj.Body)
	fmt.Printf("%+v\n", b.Stats())
	// Output:
	// <nil>
	// true
	// bucket put prefix/index/log/00000000000000000001: bucket: precondition failed
	// batch A
	// {Gets:1 Puts:2 Heads:0 Deletes:0 Lists:0}
}

// The versioned Mem's choices where S3 servers differ or the interface
// leaves room: MinIO's Delete of a key without a current object, and a
// page that continues after a removed version.
func TestMemVersionedChoices(t *testing.T) {
	ctx := t.Context()
	m := bucket.NewMemVersioned()
	if err := m.Delete(ctx, "never"); err != nil {
		t.Fatal(err)
	}
	m.Put(ctx, "k", []byte("1"), nil)
	m.Delete(ctx, "k")
	m.Delete(ctx, "k")
	vs, _, _, _, err := m.ListVersions(ctx, "", "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Key != "k" || !vs[0].DeleteMarker || vs[1].DeleteMarker {
		t.Fatalf("after Delete of a missing key, then Put, Delete, Delete: %+v; want one marker over one version", vs)
	}

	for i := range 5 {
		m.Put(ctx, "p", []byte{byte(i)}, nil)
	}
	all, _, _, _, _ := m.ListVersions(ctx, "p", "", "", 0)
	page, key, version, more, err := m.ListVersions(ctx, "p", "", "", 2)
	if err != nil || !more || len(page) != 2 {
		t.Fatalf("first page: %+v more %v err %v", page, more, err)
	}
	if err := m.DeleteVersion(ctx, "p", version); err != nil {
		t.Fatal(err)
	}
	rest, _, _, more, err := m.ListVersions(ctx, "p", key, version, 0)
	if err != nil || more || len(rest) != 3 || rest[0] != all[2] {
		t.Fatalf("after removing the marker's version, the next page = %+v, %v; want the 3 after it", rest, err)
	}
	if _, _, _, _, err := m.ListVersions(ctx, "p", "p", "null", 0); !errors.Is(err, bucket.ErrInvalid) {
		t.Fatalf("a version marker Mem did not make: %v; want ErrInvalid", err)
	}
}

func TestMemVersionedStatsHookClock(t *testing.T) {
	ctx := t.Context()
	m := bucket.NewMemVersioned()
	at := time.Date(2026, 11, 25, 19, 39, 35, 0, time.UTC)
	m.SetClock(func() time.Time { return at })
	var ops []string
	m.SetHook(func(ctx context.Context, op, key string) error {
		ops = append(ops, op+" "+key)
		return nil
	})
	m.Put(ctx, "k", []byte("1"), nil)
	at = at.Add(time.Second)
	m.Delete(ctx, "k")
	m.Versioning(ctx)
	vs, _, _, _, _ := m.ListVersions(ctx, "k", "", "", 0)
	m.GetVersion(ctx, "k", vs[1].VersionID, nil)
	m.DeleteVersion(ctx, "k", vs[0].VersionID)
	m.GetVersion(ctx, "k", "", nil) // refused: not a request

	if !vs[0].LastModified.Equal(at) || !vs[1].LastModified.Equal(at.Add(-time.Second)) {
		t.Fatalf("LastModified %v, %v; want the clock's %v, %v", vs[0].LastModified, vs[1].LastModified, at, at.Add(-time.Second))
	}
	want := []string{"put k", "delete k", "versioning ", "listversions k", "getversion k", "deleteversion k"}
	if !slices.Equal(ops, want) {
		t.Fatalf("hook saw %q, want %q", ops, want)
	}
	if got, want := m.Stats(), (bucket.MemStats{Gets: 1, Puts: 1, Heads: 1, Deletes: 2, Lists: 1}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// A versioned bucket keeps what Delete and overwrites replaced.
func ExampleNewMemVersioned() {
	ctx := context.Background()
	b := bucket.NewMemVersioned()
	b.Put(ctx, "runs/r1", []byte("step 1"), nil)
	b.Put(ctx, "runs/r1", []byte("step 2"), nil)
	b.Delete(ctx, "runs/r1")

	_, err := b.Get(ctx, "runs/r1", nil)
	fmt.Println(errors.Is(err, bucket.ErrNotFound))
	vs, _, _, _, _ := b.ListVersions(ctx, "runs/", "", "", 0)
	for _, v := range vs {
		if v.DeleteMarker {
			fmt.Println(v.Key, "delete marker, latest:", v.Latest)
			continue
		}
		obj, _ := b.GetVersion(ctx, v.Key, v.VersionID, nil)
		fmt.Printf("%s %q, latest: %v\n", v.Key, obj.Body, v.Latest)
	}
	// Output:
	// true
	// runs/r1 delete marker, latest: true
	// runs/r1 "step 2", latest: false
	// runs/r1 "step 1", latest: false
}
