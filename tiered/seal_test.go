package tiered_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
)

// The cache tier over a sealed store, in both modes and fenced, is a
// store like any other: sealing reaches it through Options.Durable.
func TestConformanceSealed(t *testing.T) {
	k, err := seal.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name string
		opts tiered.Options
	}{
		{"through", tiered.Options{}},
		{"back", tiered.Options{Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond}},
		{"fenced-revalidated", tiered.Options{Fencing: true, Revalidate: true}},
	} {
		t.Run(o.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) cairn.Store {
				opts := o.opts
				opts.Durable = testDurable()
				opts.Durable.Keyring = kr
				raw := bucket.NewMem()
				s, err := tiered.New(raw, &opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					// Every object the store left is sealed.
					infos, _, err := raw.List(context.Background(), "", "", 1000)
					if err != nil {
						t.Fatal(err)
					}
					for _, in := range infos {
						info, err := raw.Head(context.Background(), in.Key)
						if err == nil && info.Metadata["cairn-seal"] == "" {
							t.Errorf("%s is not sealed", in.Key)
						}
					}
				})
				return s
			})
		})
	}
}
