// Package s3check holds what the S3 driver's tests share across modules:
// a durable store that writes every kind of object Cairn stores, and the
// check that a bucket listing holds each kind. The MinIO tests of s3store
// and the gofakes3 tests of internal/fakes3 use it.
package s3check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
)

// WriteAll opens a durable store with prefix p over b (without its
// probe if skipProbe) and makes it write each kind of object: it saves
// three runs (and a fourth it deletes), claims one and compacts. It checks
// that a saved run loads, and returns the store and that run.
func WriteAll(t testing.TB, ctx context.Context, b bucket.Bucket, skipProbe bool) (*durable.Store, uuid.UUID) {
	t.Helper()
	store, err := durable.New(b, &durable.Options{Prefix: "p", UnsafeSkipProbe: skipProbe, Index: &index.Options{CompactAfter: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	var ids []uuid.UUID
	for i := range 4 {
		id := uuid.New()
		ids = append(ids, id)
		cp := &cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: time.Unix(int64(1e9+i), 0).UTC(), State: map[string]any{"i": int64(i)}}
		if err := store.Save(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Claim(ctx, ids[0], &cairn.ClaimOptions{Owner: "w"}); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, ids[3]); err != nil {
		t.Fatal(err)
	}
	if err := store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Load(ctx, ids[1]); err != nil || got.WorkflowName != "wf" {
		t.Fatalf("Load: %v, %v", got, err)
	}
	return store, ids[1]
}

// CheckKinds fails t unless keys hold each kind of object a store with
// prefix p writes, and probe (the probe's verdict, or on a server that
// fails the probe its temporary objects).
func CheckKinds(t testing.TB, keys []string, probe string) {
	t.Helper()
	for _, kind := range []string{"p/runs/", "p/claims/", "p/index/log/", "p/index/pages/", "p/index/snap/", "p/index/head", probe} {
		found := false
		for _, k := range keys {
			found = found || strings.HasPrefix(k, kind)
		}
		if !found {
			t.Errorf("no object %s... among %d; the test no longer covers it", kind, len(keys))
		}
	}
}
