package bucket

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NewMemVersioned returns an empty in-memory bucket with versioning on,
// whose clock is time.Now. It is a Mem in every other way (copies, hooks,
// clock, Stats), and behaves as MinIO with versioning enabled: every Put
// adds a version and makes it current, Delete adds a delete marker (but
// not for a key that is missing or already deleted), and Get, Head, List
// and the conditions of Put see only the current version of each key, a
// delete marker meaning no object. Version IDs are unique within the
// bucket and opaque. Every version stays in memory until DeleteVersion
// removes it.
func NewMemVersioned() *Mem {
	m := NewMem()
	m.vers = &memVersions{byKey: make(map[string][]memVersion)}
	return m
}

// memVersions are the versions of a versioned Mem. The current version of
// a key is the last of its versions; Mem.objs holds it too, unless it is
// a delete marker, so that Get, Head, List and Put's conditions work
// alike with versioning on or off.
type memVersions struct {
	byKey map[string][]memVersion // oldest first, never empty
	keys  sortedKeys              // the keys of byKey, for ListVersions
	seq   uint64                  // of the newest version in the bucket
}

// memVersion is one version of a key; its fields never change.
type memVersion struct {
	seq      uint64     // order of creation in the bucket, from 1
	obj      *memObject // nil for a delete marker
	modified time.Time
}

// add appends a new version of key: obj, or a delete marker when obj is
// nil.
func (vs *memVersions) add(key string, obj *memObject, modified time.Time) {
	vs.seq++
	old, ok := vs.byKey[key]
	if !ok {
		vs.keys.insert(key)
	}
	vs.byKey[key] = append(old, memVersion{seq: vs.seq, obj: obj, modified: modified})
}

// Version IDs are creation numbers multiplied by an odd constant modulo
// 2^64, a bijection: unique, opaque to callers (they do not sort in
// creation order), and still telling ListVersions where a marker was
// after its version is gone.
const memVersionMix = 0x9e3779b97f4a7c15

var memVersionUnmix = func() uint64 {
	inv := uint64(memVersionMix) // Newton's iteration for the inverse mod 2^64
	for range 6 {
		inv *= 2 - memVersionMix*inv
	}
	return inv
}()

func memVersionID(seq uint64) string {
	return fmt.Sprintf("%016x", seq*memVersionMix)
}

// memVersionSeq returns the creation number of a version ID made by
// memVersionID.
func memVersionSeq(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil || len(id) != 16 || strings.ToLower(id) != id {
		return 0, false
	}
	return n * memVersionUnmix, true
}

// find returns the index of the version of key created as seq.
func (vs *memVersions) find(key string, seq uint64) (int, bool) {
	return slices.BinarySearchFunc(vs.byKey[key], seq, func(v memVersion, seq uint64) int {
		return compareUint(v.seq, seq)
	})
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v memVersion) version(key string, latest bool) Version {
	out := Version{Key: key, VersionID: memVersionID(v.seq), LastModified: v.modified, Latest: latest}
	if v.obj == nil {
		out.DeleteMarker = true
	} else {
		out.ETag, out.Size = v.obj.etag, int64(len(v.obj.body))
	}
	return out
}

// Versioning implements Versioned: true for NewMemVersioned's bucket,
// false for NewMem's.
func (m *Mem) Versioning(ctx context.Context) (bool, error) {
	if err := m.begin(ctx, &m.heads, "versioning", ""); err != nil {
		return false, err
	}
	return m.vers != nil, nil
}

// GetVersion implements Versioned. The returned Object, its Body and its
// Metadata belong to the caller. Without versioning the one version of
// an object is NullVersion; any other ID is ErrNotFound, as is a version
// ID this bucket did not make.
func (m *Mem) GetVersion(ctx context.Context, key, versionID string, opts *GetOptions) (*Object, error) {
	if err := CheckVersionArgs(key, versionID); err != nil {
		return nil, &Error{Op: "getversion", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.gets, "getversion", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o := m.version(key, versionID)
	m.mu.Unlock()
	if o == nil {
		return nil, &Error{Op: "getversion", Key: key, Err: fmt.Errorf("version %s: %w", versionID, ErrNotFound)}
	}
	return o.object("getversion", key, opts)
}

// version returns the object of key's version versionID, nil if it is a
// delete marker or missing. m.mu must be held.
func (m *Mem) version(key, versionID string) *memObject {
	if m.vers == nil {
		if versionID != NullVersion {
			return nil
		}
		return m.objs[key]
	}
	seq, ok := memVersionSeq(versionID)
	if !ok {
		return nil
	}
	i, ok := m.vers.find(key, seq)
	if !ok {
		return nil
	}
	return m.vers.byKey[key][i].obj
}

// DeleteVersion implements Versioned. Without versioning, deleting
// NullVersion is Delete and any other ID is missing.
func (m *Mem) DeleteVersion(ctx context.Context, key, versionID string) error {
	if err := CheckVersionArgs(key, versionID); err != nil {
		return &Error{Op: "deleteversion", Key: key, Err: err}
	}
	if err := m.begin(ctx, &m.deletes, "deleteversion", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vers == nil {
		if _, ok := m.objs[key]; ok && versionID == NullVersion {
			delete(m.objs, key)
			m.keys.remove(key)
		}
		return nil
	}
	seq, ok := memVersionSeq(versionID)
	if !ok {
		return nil
	}
	i, ok := m.vers.find(key, seq)
	if !ok {
		return nil
	}
	versions := slices.Delete(m.vers.byKey[key], i, i+1)
	if len(versions) == 0 {
		delete(m.vers.byKey, key)
		m.vers.keys.remove(key)
	} else {
		m.vers.byKey[key] = versions
	}
	if i == len(versions) { // the current version
		m.setCurrent(key, versions)
	}
	return nil
}

// setCurrent makes objs and keys agree with the last of versions, key's
// remaining ones. m.mu must be held.
func (m *Mem) setCurrent(key string, versions []memVersion) {
	var cur *memObject
	if len(versions) > 0 {
		cur = versions[len(versions)-1].obj
	}
	_, had := m.objs[key]
	switch {
	case cur != nil:
		if !had {
			m.keys.insert(key)
		}
		m.objs[key] = cur
	case had:
		delete(m.objs, key)
		m.keys.remove(key)
	}
}

// ListVersions implements Versioned. A negative limit, like 0, means
// 1000. The page is a consistent snapshot, and always holds limit entries
// when more follow. A page continues after its versionMarker even if that
// version was deleted since; a versionMarker this bucket did not make is
// ErrInvalid. Without versioning every object is listed as its one
// version, NullVersion, current.
func (m *Mem) ListVersions(ctx context.Context, prefix, keyMarker, versionMarker string, limit int) ([]Version, string, string, bool, error) {
	fail := func(err error) ([]Version, string, string, bool, error) {
		return nil, "", "", false, &Error{Op: "listversions", Key: prefix, Err: err}
	}
	if err := CheckListVersions(keyMarker, versionMarker); err != nil {
		return fail(err)
	}
	var after uint64 // list keyMarker's versions created before it
	if versionMarker != "" {
		seq, ok := memVersionSeq(versionMarker)
		if m.vers == nil {
			ok = versionMarker == NullVersion
		}
		if !ok {
			return fail(fmt.Errorf("%w: version marker %q", ErrInvalid, versionMarker))
		}
		after = seq
	}
	if err := m.begin(ctx, &m.lists, "listversions", prefix); err != nil {
		return nil, "", "", false, err
	}
	limit = listLimit(limit)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vers == nil {
		// After keyMarker's only version is after keyMarker.
		return m.listNullVersions(prefix, keyMarker, limit)
	}
	p := versionPager{limit: limit}
	keys := &m.vers.keys
	ci, i := keys.first(prefix, keyMarker)
	if versionMarker != "" {
		ci, i = keys.search(func(k string) bool { return k < max(prefix, keyMarker) })
	}
	for ; ci < len(keys.chunks); ci, i = ci+1, 0 {
		for _, k := range keys.chunks[ci][i:] {
			if !strings.HasPrefix(k, prefix) {
				return p.done()
			}
			versions := m.vers.byKey[k]
			for j := len(versions) - 1; j >= 0; j-- {
				v := versions[j]
				if versionMarker != "" && k == keyMarker && v.seq >= after {
					continue
				}
				if !p.add(v.version(k, j == len(versions)-1)) {
					return p.done()
				}
			}
		}
	}
	return p.done()
}

// listNullVersions is ListVersions without versioning: every object is its
// one version NullVersion.
func (m *Mem) listNullVersions(prefix, keyMarker string, limit int) ([]Version, string, string, bool, error) {
	p := versionPager{limit: limit}
	ci, i := m.keys.first(prefix, keyMarker)
	for ; ci < len(m.keys.chunks); ci, i = ci+1, 0 {
		for _, k := range m.keys.chunks[ci][i:] {
			if !strings.HasPrefix(k, prefix) {
				return p.done()
			}
			info := m.objs[k].info(k, false)
			v := Version{Key: k, VersionID: NullVersion, ETag: info.ETag, Size: info.Size, LastModified: info.LastModified, Latest: true}
			if !p.add(v) {
				return p.done()
			}
		}
	}
	return p.done()
}

// versionPager gathers a page of ListVersions.
type versionPager struct {
	limit int
	vs    []Version
	more  bool
}

// add appends v, or reports false when the page is full: v is then the
// first of the next page.
func (p *versionPager) add(v Version) bool {
	if len(p.vs) == p.limit {
		p.more = true
		return false
	}
	p.vs = append(p.vs, v)
	return true
}

func (p *versionPager) done() ([]Version, string, string, bool, error) {
	if !p.more {
		return p.vs, "", "", false, nil
	}
	last := p.vs[len(p.vs)-1]
	return p.vs, last.Key, last.VersionID, true, nil
}
