package tiered_test

// Review tests of the large-value offload under tiered (write-back and
// write-through, with and without a keyring).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// reviewBlobPuts counts the PUTs of blobs.
type reviewBlobPuts struct {
	bucket.Bucket
	mu    sync.Mutex
	blobs int
}

func (c *reviewBlobPuts) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	if strings.Contains(key, "/blobs/") {
		c.mu.Lock()
		c.blobs++
		c.mu.Unlock()
	}
	return c.Bucket.Put(ctx, key, body, o)
}

func (c *reviewBlobPuts) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobs
}

func reviewText(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// TestBlobReviewTieredUnchangedValueNoPut: through tiered, in both modes
// and sealed or not, a big value unchanged across Saves costs its blobs'
// PUTs once; every Save's small change still reaches the bucket; another
// process (a fresh tiered store) loads the last state whole.
func TestBlobReviewTieredUnchangedValueNoPut(t *testing.T) {
	k, err := seal.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []tiered.Mode{tiered.WriteThrough, tiered.WriteBack} {
		for _, sealed := range []bool{false, true} {
			t.Run(fmt.Sprintf("mode %v sealed %v", mode, sealed), func(t *testing.T) {
				ctx := context.Background()
				mem := bucket.NewMem()
				cnt := &reviewBlobPuts{Bucket: mem}
				opts := func() *tiered.Options {
					o := &tiered.Options{Mode: mode, FlushWindow: time.Millisecond}
					o.Durable = testDurable()
					o.Durable.Offload = &durable.OffloadOptions{Threshold: 16 << 10}
					if sealed {
						o.Durable.Keyring = kr
					}
					return o
				}
				s, err := tiered.New(cnt, opts())
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(ctx)
				run := uuid.New()
				big := reviewText(200 << 10)
				ts := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
				var c *cairn.Checkpoint
				var first int
				const saves = 10
				for i := range saves {
					c = &cairn.Checkpoint{WorkflowName: "wf", RunID: run, Timestamp: ts.Add(time.Duration(i) * time.Second),
						State: map[string]any{"big": big, "step": int64(i)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
					if err := s.Save(ctx, c); err != nil {
						t.Fatal(err)
					}
					if err := s.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						first = cnt.n()
					}
				}
				if first == 0 {
					t.Fatal("the first Save offloaded nothing")
				}
				if extra := cnt.n() - first; extra != 0 {
					t.Fatalf("%d blob PUTs for %d Saves of an unchanged value (after the first's %d)", extra, saves-1, first)
				}
				o := opts()
				o.Mode = tiered.WriteThrough
				r, err := tiered.New(mem, o)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close(ctx)
				got, err := r.Load(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if got.State["big"] != big || got.State["step"] != int64(saves-1) {
					t.Fatalf("another store loads step %v, big of %d bytes", got.State["step"], len(fmt.Sprint(got.State["big"])))
				}
			})
		}
	}
}
