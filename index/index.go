// Package index is the timestamp-ordered index of runs that backs List in
// Cairn's durable tier, kept in the same bucket as the runs. Package
// durable is its one writer: the index lists what durable's Write and
// Delete made durable, so an Index opened beside a durable store and
// written directly (Commit, Rebuild) describes objects it never saw. Use
// durable, not this package, to store runs.
//
// # Layout
//
//	<prefix>/index/log/<seq, 20 digits>   immutable batch of ops, created with If-None-Match: *
//	<prefix>/index/pages/<id>             immutable page of entries, sorted (by-time and by-run sets)
//	<prefix>/index/label-pages/l-<id>     immutable page of the by-label set
//	<prefix>/index/snap/<seq, 20 digits>  manifest of a snapshot covering every log <= seq
//	<prefix>/index/head                   hint naming the newest snapshot
//
// That is the default region's layout; each other region of a store
// written from several (Options.Region) has the same under
// <prefix>/index/regions/<region>/ (see region.go).
//
// The bodies of these objects, and their encodings, are defined in
// index/internal/format; only this package reads and writes them.
//
// A commit creates the next log number with If-None-Match: *; whoever
// loses that race (412) learns the tail with one LIST and tries the number
// after it. No shared object is read, modified and written back, so
// writers in several processes never lose each other's ops, and a commit
// costs one PUT whatever the number of runs. A writer whose PUT failed
// without an answer tries the same number again; a 412 there is settled by
// reading the log and comparing its batch ID with its own.
//
// The state of the index is the newest snapshot plus the logs after it, a
// later log overriding an earlier one for the same run. List reads the
// head, the manifest, the page that holds its cursor and the log tail:
// a constant number of requests whatever the number of runs, since
// compaction keeps the tail short. Pages, logs and manifests are immutable
// and cached forever, so a second List fetches only the head, a LIST of
// the tail and the logs it has not seen.
//
// Compaction (by any process, after its own commit, once the tail is long
// enough) rewrites only the pages whose entries changed, in three page
// sets: by List order; by label pair, then List order (one posting per run
// and label, so that a List with label selectors reads only the runs
// carrying one of them); and by run ID (to find a run's previous entry). It
// writes the manifest of the new snapshot with If-None-Match: * and moves
// the head forward with If-Match. Logs, pages and manifests no snapshot
// needs any more are deleted by GC after a grace period, so a List in
// progress never loses an object under it.
//
// # Costs
//
// A commit is one PUT (plus a GET and a LIST when it loses a race), shared
// by every op waiting in the process. List's first page is the same few
// requests at a thousand runs and at a million (BenchmarkScale), and so is
// the first page of a List with label selectors, however few of the runs
// match and wherever they are in List order (BenchmarkListByLabel). A
// compaction rewrites the by-time pages its changes fall in (new runs
// cluster in the newest one), writes the tail's ops as a new by-run level
// (merging levels of similar size, so each op is rewritten a logarithmic
// number of times), rewrites the by-label pages that the changed runs'
// labels fall in, and writes a manifest that lists the by-time and by-label
// pages. Measured index bytes written per Save, compactions included, for
// runs without labels: about 1.9 KB at 1,000 runs, 2.9 KB at 10,000, 3.0 KB
// at 100,000 and 4.3 KB at 1,000,000; what still grows is the manifest (one
// ref per 2,048 runs, and one per 2,048 label pairs) and the rare merges
// into the largest by-run level.
package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
	golru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"
)

// Options configures an Index. Nil and zero fields mean defaults.
type Options struct {
	// Prefix is prepended, with a '/', to every key the index writes.
	Prefix string
	// Codec compresses and bounds index objects. Nil means
	// cairn.DefaultCodec().
	Codec *cairn.Codec
	// PageSize is the number of entries a page is split at. Default 2048.
	PageSize int
	// CompactAfter is the length of the log tail after which a commit
	// compacts. Default 32.
	CompactAfter int
	// RetryFor bounds how long a commit retries conflicts and errors
	// before it gives up. Default 30 s.
	RetryFor time.Duration
	// CachedPages bounds the pages kept in memory. Default 1024.
	CachedPages int
	// KeepTombstones is how long a delete stays in the index after it was
	// committed: the evidence GC needs to remove the run's object, and
	// that Reindex needs not to bring the run back. It must outlive the GC
	// grace period by far: a deleted run whose object is still there when
	// its tombstone goes (a Delete cut short, and no GC run since) is
	// listed again by the next Reindex, never lost. Default 30 days.
	KeepTombstones time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Contested, if set, is called after a compaction with the runs
	// whose ops from different regions it decided between: a tail op
	// that lost, or a winner from another region than before. The run
	// objects of such runs may hold a losing state (replication keeps the
	// last writer by its clock); durable reconciles them. It runs on the
	// compaction's goroutine and must not block.
	Contested func(runs []uuid.UUID)
	// Region names the region this process writes from, when several
	// regions write one store through replication (see the package doc):
	// 1 to 63 of [a-z0-9-]. Empty is the default region, the only one of
	// a store in one region. Every process of a region must use the same
	// name, and no two regions one name.
	Region string
	// ReadOnly makes the index write nothing: commits, Barrier,
	// compactions, Rebuild, GC and Create fail with bucket.ErrReadOnly,
	// and no compaction starts in the background (a List otherwise starts
	// one when other regions' logs pile up). Reads are as without it.
	ReadOnly bool
	// Logger receives the index's log records: commit retries (Debug),
	// log numbers lost to other writers (Info), compactions (Info; Warn
	// when one fails). Nil: none.
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, error) {
	var d Options
	if o != nil {
		d = *o
	}
	var problems []string
	if d.PageSize < 0 {
		problems = append(problems, "negative PageSize")
	}
	if d.CompactAfter < 0 {
		problems = append(problems, "negative CompactAfter")
	}
	if d.RetryFor < 0 {
		problems = append(problems, "negative RetryFor")
	}
	if d.CachedPages < 0 {
		problems = append(problems, "negative CachedPages")
	}
	if d.KeepTombstones < 0 {
		problems = append(problems, "negative KeepTombstones")
	}
	if err := CheckRegion(d.Region); err != nil {
		problems = append(problems, err.Error())
	}
	if d.Prefix != "" {
		if err := bucket.CheckKey(d.Prefix + "/index/head"); err != nil {
			problems = append(problems, fmt.Sprintf("prefix %q: %v", d.Prefix, err))
		}
	}
	if len(problems) > 0 {
		return d, fmt.Errorf("%w: index options: %s", cairn.ErrInvalid, strings.Join(problems, "; "))
	}
	if d.Codec == nil {
		d.Codec = cairn.DefaultCodec()
	}
	if d.PageSize == 0 {
		d.PageSize = 2048
	}
	if d.CompactAfter == 0 {
		d.CompactAfter = 32
	}
	if d.RetryFor == 0 {
		d.RetryFor = 30 * time.Second
	}
	if d.CachedPages == 0 {
		d.CachedPages = 1024
	}
	if d.KeepTombstones == 0 {
		d.KeepTombstones = 30 * 24 * time.Hour
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// Index reads and writes the index of one prefix of a bucket. It is safe
// for concurrent use; one Index per process and prefix lets concurrent
// commits share log objects (group commit).
type Index struct {
	b      bucket.Bucket
	o      Options
	region string // Options.Region
	base   string // "<prefix>/index/" or "index/"
	root   string // this region's directory: base, or base+"regions/<region>/"

	pages *golru.Cache[string, any] // *format.Page and *format.OpPage by ID

	mu       sync.Mutex
	manifest *format.Manifest        // newest snapshot read; never nil
	logs     map[logID]*format.Batch // logs after what manifest covers that were read
	tail     uint64                  // highest log number known to exist
	tailAt   time.Time               // when tail was last confirmed; zero: never
	queue    []*pending              // ops waiting for the next commit
	leading  bool                    // a goroutine is committing the queue
	stats    Stats

	streams   []string  // the other regions with a stream (discover)
	streamsAt time.Time // when streams was listed; zero: never
	marked    bool      // this region's marker is written
	// foreignTail is the number of other regions' logs after the snapshot
	// at the last load, which counts towards compacting.
	foreignTail int

	compacting sync.Mutex // one compaction at a time per process
	bg         sync.WaitGroup
}

// Stats counts what an Index did.
type Stats struct {
	Commits     int64 // log objects written
	CommitOps   int64 // ops in them
	Conflicts   int64 // log numbers lost to other writers
	Compactions int64 // snapshots written
	// CompactionErrors counts background compactions that failed, the
	// last failure being LastCompactionError.
	CompactionErrors    int64
	LastCompactionError error
	PagesPut            int64
	IndexBytes          int64 // bytes of index objects written
	// Snapshot and Tail are the newest snapshot and log this process
	// knows of.
	Snapshot, Tail uint64
}

// New returns the index at opts.Prefix in b; nil opts means every default.
// It makes no request: an index missing from b shows as ErrNoIndex when it
// is first read. Invalid options are cairn.ErrInvalid, naming every
// problem.
func New(b bucket.Bucket, opts *Options) (*Index, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	pages, err := golru.New[string, any](o.CachedPages)
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		b = bucket.ReadOnly(b)
	}
	base := "index/"
	if o.Prefix != "" {
		base = o.Prefix + "/index/"
	}
	ix := &Index{b: b, o: o, region: o.Region, base: base, pages: pages, manifest: &format.Manifest{Region: o.Region}, logs: map[logID]*format.Batch{}}
	ix.root = ix.rootOf(o.Region)
	return ix, nil
}

// Stats returns a snapshot of the counters.
func (ix *Index) Stats() Stats {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	st := ix.stats
	st.Snapshot, st.Tail = ix.manifest.Seq, ix.tail
	return st
}

// Wait blocks until background compactions started by commits are done.
func (ix *Index) Wait() { ix.bg.Wait() }

func seqName(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func (ix *Index) logKey(seq uint64) string  { return ix.logKeyOf(ix.region, seq) }
func (ix *Index) snapKey(seq uint64) string { return ix.snapKeyOf(ix.region, seq) }
func (ix *Index) headKey() string           { return ix.headKeyOf(ix.region) }

// labelPagePrefix begins the IDs of by-label pages, which pageKey keeps
// under label-pages/ rather than pages/: a binary from before the
// by-label set deletes, when it runs GC, every page under pages/ that
// the manifests it reads do not name, and its codec cannot see ByLabel.
const labelPagePrefix = "l-"

// pageDirs are the directories, under the root, that hold pages.
var pageDirs = []string{"pages/", "label-pages/"}

func (ix *Index) pageKey(id string) string {
	root := ix.root
	if rest, ok := strings.CutPrefix(id, foreignPage); ok {
		r, pid, _ := strings.Cut(rest, "/")
		root, id = ix.rootOf(r), pid
	}
	if strings.HasPrefix(id, labelPagePrefix) {
		return root + "label-pages/" + id
	}
	return root + "pages/" + id
}

// parseSeq returns the number at the end of a log or snapshot key.
func parseSeq(key string) (uint64, bool) {
	i := strings.LastIndexByte(key, '/')
	n, err := strconv.ParseUint(key[i+1:], 10, 64)
	return n, err == nil && len(key)-i-1 == 20
}

// encode encodes an index object, refusing one whose record is larger
// than the codec's MaxSize: every reader would refuse to decode it, so
// writing it would only damage the index. The error wraps no sentinel
// (cairn.ErrTooLarge says nothing was written, which a commit's caller
// could not rely on).
func (ix *Index) encode(v wire.Marshaler) ([]byte, error) {
	rec, err := v.AppendMsgpack(nil)
	if err != nil {
		return nil, err
	}
	if limit := ix.o.Codec.MaxSize(); len(rec) > limit {
		return nil, fmt.Errorf("index: refusing to write an object of %d bytes, over the codec's MaxSize of %d: no reader could load it", len(rec), limit)
	}
	return ix.o.Codec.Compress(nil, rec), nil
}

func (ix *Index) decode(key string, data []byte, v wire.Unmarshaler) error {
	rec, err := ix.o.Codec.Decompress(data)
	if err == nil {
		err = wire.Unmarshal(rec, v)
	}
	if err != nil {
		return fmt.Errorf("%w: index object %s: %w", cairn.ErrCorrupt, key, err)
	}
	return nil
}

// get reads and decodes one index object.
func (ix *Index) get(ctx context.Context, key string, v wire.Unmarshaler) (*bucket.Object, error) {
	obj, err := ix.b.Get(ctx, key, &bucket.GetOptions{MaxSize: int64(ix.o.Codec.MaxSize())})
	if err != nil {
		return nil, err
	}
	return obj, ix.decode(key, obj.Body, v)
}

// put writes one index object under a condition.
func (ix *Index) put(ctx context.Context, key string, v wire.Marshaler, opts *bucket.PutOptions) (string, error) {
	body, err := ix.encode(v)
	if err != nil {
		return "", err
	}
	etag, err := ix.b.Put(ctx, key, body, opts)
	if err == nil {
		ix.mu.Lock()
		ix.stats.IndexBytes += int64(len(body))
		ix.mu.Unlock()
	}
	return etag, err
}

// page returns a by-time page, from the cache when it can: pages never
// change.
func (ix *Index) page(ctx context.Context, id string) (*format.Page, error) {
	return cached[format.Page](ctx, ix, id)
}

// opPage returns a by-run page.
func (ix *Index) opPage(ctx context.Context, id string) (*format.OpPage, error) {
	return cached[format.OpPage](ctx, ix, id)
}

func cached[T any, PT interface {
	*T
	wire.Unmarshaler
}](ctx context.Context, ix *Index, id string) (*T, error) {
	if v, ok := ix.pages.Get(id); ok {
		if p, ok := v.(*T); ok {
			return p, nil
		}
	}
	p := new(T)
	if _, err := ix.get(ctx, ix.pageKey(id), PT(p)); err != nil {
		if errors.Is(err, bucket.ErrNotFound) || errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, bucket.ErrUnreadable) {
			return nil, damaged("page %s: %w", id, err)
		}
		return nil, err
	}
	ix.pages.Add(id, p)
	return p, nil
}

// backoff sleeps for a jittered, growing delay before attempt n (0-based),
// or returns ctx's error.
func backoff(ctx context.Context, n int) error {
	d := min(5*time.Millisecond<<min(n, 8), time.Second)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// listSeqs returns the numbers of the objects under dir that sort after
// after, in order.
func (ix *Index) listSeqs(ctx context.Context, dir string, after uint64) ([]uint64, error) {
	seqs, _, err := ix.listSeqPages(ctx, dir, after, 0)
	return seqs, err
}

// listSeqPages is listSeqs reading at most pages LIST pages (all when 0);
// more reports that it stopped before the end.
func (ix *Index) listSeqPages(ctx context.Context, dir string, after uint64, pages int) (seqs []uint64, more bool, err error) {
	seqs, _, more, err = ix.listLog(ctx, dir, after, pages)
	return seqs, more, err
}

// listLog is listSeqPages that also returns, when dir is the default
// region's log directory, the regions whose markers it lists (see
// markerKey): they sort after every log, so the LIST a load makes of that
// stream anyway finds the other regions too.
func (ix *Index) listLog(ctx context.Context, dir string, after uint64, pages int) (seqs []uint64, markers []string, more bool, err error) {
	start := dir + seqName(after)
	mdir := ix.base + "log/" + markerDir
	for n := 1; ; n++ {
		infos, truncated, err := ix.b.List(ctx, dir, start, 1000)
		if err != nil {
			return nil, nil, false, err
		}
		for _, in := range infos {
			if seq, ok := parseSeq(in.Key); ok {
				seqs = append(seqs, seq)
			} else if r, ok := strings.CutPrefix(in.Key, mdir); ok && r != "" && CheckRegion(r) == nil {
				markers = append(markers, r)
			}
		}
		if !truncated || len(infos) == 0 {
			return seqs, markers, false, nil
		}
		if n == pages {
			return seqs, markers, true, nil
		}
		start = infos[len(infos)-1].Key
	}
}

// logID names one log: its region's stream and its number.
type logID struct {
	region string
	seq    uint64
}

// adopt makes m the snapshot this process reads from, if it is newer than
// the one it has, and forgets the logs m covers. A snapshot of this
// region's replaces another region's (which a region without one of its
// own starts from); among one region's, the higher number is newer.
func (ix *Index) adopt(m *format.Manifest) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	cur := ix.manifest
	switch {
	case m.Region == cur.Region && m.Seq <= cur.Seq:
		return
	case m.Region != ix.region && cur.Region == ix.region && cur.Seq > 0:
		return
	}
	ix.manifest = m
	cov := coverage(m)
	for id := range ix.logs {
		if id.seq <= cov[id.region] {
			delete(ix.logs, id)
		}
	}
}

// state is what the index holds at one moment: a snapshot and the ops of
// the logs after it in every stream.
type state struct {
	m     *format.Manifest
	cov   map[string]uint64  // the last log applied of each stream, this region's included
	tail  uint64             // this region's last log applied
	over  map[uuid.UUID]Op   // the runs the tails changed: the op that wins
	tails map[uuid.UUID][]Op // the runs the tails changed: each stream's last op
	puts  []Entry            // the saved runs of over, in List order
	logs  int                // the logs after the snapshot, every stream's
}

// errGap means logs the reader needed were collected under it; reading
// again from the head fixes it.
var errGap = errors.New("index: log tail has a gap")

// ErrDamaged means the index cannot be read as it is: a log, snapshot or
// page it needs is missing or cannot be decoded, and no intact snapshot
// with an unbroken log after it is left to fall back on. Nothing is lost:
// the run objects are the truth, and a rebuild from them (Rebuild, which
// durable's Reindex and `cairn reindex` drive) repairs it. Commits go on
// meanwhile. It wraps cairn.ErrCorrupt: reading again will not help.
var ErrDamaged error = damagedError{}

type damagedError struct{}

func (damagedError) Error() string {
	return "index damaged; rebuild it from the run objects with Reindex (cairn reindex)"
}

func (damagedError) Is(target error) bool { return target == cairn.ErrCorrupt }

// ErrNoIndex means the bucket holds no index at all: no head, no log, no
// snapshot, in no region. That is a new store, or an index that was lost;
// only the caller, who knows whether run objects exist, can tell which.
// Create makes a new index; a lost one must be rebuilt, never read as
// empty.
var ErrNoIndex = errors.New("index: no index in the bucket")

// damaged wraps the error fmt.Errorf(msg, args...) makes as ErrDamaged,
// once.
func damaged(msg string, args ...any) error {
	err := fmt.Errorf(msg, args...)
	if errors.Is(err, ErrDamaged) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDamaged, err)
}

// Create makes a new, empty index for this region: it writes the head,
// naming no snapshot yet, unless one exists, and the region's marker. The
// head is the index's mark of existence: a bucket with logs or runs but no
// head has lost its index. Call it only when the bucket has no index
// (ErrNoIndex) and no runs.
func (ix *Index) Create(ctx context.Context) error {
	if err := ix.ensureMarker(ctx); err != nil {
		return err
	}
	_, err := ix.put(ctx, ix.headKey(), &format.Head{}, &bucket.PutOptions{IfNoneMatch: "*"})
	if errors.Is(err, bucket.ErrPrecondition) {
		return nil // created by someone else
	}
	return err
}

// load reads the current state: the head, the manifest it names (unless
// cached), the list of logs after it in every stream and the logs not
// read yet. When the head names a snapshot that is gone or damaged, or the
// log after it has a gap that reading again does not close, it falls back
// to the newest intact snapshot with an unbroken log after it (recover);
// failing that, it is ErrDamaged.
func (ix *Index) load(ctx context.Context) (*state, error) {
	for attempt := 0; ; attempt++ {
		st, err := ix.loadOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return st, err
		}
		retry := errors.Is(err, errGap) || errors.Is(err, bucket.ErrNotFound)
		if retry && attempt < 3 {
			continue // GC moved on under us: start again from the head
		}
		if retry || errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, bucket.ErrUnreadable) {
			rst, rerr := ix.recover(ctx)
			if rerr != nil {
				return nil, damaged("%w (and no fallback: %v)", err, rerr)
			}
			return rst, nil
		}
		return nil, err
	}
}

// loadOnce is one attempt of load: the state as the head and the logs
// read now show it, with neither retries nor a fallback.
func (ix *Index) loadOnce(ctx context.Context) (*state, error) {
	ctx = withHeadMemo(ctx)
	ix.mu.Lock()
	m := ix.manifest
	ix.mu.Unlock()
	first, err := ix.headAndLogs(ctx, coverage(m)[ix.region], coverage(m)[""])
	if err != nil {
		return nil, err
	}
	switch {
	case first.head.Seq > 0:
		if m.Region != ix.region || first.head.Seq > m.Seq {
			nm := new(format.Manifest)
			if _, err := ix.get(ctx, ix.snapKey(first.head.Seq), nm); err != nil {
				return nil, err
			}
			nm.Region = ix.region
			ix.adopt(nm)
			m = nm
		}
	case m.Region == ix.region && m.Seq > 0:
		// A snapshot of ours was read, but the head is gone or names
		// none: it was lost.
		return nil, fmt.Errorf("%w: the head names no snapshot, snapshot %d was read", errGap, m.Seq)
	default:
		if m, err = ix.baseless(ctx, first); err != nil {
			return nil, err
		}
	}
	own, err := ix.logsAfter(ctx, coverage(m)[ix.region], first)
	if err != nil {
		return nil, err
	}
	var listed map[string][]uint64
	if ix.region != "" && coverage(m)[""] >= first.defStart {
		listed = map[string][]uint64{"": first.defaults}
	}
	seqs, err := ix.foreignLogs(ctx, m, first.others, listed)
	if err != nil {
		return nil, err
	}
	seqs[ix.region] = &stream{seqs: own}
	return ix.read(ctx, m, seqs)
}

// baseless returns the snapshot to read from when this region's head
// names none: another region's (see foreignBase), or none (an empty
// manifest). It is ErrNoIndex when no region has an index, and errGap
// when this region lost its head (its logs or snapshots are there).
func (ix *Index) baseless(ctx context.Context, first *firstLook) (*format.Manifest, error) {
	if first.headless {
		err := ix.checkHeadless(ctx, first.logs)
		if err != nil && !errors.Is(err, ErrNoIndex) {
			return nil, err
		}
		if errors.Is(err, ErrNoIndex) {
			if err := ix.othersExist(ctx, first.others); err != nil {
				return nil, err
			}
		}
	}
	fm, err := ix.foreignBase(ctx, first.others)
	if err != nil || fm != nil {
		if fm != nil {
			ix.adopt(fm)
		}
		return fm, err
	}
	return &format.Manifest{Region: ix.region}, nil
}

// othersExist returns ErrNoIndex unless another region has an index.
func (ix *Index) othersExist(ctx context.Context, others []string) error {
	for _, r := range others {
		if r != "" {
			return nil // a marker: the region has a stream
		}
		ok, err := ix.exists(ctx, r)
		if err != nil || ok {
			return err
		}
	}
	return ErrNoIndex
}

// firstLook is what a load learns in its first round trip.
type firstLook struct {
	head     format.Head
	headless bool     // there is no head
	start    uint64   // logs lists this region's logs after it
	logs     []uint64 // the first LIST page of this region's logs after start
	more     bool     // more logs follow
	others   []string // the other regions with a stream
	// defaults are the default region's logs after defStart, for a named
	// region.
	defaults []uint64
	defStart uint64
}

// headAndLogs reads the head, a page of the list of this region's logs
// after start (how far the snapshot this process has covers them) and,
// when it is time to (see discover), the other regions' markers at once,
// one round trip rather than several: a head naming a newer snapshot only
// drops the logs it covers from that list. (A log GC deletes is covered by
// a head older than the grace period, so the head read here covers it
// too; a gap found later means reading again from the head.)
func (ix *Index) headAndLogs(ctx context.Context, start, defStart uint64) (*firstLook, error) {
	first := firstLook{start: start}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := ix.get(gctx, ix.headKey(), &first.head)
		if errors.Is(err, bucket.ErrNotFound) {
			first.headless = true
			return nil
		}
		return err
	})
	var markers []string
	g.Go(func() (err error) {
		var ms []string
		first.logs, ms, first.more, err = ix.listLog(gctx, ix.root+"log/", start, 1)
		if ix.region == "" {
			markers = ms
		}
		return err
	})
	if ix.region != "" {
		// The default region's stream, listed whole: its logs and the
		// markers of the other regions.
		g.Go(func() (err error) {
			first.defaults, markers, _, err = ix.listLog(gctx, ix.base+"log/", defStart, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if first.more && ix.region == "" && len(first.logs) > 0 {
		// The markers come after every log: list the rest for them.
		rest, ms, _, err := ix.listLog(ctx, ix.root+"log/", first.logs[len(first.logs)-1], 0)
		if err != nil {
			return nil, err
		}
		first.logs, first.more, markers = append(first.logs, rest...), false, ms
	}
	first.defStart = defStart
	first.others = ix.known(markers)
	return &first, nil
}

// checkHeadless decides what a region with no head and no snapshot known
// holds, logs being the first of its logs. An index made before the head
// marked it, whose logs start at 1 and which has no snapshot yet (its
// first compaction writes a head), is read as it is (nil); with no log and
// no snapshot the region has no index (ErrNoIndex); otherwise it lost its
// head (errGap), and recover reads its snapshots.
func (ix *Index) checkHeadless(ctx context.Context, logs []uint64) error {
	snaps, _, err := ix.listSeqPages(ctx, ix.root+"snap/", 0, 1)
	if err != nil {
		return err
	}
	switch {
	case len(logs) == 0 && len(snaps) == 0:
		return ErrNoIndex
	case len(snaps) > 0 || logs[0] != 1:
		return fmt.Errorf("%w: no head, %d snapshots, logs from %v", errGap, len(snaps), logs[:min(1, len(logs))])
	}
	return nil
}

// logsAfter returns this region's logs after base, which must follow it
// without a gap. When the first listing started after base, or did not
// reach the end (logs that GC has not collected yet, in a cold process),
// listing goes on from where it must.
func (ix *Index) logsAfter(ctx context.Context, base uint64, first *firstLook) ([]uint64, error) {
	seqs := first.logs
	switch {
	case first.start > base:
		all, err := ix.listSeqs(ctx, ix.root+"log/", base)
		if err != nil {
			return nil, err
		}
		seqs = all
	case first.more:
		from := base
		if len(seqs) > 0 {
			from = max(from, seqs[len(seqs)-1])
		}
		rest, err := ix.listSeqs(ctx, ix.root+"log/", from)
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, rest...)
	}
	seqs = slices.DeleteFunc(slices.Clone(seqs), func(seq uint64) bool { return seq <= base })
	if err := contiguous(base, seqs); err != nil {
		return nil, err
	}
	return seqs, nil
}

// A stream is what a load applies of one region's log stream after its
// snapshot: the ops of that region's own snapshot first when the load
// jumped to it (see foreignLogs), then the logs seqs.
type stream struct {
	jump []Op     // the region's last op per run as of its snapshot
	seqs []uint64 // the logs after, in order
	end  uint64   // the last log applied (the snapshot's number when only jumped)
}

// foreignLogs returns, for every other region, what a load applies of its
// stream after what m covers: the logs that follow without a gap (a log
// missing is one replication has not delivered yet, and those after it
// wait for it). When that region's own head snapshot covers its stream
// past where those logs stop, the missing logs may never come: GC there
// deleted them once its snapshot covered them (it counts on this region's
// coverage, which can be late: a region joining, a snapshot or marker not
// delivered yet). The load then jumps: it takes that region's ops from
// the by-run levels of its snapshot (each run's last op of its stream up
// to the snapshot) and its logs after, once the snapshot's pages have
// arrived; a compaction then makes the jump part of this region's
// snapshot.
//
// listed holds the logs of regions already listed after what m covers
// or earlier (their listing is not repeated).
func (ix *Index) foreignLogs(ctx context.Context, m *format.Manifest, others []string, listed map[string][]uint64) (map[string]*stream, error) {
	cov := coverage(m)
	out := make([]*stream, len(others))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, r := range others {
		g.Go(func() error {
			var head *format.Manifest
			listed, ok := listed[r]
			lg, lctx := errgroup.WithContext(gctx)
			lg.Go(func() (err error) {
				if !ok {
					listed, err = ix.listSeqs(lctx, ix.rootOf(r)+"log/", cov[r])
				}
				return err
			})
			lg.Go(func() (err error) {
				head, err = ix.headSnapshot(lctx, r)
				return err
			})
			if err := lg.Wait(); err != nil {
				return err
			}
			s := &stream{seqs: prefixFrom(cov[r], listed), end: cov[r]}
			s.end += uint64(len(s.seqs))
			if head != nil && head.Seq > s.end {
				jump, err := ix.streamOps(gctx, qualify(head, r), r)
				switch {
				case errors.Is(err, errNotDelivered):
					// Its pages are on their way: wait at the gap.
				case err != nil:
					return err
				default:
					s = &stream{jump: jump, seqs: prefixFrom(head.Seq, listed), end: head.Seq}
					s.end += uint64(len(s.seqs))
				}
			}
			out[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := make(map[string]*stream, len(others)+1)
	for i, r := range others {
		res[r] = out[i]
	}
	return res, nil
}

// prefixFrom returns the logs of seqs (ascending) that follow base
// without a gap.
func prefixFrom(base uint64, seqs []uint64) []uint64 {
	var out []uint64
	for _, seq := range seqs {
		switch {
		case seq <= base:
			continue
		case seq != base+uint64(len(out))+1:
			return out
		}
		out = append(out, seq)
	}
	return out
}

// errNotDelivered means an object another region wrote has not arrived
// here yet: replication will bring it.
var errNotDelivered = errors.New("index: another region's object has not arrived yet")

// streamOps returns region r's last op per run as of snapshot m (r's own,
// its page IDs qualified): the ops of r's stream in m's by-run levels.
// Pages that have not arrived are errNotDelivered.
func (ix *Index) streamOps(ctx context.Context, m *format.Manifest, r string) ([]Op, error) {
	all, err := ix.levelStreams(ctx, m)
	if errors.Is(err, ErrDamaged) && errors.Is(err, bucket.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", errNotDelivered, err)
	}
	if err != nil {
		return nil, err
	}
	var ops []Op
	for _, rops := range all {
		for _, op := range rops {
			if op.Entry.Region == r {
				ops = append(ops, op)
			}
		}
	}
	return ops, nil
}

// contiguous checks that seqs are the logs base+1, base+2, ...
func contiguous(base uint64, seqs []uint64) error {
	for i, seq := range seqs {
		if seq != base+uint64(i)+1 {
			return fmt.Errorf("%w: log %d follows snapshot %d", errGap, seq, base+uint64(i))
		}
	}
	return nil
}

// read completes a load: it reads the logs of streams (by region) not
// read yet, all at once, and returns the state they make on snapshot m.
func (ix *Index) read(ctx context.Context, m *format.Manifest, streams map[string]*stream) (*state, error) {
	batches := map[logID]*format.Batch{}
	var bmu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for r, s := range streams {
		for _, seq := range s.seqs {
			id := logID{r, seq}
			ix.mu.Lock()
			b := ix.logs[id]
			ix.mu.Unlock()
			if b != nil {
				bmu.Lock()
				batches[id] = b
				bmu.Unlock()
				continue
			}
			g.Go(func() error {
				batch := new(format.Batch)
				if _, err := ix.get(gctx, ix.logKeyOf(r, seq), batch); err != nil {
					return err
				}
				bmu.Lock()
				batches[id] = batch
				bmu.Unlock()
				ix.mu.Lock()
				if seq > coverage(ix.manifest)[r] {
					ix.logs[id] = batch
				}
				ix.mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	st := &state{m: m, cov: coverage(m), over: map[uuid.UUID]Op{}, tails: map[uuid.UUID][]Op{}}
	jumped := false
	for r, s := range streams {
		if s.jump != nil {
			for _, op := range s.jump {
				st.tails[op.Entry.RunID] = withOp(st.tails[op.Entry.RunID], op)
			}
			st.cov[r] = s.end - uint64(len(s.seqs))
			st.logs++
			jumped = true
		}
		for _, seq := range s.seqs {
			for _, op := range batches[logID{r, seq}].Ops {
				op.Entry.Region = r
				st.tails[op.Entry.RunID] = withOp(st.tails[op.Entry.RunID], op)
			}
			st.cov[r] = seq
			st.logs++
		}
	}
	st.tail = st.cov[ix.region]
	ix.mu.Lock()
	ix.foreignTail = st.logs - len(streams[ix.region].seqs)
	if jumped {
		// A jump reads a whole snapshot's by-run pages: make it part of
		// this region's snapshot soon.
		ix.foreignTail = max(ix.foreignTail, 2*ix.o.CompactAfter)
	}
	ix.mu.Unlock()
	if err := ix.decide(ctx, st); err != nil {
		return nil, err
	}
	ix.mu.Lock()
	ix.tail = max(ix.tail, st.tail)
	ix.tailAt = ix.o.Now()
	ix.mu.Unlock()
	for _, op := range st.over {
		if !op.Delete {
			st.puts = append(st.puts, op.Entry)
		}
	}
	slices.SortFunc(st.puts, func(a, b Entry) int { return a.Key().Compare(b.Key()) })
	return st, nil
}

// decide sets st.over: for each run the tails changed, the op that wins
// among the last op of each stream, the snapshot's included. The snapshot's
// ops of a run are looked up only when it may hold one from a stream the
// tails did not replace: never in a store of one region.
func (ix *Index) decide(ctx context.Context, st *state) error {
	srcs := sources(st.m)
	var need []uuid.UUID
	for run, ops := range st.tails {
		if replacesAll(ops, srcs) {
			st.over[run] = winner(ops)
		} else {
			need = append(need, run)
		}
	}
	if len(need) == 0 {
		return nil
	}
	snap, err := ix.lookupOps(ctx, st.m, need)
	if err != nil {
		return err
	}
	for _, run := range need {
		ops := slices.Clone(snap[run])
		for _, op := range st.tails[run] {
			ops = withOp(ops, op)
		}
		st.over[run] = winner(ops)
	}
	return nil
}

// replacesAll reports whether ops hold an op of every region of srcs.
func replacesAll(ops []Op, srcs []string) bool {
	for _, r := range srcs {
		if !slices.ContainsFunc(ops, func(op Op) bool { return op.Entry.Region == r }) {
			return false
		}
	}
	return true
}

// recover finds a state to read when the head's does not hold: the newest
// snapshot of this region whose manifest reads, followed by an unbroken
// log to the end (or no snapshot and the log from 1, or another region's
// snapshot to start from). It lists every snapshot and log: it is for a
// damaged index, not the common path. The head is left as it is; the next
// compaction moves it past the damage.
func (ix *Index) recover(ctx context.Context) (*state, error) {
	snaps, err := ix.listSeqs(ctx, ix.root+"snap/", 0)
	if err != nil {
		return nil, err
	}
	logs, err := ix.listSeqs(ctx, ix.root+"log/", 0)
	if err != nil {
		return nil, err
	}
	others, err := ix.discover(ctx, true)
	if err != nil {
		return nil, err
	}
	var last error
	for i := len(snaps); i >= 0; i-- {
		m := &format.Manifest{Region: ix.region}
		if i > 0 {
			m.Seq = snaps[i-1]
		}
		after := logs[upTo(logs, m.Seq):]
		if i == 0 {
			if fm, err := ix.foreignBase(ctx, others); err != nil {
				return nil, err
			} else if fm != nil {
				m = fm
				after = logs[upTo(logs, coverage(fm)[ix.region]):]
			}
		}
		if err := contiguous(coverage(m)[ix.region], after); err != nil {
			last = err
			continue
		}
		if i == 0 && len(after) == 0 && m.Region == ix.region {
			if err := ix.othersExist(ctx, others); err != nil {
				return nil, err
			}
		}
		if i > 0 {
			_, err := ix.get(ctx, ix.snapKey(m.Seq), m)
			m.Region = ix.region
			if err == nil && orphaned(m, snaps) {
				err = fmt.Errorf("snapshot %d was built on %d, not on a newer one there is", m.Seq, m.Base)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				last = err
				continue
			}
		}
		seqs, err := ix.foreignLogs(ctx, m, others, nil)
		if err != nil {
			return nil, err
		}
		seqs[ix.region] = &stream{seqs: after}
		st, err := ix.read(ctx, m, seqs)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		last = err
	}
	return nil, last
}

// orphaned reports whether m is a snapshot a compaction left behind: built
// on a snapshot older than another one of snaps below it (a Reindex's,
// which the compaction gave way to), so it may lack what that one holds.
// Manifests that do not record their base (zero) are taken as they are.
func orphaned(m *format.Manifest, snaps []uint64) bool {
	if m.Base == 0 || m.Base == m.Seq {
		return false
	}
	i := upTo(snaps, m.Base)
	return i < len(snaps) && snaps[i] < m.Seq
}

// upTo returns the number of seqs at or below base (seqs ascending).
func upTo(seqs []uint64, base uint64) int {
	i, found := slices.BinarySearch(seqs, base)
	if found {
		i++
	}
	return i
}

// List returns, in List order, up to q.Limit entries (all when 0) that
// pass q's filters and come after its cursor, skipping runs expired at now,
// and reports whether more follow. The entries are copies the caller owns
// (those read from pages have no ETag, and none has a Pair). It sees every
// Commit that returned before it was called. It fails with ErrNoIndex when
// the bucket holds no index and ErrDamaged when the index cannot be read.
//
// With label selectors it reads the by-label pages of one selector pair
// from the cursor on, a few requests however many runs there are and
// however the matching ones are spread; on a snapshot that does not keep
// the by-label set (written before it existed) it filters the by-time
// pages instead, with the same result.
func (ix *Index) List(ctx context.Context, q *cairn.Query) (entries []Entry, more bool, err error) {
	st, err := ix.load(ctx)
	if err != nil {
		return nil, false, err
	}
	ix.compactIfBehind()
	l := newListing(q, ix.o.Now(), st.puts)
	list := ix.listPages
	if len(l.labels) > 0 && st.m.Labeled {
		list = ix.listLabeled
	}
	if err := list(ctx, l, st); err != nil {
		return nil, false, err
	}
	if !l.full() {
		l.putsBefore(nil)
	}
	if l.full() {
		return l.entries[:q.Limit], true, nil
	}
	return l.entries, false, nil
}

// A listing is one List in progress: it merges a snapshot's entries (from
// its by-time pages, or the postings of one label pair) with the tail's
// puts, both in List order, into entries.
type listing struct {
	q *cairn.Query
	// filter is q without its label selectors, which labels matches
	// against the stored form of an entry's labels instead.
	filter   cairn.Query
	labels   cairn.LabelMatcher
	now      time.Time
	after    cairn.Key // with hasAfter: entries start past it
	hasAfter bool
	puts     []Entry // the tail's puts not merged yet
	entries  []Entry // up to q.Limit+1: one past the limit means more follow
}

func newListing(q *cairn.Query, now time.Time, puts []Entry) *listing {
	l := &listing{q: q, filter: *q, labels: cairn.NewLabelMatcher(q.Labels), now: now, after: q.After, hasAfter: q.HasAfter}
	l.filter.Labels = nil
	if !q.Until.IsZero() {
		// Runs at or after Until come first in List order: start past them.
		skip := cairn.Key{Timestamp: q.Until, RunID: uuid.Max}
		if !l.hasAfter || skip.Compare(l.after) > 0 {
			l.after, l.hasAfter = skip, true
		}
	}
	if l.hasAfter {
		i, _ := slices.BinarySearchFunc(puts, l.after, func(e Entry, k cairn.Key) int { return e.Key().Compare(k) })
		puts = puts[i:]
	}
	l.puts = puts
	return l
}

// want reports whether e is past the cursor, passes the filters and has
// not expired.
func (l *listing) want(e *Entry) bool {
	return (!l.hasAfter || l.after.Compare(e.Key()) < 0) && l.filter.Match(e.Workflow, e.Timestamp, nil) && l.labels.Match(e.Labels) && !e.Expired(l.now)
}

// done reports whether everything after e is older than Since.
func (l *listing) done(e *Entry) bool { return !l.q.Since.IsZero() && e.Timestamp.Before(l.q.Since) }

// full reports whether entries holds one more than the limit.
func (l *listing) full() bool { return l.q.Limit > 0 && len(l.entries) > l.q.Limit }

// putsBefore merges the tail's puts that sort before k (all when k is nil).
func (l *listing) putsBefore(k *cairn.Key) {
	for len(l.puts) > 0 && !l.full() && (k == nil || l.puts[0].Key().Compare(*k) < 0) {
		if e := &l.puts[0]; l.want(e) && !l.done(e) {
			l.add(e)
		}
		l.puts = l.puts[1:]
	}
}

// add appends a copy of e to the entries, without the Pair a by-label
// page files it under.
func (l *listing) add(e *Entry) {
	l.entries = append(l.entries, *e)
	l.entries[len(l.entries)-1].Pair = ""
}

// visit merges e, an entry of the snapshot that the tail did not change,
// into l with the tail's puts that come before it, and reports whether l
// is complete (full, or past Since).
func (l *listing) visit(e *Entry) bool {
	k := e.Key()
	l.putsBefore(&k)
	if l.full() || l.done(e) {
		return true
	}
	if l.want(e) {
		l.add(e)
	}
	return false
}

// listPages reads st's by-time pages from the one that holds l's cursor
// on, merging them and the tail's puts before them into l, skipping the
// runs the tail changed, until l is full or done.
func (ix *Index) listPages(ctx context.Context, l *listing, st *state) error {
	refs := st.m.ByTime
	start := 0
	if l.hasAfter {
		start = max(0, prefixLen(refs, func(r *format.PageRef) bool { return r.First.Key().Compare(l.after) <= 0 })-1)
	}
	for _, ref := range refs[start:] {
		p, err := ix.page(ctx, ref.ID)
		if err != nil {
			return err
		}
		for i := range p.Entries {
			e := &p.Entries[i]
			if _, changed := st.over[e.RunID]; changed {
				continue
			}
			if l.visit(e) {
				return nil
			}
		}
	}
	return nil
}

// prefixLen returns the number of leading refs for which f holds (f must
// hold for a prefix of refs and not after it).
func prefixLen(refs []format.PageRef, f func(*format.PageRef) bool) int {
	lo, hi := 0, len(refs)
	for lo < hi {
		mid := (lo + hi) / 2
		if f(&refs[mid]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// lookup returns the index entry of run (ok false when the index has none
// or it expired at now). It reads the by-run page that would hold it.
func (ix *Index) lookup(ctx context.Context, run uuid.UUID) (e Entry, ok bool, err error) {
	st, err := ix.load(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	if op, changed := st.over[run]; changed {
		return op.Entry, !op.Delete && !op.Entry.Expired(ix.o.Now()), nil
	}
	e, ok, err = ix.lookupSnapshot(ctx, st.m, run)
	return e, ok && !e.Expired(ix.o.Now()), err
}

// LastOp returns the last op the index holds for run: its entry, or its
// tombstone (found false when it holds neither). Expired entries count.
func (ix *Index) LastOp(ctx context.Context, run uuid.UUID) (op Op, found bool, err error) {
	st, err := ix.load(ctx)
	if err != nil {
		return Op{}, false, err
	}
	if op, changed := st.over[run]; changed {
		return op, true, nil
	}
	e, live, err := ix.lookupSnapshot(ctx, st.m, run)
	if err != nil || e.RunID != run {
		return Op{}, false, err
	}
	return Op{Entry: e, Delete: !live}, true, nil
}

// Options returns the options in force, defaults filled in.
func (ix *Index) Options() Options { return ix.o }

// lookupSnapshot returns the entry of run that wins in snapshot m, and
// whether it is live (not a tombstone); a zero Entry when m holds no op of
// run.
func (ix *Index) lookupSnapshot(ctx context.Context, m *format.Manifest, run uuid.UUID) (Entry, bool, error) {
	ops, err := ix.snapshotOps(ctx, m, run)
	if err != nil || len(ops) == 0 {
		return Entry{}, false, err
	}
	w := winner(ops)
	return w.Entry, !w.Delete, nil
}
