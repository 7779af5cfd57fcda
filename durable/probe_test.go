package durable_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// counting counts the requests a bucket receives, by operation.
type counting struct {
	bucket.Bucket
	mu sync.Mutex
	n  map[string]int
}

func newCounting(b bucket.Bucket) *counting { return &counting{Bucket: b, n: map[string]int{}} }

func (c *counting) count(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

// take returns the counts so far and starts again from zero.
func (c *counting) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func (c *counting) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	c.count("GET")
	return c.Bucket.Get(ctx, key, o)
}

func (c *counting) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	c.count("PUT")
	return c.Bucket.Put(ctx, key, body, o)
}

func (c *counting) Head(ctx context.Context, key string) (*bucket.Info, error) {
	c.count("HEAD")
	return c.Bucket.Head(ctx, key)
}

func (c *counting) Delete(ctx context.Context, key string) error {
	c.count("DELETE")
	return c.Bucket.Delete(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix, after string, limit int) ([]bucket.Info, bool, error) {
	c.count("LIST")
	return c.Bucket.List(ctx, prefix, after, limit)
}

// ignoresConditions accepts conditional Puts and overwrites anyway, as
// servers without conditional-write support do.
type ignoresConditions struct{ bucket.Bucket }

func (b ignoresConditions) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if o != nil {
		oc := *o
		oc.IfMatch, oc.IfNoneMatch = "", ""
		o = &oc
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// keepsMetadata keeps the old user metadata on overwrite, adding the new
// keys to it (gofakes3 v1.2.0 does).
type keepsMetadata struct{ bucket.Bucket }

func (b keepsMetadata) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if info, err := b.Bucket.Head(ctx, key); err == nil && len(info.Metadata) > 0 {
		oc := bucket.PutOptions{}
		if o != nil {
			oc = *o
		}
		merged := maps.Clone(info.Metadata)
		maps.Copy(merged, oc.Metadata)
		oc.Metadata = merged
		o = &oc
	}
	return b.Bucket.Put(ctx, key, body, o)
}

// readOnly refuses every write, as a bucket opened with read-only
// credentials does.
type readOnly struct{ bucket.Bucket }

var errDenied = errors.New("access denied")

func (readOnly) Put(context.Context, string, []byte, *bucket.PutOptions) (string, error) {
	return "", errDenied
}

func (readOnly) Delete(context.Context, string) error { return errDenied }

func newDir(t testing.TB) *bucket.Dir {
	t.Helper()
	d, err := bucket.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// probeKeys lists what the probe left under the prefix.
func probeKeys(t testing.TB, b bucket.Bucket, prefix string) []string {
	t.Helper()
	infos, _, err := b.List(context.Background(), prefix+"/cairn-probe/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, strings.TrimPrefix(in.Key, prefix+"/"))
	}
	return keys
}

// A server that honours conditions passes: the first Store on a prefix
// probes with 9 requests and records the verdict (and nothing else is
// left behind); a later Store reads the verdict with one GET; a Store
// that passed checks no more.
func TestProbePasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    func(t *testing.T) bucket.Bucket
	}{
		{"Mem", func(*testing.T) bucket.Bucket { return bucket.NewMem() }},
		{"Dir", func(t *testing.T) bucket.Bucket { return newDir(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cb := newCounting(tc.b(t))
			s := newStore(t, cb, &durable.Options{Prefix: "p"})
			if err := s.CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			first := cb.take()
			want := map[string]int{"GET": 1, "PUT": 6, "HEAD": 1, "DELETE": 1}
			if !maps.Equal(first, want) {
				t.Errorf("first probe: requests %v, want %v", first, want)
			}
			if keys := probeKeys(t, cb, "p"); len(keys) != 1 || keys[0] != "cairn-probe/verdict" {
				t.Errorf("the probe left %v, want only cairn-probe/verdict", keys)
			}
			if err := s.Save(ctx, cp(1, t0)); err != nil {
				t.Fatal(err)
			}
			cb.take()
			if err := s.CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			if n := cb.take(); len(n) != 0 {
				t.Errorf("a store that passed checked again: %v", n)
			}
			later := newStore(t, cb, &durable.Options{Prefix: "p"})
			if err := later.CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			if n := cb.take(); !maps.Equal(n, map[string]int{"GET": 1}) {
				t.Errorf("a later store: requests %v, want one GET", n)
			}
			t.Logf("cost of the probe: first store on a prefix %v, later stores %v", first, map[string]int{"GET": 1})
		})
	}
}

// A server that ignores conditional writes, or keeps old metadata on
// overwrite, is refused at every write with a *ProbeError naming the
// checks that failed; reads still work, nothing is written, and no
// verdict is recorded. UnsafeSkipProbe lets writes through.
func TestProbeRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		wrap   func(bucket.Bucket) bucket.Bucket
		failed []durable.ProbeCheck
	}{
		{"IgnoresConditions", func(b bucket.Bucket) bucket.Bucket { return ignoresConditions{b} },
			[]durable.ProbeCheck{durable.ProbeIfNoneMatch, durable.ProbeIfMatchWrong, durable.ProbeIfMatchMissing}},
		{"KeepsMetadata", func(b bucket.Bucket) bucket.Bucket { return keepsMetadata{b} },
			[]durable.ProbeCheck{durable.ProbeMetadataReplaced}},
		{"Both", func(b bucket.Bucket) bucket.Bucket { return keepsMetadata{ignoresConditions{b}} },
			[]durable.ProbeCheck{durable.ProbeIfNoneMatch, durable.ProbeIfMatchWrong, durable.ProbeIfMatchMissing, durable.ProbeMetadataReplaced}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := bucket.NewMem()
			good := newStore(t, mem, &durable.Options{Prefix: "p"})
			kept := cp(1, t0)
			if err := good.Save(ctx, kept); err != nil {
				t.Fatal(err)
			}
			if err := mem.Delete(ctx, "p/cairn-probe/verdict"); err != nil {
				t.Fatal(err)
			}
			b := tc.wrap(mem)
			s := newStore(t, b, &durable.Options{Prefix: "p"})
			err := s.CheckServer(ctx)
			var pe *durable.ProbeError
			if !errors.Is(err, durable.ErrUnsafeServer) || !errors.As(err, &pe) {
				t.Fatalf("CheckServer: %v, want a *ProbeError (ErrUnsafeServer)", err)
			}
			var got []durable.ProbeCheck
			for _, f := range pe.Failures {
				got = append(got, f.Check)
			}
			if !slices.Equal(got, tc.failed) {
				t.Errorf("failed checks %v, want %v", got, tc.failed)
			}
			for _, c := range tc.failed {
				if !strings.Contains(err.Error(), string(c)) {
					t.Errorf("the message does not name check %s: %v", c, err)
				}
			}
			if !strings.Contains(err.Error(), "UnsafeSkipProbe") || !strings.Contains(err.Error(), "MinIO") {
				t.Errorf("the message does not say what to do: %v", err)
			}
			t.Logf("refused: %v", err)

			writes := map[string]error{
				"Save":   s.Save(ctx, cp(2, t0)),
				"Delete": s.Delete(ctx, kept.RunID),
			}
			_, writes["Write"] = s.Write(ctx, []durable.Record{{RunID: cp(3, t0).RunID, Workflow: "wf", Timestamp: t0, Data: []byte{0x80}}}, nil)
			_, writes["Reindex"] = s.Reindex(ctx, nil)
			_, writes["GC"] = s.GC(ctx, nil)
			for op, err := range writes {
				if !errors.Is(err, durable.ErrUnsafeServer) {
					t.Errorf("%s on a refused server: %v, want ErrUnsafeServer", op, err)
				}
			}
			if _, err := s.GC(ctx, &durable.GCOptions{DryRun: true}); errors.Is(err, durable.ErrUnsafeServer) {
				t.Errorf("a dry-run GC writes nothing, yet probed: %v", err)
			}
			if _, err := s.Load(ctx, kept.RunID); err != nil {
				t.Errorf("Load on a refused server: %v", err)
			}
			if ids := listIDs(t, s); len(ids) != 1 || ids[0] != kept.RunID {
				t.Errorf("List on a refused server = %v, want %v", ids, kept.RunID)
			}
			if _, err := mem.Head(ctx, "p/runs/"+cp(2, t0).RunID.String()); !errors.Is(err, bucket.ErrNotFound) {
				t.Errorf("a refused Save wrote its object: %v", err)
			}
			if keys := probeKeys(t, mem, "p"); len(keys) != 0 {
				t.Errorf("a failed probe left %v", keys)
			}

			unsafe := newStore(t, b, &durable.Options{Prefix: "p", UnsafeSkipProbe: true})
			if err := unsafe.CheckServer(ctx); err != nil {
				t.Errorf("CheckServer with UnsafeSkipProbe: %v", err)
			}
			if err := unsafe.Save(ctx, cp(2, t0)); err != nil {
				t.Errorf("Save with UnsafeSkipProbe: %v", err)
			}
		})
	}
}

// Reads never probe: a store on read-only credentials Loads and Lists.
func TestProbeNotBeforeReads(t *testing.T) {
	ctx := context.Background()
	mem := bucket.NewMem()
	w := newStore(t, mem, &durable.Options{Prefix: "p"})
	c := cp(1, t0)
	if err := w.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := mem.Delete(ctx, "p/cairn-probe/verdict"); err != nil {
		t.Fatal(err)
	}
	r := newStore(t, readOnly{mem}, &durable.Options{Prefix: "p"})
	if _, err := r.Load(ctx, c.RunID); err != nil {
		t.Fatalf("Load with read-only credentials: %v", err)
	}
	if ids := listIDs(t, r); len(ids) != 1 {
		t.Fatalf("List with read-only credentials = %v", ids)
	}
	if ok, err := r.Exists(ctx, c.RunID); !ok || err != nil {
		t.Fatalf("Exists with read-only credentials: %v, %v", ok, err)
	}
	if _, err := r.Verify(ctx); err != nil {
		t.Fatalf("Verify with read-only credentials: %v", err)
	}
	if err := r.Save(ctx, cp(2, t0)); !errors.Is(err, errDenied) {
		t.Fatalf("Save with read-only credentials: %v, want the bucket's refusal", err)
	}
}

// The verdict is probed again when it is older than ProbeMaxAge, from an
// older probe version, about another server, or unreadable.
func TestProbeAgain(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		age   time.Duration
		fudge func(t *testing.T, b bucket.Bucket) // changes the recorded verdict
		again bool
	}{
		{"Fresh", 29 * 24 * time.Hour, nil, false},
		{"Old", durable.ProbeMaxAge + time.Hour, nil, true},
		{"FarFuture", -durable.ProbeMaxAge - time.Hour, nil, true},
		{"Future", -2 * time.Hour, nil, true}, // more than clock skew
		{"Skewed", -30 * time.Minute, nil, false},
		{"OlderVersion", 0, rewriteVerdict(`"probe_version":1`, `"probe_version":0`), true},
		{"OtherServer", 0, rewriteVerdict(`bucket *durable_test.counting`, `S3 bucket b at 10.0.0.1:9000`), true},
		{"Unreadable", 0, func(t *testing.T, b bucket.Bucket) {
			if _, err := b.Put(ctx, "p/cairn-probe/verdict", []byte("{"), nil); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb := newCounting(bucket.NewMem())
			if err := newStore(t, cb, &durable.Options{Prefix: "p", Now: func() time.Time { return t0 }}).CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.fudge != nil {
				tc.fudge(t, cb.Bucket)
			}
			cb.take()
			later := newStore(t, cb, &durable.Options{Prefix: "p", Now: func() time.Time { return t0.Add(tc.age) }})
			if err := later.CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			if probed := cb.take()["PUT"] > 0; probed != tc.again {
				t.Fatalf("probed again: %v, want %v", probed, tc.again)
			}
			if !tc.again {
				return
			}
			cb.take()
			if err := newStore(t, cb, &durable.Options{Prefix: "p", Now: func() time.Time { return t0.Add(tc.age) }}).CheckServer(ctx); err != nil {
				t.Fatal(err)
			}
			if n := cb.take(); !maps.Equal(n, map[string]int{"GET": 1}) {
				t.Fatalf("after probing again, the next store sent %v, want one GET", n)
			}
		})
	}
}

func rewriteVerdict(old, new string) func(t *testing.T, b bucket.Bucket) {
	return func(t *testing.T, b bucket.Bucket) {
		ctx := context.Background()
		obj, err := b.Get(ctx, "p/cairn-probe/verdict", nil)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Replace(string(obj.Body), old, new, 1)
		if body == string(obj.Body) {
			t.Fatalf("verdict %s has no %s", obj.Body, old)
		}
		if _, err := b.Put(ctx, "p/cairn-probe/verdict", []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A refused server is refused again for a while without probing: a
// write-back flusher would otherwise probe every window.
func TestProbeRefusalRemembered(t *testing.T) {
	ctx := context.Background()
	now := t0
	cb := newCounting(ignoresConditions{bucket.NewMem()})
	s := newStore(t, cb, &durable.Options{Prefix: "p", Now: func() time.Time { return now }})
	if err := s.CheckServer(ctx); !errors.Is(err, durable.ErrUnsafeServer) {
		t.Fatalf("CheckServer: %v", err)
	}
	cb.take()
	for range 10 {
		if err := s.CheckServer(ctx); !errors.Is(err, durable.ErrUnsafeServer) {
			t.Fatalf("CheckServer again: %v", err)
		}
	}
	if n := cb.take(); len(n) != 0 {
		t.Fatalf("a refused server was probed again at once: %v", n)
	}
	now = now.Add(2 * time.Minute)
	if err := s.CheckServer(ctx); !errors.Is(err, durable.ErrUnsafeServer) {
		t.Fatalf("CheckServer later: %v", err)
	}
	if n := cb.take(); n["PUT"] == 0 {
		t.Fatalf("not probed again after a while: %v", n)
	}
}

// Concurrent first writes share one probe.
func TestProbeOnce(t *testing.T) {
	ctx := context.Background()
	cb := newCounting(bucket.NewMem())
	s := newStore(t, cb, &durable.Options{Prefix: "p"})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.Save(ctx, &cairn.Checkpoint{WorkflowName: "wf", RunID: uuid.New(), Timestamp: t0}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	// One probe (one HEAD, one DELETE), and the one HEAD of the index's
	// head that checks the keyring before the first write (checkKeyring).
	if cb.n["HEAD"] != 2 || cb.n["DELETE"] != 1 {
		t.Fatalf("requests %v: want one probe (one HEAD, one DELETE) and one keyring check (one HEAD)", cb.n)
	}
}

// A caller whose context ends while another probes gets its context's error.
func TestProbeWaitHonoursContext(t *testing.T) {
	gate := make(chan struct{})
	s := newStore(t, blockingGet{bucket.NewMem(), gate}, &durable.Options{Prefix: "p"})
	go func() { _ = s.CheckServer(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	time.Sleep(10 * time.Millisecond)
	if err := s.CheckServer(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CheckServer while another probes, past its deadline: %v", err)
	}
	close(gate)
}

// blockingGet holds every Get until gate closes.
type blockingGet struct {
	bucket.Bucket
	gate chan struct{}
}

func (b blockingGet) Get(ctx context.Context, key string, o *bucket.GetOptions) (*bucket.Object, error) {
	<-b.gate
	return b.Bucket.Get(ctx, key, o)
}

// MinIO passes the probe. The test reports what the probe adds to an
// open: the first Store on a prefix, and a later one.
func TestMinIOProbe(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	b := minioBucket(t, srv, srv.NewBucket(t))
	timed := func(s *durable.Store) time.Duration {
		start := time.Now()
		if err := s.CheckServer(ctx); err != nil {
			t.Fatalf("CheckServer on MinIO: %v", err)
		}
		return time.Since(start)
	}
	first := timed(newStore(t, b, &durable.Options{Prefix: "p"}))
	later := timed(newStore(t, b, &durable.Options{Prefix: "p"}))
	obj, err := b.Get(ctx, "p/cairn-probe/verdict", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(obj.Body), `"server":"S3 bucket `) {
		t.Errorf("verdict %s does not name the S3 server", obj.Body)
	}
	if keys := probeKeys(t, b, "p"); len(keys) != 1 {
		t.Errorf("the probe left %v, want only the verdict", keys)
	}
	cb := newCounting(b)
	if err := newStore(t, cb, &durable.Options{Prefix: "q"}).CheckServer(ctx); err != nil {
		t.Fatal(err)
	}
	firstN := cb.take()
	if err := newStore(t, cb, &durable.Options{Prefix: "q"}).CheckServer(ctx); err != nil {
		t.Fatal(err)
	}
	laterN := cb.take()
	t.Logf("probe cost on MinIO: first store on a prefix %v in %v; later stores %v in %v", firstN, first, laterN, later)
}

// noDelete refuses deletes, as a bucket policy without s3:DeleteObject
// does.
type noDelete struct{ bucket.Bucket }

func (noDelete) Delete(context.Context, string) error { return errDenied }

// Deleting the probe's temporary objects is best effort: a server that
// refuses deletes but honours conditional writes passes, and Saves work.
func TestProbeCleanupBestEffort(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, noDelete{bucket.NewMem()}, &durable.Options{Prefix: "p"})
	if err := s.CheckServer(ctx); err != nil {
		t.Fatalf("CheckServer with deletes refused: %v", err)
	}
	if err := s.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
}
