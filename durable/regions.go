package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Regions. With asynchronous cross-region replication (S3 Cross-Region
// Replication, MinIO bucket or site replication), each region runs its
// processes against its own copy of the bucket with its own
// Options.Region. The index keeps one log stream per region and decides
// between the regions' writes of a run by lease epoch (see package index):
// a run claimed and resumed in another region wins there and, once
// replication delivers it, everywhere. Runs written in two regions at the
// same epoch (a split brain: no claim between the two writes) are decided
// by the index's tie rules, the same way in every region, and Verify
// reports them.
//
// Replication itself keeps, for each key, the version its clock wrote
// last, so a run object can hold a state that lost by epoch (a stale
// worker in a partitioned region wrote it last). Replicated buckets are
// versioned, and the state that won is still there as a noncurrent
// version: Reconcile restores it as the current version. It runs for the
// runs a compaction decided between regions (in the background), for a
// run before it is claimed, and for every run with `cairn reconcile`
// (Store.Reconcile). Until then, Load of such a run may return the losing
// state; a resumer that claims the run never does.
//
// Claim objects replicate the same way: a stale holder's renewal, or
// its older claim, can be kept in place of the claim that took the run
// over in another region. Reconcile (and so a Claim, and GC before it
// removes old versions) restores the newest claim of the run's highest
// epoch too, so that the stale holder's Renew fails, the new holder's
// succeeds, and nobody claims the run while the new lease lasts.

// ReconcileReport says what Reconcile did. Each list is sorted by run ID.
type ReconcileReport struct {
	// Checked is the number of runs written in more than one region
	// that were looked at.
	Checked int
	// Restored are runs whose object held a losing region's state and
	// now holds the winning one again, restored from its version.
	Restored []uuid.UUID
	// Claims are runs whose claim object held an older claim than the
	// run's newest (replication kept a stale holder's write) and now
	// holds the newest again, restored from its version.
	Claims []uuid.UUID
	// Elsewhere are runs whose object holds a losing state that another
	// region won: that region restores them (see ReconcileOptions).
	Elsewhere []uuid.UUID
	// Unrestorable maps runs whose object holds a losing state but whose
	// winning version could not be restored to why: the bucket keeps no
	// versions, or the version was removed (by GC of old versions, or a
	// lifecycle rule). Their object is left as it is: it is the only
	// state there is, and Reindex lists it.
	Unrestorable map[uuid.UUID]error
}

// Reconcile makes the object of every run that more than one region
// wrote hold the state the index chose (see Regions above), restoring it
// from the bucket's versions where replication kept a losing one. An
// object that no region's op names (a later Save whose commit is still on
// its way) is left alone; so is the object of a run whose winner is a
// delete: GC removes it once its grace has passed (see GC). It restores
// the run's newest claim the same way (Claims). It reads the whole index,
// a HEAD and a GET of the claim per contested run, and a version listing,
// GETs and a PUT per object or claim restored.
func (s *Store) Reconcile(ctx context.Context, opts *ReconcileOptions) (*ReconcileReport, error) {
	var o ReconcileOptions
	if opts != nil {
		o = *opts
	}
	if err := s.checkWritable(ctx); err != nil {
		return nil, cairn.WrapOp("reconcile", uuid.Nil, err)
	}
	if err := s.writable(ctx); err != nil {
		return nil, cairn.WrapOp("reconcile", uuid.Nil, err)
	}
	contested, err := s.ix.Contested(ctx)
	if err != nil {
		return nil, cairn.WrapOp("reconcile", uuid.Nil, err)
	}
	rep, err := s.reconcile(ctx, contested, o.AnyRegion)
	return rep, cairn.WrapOp("reconcile", uuid.Nil, err)
}

// ReconcileOptions configure Reconcile. Nil means defaults.
type ReconcileOptions struct {
	// AnyRegion restores winning states whatever region wrote them. By
	// default a region restores only the states it wrote (and the claims
	// it made): its own writers' conditional writes then cover the
	// restore, whereas a restore of another region's state, made where
	// that region's newer writes have not arrived yet, would become the
	// latest version everywhere and bury them. Set it when the region
	// that wrote them is gone for good. (A Claim restores the run it
	// claims whatever region won: it takes the run over anyway.)
	AnyRegion bool
}

// reconcile reconciles the runs of ops (each run's last op per region),
// the winning states of every region when any is set, else only this
// region's.
func (s *Store) reconcile(ctx context.Context, ops map[uuid.UUID][]index.Op, any bool) (*ReconcileReport, error) {
	rep := &ReconcileReport{Unrestorable: map[uuid.UUID]error{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	for run, rops := range ops {
		if len(rops) < 2 {
			continue
		}
		rep.Checked++
		g.Go(func() error {
			unlock, err := s.lockRun(gctx, run)
			if err != nil {
				return err
			}
			restored, err := s.reconcileRun(gctx, run, rops, any)
			unlock()
			if err != nil && !errors.Is(err, errUnrestorable) && !errors.Is(err, errElsewhere) {
				return err
			}
			claim, cerr := s.reconcileClaim(gctx, run, rops, any)
			if cerr != nil {
				return cerr
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errElsewhere):
				rep.Elsewhere = append(rep.Elsewhere, run)
			case err != nil:
				rep.Unrestorable[run] = err
			case restored:
				rep.Restored = append(rep.Restored, run)
			}
			if claim {
				rep.Claims = append(rep.Claims, run)
			}
			return nil
		})
	}
	err := g.Wait()
	sortIDs(rep.Restored)
	sortIDs(rep.Claims)
	sortIDs(rep.Elsewhere)
	return rep, err
}

// reconcileClaim makes run's claim object hold the newest claim of the
// highest epoch that ops (each region's last op of the run) hold, when
// it holds an older one: replication keeps, for the claim object too,
// the write its clock made last, which can be a stale holder's renewal
// in a partitioned region. It reports whether it restored one. The
// restore is a PUT of that version's bytes conditional on the object
// read, so a claim or renewal racing it is never overwritten (the next
// reconciliation looks again); the same bytes make the same ETag, so the
// holder's next Renew finds its own claim. It costs a GET, and when the
// claim is older, a version listing, a GET per version back to the
// newest claim, a PUT and a HEAD.
func (s *Store) reconcileClaim(ctx context.Context, run uuid.UUID, ops []index.Op, any bool) (bool, error) {
	var top uint64
	for _, op := range ops {
		top = max(top, op.Entry.Epoch)
	}
	cur, etag, err := s.readClaim(ctx, run)
	if errors.Is(err, cairn.ErrCorrupt) {
		cur, err = nil, nil // a damaged claim holds nothing
	}
	if err != nil || top == 0 || cur != nil && cur.Epoch >= top {
		return false, err
	}
	vb, ok := s.b.(bucket.Versioned)
	if !ok {
		return false, nil
	}
	body, err := s.claimVersion(ctx, vb, run, top, any)
	if body == nil || err != nil {
		return false, err
	}
	po := &bucket.PutOptions{IfMatch: etag}
	if etag == "" {
		po = &bucket.PutOptions{IfNoneMatch: "*"}
	}
	put, err := s.b.Put(ctx, s.claimKey(run), body, po)
	if errors.Is(err, bucket.ErrPrecondition) {
		return false, nil // claimed or renewed meanwhile
	}
	if err != nil {
		return false, classify(err)
	}
	// As for run objects (see reconcileRun), a restore made where the
	// clock is behind the older claim's site may not become current: the
	// other region's reconciliation makes it so.
	now, err := s.b.Head(ctx, s.claimKey(run))
	if err != nil {
		return false, classify(err)
	}
	return now.ETag == put, nil
}

// claimVersion returns the body of the newest version of run's claim
// object whose epoch is at least epoch, nil when there is none (removed by
// GC of old versions, or a lifecycle rule).
func (s *Store) claimVersion(ctx context.Context, vb bucket.Versioned, run uuid.UUID, epoch uint64, any bool) ([]byte, error) {
	key := s.claimKey(run)
	var body []byte
	err := eachVersion(ctx, vb, key, func(v bucket.Version) (bool, error) {
		if v.DeleteMarker {
			return false, nil
		}
		obj, err := vb.GetVersion(ctx, key, v.VersionID, &bucket.GetOptions{MaxSize: maxClaimObject})
		if errors.Is(err, bucket.ErrNotFound) || errors.Is(err, bucket.ErrTooLarge) {
			return false, nil
		}
		if err != nil {
			return true, classify(err)
		}
		var d claimDoc
		if json.Unmarshal(obj.Body, &d) != nil || d.Run != run || d.Epoch < epoch || d.Epoch > cairn.MaxEpoch {
			return false, nil
		}
		if any || d.Region == s.o.Region {
			body = obj.Body
		} // else that region's to restore
		return true, nil
	})
	return body, err
}

// errElsewhere marks a run whose winning state another region restores.
var errElsewhere = errors.New("another region won: it restores the state")

// errUnrestorable marks a run whose winning version cannot be restored.
var errUnrestorable = errors.New("the winning state cannot be restored")

// reconcileRun restores the winning state of run, whose last ops per
// region are ops, if its object holds a losing one (and reports whether
// it did). The caller holds the run's lock. The restore is a PUT of the
// winning version's bytes and metadata, conditional on the losing
// object's ETag, so a write racing it in another process is never
// overwritten; the same bytes make the same ETag, so the index entry
// still names it (a server that makes another ETag gets a commit).
func (s *Store) reconcileRun(ctx context.Context, run uuid.UUID, ops []index.Op, any bool) (bool, error) {
	w := index.Winner(ops)
	if w.Delete {
		return false, nil // GC removes a losing object of a deleted run
	}
	key := s.runKey(run)
	info, err := s.b.Head(ctx, key)
	missing := errors.Is(err, bucket.ErrNotFound)
	if err != nil && !missing {
		return false, classify(err)
	}
	if !missing && (info.ETag == w.Entry.ETag || !lostTo(ops, info.ETag)) {
		return false, nil // the winner, or a later write no op names yet
	}
	if !any && w.Entry.Region != s.o.Region {
		return false, errElsewhere // that region's to restore (see ReconcileOptions)
	}
	vb, ok := s.b.(bucket.Versioned)
	if !ok {
		return false, fmt.Errorf("%w: the bucket keeps no versions", errUnrestorable)
	}
	vid, err := findVersion(ctx, vb, key, w.Entry.ETag)
	if err != nil {
		return false, err
	}
	obj, err := vb.GetVersion(ctx, key, vid, &bucket.GetOptions{MaxSize: s.maxObject()})
	if errors.Is(err, bucket.ErrNotFound) {
		return false, fmt.Errorf("%w: version %s was removed", errUnrestorable, vid)
	}
	if err != nil {
		return false, classify(err)
	}
	po := &bucket.PutOptions{Metadata: obj.Metadata, IfNoneMatch: "*"}
	if !missing {
		po = &bucket.PutOptions{Metadata: obj.Metadata, IfMatch: info.ETag}
	}
	etag, err := s.b.Put(ctx, key, obj.Body, po)
	if errors.Is(err, bucket.ErrPrecondition) {
		return false, nil // written meanwhile: that write is newer
	}
	if err != nil {
		return false, classify(err)
	}
	// Versions are ordered by their modification time, which replication
	// keeps: a restore made where the clock is behind the losing write's
	// site may not become current. Say so rather than claim it worked.
	if now, err := s.b.Head(ctx, key); err == nil && now.ETag != etag {
		return false, fmt.Errorf("%w: the restored version is not the current one (this site's clock is behind the one that wrote %s; reconcile from the other region)", errUnrestorable, now.ETag)
	}
	if etag != w.Entry.ETag {
		e := w.Entry
		e.ETag = etag
		if err := s.commit(ctx, index.Op{Entry: e}); err != nil {
			return true, err
		}
	}
	return true, nil
}

// findVersion returns the ID of the newest version of key whose ETag is
// etag, or errUnrestorable.
func findVersion(ctx context.Context, vb bucket.Versioned, key, etag string) (string, error) {
	var id string
	err := eachVersion(ctx, vb, key, func(v bucket.Version) (bool, error) {
		if !v.DeleteMarker && v.ETag == etag {
			id = v.VersionID
			return true, nil
		}
		return false, nil
	})
	if err == nil && id == "" {
		err = fmt.Errorf("%w: no version of %s has ETag %s", errUnrestorable, key, etag)
	}
	return id, err
}

// eachVersion calls f with the versions of key, newest first, until f
// says it is done (or fails).
func eachVersion(ctx context.Context, vb bucket.Versioned, key string, f func(v bucket.Version) (done bool, err error)) error {
	keyMarker, versionMarker := "", ""
	for {
		vs, nk, nv, more, err := vb.ListVersions(ctx, key, keyMarker, versionMarker, 1000)
		if err != nil {
			return classify(err)
		}
		for _, v := range vs {
			if v.Key != key {
				continue
			}
			if done, err := f(v); done || err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		keyMarker, versionMarker = nk, nv
	}
}

// reconcileBefore reconciles run before a Claim reads it, when other
// regions write to the store, and returns the highest epoch any region's
// op of it holds (0 in a store of one region), which the new claim's
// epoch must pass. The caller does not hold the run's lock.
func (s *Store) reconcileBefore(ctx context.Context, run uuid.UUID) (uint64, error) {
	regional, err := s.ix.Regional(ctx)
	if err != nil || !regional {
		return 0, err
	}
	all, err := s.ix.RunOps(ctx, run)
	if errors.Is(err, index.ErrDamaged) || errors.Is(err, index.ErrNoIndex) {
		// Claims go on over a damaged index, as writes do: the run is
		// taken as its object is.
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ops := all[run]
	var epoch uint64
	for _, op := range ops {
		epoch = max(epoch, op.Entry.Epoch)
	}
	if len(ops) < 2 {
		return epoch, nil
	}
	unlock, err := s.lockRun(ctx, run)
	if err != nil {
		return 0, err
	}
	_, err = s.reconcileRun(ctx, run, ops, true)
	unlock()
	if err != nil && !errors.Is(err, errUnrestorable) {
		return 0, err
	}
	if _, err := s.reconcileClaim(ctx, run, ops, true); err != nil {
		return 0, err
	}
	return epoch, nil
}

// background reconciles the runs a compaction decided between regions
// (index.Options.Contested), one batch at a time, with a context that
// Close cancels. Failures are left for the next compaction, Claim or
// Reconcile.
type background struct {
	mu      sync.Mutex
	pending map[uuid.UUID]bool
	running bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// contested is the index's Options.Contested: it queues runs for the
// background reconciler and starts it unless it runs.
func (s *Store) contested(runs []uuid.UUID) {
	bg := &s.bg
	bg.mu.Lock()
	defer bg.mu.Unlock()
	if bg.ctx == nil || bg.ctx.Err() != nil {
		return // closed
	}
	for _, run := range runs {
		bg.pending[run] = true
	}
	if bg.running {
		return
	}
	bg.running = true
	bg.wg.Add(1)
	go func() {
		defer bg.wg.Done()
		for {
			bg.mu.Lock()
			batch := make([]uuid.UUID, 0, len(bg.pending))
			for run := range bg.pending {
				batch = append(batch, run)
			}
			clear(bg.pending)
			if len(batch) == 0 || bg.ctx.Err() != nil {
				bg.running = false
				bg.mu.Unlock()
				return
			}
			bg.mu.Unlock()
			ctx, cancel := context.WithTimeout(bg.ctx, time.Minute)
			if ops, err := s.ix.RunOps(ctx, batch...); err == nil {
				_, _ = s.reconcile(ctx, ops, false)
			}
			cancel()
		}
	}()
}

// otherRegions reports whether run's current object, whose ETag is etag,
// is a write of another region.
func (s *Store) otherRegions(ctx context.Context, run uuid.UUID, etag string) bool {
	info, err := s.b.Head(ctx, s.runKey(run))
	return err == nil && info.ETag == etag && info.Metadata[metaRegion] != s.o.Region
}
