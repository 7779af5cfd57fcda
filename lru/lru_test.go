package lru_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/lru"
)

// val returns a value whose entry (with no ETag or workflow name) costs
// exactly cost bytes, so that scenarios can be written in round numbers.
func val(cost int) []byte {
	return make([]byte, cost-lru.EntryOverhead)
}

// unit scales the sizes in scenarios, so that the smallest is still larger
// than EntryOverhead.
const unit = 10

// recorder collects OnEvict calls.
type recorder struct {
	mu   sync.Mutex
	keys []string
}

func (r *recorder) hook(k string, e lru.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, k)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.keys
	r.keys = nil
	return k
}

func newCache(t testing.TB, max int64, r *recorder) *lru.Cache[string] {
	t.Helper()
	opts := &lru.Options[string]{MaxBytes: max}
	if r != nil {
		opts.OnEvict = r.hook
	}
	c, err := lru.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A scenario is a sequence of steps, each a word:
//
//	a:100    put a clean entry a costing 100 units
//	a:100d   put a dirty entry a costing 100
//	a:100!   a put that must be refused (clean, does not fit)
//	get:a    Get a (hit)   get:-a  Get a (miss)
//	peek:a   Peek a
//	clean:a  MarkClean a at its current version
//	rm:a     Remove a
//
// followed by the keys evicted, in order, the keys left, and the bytes.
type scenario struct {
	name    string
	max     int64
	steps   string
	evicted string // space-separated, in eviction order
	left    string // space-separated, any order
	bytes   int64
}

var scenarios = []scenario{
	{
		name:    "get refreshes recency",
		max:     300,
		steps:   "a:100 b:100 c:100 get:a d:100",
		evicted: "b",
		left:    "a c d",
		bytes:   300,
	},
	{
		name:    "no access evicts in insertion order",
		max:     300,
		steps:   "a:100 b:100 c:100 d:100 e:100",
		evicted: "a b",
		left:    "c d e",
		bytes:   300,
	},
	{
		name:    "peek does not refresh recency",
		max:     300,
		steps:   "a:100 b:100 c:100 peek:a d:100",
		evicted: "a",
		left:    "b c d",
		bytes:   300,
	},
	{
		name:    "a miss changes nothing",
		max:     300,
		steps:   "a:100 b:100 c:100 get:-z d:100",
		evicted: "a",
		left:    "b c d",
		bytes:   300,
	},
	{
		name:    "replacing refreshes and is not an eviction",
		max:     300,
		steps:   "a:100 b:100 c:100 a:100 d:100",
		evicted: "b",
		left:    "a c d",
		bytes:   300,
	},
	{
		name:    "replacing with a bigger entry evicts others, oldest first",
		max:     300,
		steps:   "a:100 b:100 c:100 a:250",
		evicted: "b c",
		left:    "a",
		bytes:   250,
	},
	{
		name:    "a big entry evicts as many small ones as it needs",
		max:     1000,
		steps:   "a:200 b:200 c:200 d:200 e:200 get:a F:600",
		evicted: "b c d",
		left:    "a e F",
		bytes:   1000,
	},
	{
		name:    "sizes varying 50x keep the bound",
		max:     10000,
		steps:   "s1:200 s2:200 s3:200 B1:9000 s4:200 s5:200 B2:10000 s6:200",
		evicted: "s1 s2 s3 B1 s4 s5 B2",
		left:    "s6",
		bytes:   200,
	},
	{
		name:    "a small entry evicts only the oldest one it needs",
		max:     10000,
		steps:   "B:9000 s1:200 s2:200 s3:200 s4:200 s5:200 s6:200",
		evicted: "B",
		left:    "s1 s2 s3 s4 s5 s6",
		bytes:   1200,
	},
	{
		name:    "an entry of exactly MaxBytes fits alone",
		max:     300,
		steps:   "a:100 B:300",
		evicted: "a",
		left:    "B",
		bytes:   300,
	},
	{
		name:    "a clean entry over MaxBytes is refused and evicts nothing",
		max:     300,
		steps:   "a:100 b:100 X:301!",
		evicted: "",
		left:    "a b",
		bytes:   200,
	},
	{
		name:    "a refused entry drops the older entry it replaces",
		max:     300,
		steps:   "a:100 b:100 a:400!",
		evicted: "",
		left:    "b",
		bytes:   100,
	},
	{
		name:    "dirty entries are never evicted",
		max:     300,
		steps:   "a:100d b:100d c:100d d:100! e:50!",
		evicted: "",
		left:    "a b c",
		bytes:   300,
	},
	{
		name:    "eviction skips dirty entries",
		max:     300,
		steps:   "a:100 b:100d c:100 d:100 e:100",
		evicted: "a c",
		left:    "b d e",
		bytes:   300,
	},
	{
		name:    "a dirty put evicts clean entries to make room",
		max:     300,
		steps:   "a:100 b:100 c:100 d:200d",
		evicted: "a b",
		left:    "c d",
		bytes:   300,
	},
	{
		name:    "dirty entries beyond MaxBytes are held and push out every clean one",
		max:     300,
		steps:   "a:100 b:100 X:200d Y:200d c:50!",
		evicted: "a b",
		left:    "X Y",
		bytes:   400,
	},
	{
		name:    "a clean entry fits only in the room dirty entries leave",
		max:     300,
		steps:   "a:200d b:150! c:100",
		evicted: "",
		left:    "a c",
		bytes:   300,
	},
	{
		name:    "replacing a dirty entry with a clean one frees its room",
		max:     300,
		steps:   "a:250d a:300",
		evicted: "",
		left:    "a",
		bytes:   300,
	},
	{
		name:    "a cleaned entry becomes the most recently used",
		max:     300,
		steps:   "a:100d b:100 c:100 clean:a d:100",
		evicted: "b",
		left:    "a c d",
		bytes:   300,
	},
	{
		name:    "a cleaned entry becomes evictable",
		max:     300,
		steps:   "a:100d b:100 c:100 clean:a get:b get:c d:100",
		evicted: "a",
		left:    "b c d",
		bytes:   300,
	},
	{
		name:    "cleaning when dirty entries overflow evicts the cleaned entry",
		max:     300,
		steps:   "X:200d Y:200d clean:X",
		evicted: "X",
		left:    "Y",
		bytes:   200,
	},
	{
		name:    "an oversize dirty entry is held until cleaned",
		max:     300,
		steps:   "a:100 X:500d clean:X b:100",
		evicted: "a X",
		left:    "b",
		bytes:   100,
	},
	{
		name:    "remove frees room and is not an eviction",
		max:     300,
		steps:   "a:100 b:100d c:100 rm:a rm:b d:100 e:100",
		evicted: "",
		left:    "c d e",
		bytes:   300,
	},
}

func TestEvictionScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var r recorder
			c := newCache(t, sc.max*unit, &r)
			versions := map[string]uint64{}
			for _, step := range strings.Fields(sc.steps) {
				op, arg, ok := strings.Cut(step, ":")
				if !ok {
					t.Fatalf("bad step %q", step)
				}
				switch op {
				case "get":
					key, wantMiss := strings.CutPrefix(arg, "-")
					if _, hit := c.Get(key); hit == wantMiss {
						t.Fatalf("%s: hit = %v", step, hit)
					}
				case "peek":
					if _, ok := c.Peek(arg); !ok {
						t.Fatalf("%s: absent", step)
					}
				case "clean":
					if !c.MarkClean(arg, versions[arg], "") {
						t.Fatalf("%s: refused", step)
					}
				case "rm":
					if !c.Remove(arg) {
						t.Fatalf("%s: absent", step)
					}
				default:
					var cost int
					var flags string
					if _, err := fmt.Sscanf(arg, "%d%s", &cost, &flags); err != nil && cost == 0 {
						t.Fatalf("bad step %q: %v", step, err)
					}
					e := lru.Entry{Value: val(cost * unit), Dirty: strings.Contains(flags, "d")}
					v, stored := c.Put(op, e)
					if want := !strings.Contains(flags, "!"); stored != want {
						t.Fatalf("%s: stored = %v, want %v", step, stored, want)
					}
					versions[op] = v
				}
				checkAccounting(t, c, step)
			}
			if got, want := r.take(), strings.Fields(sc.evicted); !slices.Equal(got, want) {
				t.Errorf("evicted %q, want %q", got, want)
			}
			want := strings.Fields(sc.left)
			for _, k := range want {
				if _, ok := c.Peek(k); !ok {
					t.Errorf("%s was evicted", k)
				}
			}
			if c.Len() != len(want) {
				t.Errorf("Len = %d, want %d (%q)", c.Len(), len(want), want)
			}
			if got := c.Bytes(); got != sc.bytes*unit {
				t.Errorf("Bytes = %d, want %d", got, sc.bytes*unit)
			}
		})
	}
}

// checkAccounting checks the invariants that hold after every operation:
// the byte counts match the entries, and the cache is within its bound or
// holds only dirty entries.
func checkAccounting(t *testing.T, c *lru.Cache[string], when string) {
	t.Helper()
	st := c.Stats()
	var dirty int64
	for _, it := range c.Dirty() {
		dirty += it.Entry.Cost()
	}
	if st.DirtyBytes != dirty {
		t.Fatalf("after %s: DirtyBytes = %d, the dirty entries cost %d", when, st.DirtyBytes, dirty)
	}
	if st.Bytes > st.MaxBytes && st.Entries != st.DirtyEntries {
		t.Fatalf("after %s: %d bytes over the bound %d with clean entries held", when, st.Bytes, st.MaxBytes)
	}
	if st.Bytes < st.DirtyBytes || (st.Entries == st.DirtyEntries) != (st.Bytes == st.DirtyBytes) {
		t.Fatalf("after %s: Bytes %d, DirtyBytes %d, Entries %d, DirtyEntries %d", when, st.Bytes, st.DirtyBytes, st.Entries, st.DirtyEntries)
	}
}

func TestNewOptions(t *testing.T) {
	c, err := lru.New[uuid.UUID](nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().MaxBytes; got != lru.DefaultMaxBytes {
		t.Errorf("nil options: MaxBytes = %d, want %d", got, lru.DefaultMaxBytes)
	}
	c, err = lru.New(&lru.Options[uuid.UUID]{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().MaxBytes; got != lru.DefaultMaxBytes {
		t.Errorf("zero MaxBytes: MaxBytes = %d, want %d", got, lru.DefaultMaxBytes)
	}
	_, err = lru.New(&lru.Options[uuid.UUID]{MaxBytes: -1})
	if !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("negative MaxBytes: err = %v, want ErrInvalid", err)
	}
}

func TestEntryCost(t *testing.T) {
	e := lru.Entry{Value: make([]byte, 1000), ETag: `"abc"`, WorkflowName: "demo",
		Labels: map[string]string{"status": "running", "tenant": "acme"}}
	if got, want := e.Cost(), int64(lru.EntryOverhead+1000+5+4+2*lru.LabelOverhead+6+7+6+4); got != want {
		t.Errorf("Cost = %d, want %d", got, want)
	}
	c := newCache(t, 1<<20, nil)
	c.Put("k", e)
	if got := c.Bytes(); got != e.Cost() {
		t.Errorf("Bytes = %d, want %d", got, e.Cost())
	}
}

// The cache hands out the slice it was given: no copy on Put or Get.
func TestValueIsNotCopied(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	v := []byte("encoded")
	c.Put("k", lru.Entry{Value: v})
	got, _ := c.Get("k")
	if &got.Value[0] != &v[0] {
		t.Error("Get returned a copy of the value")
	}
}

func TestEntryFieldsRoundTrip(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	in := lru.Entry{Value: []byte("x"), ETag: `"e1"`, Dirty: true, WorkflowName: "demo", Timestamp: ts, Version: 999}
	v, _ := c.Put("k", in)
	got, ok := c.Peek("k")
	if !ok {
		t.Fatal("absent")
	}
	want := in
	want.Version = v
	if got.ETag != want.ETag || !got.Dirty || got.WorkflowName != "demo" || !got.Timestamp.Equal(ts) || got.Version != v || string(got.Value) != "x" {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if v == 999 {
		t.Error("Put kept the caller's version")
	}
}

func TestVersionsIncrease(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	var last uint64
	for i, k := range []string{"a", "b", "a", "a", "c"} {
		v, ok := c.Put(k, lru.Entry{Value: []byte{byte(i)}, Dirty: i%2 == 0})
		if !ok || v <= last {
			t.Fatalf("put %d: version %d after %d", i, v, last)
		}
		last = v
	}
	if _, ok := c.Put("big", lru.Entry{Value: make([]byte, 2<<20)}); ok {
		t.Fatal("oversize put stored")
	}
}

// The flusher's race: it writes version 1 out, and a Save replaces it with
// version 2 before the flush finishes.
func TestMarkCleanStaleVersion(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	v1, _ := c.Put("k", lru.Entry{Value: []byte("v1"), ETag: `"e0"`, Dirty: true})
	v2, _ := c.Put("k", lru.Entry{Value: []byte("v2"), Dirty: true})

	if c.MarkClean("k", v1, `"e1"`) {
		t.Fatal("MarkClean of a replaced version succeeded")
	}
	e, _ := c.Peek("k")
	if !e.Dirty || string(e.Value) != "v2" {
		t.Fatalf("entry after a stale MarkClean: %+v", e)
	}
	// The object now has the ETag the first flush got back; the second
	// flush must be conditional on it, not on e0.
	if e.ETag != `"e1"` {
		t.Errorf("ETag = %s, want the one the stale flush reported", e.ETag)
	}
	if d := c.Dirty(); len(d) != 1 || d[0].Entry.Version != v2 {
		t.Errorf("Dirty = %+v, want only version %d", d, v2)
	}
	if !c.MarkClean("k", v2, `"e2"`) {
		t.Fatal("MarkClean of the current version refused")
	}
	e, _ = c.Peek("k")
	if e.Dirty || e.ETag != `"e2"` || c.DirtyBytes() != 0 {
		t.Errorf("after MarkClean: %+v, DirtyBytes %d", e, c.DirtyBytes())
	}
	// Idempotent, and a late report of the older flush does not bring
	// back its ETag.
	if !c.MarkClean("k", v2, `"e2"`) {
		t.Error("repeated MarkClean refused")
	}
	c.MarkClean("k", v1, `"e1"`)
	if e, _ := c.Peek("k"); e.ETag != `"e2"` {
		t.Errorf("ETag = %s after a late stale MarkClean, want \"e2\"", e.ETag)
	}
}

func TestMarkCleanMissingOrBogus(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	if c.MarkClean("absent", 1, "") {
		t.Error("MarkClean of an absent key succeeded")
	}
	v, _ := c.Put("k", lru.Entry{Value: []byte("x"), Dirty: true})
	for _, bad := range []uint64{0, v + 1} {
		if c.MarkClean("k", bad, "") {
			t.Errorf("MarkClean at version %d (current %d) succeeded", bad, v)
		}
	}
	c.Remove("k")
	if c.MarkClean("k", v, "") {
		t.Error("MarkClean after Remove succeeded")
	}
	if c.Len() != 0 || c.Bytes() != 0 || c.DirtyBytes() != 0 {
		t.Errorf("cache not empty: %+v", c.Stats())
	}
}

func TestPutKeepsETag(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	c.Put("k", lru.Entry{Value: []byte("v1"), ETag: `"e1"`})
	c.Put("k", lru.Entry{Value: []byte("v2"), Dirty: true})
	if e, _ := c.Peek("k"); e.ETag != `"e1"` {
		t.Errorf("a Put without an ETag lost the cached one: %q", e.ETag)
	}
	c.Put("k", lru.Entry{Value: []byte("v3"), ETag: `"e3"`})
	if e, _ := c.Peek("k"); e.ETag != `"e3"` {
		t.Errorf("a Put with an ETag did not set it: %q", e.ETag)
	}
	c.Remove("k")
	c.Put("k", lru.Entry{Value: []byte("v4")})
	if e, _ := c.Peek("k"); e.ETag != "" {
		t.Errorf("ETag survived Remove: %q", e.ETag)
	}
	checkAccounting(t, c, "puts")
}

// A MarkClean that brings a longer ETag keeps the byte count right.
func TestMarkCleanETagCost(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	v1, _ := c.Put("k", lru.Entry{Value: []byte("v1"), Dirty: true})
	c.Put("k", lru.Entry{Value: []byte("v2"), Dirty: true})
	c.MarkClean("k", v1, strings.Repeat("e", 40))
	e, _ := c.Peek("k")
	if c.Bytes() != e.Cost() || c.DirtyBytes() != e.Cost() {
		t.Errorf("Bytes %d, DirtyBytes %d, entry costs %d", c.Bytes(), c.DirtyBytes(), e.Cost())
	}
}

func TestCompareAndPut(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	// A fill of an absent key.
	v1, ok := c.CompareAndPut("k", 0, lru.Entry{Value: []byte("stored"), ETag: `"e1"`})
	if !ok {
		t.Fatal("fill of an absent key refused")
	}
	// A second fill finds it present.
	if _, ok := c.CompareAndPut("k", 0, lru.Entry{Value: []byte("other")}); ok {
		t.Fatal("fill over a present key succeeded")
	}
	// A Save lands while a revalidation of v1 is in flight; the
	// revalidation's result must not overwrite it.
	c.Put("k", lru.Entry{Value: []byte("saved"), Dirty: true})
	if _, ok := c.CompareAndPut("k", v1, lru.Entry{Value: []byte("stale")}); ok {
		t.Fatal("CompareAndPut over a newer version succeeded")
	}
	if e, _ := c.Peek("k"); string(e.Value) != "saved" || !e.Dirty {
		t.Fatalf("entry = %q dirty %v, want the Save", e.Value, e.Dirty)
	}
	e, _ := c.Peek("k")
	if _, ok := c.CompareAndPut("k", e.Version, lru.Entry{Value: []byte("new")}); !ok {
		t.Fatal("CompareAndPut at the current version refused")
	}
	if _, ok := c.CompareAndPut("absent", 7, lru.Entry{Value: []byte("x")}); ok {
		t.Fatal("CompareAndPut with a version on an absent key succeeded")
	}
	checkAccounting(t, c, "compare-and-put")
}

func TestDirtyOrderAndSnapshot(t *testing.T) {
	c := newCache(t, 1<<20, nil)
	for _, k := range []string{"c", "a", "x", "b"} {
		c.Put(k, lru.Entry{Value: []byte(k), Dirty: k != "x"})
	}
	c.Put("c", lru.Entry{Value: []byte("c2"), Dirty: true}) // now the newest
	d := c.Dirty()
	var keys []string
	for _, it := range d {
		keys = append(keys, it.Key)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(keys, want) {
		t.Errorf("Dirty keys %q, want %q (oldest version first)", keys, want)
	}
	// The snapshot does not change with the cache.
	c.MarkClean("a", d[0].Entry.Version, "")
	c.Remove("b")
	if len(d) != 3 || len(c.Dirty()) != 1 {
		t.Errorf("snapshot %d entries, now %d dirty", len(d), len(c.Dirty()))
	}
}

func TestStatsCounters(t *testing.T) {
	c := newCache(t, 3000, nil)
	c.Put("a", lru.Entry{Value: val(1000)})
	c.Put("b", lru.Entry{Value: val(1000), Dirty: true})
	c.Get("a")
	c.Get("b")
	c.Get("a")
	c.Get("nope")
	c.Peek("a")
	c.Peek("nope")
	c.Put("c", lru.Entry{Value: val(1000)})
	c.Put("d", lru.Entry{Value: val(1000)}) // evicts a
	c.Put("e", lru.Entry{Value: val(2000)}) // evicts c and d: does not fit beside b otherwise
	c.Put("f", lru.Entry{Value: val(2500)}) // refused: b leaves only 2000
	want := lru.Stats{
		Hits: 3, Misses: 1, Evictions: 3, Rejected: 1,
		Entries: 2, DirtyEntries: 1, Bytes: 3000, DirtyBytes: 1000, MaxBytes: 3000,
	}
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
}

// OnEvict runs outside the lock: a hook that calls back into the cache
// must not deadlock.
func TestOnEvictMayCallBack(t *testing.T) {
	var c *lru.Cache[string]
	var seen []string
	var err error
	c, err = lru.New(&lru.Options[string]{
		MaxBytes: 3000,
		OnEvict: func(k string, e lru.Entry) {
			if _, ok := c.Peek(k); ok {
				t.Errorf("%s still in the cache during its OnEvict", k)
			}
			seen = append(seen, k)
			_ = c.Stats()
			c.Get("b") // counts and reorders
			if e.Dirty {
				t.Errorf("OnEvict got dirty entry %s", k)
			}
			// Re-admitting a small entry from the hook is allowed.
			if k == "a" {
				c.Put("from-hook", lru.Entry{Value: val(1000)})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Put("a", lru.Entry{Value: val(1000)})
		c.Put("b", lru.Entry{Value: val(1000)})
		c.Put("c", lru.Entry{Value: val(1000)})
		c.Put("d", lru.Entry{Value: val(1000)}) // evicts a; the hook adds from-hook, which evicts c
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: OnEvict calling into the cache")
	}
	if want := []string{"a", "c"}; !slices.Equal(seen, want) {
		t.Errorf("evicted %q, want %q", seen, want)
	}
	checkAccounting(t, c, "hook")
}

func TestOnEvictNotForRemoveOrReplace(t *testing.T) {
	var r recorder
	c := newCache(t, 1<<20, &r)
	c.Put("a", lru.Entry{Value: []byte("1")})
	c.Put("a", lru.Entry{Value: []byte("2")})
	c.Put("a", lru.Entry{Value: make([]byte, 2<<20)}) // refused, drops a
	c.Put("b", lru.Entry{Value: []byte("1"), Dirty: true})
	c.Remove("b")
	c.Put("c", lru.Entry{Value: []byte("1")})
	c.Remove("c")
	if got := r.take(); len(got) != 0 {
		t.Errorf("OnEvict called for %q", got)
	}
	if c.Len() != 0 || c.Stats().Evictions != 0 {
		t.Errorf("Stats = %+v", c.Stats())
	}
}

// Many goroutines on a small cache, under -race: the accounting holds at
// the end, no dirty entry is ever evicted, and every dirty entry that was
// not cleaned or removed is still there.
func TestConcurrentUse(t *testing.T) {
	const (
		workers = 8
		ops     = 3000
		keys    = 64
	)
	var evictedDirty sync.Map
	var c *lru.Cache[uuid.UUID]
	c, err := lru.New(&lru.Options[uuid.UUID]{
		MaxBytes: 20 * 1024,
		OnEvict: func(k uuid.UUID, e lru.Entry) {
			if e.Dirty {
				evictedDirty.Store(k, true)
			}
			c.Len()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, keys)
	for i := range ids {
		ids[i] = uuid.New()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				k := ids[rng.IntN(keys)]
				switch rng.IntN(10) {
				case 0, 1, 2:
					c.Get(k)
				case 3:
					c.Peek(k)
				case 4, 5:
					// Sizes from 100 B to 5 KB: 50x.
					c.Put(k, lru.Entry{Value: make([]byte, 100+rng.IntN(4900)), ETag: "e"})
				case 6:
					c.Put(k, lru.Entry{Value: make([]byte, 100+rng.IntN(400)), Dirty: true})
				case 7:
					for _, it := range c.Dirty() {
						c.MarkClean(it.Key, it.Entry.Version, "flushed")
					}
				case 8:
					if e, ok := c.Peek(k); ok {
						c.CompareAndPut(k, e.Version, lru.Entry{Value: e.Value})
					}
				case 9:
					if rng.IntN(4) == 0 {
						c.Remove(k)
					} else {
						_ = c.Stats()
					}
				}
			}
		}()
	}
	wg.Wait()
	evictedDirty.Range(func(k, _ any) bool {
		t.Errorf("dirty entry %v evicted", k)
		return true
	})
	st := c.Stats()
	var total, dirty int64
	var n, nd int
	for _, k := range ids {
		if e, ok := c.Peek(k); ok {
			n++
			total += e.Cost()
			if e.Dirty {
				nd++
				dirty += e.Cost()
			}
		}
	}
	if st.Entries != n || st.DirtyEntries != nd || st.Bytes != total || st.DirtyBytes != dirty {
		t.Errorf("Stats %+v; entries present: %d (%d dirty), %d bytes (%d dirty)", st, n, nd, total, dirty)
	}
	if st.Bytes > st.MaxBytes && st.Entries != st.DirtyEntries {
		t.Errorf("over the bound with clean entries: %+v", st)
	}
	if st.Hits+st.Misses == 0 || st.Evictions == 0 {
		t.Errorf("the workload did not exercise the cache: %+v", st)
	}
}

func ExampleCache() {
	c, err := lru.New(&lru.Options[string]{
		MaxBytes: 3*(lru.EntryOverhead+100) + 50, // three entries and their ETags
		OnEvict:  func(k string, _ lru.Entry) { fmt.Println("evicted", k) },
	})
	if err != nil {
		panic(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		c.Put(k, lru.Entry{Value: make([]byte, 100)})
	}
	c.Get("a")
	c.Put("d", lru.Entry{Value: make([]byte, 100)})

	// A Save: dirty until the flusher has written this version.
	v, _ := c.Put("e", lru.Entry{Value: make([]byte, 100), Dirty: true})
	fmt.Println("dirty:", len(c.Dirty()))
	fmt.Println("cleaned:", c.MarkClean("e", v, `"etag"`))
	st := c.Stats()
	fmt.Println("entries:", st.Entries, "hits:", st.Hits, "evictions:", st.Evictions)
	// Output:
	// evicted b
	// evicted c
	// dirty: 1
	// cleaned: true
	// entries: 3 hits: 1 evictions: 2
}
