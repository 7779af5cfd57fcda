package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// sealSizes are the state sizes of BenchmarkSeal: n messages of about 115
// bytes of MessagePack each (checkpoint10KB's 80 make its 10 KB).
var sealSizes = []struct {
	name string
	msgs int
}{{"1KB", 8}, {"10KB", 80}, {"100KB", 800}}

// checkpointMsgs returns a checkpoint of run id whose state holds n small
// conversation messages, as checkpoint10KB's: compressible, JSON-like.
func checkpointMsgs(id uuid.UUID, n int) *cairn.Checkpoint {
	msgs := make([]any, 0, n)
	for i := range n {
		msgs = append(msgs, map[string]any{"role": "assistant", "tokens": int64(100 + i), "score": 0.5 + float64(i)/1000,
			"content": fmt.Sprintf("step %d: the order was checked against the inventory and approved", i)})
	}
	c := cp(id, 1)
	c.State["messages"] = msgs
	return c
}

// sealBackend is a bucket BenchmarkSeal runs over: the in-memory one, or a
// directory in a temporary directory (each Put a file written, fsynced and
// renamed).
type sealBackend struct {
	name string
	new  func(b *testing.B) bucket.Bucket
}

var sealBackends = []sealBackend{
	{"mem", func(*testing.B) bucket.Bucket { return bucket.NewMem() }},
	{"dir", func(b *testing.B) bucket.Bucket {
		d, err := bucket.NewDir(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return d
	}},
}

// sealStore opens a tiered store with options o over bk, its durable store
// under prefix "bench" (default index options), sealed with kr when kr is
// not nil.
func sealStore(b *testing.B, bk bucket.Bucket, kr *seal.Keyring, o tiered.Options) *tiered.Store {
	b.Helper()
	o.Durable = durable.Options{Prefix: "bench", Keyring: kr}
	s, err := tiered.New(bk, &o)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSeal measures what client-side encryption (durable.Options.
// Keyring) costs, each case plain and sealed in the same run, at states of
// 1, 10 and 100 KB:
//
//   - save-through: a write-through Save (the run's object PUT and its
//     index commit, both sealed), over 64 runs in turn.
//   - save-back: what a write-back Save costs its caller (the flusher
//     seals later, outside the time: FlushWindow is an hour).
//   - save-back-flushed: write-back Saves of 64 runs, then a Flush, all
//     in the time, per Save: the sealing the flusher does is included.
//   - load-hit: a Load served by the cache (it holds the opened record, so
//     sealing should cost nothing here).
//   - load-miss: a Load by a store whose cache holds nothing (CacheBytes 1:
//     no record fits), so every Load is a GET, an open of the envelope, a
//     decompression and a decode: another process's first Load.
//   - bucket-put and bucket-get: the sealing alone, a Put or Get of the
//     run's compressed record on the in-memory bucket, bare or wrapped by
//     seal.Wrap, without the store around it.
//
// The bucket matters only where it is reached (save-through, the flush,
// load-miss); those run over both the in-memory bucket and a directory
// bucket, the others over the in-memory one.
func BenchmarkSeal(b *testing.B) {
	key, err := seal.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	kr, err := seal.NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
	modes := []struct {
		name string
		kr   *seal.Keyring
	}{{"plain", nil}, {"sealed", kr}}
	ctx := context.Background()
	ids := make([]uuid.UUID, 64)
	for i := range ids {
		ids[i] = uuid.New()
	}

	for _, bk := range sealBackends {
		for _, sz := range sealSizes {
			b.Run(fmt.Sprintf("save-through/%s/%s", bk.name, sz.name), func(b *testing.B) {
				for _, m := range modes {
					b.Run(m.name, func(b *testing.B) {
						s := sealStore(b, bk.new(b), m.kr, tiered.Options{Mode: tiered.WriteThrough})
						defer s.Close(ctx)
						c := checkpointMsgs(ids[0], sz.msgs)
						b.ReportAllocs()
						i := 0
						for b.Loop() {
							c.RunID = ids[i%len(ids)]
							c.State["step"] = int64(i)
							if err := s.Save(ctx, c); err != nil {
								b.Fatal(err)
							}
							i++
						}
					})
				}
			})
		}
	}

	for _, sz := range sealSizes {
		b.Run("save-back/mem/"+sz.name, func(b *testing.B) {
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					s := sealStore(b, bucket.NewMem(), m.kr, tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, MaxDirtyBytes: 1 << 30})
					defer s.Close(ctx)
					c := checkpointMsgs(ids[0], sz.msgs)
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						c.RunID = ids[i%len(ids)]
						c.State["step"] = int64(i)
						if err := s.Save(ctx, c); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
			}
		})
	}

	for _, bk := range sealBackends {
		for _, sz := range sealSizes {
			b.Run(fmt.Sprintf("save-back-flushed/%s/%s", bk.name, sz.name), func(b *testing.B) {
				for _, m := range modes {
					b.Run(m.name, func(b *testing.B) {
						s := sealStore(b, bk.new(b), m.kr, tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour, MaxDirtyBytes: 1 << 30})
						defer s.Close(ctx)
						c := checkpointMsgs(ids[0], sz.msgs)
						b.ReportAllocs()
						i := 0
						for b.Loop() {
							c.RunID = ids[i%len(ids)]
							c.State["step"] = int64(i)
							if err := s.Save(ctx, c); err != nil {
								b.Fatal(err)
							}
							i++
							if i%len(ids) == 0 {
								if err := s.Flush(ctx); err != nil {
									b.Fatal(err)
								}
							}
						}
						if err := s.Flush(ctx); err != nil {
							b.Fatal(err)
						}
						if got := s.Stats().Committed; got == 0 && i > 0 {
							b.Fatalf("the flusher committed nothing after %d Saves", i)
						}
					})
				}
			})
		}
	}

	for _, sz := range sealSizes {
		b.Run("load-hit/mem/"+sz.name, func(b *testing.B) {
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					s := sealStore(b, bucket.NewMem(), m.kr, tiered.Options{})
					defer s.Close(ctx)
					c := checkpointMsgs(ids[0], sz.msgs)
					if err := s.Save(ctx, c); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := s.Load(ctx, c.RunID); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}

	for _, sz := range sealSizes {
		codec := cairn.DefaultCodec()
		rec, err := codec.EncodeRecord(nil, checkpointMsgs(ids[0], sz.msgs))
		if err != nil {
			b.Fatal(err)
		}
		body := codec.Compress(nil, rec)
		wrap := func(mem bucket.Bucket, kr *seal.Keyring) bucket.Bucket {
			if kr == nil {
				return mem
			}
			return seal.Wrap(mem, kr)
		}
		b.Run("bucket-put/mem/"+sz.name, func(b *testing.B) {
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					bk := wrap(bucket.NewMem(), m.kr)
					b.ReportAllocs()
					for b.Loop() {
						if _, err := bk.Put(ctx, "bench/runs/"+ids[0].String(), body, nil); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
		b.Run("bucket-get/mem/"+sz.name, func(b *testing.B) {
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					bk := wrap(bucket.NewMem(), m.kr)
					key := "bench/runs/" + ids[0].String()
					if _, err := bk.Put(ctx, key, body, nil); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						o, err := bk.Get(ctx, key, nil)
						if err != nil {
							b.Fatal(err)
						}
						if len(o.Body) != len(body) {
							b.Fatalf("Get returned %d bytes, want %d", len(o.Body), len(body))
						}
					}
				})
			}
		})
	}

	for _, bk := range sealBackends {
		for _, sz := range sealSizes {
			b.Run(fmt.Sprintf("load-miss/%s/%s", bk.name, sz.name), func(b *testing.B) {
				for _, m := range modes {
					b.Run(m.name, func(b *testing.B) {
						bkt := bk.new(b)
						w := sealStore(b, bkt, m.kr, tiered.Options{})
						c := checkpointMsgs(ids[0], sz.msgs)
						if err := w.Save(ctx, c); err != nil {
							b.Fatal(err)
						}
						if err := w.Close(ctx); err != nil {
							b.Fatal(err)
						}
						r := sealStore(b, bkt, m.kr, tiered.Options{CacheBytes: 1})
						defer r.Close(ctx)
						b.ReportAllocs()
						for b.Loop() {
							if _, err := r.Load(ctx, c.RunID); err != nil {
								b.Fatal(err)
							}
						}
						if st := r.Stats(); st.Cache.Hits != 0 {
							b.Fatalf("load-miss: %d cache hits", st.Cache.Hits)
						}
					})
				}
			})
		}
	}
}
