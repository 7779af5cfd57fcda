package tiered

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// fence is a Store's fencing state (Options.Fencing): for each run, the
// ETag of the version its copy is based on (from its own write, or the
// Load that cached it), the runs another worker took over, and the
// conflicts not yet reported by a Flush. It implements durable.Fence, so
// that the durable store applies its conditions under the run's lock.
//
// A nil *fence is fencing off: every method does nothing.
type fence struct {
	mu     sync.Mutex
	etags  map[uuid.UUID]string
	fenced map[uuid.UUID]error // runs taken over, and the error their Saves get
	lost   []error             // conflicts not yet reported
}

func newFence() *fence {
	return &fence{etags: map[uuid.UUID]string{}, fenced: map[uuid.UUID]error{}}
}

// durable returns f as the durable store's Fence, or nil if fencing is
// off.
func (f *fence) durable() durable.Fence {
	if f == nil {
		return nil
	}
	return f
}

// Condition implements durable.Fence: If-Match on the ETag last seen; if
// none was seen, the run must not exist.
func (f *fence) Condition(run uuid.UUID) durable.Condition {
	f.mu.Lock()
	defer f.mu.Unlock()
	if etag, ok := f.etags[run]; ok {
		return durable.Condition{IfMatch: etag}
	}
	return durable.Condition{IfAbsent: true}
}

// Written implements durable.Fence.
func (f *fence) Written(run uuid.UUID, etag string) { f.saw(run, etag) }

// saw records that this store's copy of run is now the version etag.
func (f *fence) saw(run uuid.UUID, etag string) {
	if f == nil || etag == "" {
		return
	}
	f.mu.Lock()
	f.etags[run] = etag
	delete(f.fenced, run)
	f.mu.Unlock()
}

// forget drops what f knows of run (deleted, or gone).
func (f *fence) forget(run uuid.UUID) {
	if f == nil {
		return
	}
	f.mu.Lock()
	delete(f.etags, run)
	delete(f.fenced, run)
	f.mu.Unlock()
}

// out returns the error of a Save of a run another worker took over, or
// nil.
func (f *fence) out(run uuid.UUID) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced[run]
}

// takenOver records that a flush found run written by another worker:
// later Saves of it fail with err until it is Loaded or Deleted.
func (f *fence) takenOver(run uuid.UUID, err error) {
	f.mu.Lock()
	f.fenced[run] = err
	f.mu.Unlock()
}

// keep keeps the conflicts a background flush met, for the next Flush to
// report.
func (f *fence) keep(conflicts []error) {
	if f == nil || len(conflicts) == 0 {
		return
	}
	f.mu.Lock()
	f.lost = append(f.lost, conflicts...)
	f.mu.Unlock()
}

// report returns the conflicts background flushes met and no Flush has
// reported yet, once.
func (f *fence) report() []error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lost := f.lost
	f.lost = nil
	return lost
}

// generations guard what a GET brings back. Each counts, for the runs of
// one stripe, the writes (+2: a Save taken into the cache, a commit) and
// the Deletes (+1 when one begins, +1 when it ends, so the count is odd
// while one is out; Deletes are serialized by the flush semaphore) that
// this store made. A GET's answer is cached, and its ETag taken for
// fencing, only if its stripe's count was even when the GET began and has
// not moved since: never over a write or Delete of the run made
// meanwhile, whatever became of that write's cache entry (too large to
// cache, or evicted since). A write to another run of the stripe only
// costs that GET its caching; 1024 stripes (8 KiB) keep that rare: at
// 1,000 Saves/s, a 50 ms GET meets one in about 5% of misses.
type generations [1024]atomic.Uint64

func (g *generations) of(run uuid.UUID) *atomic.Uint64 {
	return &g[binary.BigEndian.Uint16(run[14:])%uint16(len(g))]
}

// at returns run's stripe count, before a GET.
func (g *generations) at(run uuid.UUID) uint64 { return g.of(run).Load() }

// unchanged reports whether what a GET that began at was read may be kept.
func (g *generations) unchanged(run uuid.UUID, was uint64) bool {
	return was%2 == 0 && g.of(run).Load() == was
}

func (g *generations) wrote(run uuid.UUID)    { g.of(run).Add(2) }
func (g *generations) deleting(run uuid.UUID) { g.of(run).Add(1) }
func (g *generations) deleted(run uuid.UUID)  { g.of(run).Add(1) }
