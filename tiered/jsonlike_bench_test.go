package tiered_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// BenchmarkCacheHit: a Load served by the cache of a store over an
// in-memory bucket, so it runs without MinIO. The two checkpoints hold
// about 10 KB of state each: 80 small maps (what a conversation looks like)
// or 5 long texts. Decoding costs follow the number of values, not the
// bytes. decode-maps-80 is the record decode alone; maps-80-floor builds
// the 80 maps from values already decoded and boxed, which no decoder that
// returns map[string]any can beat.
func BenchmarkCacheHit(b *testing.B) {
	s := open(b, bucket.NewMem(), &tiered.Options{})
	defer s.Close(context.Background())
	ctx := context.Background()
	maps := checkpoint10KB(uuid.New())
	texts := cp(uuid.New(), 1)
	for i := range 5 {
		texts.State[fmt.Sprint("output-", i)] = strings.Repeat("the order was approved and shipped. ", 57)
	}
	for _, bc := range []struct {
		name string
		c    *cairn.Checkpoint
	}{{"maps-80", maps}, {"texts-5", texts}} {
		if err := s.Save(ctx, bc.c); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Load(ctx, bc.c.RunID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	rec, err := cairn.DefaultCodec().EncodeRecord(nil, maps)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode-maps-80", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, err := cairn.DefaultCodec().DecodeRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	var keys [][]string
	var vals [][]any
	for _, m := range maps.State["messages"].([]any) {
		var ks []string
		var vs []any
		for k, v := range m.(map[string]any) {
			ks, vs = append(ks, k), append(vs, v)
		}
		keys, vals = append(keys, ks), append(vals, vs)
	}
	b.Run("maps-80-floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := make([]any, len(keys))
			for i, ks := range keys {
				m := map[string]any{}
				for j, k := range ks {
					m[k] = vals[i][j]
				}
				out[i] = m
			}
		}
	})
}
