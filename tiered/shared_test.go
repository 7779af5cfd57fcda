package tiered_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
)

// sharedModes are the tiered configurations the multi-store suite runs:
// each store revalidates its cache (so it sees other stores' writes), and
// the fenced opener adds fencing.
var sharedModes = []struct {
	name string
	o    tiered.Options
}{
	{"WriteThrough", tiered.Options{Revalidate: true}},
	{"WriteBack", tiered.Options{Revalidate: true, Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond}},
}

// sharedOn returns the multi-store harness in mode o over the buckets
// newBucket returns: each store gets its own, as a separate process would.
func sharedOn(newBucket func(t *testing.T) bucket.Bucket, o tiered.Options) storetest.Shared {
	fenced := o
	fenced.Fencing = true
	return storetest.Shared{
		Open:       func(t *testing.T) cairn.Store { return open(t, newBucket(t), &o) },
		OpenFenced: func(t *testing.T) cairn.Store { return open(t, newBucket(t), &fenced) },
		Reindex: func(ctx context.Context, s cairn.Store) error {
			_, err := s.(*tiered.Store).Durable().Reindex(ctx, nil)
			return err
		},
	}
}

func TestSharedMem(t *testing.T) {
	for _, m := range sharedModes {
		t.Run(m.name, func(t *testing.T) {
			storetest.RunShared(t, func(t *testing.T) storetest.Shared {
				mem := bucket.NewMem()
				return sharedOn(func(*testing.T) bucket.Bucket { return mem }, m.o)
			})
		})
	}
}

func TestSharedDir(t *testing.T) {
	for _, m := range sharedModes {
		t.Run(m.name, func(t *testing.T) {
			storetest.RunShared(t, func(t *testing.T) storetest.Shared {
				dir := t.TempDir()
				return sharedOn(func(t *testing.T) bucket.Bucket {
					b, err := bucket.NewDir(dir)
					if err != nil {
						t.Fatal(err)
					}
					return b
				}, m.o)
			})
		})
	}
}

func TestMinIOShared(t *testing.T) {
	srv := startMinIO(t)
	for _, m := range sharedModes {
		t.Run(m.name, func(t *testing.T) {
			storetest.RunShared(t, func(t *testing.T) storetest.Shared {
				name := srv.NewBucket(t)
				fenced := m.o
				fenced.Fencing = true
				return storetest.Shared{
					Open:       func(t *testing.T) cairn.Store { return minioStore(t, srv, name, &m.o) },
					OpenFenced: func(t *testing.T) cairn.Store { return minioStore(t, srv, name, &fenced) },
					Reindex: func(ctx context.Context, s cairn.Store) error {
						_, err := s.(*tiered.Store).Durable().Reindex(ctx, nil)
						return err
					},
				}
			})
		})
	}
}
