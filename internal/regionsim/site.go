package regionsim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// Site is one site's bucket: versioning on, answering from the site's own
// state at once. It behaves as bucket.NewMemVersioned does except where
// the package documentation says (the current version is the one with the
// greatest modification time; changes replicate). It copies bodies and
// metadata in and out, and never returns bucket.ErrBusy. Safe for
// concurrent use.
type Site struct {
	sim *Sim
	i   int
}

var (
	_ bucket.Bucket    = (*Site)(nil)
	_ bucket.Versioned = (*Site)(nil)
)

// version is one version or delete marker; it never changes once made,
// and the sites share it.
type version struct {
	id     string
	mtime  time.Time
	etag   string
	body   []byte
	meta   map[string]string // nil when empty
	marker bool
}

// siteState is what one site holds.
type siteState struct {
	versions map[string][]*version // by ID ascending, so the last is current; never empty
	keys     []string              // the keys of versions, ascending
	removed  map[string]bool       // IDs of the versions DeleteVersion removed, here or elsewhere
	seq      uint64                // of the last version this site made
}

func newSiteState() *siteState {
	return &siteState{versions: map[string][]*version{}, removed: map[string]bool{}}
}

// versionID makes the ID of the seq-th version made at site at mtime. IDs
// sort as (mtime, site, seq), so that the order of a key's versions, and
// so last writer wins, is the order of their IDs, at every site, and a
// listing can go on after a version that is gone. Callers see them as
// opaque.
func versionID(mtime time.Time, site int, seq uint64) string {
	return fmt.Sprintf("%016x%04x%012x", uint64(mtime.UnixNano())^1<<63, site, seq)
}

// object returns the current version of key if it is not a delete
// marker.
func (st *siteState) object(key string) *version {
	vs := st.versions[key]
	if len(vs) == 0 || vs[len(vs)-1].marker {
		return nil
	}
	return vs[len(vs)-1]
}

// find returns the index of key's version id.
func (st *siteState) find(key, id string) (int, bool) {
	return slices.BinarySearchFunc(st.versions[key], id, func(v *version, id string) int {
		return strings.Compare(v.id, id)
	})
}

// add inserts v among key's versions, unless it is there already or was
// removed: a duplicate or late replica changes nothing.
func (st *siteState) add(key string, v *version) {
	if st.removed[v.id] {
		return
	}
	i, found := st.find(key, v.id)
	if found {
		return
	}
	vs, ok := st.versions[key]
	if !ok {
		j, _ := slices.BinarySearch(st.keys, key)
		st.keys = slices.Insert(st.keys, j, key)
	}
	st.versions[key] = slices.Insert(vs, i, v)
}

// remove deletes key's version id and reports whether it was there.
func (st *siteState) remove(key, id string) bool {
	i, found := st.find(key, id)
	if !found {
		return false
	}
	vs := slices.Delete(st.versions[key], i, i+1)
	if len(vs) > 0 {
		st.versions[key] = vs
		return true
	}
	delete(st.versions, key)
	j, _ := slices.BinarySearch(st.keys, key)
	st.keys = slices.Delete(st.keys, j, j+1)
	return true
}

// firstKey returns the index in keys of the first key at least prefix and
// above after.
func (st *siteState) firstKey(prefix, after string) int {
	return sort.Search(len(st.keys), func(j int) bool {
		k := st.keys[j]
		return k >= prefix && k > after
	})
}

// state locks the Sim and returns this site's state; the caller must
// unlock s.sim.mu.
func (s *Site) state() *siteState {
	s.sim.mu.Lock()
	return s.sim.mu.states[s.i]
}

// begin refuses a call whose context is done.
func begin(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return &bucket.Error{Op: op, Key: key, Err: err}
	}
	return nil
}

// newVersion makes this site's next version of key at its clock. s.sim.mu
// must be held.
func (s *Site) newVersion(st *siteState, body []byte, meta map[string]string, marker bool) *version {
	st.seq++
	mtime := s.sim.now(s.i)
	v := &version{id: versionID(mtime, s.i, st.seq), mtime: mtime, marker: marker}
	if !marker {
		v.body = slices.Clone(body)
		if v.body == nil {
			v.body = []byte{}
		}
		sum := md5.Sum(body)
		v.etag = `"` + hex.EncodeToString(sum[:]) + `"`
		if len(meta) > 0 {
			v.meta = maps.Clone(meta)
		}
	}
	return v
}

func (v *version) info(key string, withMeta bool) bucket.Info {
	info := bucket.Info{Key: key, ETag: v.etag, Size: int64(len(v.body)), LastModified: v.mtime}
	if withMeta && v.meta != nil {
		info.Metadata = maps.Clone(v.meta)
	}
	return info
}

func (v *version) object(op, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	if opts != nil && opts.IfNoneMatch != "" && opts.IfNoneMatch == v.etag {
		return nil, &bucket.Error{Op: op, Key: key, Err: bucket.ErrNotModified}
	}
	if opts != nil && opts.MaxSize > 0 && int64(len(v.body)) > opts.MaxSize {
		return nil, &bucket.Error{Op: op, Key: key, Err: bucket.ErrTooLarge}
	}
	return &bucket.Object{Info: v.info(key, true), Body: slices.Clone(v.body)}, nil
}

func (v *version) version(key string, latest bool) bucket.Version {
	return bucket.Version{Key: key, VersionID: v.id, ETag: v.etag, Size: int64(len(v.body)),
		LastModified: v.mtime, Latest: latest, DeleteMarker: v.marker}
}

// Get implements bucket.Bucket: the site's current version of key.
func (s *Site) Get(ctx context.Context, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	if err := bucket.CheckKey(key); err != nil {
		return nil, &bucket.Error{Op: "get", Key: key, Err: err}
	}
	if err := begin(ctx, "get", key); err != nil {
		return nil, err
	}
	st := s.state()
	v := st.object(key)
	s.sim.mu.Unlock()
	if v == nil {
		return nil, &bucket.Error{Op: "get", Key: key, Err: bucket.ErrNotFound}
	}
	return v.object("get", key, opts)
}

// Head implements bucket.Bucket.
func (s *Site) Head(ctx context.Context, key string) (*bucket.Info, error) {
	if err := bucket.CheckKey(key); err != nil {
		return nil, &bucket.Error{Op: "head", Key: key, Err: err}
	}
	if err := begin(ctx, "head", key); err != nil {
		return nil, err
	}
	st := s.state()
	v := st.object(key)
	s.sim.mu.Unlock()
	if v == nil {
		return nil, &bucket.Error{Op: "head", Key: key, Err: bucket.ErrNotFound}
	}
	info := v.info(key, true)
	return &info, nil
}

// Put implements bucket.Bucket. The condition is judged against this
// site's current version only. The new version is queued for the other
// sites. It is current here unless the site holds a version with a later
// modification time (made at a site whose clock is ahead): Put still
// succeeds, and returns the ETag of what it stored.
func (s *Site) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if err := bucket.CheckKey(key); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	if err := bucket.CheckPut(opts); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	if err := begin(ctx, "put", key); err != nil {
		return "", err
	}
	var o bucket.PutOptions
	if opts != nil {
		o = *opts
	}
	st := s.state()
	defer s.sim.mu.Unlock()
	cur := st.object(key)
	if o.IfNoneMatch == "*" && cur != nil || o.IfMatch != "" && (cur == nil || cur.etag != o.IfMatch) {
		return "", &bucket.Error{Op: "put", Key: key, Err: bucket.ErrPrecondition}
	}
	v := s.newVersion(st, body, o.Metadata, false)
	st.add(key, v)
	s.sim.replicate(s.i, key, v, "")
	return v.etag, nil
}

// Delete implements bucket.Bucket. When the site has a current object
// for key it adds a delete marker, queued for the other sites; otherwise
// it does nothing, as MinIO does.
func (s *Site) Delete(ctx context.Context, key string) error {
	if err := bucket.CheckKey(key); err != nil {
		return &bucket.Error{Op: "delete", Key: key, Err: err}
	}
	if err := begin(ctx, "delete", key); err != nil {
		return err
	}
	st := s.state()
	defer s.sim.mu.Unlock()
	if st.object(key) == nil {
		return nil
	}
	v := s.newVersion(st, nil, nil, true)
	st.add(key, v)
	s.sim.replicate(s.i, key, v, "")
	return nil
}

// List implements bucket.Bucket: the keys whose current version at this
// site is an object. A page is a consistent snapshot.
func (s *Site) List(ctx context.Context, prefix, startAfter string, limit int) ([]bucket.Info, bool, error) {
	if err := begin(ctx, "list", prefix); err != nil {
		return nil, false, err
	}
	limit = listLimit(limit)
	st := s.state()
	defer s.sim.mu.Unlock()
	var infos []bucket.Info
	for _, k := range st.keys[st.firstKey(prefix, startAfter):] {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		v := st.object(k)
		if v == nil {
			continue
		}
		if len(infos) == limit {
			return infos, true, nil
		}
		infos = append(infos, v.info(k, false))
	}
	return infos, false, nil
}

func listLimit(limit int) int {
	if limit <= 0 || limit > 1000 {
		return 1000
	}
	return limit
}

// Versioning implements bucket.Versioned: always true.
func (s *Site) Versioning(ctx context.Context) (bool, error) {
	if err := begin(ctx, "versioning", ""); err != nil {
		return false, err
	}
	return true, nil
}

// GetVersion implements bucket.Versioned. The returned Object belongs to
// the caller.
func (s *Site) GetVersion(ctx context.Context, key, versionID string, opts *bucket.GetOptions) (*bucket.Object, error) {
	if err := bucket.CheckVersionArgs(key, versionID); err != nil {
		return nil, &bucket.Error{Op: "getversion", Key: key, Err: err}
	}
	if err := begin(ctx, "getversion", key); err != nil {
		return nil, err
	}
	st := s.state()
	var v *version
	if i, ok := st.find(key, versionID); ok {
		v = st.versions[key][i]
	}
	s.sim.mu.Unlock()
	if v == nil || v.marker {
		return nil, &bucket.Error{Op: "getversion", Key: key, Err: fmt.Errorf("version %s: %w", versionID, bucket.ErrNotFound)}
	}
	return v.object("getversion", key, opts)
}

// DeleteVersion implements bucket.Versioned. Removing a version the site
// holds queues the removal for the other sites (unless
// Options.LocalVersionDeletes); removing one it does not hold does
// nothing here nor elsewhere.
func (s *Site) DeleteVersion(ctx context.Context, key, versionID string) error {
	if err := bucket.CheckVersionArgs(key, versionID); err != nil {
		return &bucket.Error{Op: "deleteversion", Key: key, Err: err}
	}
	if err := begin(ctx, "deleteversion", key); err != nil {
		return err
	}
	st := s.state()
	defer s.sim.mu.Unlock()
	if !st.remove(key, versionID) {
		return nil
	}
	st.removed[versionID] = true
	if !s.sim.opts.LocalVersionDeletes {
		s.sim.replicate(s.i, key, nil, versionID)
	}
	return nil
}

// ListVersions implements bucket.Versioned. Each key's versions are
// listed by modification time, newest first (ties by version ID). The
// markers are those of the last entry listed, and a page continues after
// them even if that version was removed since. A page is a consistent
// snapshot and holds limit entries when more follow.
func (s *Site) ListVersions(ctx context.Context, prefix, keyMarker, versionMarker string, limit int) ([]bucket.Version, string, string, bool, error) {
	if err := bucket.CheckListVersions(keyMarker, versionMarker); err != nil {
		return nil, "", "", false, &bucket.Error{Op: "listversions", Key: prefix, Err: err}
	}
	if err := begin(ctx, "listversions", prefix); err != nil {
		return nil, "", "", false, err
	}
	limit = listLimit(limit)
	st := s.state()
	defer s.sim.mu.Unlock()
	var out []bucket.Version
	start := st.firstKey(prefix, keyMarker)
	if versionMarker != "" {
		start = sort.SearchStrings(st.keys, max(prefix, keyMarker))
	}
	for _, k := range st.keys[start:] {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		vs := st.versions[k]
		for j := len(vs) - 1; j >= 0; j-- {
			v := vs[j]
			if versionMarker != "" && k == keyMarker && v.id >= versionMarker {
				continue
			}
			if len(out) == limit {
				last := out[len(out)-1]
				return out, last.Key, last.VersionID, true, nil
			}
			out = append(out, v.version(k, j == len(vs)-1))
		}
	}
	return out, "", "", false, nil
}
