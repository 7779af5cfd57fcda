package durable_test

import (
	"context"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/storetest"
)

// sharedOn returns the multi-store harness over the buckets newBucket
// returns: each store gets its own (a separate process's view of one
// backing).
func sharedOn(newBucket func(t *testing.T) bucket.Bucket, o *durable.Options) storetest.Shared {
	return storetest.Shared{
		Open: func(t *testing.T) cairn.Store { return newStore(t, newBucket(t), o) },
		Reindex: func(ctx context.Context, s cairn.Store) error {
			_, err := s.(*durable.Store).Reindex(ctx, nil)
			return err
		},
	}
}

func TestSharedMem(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) storetest.Shared {
		mem := bucket.NewMem()
		return sharedOn(func(*testing.T) bucket.Bucket { return mem }, nil)
	})
}

func TestSharedDir(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) storetest.Shared {
		dir := t.TempDir()
		return sharedOn(func(t *testing.T) bucket.Bucket {
			b, err := bucket.NewDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, nil)
	})
}

func TestMinIOShared(t *testing.T) {
	srv := startMinIO(t)
	storetest.RunShared(t, func(t *testing.T) storetest.Shared {
		name := srv.NewBucket(t)
		return sharedOn(func(t *testing.T) bucket.Bucket { return minioBucket(t, srv, name) }, nil)
	})
}
