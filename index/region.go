package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Regions. Several regions (each a set of processes with the same
// Options.Region, reading and writing its own copy of a bucket that
// asynchronous replication keeps in step with the others) write one index.
// Each region commits to a log stream of its own, so that log numbers never
// collide across regions, and keeps its own snapshots, pages and head, so
// that one region's compaction and GC never touch what another region
// reads:
//
//	<prefix>/index/...                   the default region "" (the layout above)
//	<prefix>/index/regions/<region>/...  a named region: log/, snap/, pages/, label-pages/, head
//	<prefix>/index/log/~regions/<region> a marker: the region has a stream
//
// A snapshot covers its own region's stream up to its Seq and every other
// stream up to what it names in Streams. A reader applies, after its
// snapshot, its own stream's logs (which must follow without a gap, as in
// one region) and, for every other stream, the logs that follow what the
// snapshot covers up to the first one that has not arrived: a gap in
// another region's stream is replication still under way, never an error,
// and the logs after it are applied once it is filled.
//
// Which op of a run wins. Within one stream a later op overrides an
// earlier one, as in one region. Across streams, the last op of each
// stream is kept (in the snapshot too), and the winner is the one with the
// highest lease epoch (Entry.Epoch, from the claims of cairn.Claimer): a
// run resumed in another region under a new claim wins on both sides,
// whatever the clocks and whatever order replication delivers the logs in.
// At equal epochs (two regions wrote the run with no claim between them: a
// split brain, plain Saves in two regions, or a run saved again after
// another region deleted it) the later time wins (a save's checkpoint
// timestamp, a delete's time of deletion), then a delete over a save, then
// the greater region name, then the greater ETag: a total order, so every
// region decides the same way once it has the same logs. Contested reports
// such runs. A delete outranks every write of the state it deleted (its
// epoch is that state's, and it counts with that state's checkpoint time
// when its own is earlier: see timeOf), so a partitioned region's late
// writes never bring a run deleted elsewhere back; a claim after the
// delete (a higher epoch) does. One corner is not decided the same way
// everywhere: a save at the epoch of a delete made more than
// Options.KeepTombstones earlier in another region, whose checkpoint
// timestamp is older than the delete, is listed where the tombstone was
// already dropped and not where it was kept.
//
// A region that has no snapshot of its own yet starts from another
// region's (the default region's first, else the first by name), reading
// that region's pages, and its first compaction writes a full snapshot of
// its own. GC in a region deletes its own logs only once every other
// region's head covers them, and only its own snapshots and pages.

// regionRE is what a region name may be: it is a key segment.
var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckRegion reports whether r may name a region: empty (the default
// region), or 1 to 63 lower-case letters, digits and '-', starting with a
// letter or digit.
func CheckRegion(r string) error {
	if r != "" && !regionRE.MatchString(r) {
		return fmt.Errorf("%w: region %q: want 1 to 63 of [a-z0-9-], starting with a letter or digit", cairn.ErrInvalid, r)
	}
	return nil
}

// rootOf returns the directory of region r's index objects.
func (ix *Index) rootOf(r string) string {
	if r == "" {
		return ix.base
	}
	return ix.base + "regions/" + r + "/"
}

func (ix *Index) logKeyOf(r string, seq uint64) string  { return ix.rootOf(r) + "log/" + seqName(seq) }
func (ix *Index) snapKeyOf(r string, seq uint64) string { return ix.rootOf(r) + "snap/" + seqName(seq) }
func (ix *Index) headKeyOf(r string) string             { return ix.rootOf(r) + "head" }
func (ix *Index) markerKey(r string) string             { return ix.base + "log/" + markerDir + r }

// Landmarks returns keys of objects only the index writes, which a writer
// can read to learn what the index is written with before it writes:
// this region's head, the default region's head, and the directory of
// the named regions' markers (a prefix to list: any marker there).
func (ix *Index) Landmarks() (heads []string, markers string) {
	heads = []string{ix.headKeyOf(ix.region)}
	if ix.region != "" {
		heads = append(heads, ix.headKeyOf(""))
	}
	return heads, ix.base + "log/" + markerDir
}

// markerDir holds, in the default region's log directory, the markers of
// the named regions: "~" sorts after the digits of every log, so they
// come at the end of the LIST a load makes of that directory anyway, and
// a binary from before regions skips them (they are no log numbers).
const markerDir = "~regions/"

// foreignPage marks the ID of a page that another region's snapshot
// holds, as a snapshot this region starts from refers to it:
// "@<region>/<id>". Such IDs are never written: a compaction on such a
// snapshot writes every page anew (see compact).
const foreignPage = "@"

// qualify returns m with its page IDs marked as region r's, for a region
// that reads another's snapshot.
func qualify(m *format.Manifest, r string) *format.Manifest {
	q := *m
	mark := func(refs []format.PageRef) []format.PageRef {
		out := slices.Clone(refs)
		for i := range out {
			out[i].ID = foreignPage + r + "/" + out[i].ID
		}
		return out
	}
	q.ByTime, q.ByLabel = mark(m.ByTime), mark(m.ByLabel)
	q.RunLevels = make([]format.Level, len(m.RunLevels))
	for i, l := range m.RunLevels {
		q.RunLevels[i] = format.Level{Count: l.Count, Pages: mark(l.Pages)}
	}
	return &q
}

// coverage returns how far m covers each stream: its own region's up to
// Seq, the others up to what Streams names.
func coverage(m *format.Manifest) map[string]uint64 {
	cov := map[string]uint64{m.Region: m.Seq}
	for _, s := range m.Streams {
		if s.Region != m.Region {
			cov[s.Region] = s.Seq
		}
	}
	return cov
}

// sources returns the regions whose ops m's by-run levels hold.
func sources(m *format.Manifest) []string {
	if m.Sources == nil && len(m.RunLevels) > 0 {
		return []string{""} // written before regions: the default stream's
	}
	return m.Sources
}

// outranks reports whether a wins over b, two ops of one run from
// different streams (see the rules above), at times at and bt (timeOf).
func outranks(a, b *Op, at, bt time.Time) bool {
	if a.Entry.Epoch != b.Entry.Epoch {
		return a.Entry.Epoch > b.Entry.Epoch
	}
	if !at.Equal(bt) {
		return at.After(bt)
	}
	if a.Delete != b.Delete {
		return a.Delete
	}
	if a.Entry.Region != b.Entry.Region {
		return a.Entry.Region > b.Entry.Region
	}
	return a.Entry.ETag > b.Entry.ETag
}

// timeOf returns the time op counts with among ops: a save's checkpoint
// timestamp; a delete's time of deletion, or, when the delete names (by
// ETag) the object that another stream's save among ops wrote, that
// save's timestamp if later. Such a delete removed that very state, after
// it was written whatever the clocks say, so it must not lose to it (a
// checkpoint time ahead of the deleter's clock would bring the run back);
// at equal times a delete wins.
func timeOf(op *Op, ops []Op) time.Time {
	t := op.Entry.Timestamp
	if !op.Delete || op.Entry.ETag == "" {
		return t
	}
	for i := range ops {
		if o := &ops[i]; !o.Delete && o.Entry.ETag == op.Entry.ETag && o.Entry.Timestamp.After(t) {
			t = o.Entry.Timestamp
		}
	}
	return t
}

// winner returns the op that wins among ops, one per stream (ops must not
// be empty).
func winner(ops []Op) Op {
	w, wt := 0, timeOf(&ops[0], ops)
	for i := 1; i < len(ops); i++ {
		if it := timeOf(&ops[i], ops); outranks(&ops[i], &ops[w], it, wt) {
			w, wt = i, it
		}
	}
	return ops[w]
}

// withOp returns ops (one per stream) with op replacing the op of its
// stream, or added.
func withOp(ops []Op, op Op) []Op {
	for i := range ops {
		if ops[i].Entry.Region == op.Entry.Region {
			ops[i] = op
			return ops
		}
	}
	return append(ops, op)
}

// Contested returns the runs whose last ops come from more than one
// region, each with those ops (one per region): runs resumed in another
// region, and runs two regions wrote during a partition. Of these, the
// runs whose highest epoch more than one region wrote are split brains:
// their winner was decided by the tie rules, not by a claim. It reads the
// whole index, like LastOps.
func (ix *Index) Contested(ctx context.Context) (map[uuid.UUID][]Op, error) {
	all, err := ix.allOps(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID][]Op{}
	for run, ops := range all {
		if len(ops) > 1 {
			out[run] = ops
		}
	}
	return out, nil
}

// RunOps returns, for each of runs, the last op of each region that the
// index holds now (one op in a store of one region; runs it holds none of
// are left out), with one read of the index.
func (ix *Index) RunOps(ctx context.Context, runs ...uuid.UUID) (map[uuid.UUID][]Op, error) {
	st, err := ix.load(ctx)
	if err != nil {
		return nil, err
	}
	all, err := ix.lookupOps(ctx, st.m, runs)
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		for _, op := range st.tails[run] {
			all[run] = withOp(all[run], op)
		}
	}
	return all, nil
}

// Winner returns the op that wins among ops, the last op of each region
// for one run (see the rules in the package doc); ops must not be empty.
func Winner(ops []Op) Op { return winner(ops) }

// Regional reports whether other regions write to this index, as far as
// this process has looked (see discover): whether runs may have ops from
// more than one region.
func (ix *Index) Regional(ctx context.Context) (bool, error) {
	others, err := ix.discover(ctx, false)
	if err != nil {
		return false, err
	}
	return ix.region != "" || len(others) > 0, nil
}

// SplitBrain reports whether ops, the last op of each region for one run,
// were written without a claim between them: more than one region wrote
// the highest epoch among them. A save whose very object another region's
// delete names (by ETag) does not count: the delete came after it.
func SplitBrain(ops []Op) bool {
	w := winner(ops)
	n := 0
	for _, op := range ops {
		deleted := !op.Delete && slices.ContainsFunc(ops, func(d Op) bool { return d.Delete && d.Entry.ETag != "" && d.Entry.ETag == op.Entry.ETag })
		if op.Entry.Epoch == w.Entry.Epoch && !deleted {
			n++
		}
	}
	return n > 1
}

// allOps returns the last op of every stream for every run the index
// holds: the snapshot's and the tails'.
func (ix *Index) allOps(ctx context.Context) (map[uuid.UUID][]Op, error) {
	st, err := ix.load(ctx)
	if err != nil {
		return nil, err
	}
	all, err := ix.levelStreams(ctx, st.m)
	if err != nil {
		return nil, err
	}
	for run, ops := range st.tails {
		for _, op := range ops {
			all[run] = withOp(all[run], op)
		}
	}
	return all, nil
}

// levelStreams returns, for each run of m's by-run levels, the last op of
// each stream.
func (ix *Index) levelStreams(ctx context.Context, m *format.Manifest) (map[uuid.UUID][]Op, error) {
	all := map[uuid.UUID][]Op{}
	for i := len(m.RunLevels) - 1; i >= 0; i-- { // oldest first: newer levels override
		for _, ref := range m.RunLevels[i].Pages {
			p, err := ix.opPage(ctx, ref.ID)
			if err != nil {
				return nil, err
			}
			for _, op := range p.Ops {
				all[op.Entry.RunID] = withOp(all[op.Entry.RunID], op)
			}
		}
	}
	return all, nil
}

// lookupOps returns the last op of each stream that snapshot m holds for
// each of runs, reading the by-run pages that would hold them, in
// parallel.
func (ix *Index) lookupOps(ctx context.Context, m *format.Manifest, runs []uuid.UUID) (map[uuid.UUID][]Op, error) {
	out := make([][]Op, len(runs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, run := range runs {
		g.Go(func() (err error) {
			out[i], err = ix.snapshotOps(gctx, m, run)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := make(map[uuid.UUID][]Op, len(runs))
	for i, run := range runs {
		if len(out[i]) > 0 {
			res[run] = out[i]
		}
	}
	return res, nil
}

// snapshotOps returns the last op of each stream that m holds for run:
// a level's page holds all of a run's ops (pushLevel never splits them),
// and a newer level's op overrides an older one's of the same stream.
func (ix *Index) snapshotOps(ctx context.Context, m *format.Manifest, run uuid.UUID) ([]Op, error) {
	var ops []Op
	for _, level := range m.RunLevels {
		i := prefixLen(level.Pages, func(r *format.PageRef) bool { return bytes.Compare(r.First.RunID[:], run[:]) <= 0 }) - 1
		if i < 0 {
			continue
		}
		p, err := ix.opPage(ctx, level.Pages[i].ID)
		if err != nil {
			return nil, err
		}
		j, _ := slices.BinarySearchFunc(p.Ops, run, func(op Op, r uuid.UUID) int { return bytes.Compare(op.Entry.RunID[:], r[:]) })
		for ; j < len(p.Ops) && p.Ops[j].Entry.RunID == run; j++ {
			if !slices.ContainsFunc(ops, func(o Op) bool { return o.Entry.Region == p.Ops[j].Entry.Region }) {
				ops = append(ops, p.Ops[j])
			}
		}
	}
	return ops, nil
}

// opLess orders by-run ops: by run, then region.
func opLess(a, b *Op) int {
	if c := bytes.Compare(a.Entry.RunID[:], b.Entry.RunID[:]); c != 0 {
		return c
	}
	return strings.Compare(a.Entry.Region, b.Entry.Region)
}

// discover returns the regions other than this one that have a stream:
// those with a marker, and the default region when this one is named. A
// load finds the markers in a LIST it makes anyway (see listLog) and
// keeps them; discover lists them afresh when fresh is set (GC, Salvage,
// recovery and compaction do) or when no load has found them yet.
func (ix *Index) discover(ctx context.Context, fresh bool) ([]string, error) {
	ix.mu.Lock()
	known, at := ix.streams, ix.streamsAt
	ix.mu.Unlock()
	if !fresh && !at.IsZero() {
		return known, nil
	}
	dir := ix.base + "log/" + markerDir
	var markers []string
	err := ix.eachKey(ctx, dir, func(in bucket.Info) {
		if r := in.Key[len(dir):]; r != "" && CheckRegion(r) == nil {
			markers = append(markers, r)
		}
	})
	if err != nil {
		return nil, err
	}
	return ix.known(markers), nil
}

// known returns the regions other than this one that markers (from a
// listing) and the default region make, and keeps them as the streams
// this process knows.
func (ix *Index) known(markers []string) []string {
	var found []string
	if ix.region != "" {
		found = append(found, "")
	}
	for _, r := range markers {
		if r != ix.region && !slices.Contains(found, r) {
			found = append(found, r)
		}
	}
	ix.mu.Lock()
	ix.streams, ix.streamsAt = found, time.Now()
	ix.mu.Unlock()
	return found
}

// ensureMarker writes this region's marker once per Index, before its
// first log: the other regions read only the streams they know of.
func (ix *Index) ensureMarker(ctx context.Context) error {
	ix.mu.Lock()
	done := ix.marked
	ix.mu.Unlock()
	if done || ix.region == "" {
		return nil
	}
	_, err := ix.b.Put(ctx, ix.markerKey(ix.region), []byte("cairn index stream\n"), &bucket.PutOptions{IfNoneMatch: "*"})
	if err != nil && !errors.Is(err, bucket.ErrPrecondition) {
		return fmt.Errorf("index: writing the marker of region %q: %w", ix.region, err)
	}
	ix.mu.Lock()
	ix.marked = true
	ix.mu.Unlock()
	return nil
}

// foreignBase returns the snapshot a region without one of its own starts
// from: the head snapshot of the default region, else of the first other
// region by name that has one, its page IDs qualified; nil when none has.
//
// A snapshot whose pages have not all arrived yet (replication delivers
// objects in any order) is passed over: the next region's is tried, and
// without one the region reads from no snapshot, waiting at the gaps of
// the other streams (see foreignLogs) until the pages arrive.
func (ix *Index) foreignBase(ctx context.Context, others []string) (*format.Manifest, error) {
	for _, r := range others {
		m, err := ix.headSnapshot(ctx, r)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		if ok, err := ix.pagesArrived(ctx, r, m); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		return qualify(m, r), nil
	}
	return nil, nil
}

// pagesArrived reports whether every page region r's snapshot m refers to
// is in the bucket, listing r's page directories (a few LISTs, whatever
// the number of pages); a snapshot found complete is remembered.
func (ix *Index) pagesArrived(ctx context.Context, r string, m *format.Manifest) (bool, error) {
	key := "arrived:" + ix.snapKeyOf(r, m.Seq)
	if _, ok := ix.pages.Get(key); ok {
		return true, nil
	}
	have := map[string]bool{}
	for _, d := range pageDirs {
		dir := ix.rootOf(r) + d
		if err := ix.eachKey(ctx, dir, func(in bucket.Info) { have[in.Key[len(dir):]] = true }); err != nil {
			return false, err
		}
	}
	for _, ref := range pageRefs(m) {
		if !have[ref.ID] {
			return false, nil
		}
	}
	ix.pages.Add(key, true)
	return true, nil
}

// coveredBy returns how far region r reads this region's stream from a
// snapshot: its head snapshot's coverage, or, when r has none yet, that
// of the snapshot r starts from (see foreignBase: the default region's,
// else the first by name that has one, this region's included); 0 when
// there is none, or it cannot be read. others are the regions other than
// this one. GC deletes its own logs only up to what every other region
// covers.
func (ix *Index) coveredBy(ctx context.Context, r string, others []string) (uint64, error) {
	var h format.Head
	if _, err := ix.get(ctx, ix.headKeyOf(r), &h); err == nil && h.Seq > 0 {
		// r has a snapshot: what it covers, or nothing if it cannot be
		// read here (not delivered yet, or damaged).
		m, err := ix.headSnapshot(ctx, r)
		if err != nil || m == nil {
			return 0, err
		}
		return coverage(m)[ix.region], nil
	} else if err != nil && !errors.Is(err, bucket.ErrNotFound) && !errors.Is(err, cairn.ErrCorrupt) {
		return 0, err
	}
	var theirs []string // r's others, in the order r tries them
	for _, o := range append(slices.Clone(others), ix.region) {
		if o != r {
			theirs = append(theirs, o)
		}
	}
	slices.Sort(theirs) // "" first
	for _, o := range theirs {
		m, err := ix.headSnapshot(ctx, o)
		if err != nil || m != nil {
			if m == nil {
				return 0, err
			}
			return coverage(m)[ix.region], nil
		}
	}
	return 0, nil
}

// headSnapshot returns the manifest region r's head names, nil when it
// names none or cannot be read (not delivered yet, or damaged). Manifests
// never change: they are cached.
func (ix *Index) headSnapshot(ctx context.Context, r string) (*format.Manifest, error) {
	memo, _ := ctx.Value(headMemoKey{}).(*headMemo)
	if memo != nil {
		memo.mu.Lock()
		m, seen := memo.heads[r]
		memo.mu.Unlock()
		if seen {
			return m, nil
		}
	}
	m, err := ix.readHeadSnapshot(ctx, r)
	if err == nil && memo != nil {
		memo.mu.Lock()
		memo.heads[r] = m
		memo.mu.Unlock()
	}
	return m, err
}

// A headMemo keeps, for one load, the head snapshots of the other regions
// read (nil for none), so that choosing a snapshot to start from and
// looking for jumps read each head once.
type headMemo struct {
	mu    sync.Mutex
	heads map[string]*format.Manifest
}

type headMemoKey struct{}

// withHeadMemo returns ctx with a new headMemo.
func withHeadMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, headMemoKey{}, &headMemo{heads: map[string]*format.Manifest{}})
}

// readHeadSnapshot is headSnapshot without the memo.
func (ix *Index) readHeadSnapshot(ctx context.Context, r string) (*format.Manifest, error) {
	var h format.Head
	if _, err := ix.get(ctx, ix.headKeyOf(r), &h); err != nil {
		if errors.Is(err, bucket.ErrNotFound) || errors.Is(err, cairn.ErrCorrupt) {
			return nil, nil
		}
		return nil, err
	}
	if h.Seq == 0 {
		return nil, nil
	}
	key := ix.snapKeyOf(r, h.Seq)
	if v, ok := ix.pages.Get("manifest:" + key); ok {
		if m, ok := v.(*format.Manifest); ok {
			return m, nil
		}
	}
	m := new(format.Manifest)
	if _, err := ix.get(ctx, key, m); err != nil {
		if errors.Is(err, bucket.ErrNotFound) || errors.Is(err, cairn.ErrCorrupt) {
			return nil, nil
		}
		return nil, err
	}
	m.Region = r
	ix.pages.Add("manifest:"+key, m)
	return m, nil
}

// exists reports whether region r has any index object: a head or a log.
func (ix *Index) exists(ctx context.Context, r string) (bool, error) {
	if _, err := ix.b.Head(ctx, ix.headKeyOf(r)); err == nil {
		return true, nil
	} else if !errors.Is(err, bucket.ErrNotFound) {
		return false, err
	}
	infos, _, err := ix.b.List(ctx, ix.rootOf(r)+"log/", "", 1)
	return len(infos) > 0, err
}
