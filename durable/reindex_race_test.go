package durable_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
)

// holdPut is a Mem whose first Put of a key with a given prefix, once
// armed, waits until released: a writer paused in the middle of a step.
type holdPut struct {
	*bucket.Mem
	mu      sync.Mutex
	prefix  string        // "" when not armed
	reached chan struct{} // closed when the Put is held
	release chan struct{} // closed to let it go on
}

func (b *holdPut) arm(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prefix, b.reached, b.release = prefix, make(chan struct{}), make(chan struct{})
}

func (b *holdPut) Put(ctx context.Context, key string, body []byte, o *bucket.PutOptions) (string, error) {
	b.mu.Lock()
	held := b.prefix != "" && strings.HasPrefix(key, b.prefix)
	reached, release := b.reached, b.release
	if held {
		b.prefix = "" // once
	}
	b.mu.Unlock()
	if held {
		close(reached)
		<-release
	}
	return b.Mem.Put(ctx, key, body, o)
}

// A writer's background compaction, begun before the index was lost and
// ending after a Reindex of the lost index (whose numbers start again
// low), must not move the head back to its own snapshot: that snapshot
// reuses pages and follows logs that were lost with the index, so List
// would miss runs and pages, and Verify report them Unindexed. This is
// the race that made TestReindexRebuildsLabels fail now and then. Held
// before its snapshot's manifest is written, or before the head is
// moved, the compaction gives way to the rebuilt index either way.
func TestReindexWhileCompacting(t *testing.T) {
	for _, tt := range []struct{ name, hold string }{
		{"BeforeSnapshot", "cairn/index/snap/"},
		{"BeforeHead", "cairn/index/head"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			mem := &holdPut{Mem: bucket.NewMem()}
			writer := newStore(t, mem, nil) // compacts every 3 logs
			for i := range 5 {
				if err := writer.Save(ctx, labeledCP(i, t0.Add(time.Duration(i)*time.Second), map[string]string{"n": "low"})); err != nil {
					t.Fatal(err)
				}
			}
			durable.WaitBackground(writer) // a first snapshot: later ones build on it
			mem.arm(tt.hold)
			for i := 5; i < 10; i++ {
				if err := writer.Save(ctx, labeledCP(i, t0.Add(time.Duration(i)*time.Second), map[string]string{"n": "high"})); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-mem.reached:
			case <-time.After(10 * time.Second):
				t.Fatal("no compaction began after 10 saves")
			}
			loseIndex(t, mem.Mem)
			fresh := newStore(t, mem.Mem, nil)
			if rep := reindex(t, fresh); rep.Indexed != 10 {
				t.Fatalf("Reindex = %+v, want 10 runs indexed", rep)
			}
			close(mem.release)
			durable.WaitBackground(writer)

			if n := len(byLabel(t, fresh, map[string]string{"n": "high"})); n != 5 {
				t.Errorf("List(n=high) after the compaction ended: %d runs, want 5", n)
			}
			if got := listIDs(t, fresh); len(got) != 10 {
				t.Errorf("List after the compaction ended: %d runs, want 10", len(got))
			}
			if rep, err := fresh.Verify(ctx); err != nil || !rep.OK() {
				t.Errorf("Verify after the compaction ended = %+v, %v", rep, err)
			}
		})
	}
}
