package durable_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// Offloaded values on S3: a round trip through a store without the
// option, and a GC that races a Save taking up an old blob's content again.
func TestMinIOBlobs(t *testing.T) {
	srv := startMinIO(t)
	ctx := context.Background()
	name := srv.NewBucket(t)
	clk := &blobClock{t: time.Now().Add(-24 * time.Hour)}
	w := offloadStore(t, minioBucket(t, srv, name), clk)

	c := cp(1, clk.Now())
	c.State = map[string]any{"big": randomText(300 << 10), "other": compressible(200 << 10), "n": int64(1)}
	if err := w.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	reader := newStore(t, minioBucket(t, srv, name), &durable.Options{Prefix: "cairn", Now: clk.Now})
	checkLoads(t, reader, c)

	old := cp(2, clk.Now())
	big := randomText(150 << 10)
	old.State = map[string]any{"big": big}
	if err := w.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, old.RunID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Hour)
	p := &pausing{Bucket: minioBucket(t, srv, name), reached: make(chan struct{}), resume: make(chan struct{})}
	gc := newStore(t, bucket.Bucket(p), &durable.Options{Prefix: "cairn", Now: clk.Now})
	done := make(chan error, 1)
	var rep *durable.GCReport
	go func() {
		var err error
		rep, err = gc.GC(ctx, nil)
		done <- err
	}()
	<-p.reached
	again := cp(3, clk.Now())
	again.State = map[string]any{"big": big}
	if err := w.Save(ctx, again); err != nil {
		t.Fatal(err)
	}
	close(p.resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) == 0 {
		t.Fatal("GC deleted nothing: the race was not run")
	}
	fresh := newStore(t, minioBucket(t, srv, name), &durable.Options{Prefix: "cairn", Now: clk.Now})
	checkLoads(t, fresh, again)
	checkLoads(t, fresh, c)
	if vr, err := fresh.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("Verify: %+v, %v", vr, err)
	}
}
