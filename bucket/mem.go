package bucket

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mem is an in-memory Bucket for tests and benchmarks. It behaves like S3
// where the interface lets a caller notice: ETags are the quoted hex MD5 of
// the body (so the same body gives the same ETag), a missing key is
// ErrNotFound, conditional Puts are atomic, and List returns keys in
// ascending byte order.
//
// Mem is safe for concurrent use. It copies bodies and metadata on the way
// in and on the way out: the caller may mutate what it passed to Put and
// what Get returned. It never returns ErrBusy unless a hook (SetHook)
// does.
//
// Every request that passes validation is counted (Stats), including
// requests that then fail, as a server would bill them.
//
// NewMem's bucket never had versioning on: its methods of Versioned see
// every object as its one version NullVersion. NewMemVersioned's keeps
// every version (see there).
type Mem struct {
	mu    sync.Mutex
	objs  map[string]*memObject // the current version of each key
	keys  sortedKeys            // the keys of objs, for List
	clock func() time.Time      // guarded by mu
	vers  *memVersions          // guarded by mu; nil unless versioned

	hook atomic.Pointer[memHook]

	gets, puts, heads, deletes, lists atomic.Int64
}

var (
	_ Bucket    = (*Mem)(nil)
	_ Versioned = (*Mem)(nil)
)

// memObject is immutable once stored: a Put replaces the pointer.
type memObject struct {
	body     []byte
	etag     string
	modified time.Time
	meta     map[string]string // nil when empty
}

type memHook struct {
	fn func(ctx context.Context, op, key string) error
}

// MemStats counts the requests a Mem has served, by operation.
type MemStats struct {
	Gets, Puts, Heads, Deletes, Lists int64
}

// NewMem returns an empty in-memory bucket whose clock is time.Now.
func NewMem() *Mem {
	return &Mem{objs: make(map[string]*memObject), clock: time.Now}
}

// SetClock makes now the source of LastModified for later Puts; nil
// restores time.Now. Safe to call concurrently with other methods.
func (m *Mem) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	m.mu.Lock()
	m.clock = now
	m.mu.Unlock()
}

// SetHook installs fn, called before every request that passes
// validation, with the request's context, its operation ("get", "put",
// "head", "delete", "list", or one of Versioned's: "versioning",
// "listversions", "getversion", "deleteversion"; as in Error.Op) and its
// key (the prefix for the listings, "" for versioning). A non-nil error from fn is returned to the caller as is and the
// request has no effect; fn may also sleep to add latency. fn runs outside
// Mem's lock, possibly on many goroutines at once. nil removes the hook.
func (m *Mem) SetHook(fn func(ctx context.Context, op, key string) error) {
	if fn == nil {
		m.hook.Store(nil)
		return
	}
	m.hook.Store(&memHook{fn: fn})
}

// Stats returns the number of requests served so far, by operation.
// Subtract two snapshots to count the requests of a stretch of work.
// Versioned's requests count with the ones S3 bills alike: GetVersion as
// a Get, ListVersions as a List, DeleteVersion as a Delete, and
// Versioning, a read of the bucket's configuration, as a Head.
func (m *Mem) Stats() MemStats {
	return MemStats{
		Gets:    m.gets.Load(),
		Puts:    m.puts.Load(),
		Heads:   m.heads.Load(),
		Deletes: m.deletes.Load(),
		Lists:   m.lists.Load(),
	}
}

// begin counts a validated request, runs the hook, and checks ctx, which
// the hook may have spent waiting.
func (m *Mem) begin(ctx context.Context, counter *atomic.Int64, op, key string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Key: key, Err: err}
	}
	counter.Add(1)
	if h := m.hook.Load(); h != nil {
		if err := h.fn(ctx, op, key); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Key: key, Err: err}
	}
	return nil
}

// Get implements Bucket. The returned Object, its Body and its Metadata
// belong to the caller.
func (m *Mem) Get(ctx context.Context, key string, opts *GetOptions) (*Object, error) {
	if err := CheckKey(key); err != nil {
		return nil, &Error{Op: "get", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.gets, "get", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o := m.objs[key]
	m.mu.Unlock()
	if o == nil {
		return nil, &Error{Op: "get", Key: key, Err: ErrNotFound}
	}
	return o.object("get", key, opts)
}

// object is what Get returns of o, a copy.
func (o *memObject) object(op, key string, opts *GetOptions) (*Object, error) {
	if opts != nil && opts.IfNoneMatch != "" && opts.IfNoneMatch == o.etag {
		return nil, &Error{Op: op, Key: key, Err: ErrNotModified}
	}
	if opts != nil && opts.MaxSize > 0 && int64(len(o.body)) > opts.MaxSize {
		return nil, &Error{Op: op, Key: key, Err: ErrTooLarge}
	}
	body := make([]byte, len(o.body))
	copy(body, o.body)
	return &Object{Info: o.info(key, true), Body: body}, nil
}

// Put implements Bucket. The check of opts' condition and the write are
// one atomic step. Put keeps a copy of body and of opts.Metadata.
func (m *Mem) Put(ctx context.Context, key string, body []byte, opts *PutOptions) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", &Error{Op: "put", Key: key, Err: err}
	}
	if err := CheckPut(opts); err != nil {
		return "", &Error{Op: "put", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.puts, "put", key); err != nil {
		return "", err
	}
	o := &memObject{body: make([]byte, len(body)), etag: etagOf(body)}
	copy(o.body, body)
	if opts != nil && len(opts.Metadata) > 0 {
		o.meta = maps.Clone(opts.Metadata)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.objs[key]
	if opts != nil {
		if opts.IfNoneMatch == "*" && cur != nil {
			return "", &Error{Op: "put", Key: key, Err: ErrPrecondition}
		}
		if opts.IfMatch != "" && (cur == nil || cur.etag != opts.IfMatch) {
			return "", &Error{Op: "put", Key: key, Err: ErrPrecondition}
		}
	}
	o.modified = m.clock().UTC()
	if cur == nil {
		m.keys.insert(key)
	}
	m.objs[key] = o
	if m.vers != nil {
		m.vers.add(key, o, o.modified)
	}
	return o.etag, nil
}

// Head implements Bucket. The returned Info and its Metadata belong to
// the caller.
func (m *Mem) Head(ctx context.Context, key string) (*Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, &Error{Op: "head", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.heads, "head", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o := m.objs[key]
	m.mu.Unlock()
	if o == nil {
		return nil, &Error{Op: "head", Key: key, Err: ErrNotFound}
	}
	info := o.info(key, true)
	return &info, nil
}

// Delete implements Bucket. Deleting a missing key succeeds. With
// versioning on, it adds a delete marker when the key has a current
// object, and nothing otherwise, as MinIO does (AWS S3 adds a marker
// every time).
func (m *Mem) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return &Error{Op: "delete", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.deletes, "delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		delete(m.objs, key)
		m.keys.remove(key)
		if m.vers != nil {
			m.vers.add(key, nil, m.clock().UTC())
		}
	}
	return nil
}

// List implements Bucket. A negative limit, like 0, means 1000. The page
// is a consistent snapshot: the keys present at one instant.
func (m *Mem) List(ctx context.Context, prefix, startAfter string, limit int) ([]Info, bool, error) {
	if err := m.begin(ctx, &m.lists, "list", prefix); err != nil {
		return nil, false, err
	}
	limit = listLimit(limit)
	m.mu.Lock()
	defer m.mu.Unlock()
	var infos []Info
	ci, i := m.keys.first(prefix, startAfter)
	for ; ci < len(m.keys.chunks); ci, i = ci+1, 0 {
		for _, k := range m.keys.chunks[ci][i:] {
			if !strings.HasPrefix(k, prefix) {
				return infos, false, nil
			}
			if len(infos) == limit {
				return infos, true, nil
			}
			infos = append(infos, m.objs[k].info(k, false))
		}
	}
	return infos, false, nil
}

func (o *memObject) info(key string, withMeta bool) Info {
	info := Info{Key: key, ETag: o.etag, Size: int64(len(o.body)), LastModified: o.modified}
	if withMeta && o.meta != nil {
		info.Metadata = maps.Clone(o.meta)
	}
	return info
}

// etagOf returns the ETag S3 gives an object uploaded in one part without
// KMS encryption: the quoted hex MD5 of body. Callers outside this package
// must not rely on it (ETags are opaque), so it stays unexported.
func etagOf(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// listLimit applies List's rule: 0, negative or above 1000 means 1000.
func listLimit(limit int) int {
	if limit <= 0 || limit > 1000 {
		return 1000
	}
	return limit
}

// sortedKeys is a set of strings kept in ascending order as a list of
// sorted chunks of at most keysChunk keys, so that an insert or a delete
// moves a few hundred strings rather than all of them, and List seeks in
// logarithmic time. The zero value is empty; chunks are never empty.
type sortedKeys struct {
	chunks [][]string
}

const keysChunk = 512

// search returns the position of the first key for which before reports
// false; before must be true for a prefix of the keys and false after.
func (s *sortedKeys) search(before func(string) bool) (ci, i int) {
	ci = sort.Search(len(s.chunks), func(j int) bool {
		c := s.chunks[j]
		return !before(c[len(c)-1])
	})
	if ci == len(s.chunks) {
		return ci, 0
	}
	c := s.chunks[ci]
	return ci, sort.Search(len(c), func(j int) bool { return !before(c[j]) })
}

// first returns the position of the first key that is at least prefix and
// above startAfter.
func (s *sortedKeys) first(prefix, startAfter string) (ci, i int) {
	if startAfter < prefix {
		return s.search(func(k string) bool { return k < prefix })
	}
	return s.search(func(k string) bool { return k <= startAfter })
}

// insert adds k, which must be absent.
func (s *sortedKeys) insert(k string) {
	ci, i := s.search(func(x string) bool { return x < k })
	if ci == len(s.chunks) {
		if ci == 0 {
			s.chunks = append(s.chunks, []string{k})
			return
		}
		ci--
		i = len(s.chunks[ci])
	}
	c := slices.Insert(s.chunks[ci], i, k)
	if len(c) <= keysChunk {
		s.chunks[ci] = c
		return
	}
	half := len(c) / 2
	right := slices.Clone(c[half:])
	clear(c[half:])
	s.chunks[ci] = c[:half]
	s.chunks = slices.Insert(s.chunks, ci+1, right)
}

// remove deletes k if present.
func (s *sortedKeys) remove(k string) {
	ci, i := s.search(func(x string) bool { return x < k })
	if ci == len(s.chunks) || s.chunks[ci][i] != k {
		return
	}
	c := slices.Delete(s.chunks[ci], i, i+1)
	if len(c) == 0 {
		s.chunks = slices.Delete(s.chunks, ci, ci+1)
		return
	}
	s.chunks[ci] = c
}
