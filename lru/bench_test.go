package lru_test

import (
	"testing"

	"github.com/google/uuid"
	golru "github.com/hashicorp/golang-lru/v2"

	"github.com/cairnstore/cairn/lru"
)

// The benchmarks compare the cache with the thread-safe golang-lru cache
// it is built on (bounded by count, no dirty entries), which is what a user
// would otherwise reach for, on 10 KB values keyed by run ID.

const (
	benchKeys  = 1024
	benchValue = 10 << 10
)

func benchIDs() []uuid.UUID {
	ids := make([]uuid.UUID, benchKeys)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

func newBenchCache(b *testing.B) *lru.Cache[uuid.UUID] {
	c, err := lru.New(&lru.Options[uuid.UUID]{MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkGetHit(b *testing.B) {
	ids := benchIDs()
	value := make([]byte, benchValue)
	b.Run("lru", func(b *testing.B) {
		c := newBenchCache(b)
		for _, id := range ids {
			c.Put(id, lru.Entry{Value: value, ETag: `"etag"`})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := c.Get(ids[i%benchKeys]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("golang-lru", func(b *testing.B) {
		c, _ := golru.New[uuid.UUID, []byte](benchKeys)
		for _, id := range ids {
			c.Add(id, value)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := c.Get(ids[i%benchKeys]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("lru/parallel", func(b *testing.B) {
		c := newBenchCache(b)
		for _, id := range ids {
			c.Put(id, lru.Entry{Value: value})
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(ids[i%benchKeys])
				i++
			}
		})
	})
}

func BenchmarkPut(b *testing.B) {
	ids := benchIDs()
	value := make([]byte, benchValue)
	// Half the keys' worth of bytes, so that steady state evicts on every
	// new key.
	max := int64(benchKeys/2) * (lru.EntryOverhead + benchValue)
	b.Run("lru/evicting", func(b *testing.B) {
		c, _ := lru.New(&lru.Options[uuid.UUID]{MaxBytes: max})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Put(ids[i%benchKeys], lru.Entry{Value: value})
			i++
		}
	})
	b.Run("golang-lru/evicting", func(b *testing.B) {
		c, _ := golru.New[uuid.UUID, []byte](benchKeys / 2)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Add(ids[i%benchKeys], value)
			i++
		}
	})
	// A Save and its flush: Put dirty, then MarkClean.
	b.Run("lru/dirty-then-clean", func(b *testing.B) {
		c, _ := lru.New(&lru.Options[uuid.UUID]{MaxBytes: max})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			id := ids[i%benchKeys]
			v, _ := c.Put(id, lru.Entry{Value: value, Dirty: true})
			c.MarkClean(id, v, `"etag"`)
			i++
		}
	})
}
