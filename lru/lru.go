// Package lru is the in-process tier of cairn: a cache of encoded
// checkpoints bounded by bytes rather than by count (checkpoints vary 50× in
// size), built on hashicorp/golang-lru/v2.
//
// # The byte bound
//
// Every entry costs [EntryOverhead] plus the length of its Value, ETag and
// WorkflowName, and [LabelOverhead] plus the length of key and value for
// each of its Labels ([Entry.Cost]). The cache keeps the sum of the costs at or
// under Options.MaxBytes by evicting clean entries, least recently used
// first. A dirty entry (one that is not yet durable) is never evicted: it
// stays until [Cache.MarkClean] or [Cache.Remove]. If dirty entries alone
// exceed MaxBytes the cache holds them anyway, and holds no clean entry
// beside them; applying backpressure on dirty bytes is the caller's job
// (see [Cache.DirtyBytes]). A clean entry that cannot fit, because it is
// larger than MaxBytes or than the room the dirty bytes leave, is not
// stored: Put reports false.
//
// # Versions
//
// Every stored entry gets a version from a counter that only increases. A
// flusher that writes a dirty entry out passes the version it wrote to
// [Cache.MarkClean], which cleans the entry only if it is still that
// version: a Put that replaced it meanwhile is not yet durable and stays
// dirty. [Cache.CompareAndPut] stores only over a given version (or only
// when the key is absent), so that filling the cache from storage never
// overwrites a newer Save.
//
// # Ownership
//
// Entries are immutable. Put takes ownership of Value and Labels: the
// cache never copies them, and hands the same slice and map to every Get,
// Peek, Dirty and OnEvict, so neither the caller of Put nor any reader may
// modify them.
//
// # Concurrency
//
// A Cache is safe for concurrent use; one mutex guards it. The OnEvict hook
// runs after the eviction, outside the lock, in the goroutine whose call
// caused it, so it may call back into the cache; hooks for evictions caused
// by different goroutines may run concurrently.
package lru

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	golru "github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/cairnstore/cairn"
)

// DefaultMaxBytes is the bound a zero Options.MaxBytes selects.
const DefaultMaxBytes = 64 << 20

// EntryOverhead is the fixed cost in bytes charged for each entry on top of
// its variable-length fields: an estimate of the list element, map slot and
// bookkeeping the cache keeps per entry, so that many tiny entries cannot
// exceed the bound in memory while staying under it on paper.
const EntryOverhead = 160

// LabelOverhead is the fixed cost in bytes charged for each label of an
// entry on top of its key and value: an estimate of its map slot (two
// string headers and the map's per-slot bookkeeping).
const LabelOverhead = 48

// Entry is one cached object: its encoded bytes and the little metadata a
// store needs without decoding them.
type Entry struct {
	// Value is the encoded object. Put takes ownership of it; nobody may
	// modify it afterwards (see the package doc).
	Value []byte

	// ETag is the ETag of the stored object as last seen (by a GET, or by
	// the PUT that made the entry clean), for conditional writes and
	// revalidation; empty when unknown. A Put with an empty ETag keeps the
	// ETag already cached for the key, because a new unsaved version does
	// not change the stored object.
	ETag string

	// Dirty marks an entry that is not yet durable. The cache never evicts
	// it; MarkClean clears it.
	Dirty bool

	// Written marks a clean entry that its owner wrote and made durable
	// itself (set by MarkClean, or given to Put), as opposed to one filled
	// from a read, which may describe an object the owner's index does not
	// know. The cache does not interpret it otherwise.
	Written bool

	// WorkflowName, Timestamp and Labels summarise the object, so that a
	// listing can include dirty entries without decoding them. The cache
	// does not interpret them. Labels, like Value, belong to the cache
	// once Put: nobody may modify the map afterwards. Nil for none.
	WorkflowName string
	Timestamp    time.Time
	Labels       map[string]string

	// Lease is the epoch of the lease (cairn.Claimer) a dirty entry was
	// saved under, 0 for none, so that its flush is fenced by it. The
	// cache does not interpret it.
	Lease uint64

	// Epoch is the lease epoch the entry's record is stamped with
	// (cairn.LeaseEpoch), which the durable tier keeps in the index. The
	// cache does not interpret it.
	Epoch uint64

	// Version is set by the cache when it stores the entry (see the
	// package doc); the value given to Put is ignored.
	Version uint64
}

// Cost is what e counts against Options.MaxBytes.
func (e Entry) Cost() int64 {
	n := EntryOverhead + int64(len(e.Value)) + int64(len(e.ETag)) + int64(len(e.WorkflowName))
	for k, v := range e.Labels {
		n += LabelOverhead + int64(len(k)) + int64(len(v))
	}
	return n
}

// Options configure a Cache. A nil *Options, and zero fields, select the
// defaults.
type Options[K comparable] struct {
	// MaxBytes bounds the total cost of the entries (see the package doc
	// for the exception made for dirty entries). Zero means
	// DefaultMaxBytes; a negative value is invalid.
	MaxBytes int64

	// OnEvict, if set, is called once for each entry evicted to make room,
	// after it has left the cache and outside the cache's lock. It is
	// never called for dirty entries (they are never evicted), nor for
	// entries that Remove, Put or CompareAndPut replace or drop.
	OnEvict func(key K, e Entry)
}

// Stats is a snapshot of a cache's counters and size.
type Stats struct {
	Hits      uint64 // Gets that found the key
	Misses    uint64 // Gets that did not
	Evictions uint64 // clean entries evicted to make room
	Rejected  uint64 // clean entries that Put or CompareAndPut could not fit

	Entries      int   // entries held, dirty or clean
	DirtyEntries int   // of which dirty
	Bytes        int64 // total cost of the entries held
	DirtyBytes   int64 // of which dirty
	MaxBytes     int64 // the bound
}

// Item is a key with its entry, as returned by Dirty.
type Item[K comparable] struct {
	Key   K
	Entry Entry
}

// item is what the cache holds per key. Clean items live in the golang-lru
// list, which gives the eviction order; dirty items live in a plain map,
// outside that list, so that evicting the oldest entry never has to skip
// one.
type item struct {
	e    Entry
	cost int64
	// etagVer is the version whose Put or flush supplied e.ETag. A flush
	// of an older version than the current one may still report a newer
	// ETag than the entry has; etagVer decides (see MarkClean).
	etagVer uint64
}

// Cache is a byte-bounded LRU cache of immutable encoded objects; see the
// package doc for its contract. Create one with New.
type Cache[K comparable] struct {
	maxBytes int64
	onEvict  func(K, Entry)

	mu         sync.Mutex
	clean      *golru.LRU[K, *item]
	dirty      map[K]*item
	seq        uint64 // the last version handed out
	bytes      int64
	dirtyBytes int64
	hits       uint64
	misses     uint64
	evictions  uint64
	rejected   uint64
}

// New returns an empty cache. It fails, with an error matching
// cairn.ErrInvalid, only when opts is invalid.
func New[K comparable](opts *Options[K]) (*Cache[K], error) {
	var o Options[K]
	if opts != nil {
		o = *opts
	}
	if o.MaxBytes < 0 {
		return nil, fmt.Errorf("lru: MaxBytes %d is negative: %w", o.MaxBytes, cairn.ErrInvalid)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	// The count bound of golang-lru is never reached: bytes bound the
	// cache, and this type evicts by hand.
	clean, err := golru.NewLRU[K, *item](math.MaxInt, nil)
	if err != nil {
		return nil, fmt.Errorf("lru: %w", err)
	}
	return &Cache[K]{
		maxBytes: o.MaxBytes,
		onEvict:  o.OnEvict,
		clean:    clean,
		dirty:    make(map[K]*item),
	}, nil
}

// evicted collects what a call evicted, to report after the lock is
// released.
type evicted[K comparable] []Item[K]

func (c *Cache[K]) notify(ev evicted[K]) {
	if c.onEvict == nil {
		return
	}
	for _, it := range ev {
		c.onEvict(it.Key, it.Entry)
	}
}

// Get returns the entry for key and whether it was present, counting a hit
// or a miss. A hit on a clean entry makes it the most recently used.
func (c *Cache[K]) Get(key K) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.dirty[key]; ok {
		c.hits++
		return it.e, true
	}
	if it, ok := c.clean.Get(key); ok {
		c.hits++
		return it.e, true
	}
	c.misses++
	return Entry{}, false
}

// Peek is Get without side effects: it neither counts nor changes recency.
func (c *Cache[K]) Peek(key K) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it := c.lookup(key); it != nil {
		return it.e, true
	}
	return Entry{}, false
}

// Put stores e under key, replacing any entry there, and returns the
// version it assigned. A clean e becomes the most recently used entry; a
// dirty one is held until MarkClean or Remove. Storing may evict clean
// entries, reported to OnEvict before Put returns.
//
// A clean e that cannot fit (see the package doc) is not stored: Put
// returns false and drops the entry that was under key, which e was meant
// to supersede.
func (c *Cache[K]) Put(key K, e Entry) (version uint64, stored bool) {
	var ev evicted[K]
	func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		version, stored = c.put(key, e, c.lookup(key), &ev)
	}()
	c.notify(ev)
	return version, stored
}

// CompareAndPut is Put on condition that the entry under key has version
// old; old 0 means the key must be absent. It returns false, and changes
// nothing, when the condition fails, and otherwise does what Put does. A
// cache fill after a read from storage uses it so as not to overwrite a
// newer entry stored meanwhile.
func (c *Cache[K]) CompareAndPut(key K, old uint64, e Entry) (version uint64, stored bool) {
	var ev evicted[K]
	func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		cur := c.lookup(key)
		if (cur == nil && old != 0) || (cur != nil && cur.e.Version != old) {
			return
		}
		version, stored = c.put(key, e, cur, &ev)
	}()
	c.notify(ev)
	return version, stored
}

// MarkClean records that the entry under key, at version, is durable and
// that its stored object has the given ETag. It reports whether it cleaned
// the entry; it returns true, too, for an entry already clean at that
// version. An entry it cleans becomes the most recently used, and may be
// evicted at once (and reported to OnEvict) if dirty entries leave no room
// for it.
//
// If key holds a newer version (a Put replaced the entry after the flush
// began), that entry stays dirty and MarkClean returns false, but the
// entry takes the given ETag, which is now the stored object's, unless a
// Put or MarkClean of a version at least as new supplied one. If key is
// absent, MarkClean does nothing and returns false.
func (c *Cache[K]) MarkClean(key K, version uint64, etag string) bool {
	var ev evicted[K]
	var cleaned bool
	func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		it := c.lookup(key)
		if it == nil || version == 0 || version > it.e.Version {
			return
		}
		if version >= it.etagVer {
			c.setETag(it, etag, version)
		}
		if version == it.e.Version {
			cleaned = true
			it.e.Written = true
			if it.e.Dirty {
				delete(c.dirty, key)
				c.dirtyBytes -= it.cost
				it.e.Dirty = false
				c.clean.Add(key, it)
			}
		}
		// A longer ETag may have pushed the cache over its bound.
		c.evict(&ev)
	}()
	c.notify(ev)
	return cleaned
}

// Remove drops the entry under key, dirty or clean, without calling
// OnEvict, and reports whether there was one.
func (c *Cache[K]) Remove(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.lookup(key)
	if it == nil {
		return false
	}
	c.remove(key, it)
	return true
}

// CompareAndRemove removes the entry under key if it has version, and
// reports whether it did: a caller that read an entry removes that entry,
// never a newer one stored since.
func (c *Cache[K]) CompareAndRemove(key K, version uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.lookup(key)
	if it == nil || it.e.Version != version {
		return false
	}
	c.remove(key, it)
	return true
}

// Dirty returns a snapshot of the dirty entries, oldest version first (the
// order in which they were stored).
func (c *Cache[K]) Dirty() []Item[K] {
	c.mu.Lock()
	out := make([]Item[K], 0, len(c.dirty))
	for k, it := range c.dirty {
		out = append(out, Item[K]{Key: k, Entry: it.e})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Item[K]) int { return cmp.Compare(a.Entry.Version, b.Entry.Version) })
	return out
}

// Len returns the number of entries, dirty or clean.
func (c *Cache[K]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clean.Len() + len(c.dirty)
}

// Bytes returns the total cost of the entries, dirty or clean.
func (c *Cache[K]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// DirtyBytes returns the total cost of the dirty entries.
func (c *Cache[K]) DirtyBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirtyBytes
}

// Stats returns the counters and sizes, taken together at one instant.
func (c *Cache[K]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Hits:         c.hits,
		Misses:       c.misses,
		Evictions:    c.evictions,
		Rejected:     c.rejected,
		Entries:      c.clean.Len() + len(c.dirty),
		DirtyEntries: len(c.dirty),
		Bytes:        c.bytes,
		DirtyBytes:   c.dirtyBytes,
		MaxBytes:     c.maxBytes,
	}
}

// The methods below require c.mu.

func (c *Cache[K]) lookup(key K) *item {
	if it, ok := c.dirty[key]; ok {
		return it
	}
	if it, ok := c.clean.Peek(key); ok {
		return it
	}
	return nil
}

// put stores e under key in place of cur (nil when absent).
func (c *Cache[K]) put(key K, e Entry, cur *item, ev *evicted[K]) (uint64, bool) {
	it := &item{e: e}
	if e.ETag == "" && cur != nil {
		it.e.ETag, it.etagVer = cur.e.ETag, cur.etagVer
	}
	it.cost = it.e.Cost()
	if !e.Dirty {
		// Clean entries cannot displace dirty ones, so the room for
		// this one is what the other dirty entries leave.
		room := c.maxBytes - c.dirtyBytes
		if cur != nil && cur.e.Dirty {
			room += cur.cost
		}
		if it.cost > room {
			if cur != nil {
				c.remove(key, cur)
			}
			c.rejected++
			return 0, false
		}
	}
	if cur != nil {
		if cur.e.Dirty || e.Dirty {
			c.remove(key, cur)
		} else {
			c.bytes -= cur.cost // clean over clean: Add below reuses its list element
		}
	}
	c.seq++
	it.e.Version = c.seq
	if e.ETag != "" {
		it.etagVer = c.seq
	}
	c.bytes += it.cost
	if e.Dirty {
		c.dirty[key] = it
		c.dirtyBytes += it.cost
	} else {
		c.clean.Add(key, it)
	}
	c.evict(ev)
	return c.seq, true
}

func (c *Cache[K]) remove(key K, it *item) {
	c.bytes -= it.cost
	if it.e.Dirty {
		delete(c.dirty, key)
		c.dirtyBytes -= it.cost
	} else {
		c.clean.Remove(key)
	}
}

// setETag changes it's ETag in place, keeping the byte count right; it
// does not evict.
func (c *Cache[K]) setETag(it *item, etag string, ver uint64) {
	it.e.ETag, it.etagVer = etag, ver
	cost := it.e.Cost()
	c.bytes += cost - it.cost
	if it.e.Dirty {
		c.dirtyBytes += cost - it.cost
	}
	it.cost = cost
}

// evict removes clean entries, least recently used first, until the cache
// is within its bound or holds only dirty entries.
func (c *Cache[K]) evict(ev *evicted[K]) {
	for c.bytes > c.maxBytes {
		key, it, ok := c.clean.RemoveOldest()
		if !ok {
			return
		}
		c.bytes -= it.cost
		c.evictions++
		if c.onEvict != nil {
			*ev = append(*ev, Item[K]{Key: key, Entry: it.e})
		}
	}
}
