package tiered

import (
	"encoding/binary"
	"slices"
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
// Without Options.Fencing (strict false) it fences nothing and only keeps
// the conflict log, for the leased writes (Claim) whose conflicts the
// durable store finds: every fencing method then does nothing.
type fence struct {
	strict bool // Options.Fencing
	mu     sync.Mutex
	etags  map[uuid.UUID]string
	fenced map[uuid.UUID]error // runs taken over, and the error their Saves get
	// The conflicts flushes met, numbered from base: each Flush reports
	// those met while it ran, and those no Flush has reported yet (from
	// next on). Trimmed when no Flush runs.
	log     []error
	base    int
	next    int
	flushes int // Flushes in progress
}

func newFence(strict bool) *fence {
	return &fence{strict: strict, etags: map[uuid.UUID]string{}, fenced: map[uuid.UUID]error{}}
}

// durable returns f as the durable store's Fence, or nil if fencing is
// off.
func (f *fence) durable() durable.Fence {
	if !f.strict {
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

// sawIf records etag as run's version if still() holds, checked under
// f's lock: a write whose Written comes later wins over it.
func (f *fence) sawIf(run uuid.UUID, etag string, still func() bool) {
	if !f.strict || etag == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if still() {
		f.etags[run] = etag
		delete(f.fenced, run)
	}
}

// forgetIf forgets run (found gone by a GET) if still() holds, checked
// under f's lock.
func (f *fence) forgetIf(run uuid.UUID, still func() bool) {
	if !f.strict {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if still() {
		delete(f.etags, run)
		delete(f.fenced, run)
	}
}

// saw records that this store's copy of run is now the version etag.
func (f *fence) saw(run uuid.UUID, etag string) { f.sawIf(run, etag, always) }

// forget drops what f knows of run (deleted, or gone).
func (f *fence) forget(run uuid.UUID) { f.forgetIf(run, always) }

func always() bool { return true }

// out returns the error of a Save of a run another worker took over, or
// nil.
func (f *fence) out(run uuid.UUID) error {
	if !f.strict {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced[run]
}

// takenOver records that a flush found run written by another worker:
// later Saves of it fail with err until it is Loaded or Deleted.
func (f *fence) takenOver(run uuid.UUID, err error) {
	if !f.strict {
		return
	}
	f.mu.Lock()
	f.fenced[run] = err
	f.mu.Unlock()
}

// record keeps the conflicts a flush met, for the Flushes to report.
func (f *fence) record(conflicts []error) {
	if len(conflicts) == 0 {
		return
	}
	f.mu.Lock()
	f.log = append(f.log, conflicts...)
	f.mu.Unlock()
}

// flushBegins marks a Flush begun and returns its start, for flushEnds.
func (f *fence) flushBegins() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
	return f.base + len(f.log)
}

// flushEnds returns what the Flush that began at start reports: every
// conflict met since it began (by its own flush or another), and those
// no Flush has reported yet.
func (f *fence) flushEnds(start int) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes--
	from := min(start, f.next) - f.base
	out := slices.Clone(f.log[from:])
	f.next = f.base + len(f.log)
	if f.flushes == 0 { // all reported: none is kept
		f.log, f.base = nil, f.next
	}
	return out
}

// generations guard what a GET brings back. For the runs of each stripe
// they count this store's changes (n: +2 when a write or Delete begins
// and again when it ends; +2 for a write-back Save or a flush's commit,
// which are instant here) and the writes and Deletes in progress (busy).
// A GET's copy is cached, and its ETag taken for fencing, only if no
// change of its stripe began or ended since the GET began and none is in
// progress: never over a write or Delete of the run made meanwhile,
// whatever became of that write's cache entry (too large to cache, or
// evicted since). A change to another run of the stripe only costs that
// GET its caching; 1024 stripes (16 KiB) keep that rare: at 1,000
// Saves/s, a 50 ms GET meets one in about 5% of misses.
type generations struct {
	n    [1024]atomic.Uint64
	busy [1024]atomic.Int32
}

func stripeOf(run uuid.UUID) int { return int(binary.BigEndian.Uint16(run[14:]) % 1024) }

// at returns run's stripe count, before a GET.
func (g *generations) at(run uuid.UUID) uint64 { return g.n[stripeOf(run)].Load() }

// unchanged reports whether what a GET that began at was read may be
// kept: nothing of its stripe began, ended or is in progress since.
func (g *generations) unchanged(run uuid.UUID, was uint64) bool {
	i := stripeOf(run)
	return g.busy[i].Load() == 0 && g.n[i].Load() == was
}

// begin marks a write or Delete of run in progress; end, its end.
func (g *generations) begin(run uuid.UUID) {
	i := stripeOf(run)
	g.busy[i].Add(1)
	g.n[i].Add(2)
}

func (g *generations) end(run uuid.UUID) {
	i := stripeOf(run)
	g.n[i].Add(2)
	g.busy[i].Add(-1)
}

// touch counts an instant change of run (a write-back Save, a commit).
func (g *generations) touch(run uuid.UUID) { g.n[stripeOf(run)].Add(2) }
