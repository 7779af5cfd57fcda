package durable_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
)

// On MinIO: a sealed store saves, lists and loads; an object moved to
// another run's key is ErrCorrupt; and Rekey keeps every ETag (MinIO's
// ETag is the body's MD5), so a writer's conditional write based on an
// ETag read before the rekey still lands.
func TestMinIOSealed(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	raw := minioBucket(t, srv, srv.NewBucket(t))
	k1, k2 := sealKey(t, "k1"), sealKey(t, "k2")
	old := sealRing(t, k1)
	s := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: old})
	var saved []*cairn.Checkpoint
	for i := range 10 {
		c := cp(i+1, t0.Add(time.Duration(i)*time.Second))
		c.State = map[string]any{"n": int64(i)}
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, c)
	}
	key := func(i int) string { return "p/runs/" + saved[i].RunID.String() }
	before := map[string]string{}
	for i := range saved {
		info, err := raw.Head(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		before[key(i)] = info.ETag
	}
	rotated, err := old.Rotate(k2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := seal.Rekey(ctx, raw, rotated, "p", nil)
	if err != nil || !rep.Verified || rep.Resealed == 0 {
		t.Fatalf("Rekey = %+v, %v", rep, err)
	}
	for k, e := range before {
		info, err := raw.Head(ctx, k)
		if err != nil || info.ETag != e {
			t.Fatalf("%s: ETag %v after rekey, was %s (%v)", k, info, e, err)
		}
	}
	retired, _ := rotated.Retire("k1")
	r := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: retired})
	page, err := r.List(ctx, &cairn.ListOptions{Limit: 100})
	if err != nil || len(page.Runs) != 10 {
		t.Fatalf("List = %v, %v", page, err)
	}
	for _, c := range saved {
		got, err := r.Load(ctx, c.RunID)
		if err != nil || got.State["n"] != c.State["n"] {
			t.Fatalf("Load %v = %v, %v", c.RunID, got, err)
		}
	}
	// A conditional write on the ETag read before the rekey lands.
	sealedB := seal.Wrap(raw, retired)
	obj, err := raw.Get(ctx, key(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, key(1), obj.Body, &bucket.PutOptions{Metadata: obj.Metadata}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, saved[1].RunID); !errors.Is(err, cairn.ErrCorrupt) {
		t.Fatalf("Load of a moved object: %v, want ErrCorrupt", err)
	}
	if _, err := sealedB.Put(ctx, key(2), []byte("x"), &bucket.PutOptions{IfMatch: before[key(2)]}); err != nil {
		t.Fatalf("conditional write on the ETag from before the rekey: %v", err)
	}
}
