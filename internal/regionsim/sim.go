// Package regionsim simulates two or more sites (regions) writing one
// versioned bucket kept in step by asynchronous replication, as MinIO's
// active-active bucket replication does, for fast and deterministic
// tests of code that must survive it.
//
// Each Site is a versioned bucket (bucket.Bucket and bucket.Versioned)
// that answers from its own state at once. Every version a site makes (a
// Put, or the delete marker of a Delete) and every version it removes
// (DeleteVersion) is queued for replication to every other site; the test
// delivers the queue (Step, Pump, Settle) in an order drawn from the seed,
// or lets Background deliver it on a goroutine.
//
// # What is modelled
//
//   - A replicated version keeps its version ID, ETag, body, metadata and
//     modification time, as MinIO does.
//   - The current version of a key at a site is the one with the greatest
//     modification time, ties broken by version ID, the same way at every
//     site: last writer wins on the writing site's clock. Once every event
//     is delivered, the sites hold the same versions and so the same
//     current ones, whatever the order of delivery; the losers stay as
//     noncurrent versions. A delete marker is a version like any other.
//   - Each site has its own clock (Options.Clock, Options.Skew). A version
//     made at a site whose clock is behind may be noncurrent from the
//     start: a Put succeeds and Get returns another version, a Delete
//     succeeds and Get still finds the object.
//   - Conditional Puts are judged at the site alone, against its current
//     version: during a Cut, or before delivery, two sites both accept
//     IfNoneMatch "*" on the same key, and both IfMatch with one ETag.
//   - Delete adds a delete marker only when the site has a current object
//     for the key, as MinIO does: a Delete of an object whose Put has not
//     reached the site yet does nothing, and the object appears later.
//   - DeleteVersion is replicated: the version is removed at every site,
//     and a late or duplicated copy of it never brings it back. MinIO does
//     this when delete replication is on; S3 cross-region replication
//     never replicates the removal of a version (Options.LocalVersionDeletes
//     models that, and then the sites can diverge for good).
//   - Delivery can be reordered, duplicated, and dropped: a dropped event
//     waits for the next Scan (MinIO's scanner re-replicating failed
//     writes) or Settle. Replicas are not replicated again.
//
// Not modelled: replication status headers, failures of a site itself
// (its requests always succeed), and the rules of servers other than
// MinIO where they differ from the above (AWS S3 adds a delete marker on
// every Delete, for one).
//
// # Concurrency and determinism
//
// A Sim and its Sites are safe for concurrent use; one mutex guards them
// all, so every call is atomic. Given the same seed, options, clock and
// the same sequence of calls from one goroutine, a Sim makes the same
// version IDs and delivers in the same order. Background delivery, or
// calls from several goroutines, are not deterministic.
package regionsim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Sim. A nil *Options, like the zero value, means
// in-order delivery without faults and time.Now at every site.
type Options struct {
	// Reorder is the probability that a delivery takes a random pending
	// event rather than the oldest.
	Reorder float64
	// Duplicate is the probability that a delivered event is queued once
	// more, to be delivered again later. An event is duplicated at most
	// once.
	Duplicate float64
	// Drop is the probability that a delivery by Step (or Pump, or
	// Background) fails: the event is set aside until Scan or Settle
	// queues it again. Settle drops nothing.
	Drop float64
	// Clock returns the time at a site, from 0 to sites-1; nil means
	// time.Now for every site.
	Clock func(site int) time.Time
	// Skew[i] is added to site i's clock; missing entries are 0.
	Skew []time.Duration
	// LocalVersionDeletes keeps DeleteVersion at the site it is called
	// at, as S3 cross-region replication (and MinIO without delete
	// replication) does: the other sites keep the version.
	LocalVersionDeletes bool
}

// validate reports every problem with o for a Sim of n sites at once.
func (o *Options) validate(n int) error {
	var errs []error
	if n < 1 {
		errs = append(errs, fmt.Errorf("%d sites (want at least 1)", n))
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"Reorder", o.Reorder}, {"Duplicate", o.Duplicate}, {"Drop", o.Drop}} {
		if !(p.v >= 0 && p.v <= 1) {
			errs = append(errs, fmt.Errorf("%s %v is not a probability", p.name, p.v))
		}
	}
	if len(o.Skew) > n {
		errs = append(errs, fmt.Errorf("Skew has %d entries for %d sites", len(o.Skew), n))
	}
	return errors.Join(errs...)
}

// Sim is a set of sites replicating one bucket. Make one with New.
type Sim struct {
	opts  Options
	sites []*Site

	mu struct {
		sync.Mutex
		rng     *rand.Rand
		states  []*siteState
		pending []*event // oldest first
		dropped []*event
		cut     bool
	}
}

// event is the replication of one change made at a site to one other
// site.
type event struct {
	to      int
	key     string
	version *version // a version or delete marker to add; nil for a removal
	removed string   // the ID of the version to remove
	dup     bool     // duplicated already
}

// New returns a Sim of sites sites (at least 1), all empty, with
// versioning on. seed draws the order of delivery and the faults. New
// panics, naming every problem, if opts are invalid (probabilities outside
// [0, 1], more Skew entries than sites).
func New(seed int64, sites int, opts *Options) *Sim {
	s := &Sim{}
	if opts != nil {
		s.opts = *opts
		s.opts.Skew = slices.Clone(opts.Skew)
	}
	if err := s.opts.validate(sites); err != nil {
		panic("regionsim.New: " + err.Error())
	}
	s.mu.rng = rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x5deece66d))
	for i := range sites {
		s.sites = append(s.sites, &Site{sim: s, i: i})
		s.mu.states = append(s.mu.states, newSiteState())
	}
	return s
}

// Sites returns the number of sites.
func (s *Sim) Sites() int { return len(s.sites) }

// Site returns site i, from 0 to Sites()-1. It panics for another i.
func (s *Sim) Site(i int) *Site { return s.sites[i] }

// now returns site i's clock, in UTC.
func (s *Sim) now(i int) time.Time {
	t := time.Now()
	if s.opts.Clock != nil {
		t = s.opts.Clock(i)
	}
	if i < len(s.opts.Skew) {
		t = t.Add(s.opts.Skew[i])
	}
	return t.UTC()
}

// replicate queues a change made at site from for every other site. s.mu
// must be held.
func (s *Sim) replicate(from int, key string, v *version, removed string) {
	for to := range s.sites {
		if to != from {
			s.mu.pending = append(s.mu.pending, &event{to: to, key: key, version: v, removed: removed})
		}
	}
}

// Step takes one pending event and delivers it, or, with probability
// Options.Drop, sets it aside for Scan or Settle. It reports whether
// there was an event to take: false when none is pending or delivery is
// cut.
func (s *Sim) Step() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.take(true)
}

// Pump runs Step up to n times, until no event is pending, and returns
// the number of events taken.
func (s *Sim) Pump(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := 0
	for taken < n && s.take(true) {
		taken++
	}
	return taken
}

// Settle queues the dropped events again and delivers every pending event,
// and the duplicates that delivery makes, dropping none; it returns the
// number delivered. After Settle, with no Cut, the sites have converged
// (unless Options.LocalVersionDeletes). During a Cut it delivers nothing.
func (s *Sim) Settle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cut {
		return 0
	}
	s.scan()
	n := 0
	for s.take(false) {
		n++
	}
	return n
}

// Scan queues the dropped events again, after the pending ones, as
// MinIO's scanner finds the versions whose replication failed, and
// returns their number. It works during a Cut too.
func (s *Sim) Scan() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scan()
}

func (s *Sim) scan() int {
	n := len(s.mu.dropped)
	s.mu.pending = append(s.mu.pending, s.mu.dropped...)
	s.mu.dropped = nil
	return n
}

// Pending returns the number of events not delivered yet, the dropped
// ones included.
func (s *Sim) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.pending) + len(s.mu.dropped)
}

// Cut stops delivery between all sites, as a partition would: changes
// queue up and every site goes on serving its own state. Heal resumes.
func (s *Sim) Cut() {
	s.mu.Lock()
	s.mu.cut = true
	s.mu.Unlock()
}

// Heal ends a Cut. It delivers nothing by itself.
func (s *Sim) Heal() {
	s.mu.Lock()
	s.mu.cut = false
	s.mu.Unlock()
}

// take takes the next event: the oldest, or with probability Reorder a
// random one. With drop, it may set the event aside; otherwise it may
// queue a duplicate, and delivers it. s.mu must be held.
func (s *Sim) take(drop bool) bool {
	if s.mu.cut || len(s.mu.pending) == 0 {
		return false
	}
	i := 0
	if s.chance(s.opts.Reorder) {
		i = s.mu.rng.IntN(len(s.mu.pending))
	}
	e := s.mu.pending[i]
	s.mu.pending = slices.Delete(s.mu.pending, i, i+1)
	if drop && s.chance(s.opts.Drop) {
		s.mu.dropped = append(s.mu.dropped, e)
		return true
	}
	if !e.dup && s.chance(s.opts.Duplicate) {
		e.dup = true
		dup := *e
		s.mu.pending = append(s.mu.pending, &dup)
	}
	st := s.mu.states[e.to]
	if e.version != nil {
		st.add(e.key, e.version)
	} else {
		st.removed[e.removed] = true
		st.remove(e.key, e.removed)
	}
	return true
}

// chance draws true with probability p; it draws nothing when p is 0, so
// that options left at zero do not change the sequence drawn.
func (s *Sim) chance(p float64) bool {
	return p > 0 && s.mu.rng.Float64() < p
}

// Background delivers events on a goroutine, one every interval of
// every (a non-positive every means a millisecond), running a Scan when
// none is pending, until ctx ends or stop is called. stop ends the
// goroutine and waits for it; call it before the test ends. Delivery
// then interleaves with the test's own calls in no fixed order.
func (s *Sim) Background(ctx context.Context, every time.Duration) (stop func()) {
	if every <= 0 {
		every = time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if !s.Step() {
				s.Scan()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Converged reports whether every site has the same current objects
// under prefix (key and ETag; a key whose current version is a delete
// marker has none). If not, the string names the first key that differs
// and what two sites hold.
func (s *Sim) Converged(prefix string) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.mu.states[0].currentETags(prefix)
	for i, st := range s.mu.states[1:] {
		other := st.currentETags(prefix)
		if maps.Equal(first, other) {
			continue
		}
		keys := slices.Sorted(maps.Keys(first))
		keys = append(keys, slices.Sorted(maps.Keys(other))...)
		slices.Sort(keys)
		for _, k := range keys {
			if first[k] != other[k] {
				return false, fmt.Sprintf("key %q: site 0 has %s, site %d has %s", k, orNone(first[k]), i+1, orNone(other[k]))
			}
		}
	}
	return true, ""
}

func orNone(etag string) string {
	if etag == "" {
		return "no object"
	}
	return etag
}

// currentETags maps the keys under prefix with a current object to its
// ETag.
func (st *siteState) currentETags(prefix string) map[string]string {
	m := map[string]string{}
	for _, k := range st.keys[st.firstKey(prefix, ""):] {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if v := st.object(k); v != nil {
			m[k] = v.etag
		}
	}
	return m
}
