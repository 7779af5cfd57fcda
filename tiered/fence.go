package tiered

import (
	"sync"

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

// known is what a fence knows of a run at one moment.
type known struct {
	etag string
	ok   bool
}

// state returns what f knows of run now, for forgetIf.
func (f *fence) state(run uuid.UUID) known {
	if f == nil {
		return known{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	etag, ok := f.etags[run]
	return known{etag, ok}
}

// forgetIf forgets run (found gone by a GET) unless what f knows of it
// changed since was: a write of this store since the GET began is newer
// than the GET's answer.
func (f *fence) forgetIf(run uuid.UUID, was known) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if etag, ok := f.etags[run]; ok == was.ok && etag == was.etag {
		delete(f.etags, run)
		delete(f.fenced, run)
	}
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
