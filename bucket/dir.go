package bucket

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dir is a Bucket kept in a local directory: the embedded default for the
// CLI and for development without Docker or a cloud account. Several Dirs,
// in one process or in several, may share a root.
//
// Dir keeps one version of each object and does not implement Versioned:
// a Put replaces the file, a Delete removes it. Opened with
// DirOptions.ReadOnly, it creates and writes nothing, not even its lock
// file, and refuses Put and Delete with ErrReadOnly.
//
// # Layout
//
// A key is split at '/': every segment but the last names a directory, the
// last names a file with the suffix ".obj", so the key "p/runs/x" and the
// key "p/runs/x/y" can both exist (p/runs/x.obj and p/runs/x/y.obj).
// Segments are escaped so that distinct keys get distinct names even on a
// case-insensitive filesystem (the macOS and Windows defaults) and no key
// gets a name Dir uses for itself:
//
//   - '%' becomes "%25", '^' becomes "%5e" and a leading '.' becomes "%2e";
//   - an upper-case letter becomes '^' and the letter in lower case;
//   - the '.' of a trailing ".obj" becomes "%2e".
//
// So the key "Runs/.tmp/a.obj" is stored in root/^runs/%2etmp/a%2eobj.obj,
// and no name Dir writes for a key starts with '.'. Those names are Dir's
// own: root/.cairn-tmp/ holds files being written, root/.cairn-lock is the
// lock file. List skips them, and any name that no key maps to (.DS_Store,
// an editor's backup), at every level.
//
// A segment whose escaped name would exceed 255 bytes (the usual limit on
// a file name) is refused with ErrInvalid and nothing is written: any
// segment of up to 83 bytes is accepted, and up to 251 bytes without
// capitals, '%' or '^'.
//
// # File format
//
// An object file is the 8 bytes "cairnob1" (magic and format version), a
// header length n as a big-endian uint32, n bytes of JSON
// {"key", "etag", "size", "modified", "metadata"}, then the body, exactly
// "size" bytes. Keeping the ETag and metadata inside the file lets one
// rename replace all of an object at once. A file that does not parse, or
// whose length or key disagrees with its header, makes Get, Head and a
// conditional Put on it fail with an error that says "corrupt object file"
// and is ErrUnreadable: retrying will not help; Delete or an
// unconditional Put replaces it. List lists its key all the same (as S3
// lists a key whatever its body), with the file's size and time and no
// ETag, so that a check can name it. So is anything but a regular file
// found in an object file's place (a named pipe, a device, a socket, a
// symbolic link): it is never read, nor followed, and never blocks a call.
// A directory there is none of Dir's: it is not found, and left alone.
//
// # Concurrency
//
// A Put writes the whole file under root/.cairn-tmp/, fsyncs it, and
// renames it into place, then fsyncs the directories it changed; readers
// take no lock and see the old object or the new one, never a part of
// either. Every Put and Delete holds an exclusive flock(2) on
// root/.cairn-lock (and a semaphore, within the process) across the check of
// its condition, the creation or removal of directories and the rename or
// unlink: that makes conditional Puts atomic across goroutines and
// processes, and keeps an unconditional Put or a Delete from slipping
// between another Put's check and its rename. The lock covers a few
// system calls, never the writing of a body. flock needs a local
// filesystem (it is not reliable over NFS) and a Unix system; NewDir
// fails where it does not work.
//
// The wait for the lock is bounded: a process stopped while it holds the
// lock (SIGSTOP, a paused VM or container, a debugger) or stuck inside
// those system calls keeps every other writer of the root waiting, so a
// Put or Delete that cannot take the lock within DirOptions.LockWait
// fails with ErrBusy, naming the lock file and, where the system says
// (Linux's /proc/locks), the process holding it and whether it is
// stopped. Nothing was written then; retry once that process runs again.
// (The lock is taken by polling: a blocking flock cannot be canceled.)
// Waiting also ends with ctx.
//
// ctx is checked before any work and again once the lock is held; a Put
// canceled by then writes nothing. A Put that fails after its rename (an
// fsync of a directory) returns the error although the object is in
// place, as an S3 Put whose response was lost.
type Dir struct {
	root     string
	ro       bool // DirOptions.ReadOnly
	lockWait time.Duration
	// sem serializes this process's writers before they take the file
	// lock; a one-slot semaphore, so that waiting honours ctx.
	sem chan struct{}
	now func() time.Time // source of LastModified; time.Now but for tests
}

var _ Bucket = (*Dir)(nil)

const (
	dirTmpName  = ".cairn-tmp"
	dirLockName = ".cairn-lock"
	objSuffix   = ".obj"
	fileMagic   = "cairnob1"
	fileHeadLen = len(fileMagic) + 4
	maxHeader   = 64 << 10 // JSON of a key, an ETag and 2 KiB of escaped metadata fits many times
	maxFileName = 255
	staleTemp   = 24 * time.Hour // a temp file this old belongs to a writer that died
)

// errCorrupt marks an object file Dir cannot read.
var errCorrupt = unreadable{}

type unreadable struct{}

func (unreadable) Error() string        { return "corrupt object file" }
func (unreadable) Is(target error) bool { return target == ErrUnreadable }

// lockBusy is the error of a writer that waited LockWait for the lock in
// vain: ErrBusy (retry), with its own message.
type lockBusy string

func (e lockBusy) Error() string      { return string(e) }
func (lockBusy) Is(target error) bool { return target == ErrBusy }

// fileHeader is the JSON header of an object file.
type fileHeader struct {
	Key      string            `json:"key"`
	ETag     string            `json:"etag"`
	Size     int64             `json:"size"`
	Modified time.Time         `json:"modified"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DirOptions configure a directory bucket. Nil and zero fields mean
// defaults.
type DirOptions struct {
	// LockWait bounds how long a Put or Delete waits for the root's lock
	// (see Dir) before it fails with ErrBusy. Default DefaultLockWait;
	// negative is an error.
	LockWait time.Duration
	// ReadOnly opens the bucket for reading only: root must exist (a
	// missing one is an error naming it that matches ErrNoBucket and
	// fs.ErrNotExist, rather than a new empty store), and nothing is
	// created or written, not even the lock file, so a root the process
	// may only read (files 0444, directories 0555, a read-only mount) is
	// read as any other. Put and Delete fail with ErrReadOnly. Readers
	// take no lock: a read-only Dir may read a root that writers share.
	ReadOnly bool
}

// DefaultLockWait is the default DirOptions.LockWait: the lock covers a
// few system calls, so a writer kept waiting this long is waiting for a
// process that is stopped or stuck, not busy.
const DefaultLockWait = 10 * time.Second

// NewDir is OpenDir(root, nil).
func NewDir(root string) (*Dir, error) { return OpenDir(root, nil) }

// OpenDir returns the bucket kept under root, creating root if needed. It
// checks that the filesystem supports the lock, and removes temporary
// files left by writers that died more than a day ago. With
// opts.ReadOnly it does none of that: it checks that root is a directory
// it can read. An error reading root keeps its cause (fs.ErrPermission,
// fs.ErrNotExist) in the chain. opts may be nil.
func OpenDir(root string, opts *DirOptions) (*Dir, error) {
	var o DirOptions
	if opts != nil {
		o = *opts
	}
	var problems []error
	if root == "" {
		problems = append(problems, errors.New("empty root"))
	}
	if o.LockWait < 0 {
		problems = append(problems, fmt.Errorf("negative LockWait %v", o.LockWait))
	}
	if o.LockWait == 0 {
		o.LockWait = DefaultLockWait
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("bucket: OpenDir: %w: %w", ErrInvalid, errors.Join(problems...))
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("bucket: OpenDir: %w", err)
	}
	if o.ReadOnly {
		if err := readableDir(abs); err != nil {
			return nil, fmt.Errorf("bucket: OpenDir read-only: %w", err)
		}
		return &Dir{root: abs, ro: true, now: time.Now}, nil
	}
	if err := os.MkdirAll(filepath.Join(abs, dirTmpName), 0o777); err != nil {
		return nil, fmt.Errorf("bucket: OpenDir: %w", err)
	}
	d := &Dir{root: abs, lockWait: o.LockWait, sem: make(chan struct{}, 1), now: time.Now}
	unlock, err := d.lock(context.Background())
	if err != nil {
		return nil, fmt.Errorf("bucket: OpenDir: %w", err)
	}
	unlock()
	d.removeStaleTemps()
	return d, nil
}

// readableDir checks that dir is a directory whose entries can be read.
func readableDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case isNotExist(err):
		return fmt.Errorf("%w: %w", ErrNoBucket, err)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrInvalid, dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// readOnly reports whether d refuses writes (see ReadOnly).
func (d *Dir) readOnly() bool { return d.ro }

// Root returns the absolute path of the directory holding the bucket.
func (d *Dir) Root() string { return d.root }

// Get implements Bucket. The returned Object, its Body and its Metadata
// belong to the caller. With opts.MaxSize, the size recorded in the
// header is checked before any of the body is read.
func (d *Dir) Get(ctx context.Context, key string, opts *GetOptions) (*Object, error) {
	p, err := d.objectPath(key)
	if err != nil {
		return nil, &Error{Op: "get", Key: key, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "get", Key: key, Err: err}
	}
	f, h, off, err := openObject(p, key)
	if err != nil {
		return nil, &Error{Op: "get", Key: key, Err: err}
	}
	defer f.Close()
	if opts != nil && opts.IfNoneMatch != "" && opts.IfNoneMatch == h.ETag {
		return nil, &Error{Op: "get", Key: key, Err: ErrNotModified}
	}
	if opts != nil && opts.MaxSize > 0 && h.Size > opts.MaxSize {
		return nil, &Error{Op: "get", Key: key, Err: ErrTooLarge}
	}
	body := make([]byte, h.Size)
	if _, err := f.ReadAt(body, off); err != nil && !(errors.Is(err, io.EOF) && h.Size == 0) {
		if errors.Is(err, io.EOF) {
			err = corruptf(p, "body shorter than its header says")
		}
		return nil, &Error{Op: "get", Key: key, Err: err}
	}
	return &Object{Info: h.info(false), Body: body}, nil
}

// Head implements Bucket. It reads the header of the object file only.
func (d *Dir) Head(ctx context.Context, key string) (*Info, error) {
	p, err := d.objectPath(key)
	if err != nil {
		return nil, &Error{Op: "head", Key: key, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "head", Key: key, Err: err}
	}
	f, h, _, err := openObject(p, key)
	if err != nil {
		return nil, &Error{Op: "head", Key: key, Err: err}
	}
	f.Close()
	info := h.info(false)
	return &info, nil
}

// Put implements Bucket. It keeps no reference to body or opts. A
// read-only Dir refuses it with ErrReadOnly.
func (d *Dir) Put(ctx context.Context, key string, body []byte, opts *PutOptions) (string, error) {
	if d.ro {
		return "", &Error{Op: "put", Key: key, Err: ErrReadOnly}
	}
	p, err := d.objectPath(key)
	if err == nil {
		err = CheckPut(opts)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return "", &Error{Op: "put", Key: key, Err: err}
	}
	h := fileHeader{Key: key, ETag: etagOf(body), Size: int64(len(body)), Modified: d.now().UTC()}
	if opts != nil && len(opts.Metadata) > 0 {
		h.Metadata = maps.Clone(opts.Metadata)
	}
	tmp, err := d.writeTemp(&h, body)
	if err != nil {
		return "", &Error{Op: "put", Key: key, Err: err}
	}
	changed, err := d.commit(ctx, p, key, tmp, opts)
	if err != nil {
		os.Remove(tmp)
		return "", &Error{Op: "put", Key: key, Err: err}
	}
	for _, dir := range changed {
		if err := syncDir(dir); err != nil {
			return "", &Error{Op: "put", Key: key, Err: err}
		}
	}
	return h.ETag, nil
}

// commit checks the condition of a Put and renames tmp to p, under the
// lock. It returns the directories whose entries changed, to be synced
// once the lock is released.
func (d *Dir) commit(ctx context.Context, p, key, tmp string, opts *PutOptions) (changed []string, err error) {
	unlock, err := d.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts != nil && opts.IfNoneMatch == "*" {
		switch fi, err := os.Lstat(p); {
		case err == nil && fi.Mode().IsRegular():
			return nil, ErrPrecondition
		case err != nil && !isNotExist(err):
			return nil, err
		}
	}
	if opts != nil && opts.IfMatch != "" {
		f, h, _, err := openObject(p, key)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrPrecondition
		}
		if err != nil {
			return nil, err
		}
		f.Close()
		if h.ETag != opts.IfMatch {
			return nil, ErrPrecondition
		}
	}
	changed, err = d.mkdirs(filepath.Dir(p))
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, err
	}
	return append(changed, filepath.Dir(p)), nil
}

// Delete implements Bucket. Deleting a missing key succeeds. Directories
// left empty are removed, up to but not including root. A read-only Dir
// refuses it with ErrReadOnly.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if d.ro {
		return &Error{Op: "delete", Key: key, Err: ErrReadOnly}
	}
	p, err := d.objectPath(key)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return &Error{Op: "delete", Key: key, Err: err}
	}
	changed, err := d.remove(ctx, p)
	if err != nil {
		return &Error{Op: "delete", Key: key, Err: err}
	}
	if changed != "" {
		if err := syncDir(changed); err != nil {
			return &Error{Op: "delete", Key: key, Err: err}
		}
	}
	return nil
}

// remove unlinks p and prunes the directories it leaves empty, under the
// lock, and returns the directory to sync ("" if nothing changed).
func (d *Dir) remove(ctx context.Context, p string) (changed string, err error) {
	unlock, err := d.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// A directory with an object's name is none of ours: leave it.
	if fi, err := os.Lstat(p); err != nil || fi.IsDir() {
		if err == nil || isNotExist(err) {
			return "", nil
		}
		return "", err
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return "", nil
		}
		return "", err
	}
	dir := filepath.Dir(p)
	for dir != d.root && strings.HasPrefix(dir, d.root) {
		if os.Remove(dir) != nil { // fails unless empty
			break
		}
		dir = filepath.Dir(dir)
	}
	return dir, nil
}

// List implements Bucket. A negative limit, like 0, means 1000. List walks
// only the directories that can hold keys in the range, in key order, and
// reads the header of each object it returns; it is not a snapshot:
// objects written or deleted during the walk may or may not appear. A
// directory's entries are all read and sorted, so listing a directory of
// n objects costs O(n log n) per call, whatever the limit.
func (d *Dir) List(ctx context.Context, prefix, startAfter string, limit int) ([]Info, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, &Error{Op: "list", Key: prefix, Err: err}
	}
	l := &dirLister{ctx: ctx, prefix: prefix, after: startAfter, limit: listLimit(limit)}
	switch err := l.walk(d.root, ""); {
	case errors.Is(err, errListFull):
		return l.infos, true, nil
	case err != nil:
		return nil, false, &Error{Op: "list", Key: prefix, Err: err}
	}
	return l.infos, false, nil
}

// errListFull stops a walk that found one key more than the limit.
var errListFull = errors.New("list full")

type dirLister struct {
	ctx           context.Context
	prefix, after string
	limit         int
	infos         []Info
}

type dirEntry struct {
	comp string // the key's text this entry stands for: a segment, plus '/' for a directory
	name string
	dir  bool
}

// walk lists the directory dir, which holds the keys that begin with
// keyPrefix. Keys in a directory sort like its entries' comps: the keys
// under a directory all begin with its comp, and no comp is a proper
// prefix of another unless it is a file's (a complete key, sorting first).
func (l *dirLister) walk(dir, keyPrefix string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	// Below the root, a directory may be removed by a Delete since we read
	// its parent.
	ents, err := readEntries(dir, keyPrefix != "")
	if err != nil {
		return err
	}
	for _, e := range ents {
		full := keyPrefix + e.comp
		if full > l.prefix && !strings.HasPrefix(full, l.prefix) {
			break // this and every later entry sort after all keys with the prefix
		}
		p := filepath.Join(dir, e.name)
		if e.dir {
			if !strings.HasPrefix(full, l.prefix) && !strings.HasPrefix(l.prefix, full) {
				continue
			}
			if full < l.after && !strings.HasPrefix(l.after, full) {
				continue // every key under it sorts before startAfter
			}
			if err := l.walk(p, full); err != nil {
				return err
			}
			continue
		}
		if err := l.addObject(p, full); err != nil {
			return err
		}
	}
	return nil
}

// readEntries returns the entries of dir that stand for keys (directories
// and object files with names that unescape), sorted by comp. If mayVanish,
// a dir that does not exist has no entries.
func readEntries(dir string, mayVanish bool) ([]dirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) && mayVanish {
			return nil, nil
		}
		return nil, err
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	ents := make([]dirEntry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		switch {
		case de.IsDir():
			if seg, ok := unescapeSegment(name); ok {
				ents = append(ents, dirEntry{comp: seg + "/", name: name, dir: true})
			}
		default: // a regular file, or one that reads as unreadable
			if base, ok := strings.CutSuffix(name, objSuffix); ok {
				if seg, ok := unescapeSegment(base); ok {
					ents = append(ents, dirEntry{comp: seg, name: name})
				}
			}
		}
	}
	slices.SortFunc(ents, func(a, b dirEntry) int { return strings.Compare(a.comp, b.comp) })
	return ents, nil
}

// addObject lists the object file p of key full if the listing wants the
// key, or returns errListFull if the listing already holds limit keys.
func (l *dirLister) addObject(p, full string) error {
	if !strings.HasPrefix(full, l.prefix) || full <= l.after || CheckKey(full) != nil {
		return nil
	}
	f, h, _, err := openObject(p, full)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted since we read the directory
	}
	var info Info
	switch {
	case errors.Is(err, errCorrupt):
		// Listed all the same, as S3 lists a key whatever its body:
		// reading it gives ErrCorrupt, so Verify can name it and a
		// Delete can remove it.
		st, serr := os.Lstat(p)
		if serr != nil {
			if isNotExist(serr) {
				return nil
			}
			return serr
		}
		info = Info{Key: full, Size: st.Size(), LastModified: st.ModTime().UTC()}
	case err != nil:
		return err
	default:
		f.Close()
		info = h.info(true)
	}
	if len(l.infos) == l.limit {
		return errListFull
	}
	l.infos = append(l.infos, info)
	return nil
}

// objectPath validates key and returns the path of its object file.
func (d *Dir) objectPath(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	segs := strings.Split(key, "/")
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, d.root)
	for i, seg := range segs {
		name := escapeSegment(seg)
		if i == len(segs)-1 {
			name += objSuffix
		}
		if len(name) > maxFileName {
			return "", fmt.Errorf("%w: segment %d (%d bytes) needs a file name of %d bytes in a directory bucket, over %d",
				ErrInvalid, i+1, len(seg), len(name), maxFileName)
		}
		parts = append(parts, name)
	}
	return filepath.Join(parts...), nil
}

// openObject opens the object file p, which should hold key, and reads its
// header. It returns the offset of the body. A missing file, or a
// directory (none of Dir's: see Dir), is ErrNotFound. Any other file that
// is not regular (a named pipe, a device, a socket, a symbolic link) is
// unreadable: it is opened without blocking and without following a link,
// so a pipe with no writer cannot hang the call, and refused.
func openObject(p, key string) (*os.File, *fileHeader, int64, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|openFlags, 0)
	if err != nil {
		if isNotExist(err) {
			return nil, nil, 0, ErrNotFound
		}
		if errors.Is(err, syscall.ENAMETOOLONG) {
			return nil, nil, 0, fmt.Errorf("%w: key %q makes a path too long for this filesystem", ErrInvalid, key)
		}
		// A link refused by O_NOFOLLOW fails with an error that
		// differs between systems; the file's mode says what it is.
		if fi, lerr := os.Lstat(p); lerr == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil, nil, 0, notRegular(p, fi.Mode())
		}
		return nil, nil, 0, err
	}
	h, off, err := readHeader(f, p, key)
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return f, h, off, nil
}

func readHeader(f *os.File, p, key string) (*fileHeader, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	switch {
	case fi.IsDir():
		return nil, 0, ErrNotFound
	case !fi.Mode().IsRegular():
		return nil, 0, notRegular(p, fi.Mode())
	}
	var pre [fileHeadLen]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, corruptf(p, "%d bytes, too short for a header", fi.Size())
		}
		return nil, 0, err
	}
	if string(pre[:len(fileMagic)]) != fileMagic {
		return nil, 0, corruptf(p, "unknown file header %q", pre[:len(fileMagic)])
	}
	n := int64(binary.BigEndian.Uint32(pre[len(fileMagic):]))
	if n > maxHeader || int64(fileHeadLen)+n > fi.Size() {
		return nil, 0, corruptf(p, "header of %d bytes in a file of %d", n, fi.Size())
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, 0, err
	}
	var h fileHeader
	if err := json.Unmarshal(buf, &h); err != nil {
		return nil, 0, corruptf(p, "header: %v", err)
	}
	off := int64(fileHeadLen) + n
	switch {
	case h.Key != key:
		return nil, 0, corruptf(p, "holds the key %s", quoteShort(h.Key))
	case h.ETag == "":
		return nil, 0, corruptf(p, "no ETag in its header")
	case h.Size < 0 || off+h.Size != fi.Size():
		return nil, 0, corruptf(p, "a body of %d bytes, but its header says %d", fi.Size()-off, h.Size)
	}
	return &h, off, nil
}

// notRegular is the error of a file that is not regular where an object
// file should be: unreadable, as a damaged object file is.
func notRegular(p string, m fs.FileMode) error {
	kind := "special file"
	switch {
	case m&fs.ModeSymlink != 0:
		kind = "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		kind = "named pipe"
	case m&fs.ModeSocket != 0:
		kind = "socket"
	case m&fs.ModeDevice != 0:
		kind = "device"
	}
	return corruptf(p, "a %s, not a regular file", kind)
}

// quoteShort quotes at most the first 32 bytes of s, which a damaged file
// may make 64 KiB long, then "…(N bytes)".
func quoteShort(s string) string {
	if len(s) <= 32 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:32]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func corruptf(p, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", errCorrupt, p, fmt.Sprintf(format, args...))
}

func (h *fileHeader) info(listing bool) Info {
	info := Info{Key: h.Key, ETag: h.ETag, Size: h.Size, LastModified: h.Modified}
	if !listing && len(h.Metadata) > 0 {
		info.Metadata = h.Metadata // decoded for this call: the caller's to keep
	}
	return info
}

// writeTemp writes an object file under root/.cairn-tmp, synced, and
// returns its path.
func (d *Dir) writeTemp(h *fileHeader, body []byte) (string, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	head := make([]byte, fileHeadLen, fileHeadLen+len(js))
	copy(head, fileMagic)
	binary.BigEndian.PutUint32(head[len(fileMagic):], uint32(len(js)))
	head = append(head, js...)

	f, err := d.createTemp()
	if err != nil {
		return "", err
	}
	_, err = f.Write(head)
	if err == nil {
		_, err = f.Write(body)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// createTemp creates a new file under root/.cairn-tmp with the default
// permissions (os.CreateTemp's are 0600, which would keep other users of
// a shared root from reading objects).
func (d *Dir) createTemp() (*os.File, error) {
	tmpDir := filepath.Join(d.root, dirTmpName)
	for try := 0; ; try++ {
		name := filepath.Join(tmpDir, fmt.Sprintf("put-%d-%016x", os.Getpid(), rand.Uint64()))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case err == nil:
			return f, nil
		case try < 3 && errors.Is(err, fs.ErrExist):
			continue
		case try < 3 && errors.Is(err, fs.ErrNotExist):
			// Someone removed the temp directory; put it back.
			if err := os.MkdirAll(tmpDir, 0o777); err != nil {
				return nil, err
			}
			continue
		}
		return nil, err
	}
}

// mkdirs creates dir and its missing parents under root, and returns the
// directories whose entries it changed.
func (d *Dir) mkdirs(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil, nil
	}
	rel, err := filepath.Rel(d.root, dir)
	if err != nil {
		return nil, err
	}
	var changed []string
	cur := d.root
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, name)
		if err := os.Mkdir(next, 0o777); err == nil {
			changed = append(changed, cur)
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		cur = next
	}
	return changed, nil
}

// lock takes the process semaphore and the file lock on
// root/.cairn-lock, and returns the function that releases both. It waits
// at most d.lockWait in all (then ErrBusy), and returns ctx's error if
// ctx ends first.
func (d *Dir) lock(ctx context.Context) (unlock func(), err error) {
	timer := time.NewTimer(d.lockWait)
	defer timer.Stop()
	path := filepath.Join(d.root, dirLockName)
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, lockBusy(fmt.Sprintf("directory lock %s held by this process's other writers for over %v", path, d.lockWait))
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		<-d.sem
		return nil, err
	}
	if err := waitLock(ctx, f, timer.C, d.lockWait); err != nil {
		f.Close()
		<-d.sem
		return nil, err
	}
	return func() {
		f.Close() // releases the lock
		<-d.sem
	}, nil
}

// waitLock takes the flock on f, trying again, with a growing pause,
// while another open file holds it, until expired fires (after wait) or
// ctx ends.
func waitLock(ctx context.Context, f *os.File, expired <-chan time.Time, wait time.Duration) error {
	pause := 20 * time.Microsecond
	for {
		ok, err := tryLockFile(f)
		if err != nil {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return lockBusy(fmt.Sprintf("directory lock %s held by %s for over %v", f.Name(), lockHolder(f), wait))
		case <-time.After(pause + rand.N(pause)):
		}
		pause = min(2*pause, time.Millisecond)
	}
}

// removeStaleTemps deletes, best effort, temp files of writers that must
// have died: no writer keeps one for long.
func (d *Dir) removeStaleTemps() {
	tmpDir := filepath.Join(d.root, dirTmpName)
	des, err := os.ReadDir(tmpDir)
	if err != nil {
		return
	}
	for _, de := range des {
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(tmpDir, de.Name()))
		}
	}
}

// syncDir makes the entries of dir durable. A directory removed meanwhile
// by a Delete needs nothing, and filesystems that cannot sync a directory
// get no better by failing the call.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// isNotExist reports a missing file, including one whose path crosses a
// regular file where a directory should be.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

const lowerHex = "0123456789abcdef"

// escapeSegment returns the file name of a key segment (see Dir). The
// result has no upper-case letter and never starts with '.' or ends with
// ".obj".
func escapeSegment(seg string) string {
	var b strings.Builder
	b.Grow(len(seg) + 8)
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case c == '%' || c == '^' || c == '.' && i == 0:
			b.WriteByte('%')
			b.WriteByte(lowerHex[c>>4])
			b.WriteByte(lowerHex[c&15])
		case 'A' <= c && c <= 'Z':
			b.WriteByte('^')
			b.WriteByte(c + ('a' - 'A'))
		default:
			b.WriteByte(c)
		}
	}
	name := b.String()
	// The '.' is the segment's own: escapes never produce one.
	if base, ok := strings.CutSuffix(name, objSuffix); ok {
		name = base + "%2e" + objSuffix[1:]
	}
	return name
}

// unescapeSegment inverts escapeSegment. It refuses names escapeSegment
// would not produce, so that every listed key is one Get can find.
func unescapeSegment(name string) (string, bool) {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			if i+2 >= len(name) {
				return "", false
			}
			hi, lo := strings.IndexByte(lowerHex, name[i+1]), strings.IndexByte(lowerHex, name[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		case '^':
			if i+1 >= len(name) || name[i+1] < 'a' || name[i+1] > 'z' {
				return "", false
			}
			b = append(b, name[i+1]-('a'-'A'))
			i++
		default:
			b = append(b, c)
		}
	}
	seg := string(b)
	if seg == "" || escapeSegment(seg) != name {
		return "", false
	}
	return seg, true
}
