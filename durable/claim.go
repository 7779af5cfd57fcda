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
	"github.com/cairnstore/cairn/internal/obs"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Claims (cairn.Claimer) keep one small object per claimed run beside the
// run objects:
//
//	<prefix>/claims/<run>   JSON {"run", "owner", "epoch", "expires", "released"}
//
// A claim replaces it conditionally (If-None-Match: * when there is none,
// else If-Match on the ETag read), so of two workers claiming at once one
// wins and the other gets ErrClaimed; Renew and Release replace it
// If-Match on the holder's own last version. The epoch is one more than
// the claim object's and than the one stamped in the run's record, so it
// grows even if a claim object is lost. The claim then rewrites the run's
// object, stamped with the new epoch (Metadata[cairn.LeaseKey]), If-Match
// on the version it read: from then on, every write of an earlier holder,
// conditional on a version it wrote, fails. The holder's writes are
// conditional on its own last write, so a takeover is always noticed by
// the ETag of the run object itself, whatever the clocks say.
//
// Deleting a run leaves its claim object, so that the run's epochs keep
// growing if the ID is used again; the objects are small (about 150
// bytes), and GC does not collect them.

// maxClaimObject bounds what a claim object's GET reads.
const maxClaimObject = 4 << 10

// claimAttempts bounds the re-reads of a claim's fencing write, which
// retries while earlier holders keep writing the run.
const claimAttempts = 8

// claimDoc is the body of a claim object.
type claimDoc struct {
	Run      uuid.UUID `json:"run"`
	Owner    string    `json:"owner"`
	Epoch    uint64    `json:"epoch"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	// Region is the region that wrote the claim; empty for the default
	// one.
	Region string `json:"region,omitempty"`
}

// live reports whether d holds its run at now.
func (d *claimDoc) live(now time.Time) bool { return !d.Released && now.Before(d.Expires) }

// leaseState is what this store knows of a lease it made: the version of
// the claim object and of the run object it last wrote. Guarded by
// leases.mu.
type leaseState struct {
	// op serializes the lease's claim-object writes (Renew, Release), so
	// that one's retry never meets the other's write as a takeover.
	op        sync.Mutex
	epoch     uint64
	owner     string
	claimETag string
	runETag   string
	released  bool
	// lost: a leased write's condition failed (the run was taken over);
	// every later write of the lease fails too. A claim's own fencing
	// write clears it when it re-reads the run.
	lost bool
}

// leases are the leases this store made and has not seen end, by run: at
// most one per run (a newer claim of the run through this store ends the
// older one).
type leases struct {
	mu sync.Mutex
	m  map[uuid.UUID]*leaseState
}

func (s *Store) claimKey(run uuid.UUID) string { return s.claims + run.String() }

// readClaim returns run's claim object and its ETag; nil and "" when there
// is none. A damaged one (not a claim of run, or too large) is ErrCorrupt,
// with its ETag when the bucket gave one, so that a claim can replace it.
func (s *Store) readClaim(ctx context.Context, run uuid.UUID) (*claimDoc, string, error) {
	obj, err := s.b.Get(ctx, s.claimKey(run), &bucket.GetOptions{MaxSize: maxClaimObject})
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return nil, "", nil
	case errors.Is(err, bucket.ErrTooLarge):
		info, herr := s.b.Head(ctx, s.claimKey(run))
		if herr != nil {
			return nil, "", classify(herr)
		}
		return nil, info.ETag, fmt.Errorf("%w: claim object %s: %w", cairn.ErrCorrupt, s.claimKey(run), err)
	case err != nil:
		return nil, "", classify(err)
	}
	var d claimDoc
	if err := json.Unmarshal(obj.Body, &d); err != nil || d.Run != run || d.Epoch > cairn.MaxEpoch {
		return nil, obj.ETag, fmt.Errorf("%w: claim object %s is not a claim of this run", cairn.ErrCorrupt, obj.Key)
	}
	return &d, obj.ETag, nil
}

// writeClaim replaces run's claim object with d, conditional on etag (the
// version read; "" when there was none). A failed condition is
// bucket.ErrPrecondition.
func (s *Store) writeClaim(ctx context.Context, d *claimDoc, etag string) (string, error) {
	d.Region = s.o.Region
	body, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	po := &bucket.PutOptions{IfMatch: etag}
	if etag == "" {
		po.IfNoneMatch = "*"
	}
	return s.b.Put(ctx, s.claimKey(d.Run), body, po)
}

// Claim implements cairn.Claimer. It costs a GET of the run and of its
// claim, a PUT of each, and an index commit (the run's rewrite); in a store
// other regions write to, also a read of the index for their epochs, and
// the restores Reconcile would make of the run (see Regions).
func (s *Store) Claim(ctx context.Context, runID uuid.UUID, opts *cairn.ClaimOptions) (*cairn.Lease, error) {
	l, err := s.claim(ctx, runID, opts)
	return l, cairn.WrapOp("claim", runID, err)
}

func (s *Store) claim(ctx context.Context, run uuid.UUID, opts *cairn.ClaimOptions) (*cairn.Lease, error) {
	o, err := cairn.CheckClaim(run, opts)
	if err != nil {
		return nil, err
	}
	if err := s.checkWritable(ctx); err != nil {
		return nil, err
	}
	if err := s.writable(ctx); err != nil {
		return nil, err
	}
	// With other regions, the run's object may hold a state that lost to
	// another region's (see Regions): restore the winner first, and pass
	// every region's epoch.
	regionEpoch, err := s.reconcileBefore(ctx, run)
	if err != nil {
		return nil, err
	}
	cp, etag, err := s.readRun(ctx, run)
	if err != nil {
		return nil, err
	}
	doc, claimETag, err := s.readClaim(ctx, run)
	if errors.Is(err, cairn.ErrCorrupt) && claimETag != "" {
		// A damaged claim holds nothing; the record's stamp bounds the
		// epochs any completed claim gave out.
		doc, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	epoch := max(cairn.LeaseEpoch(cp.Metadata), regionEpoch)
	if doc != nil {
		if doc.live(now) {
			return nil, fmt.Errorf("%w: held by %q (epoch %d) until %s", cairn.ErrClaimed, truncate(doc.Owner), doc.Epoch, doc.Expires.Format(time.RFC3339Nano))
		}
		epoch = max(epoch, doc.Epoch)
	}
	if epoch >= cairn.MaxEpoch {
		return nil, fmt.Errorf("%w: run %v has used up its lease epochs (%d)", cairn.ErrCorrupt, run, epoch)
	}
	nd := &claimDoc{Run: run, Owner: o.Owner, Epoch: epoch + 1, Expires: now.Add(o.Lease).UTC()}
	newETag, err := s.takeClaim(ctx, nd, claimETag)
	if err != nil {
		return nil, err
	}
	st := &leaseState{epoch: nd.Epoch, owner: o.Owner, claimETag: newETag, runETag: etag}
	if err := s.addLease(run, st); err != nil {
		return nil, err
	}
	l := &cairn.Lease{RunID: run, Owner: o.Owner, Epoch: nd.Epoch, Duration: o.Lease, Expires: nd.Expires}
	if l.Checkpoint, err = s.fenceRun(ctx, l, st, cp); err != nil {
		s.abandon(l, st)
		return nil, err
	}
	return l, nil
}

// abandon releases the claim of a Claim that failed after taking it, so
// that the run is claimable at once rather than when the lease ends. It
// is best effort, with a context of its own (the Claim's may be what
// ended): a claim it cannot release ends with its lease.
func (s *Store) abandon(l *cairn.Lease, st *leaseState) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.leases.mu.Lock()
	st.lost = false // the claim is still ours to release
	s.leases.mu.Unlock()
	_ = s.replaceClaim(ctx, l, &claimDoc{Run: l.RunID, Owner: l.Owner, Epoch: l.Epoch, Expires: s.o.Now().UTC(), Released: true})
	s.forgetLease(l.RunID, st)
}

// takeClaim creates or replaces run's claim object with d, conditional on
// etag (the version read, "" for none), and returns its new ETag. A lost
// race is ErrClaimed. When the PUT fails otherwise, it may have landed
// (its answer lost): the object is read back, and taken as the claim's
// if it is d, to the nanosecond of its expiry.
func (s *Store) takeClaim(ctx context.Context, d *claimDoc, etag string) (string, error) {
	newETag, err := s.writeClaim(ctx, d, etag)
	switch {
	case err == nil:
		return newETag, nil
	case errors.Is(err, bucket.ErrPrecondition):
		return "", fmt.Errorf("%w: another worker claimed it at the same time", cairn.ErrClaimed)
	}
	cur, curETag, rerr := s.readClaim(ctx, d.Run)
	if rerr == nil && cur != nil && cur.Owner == d.Owner && cur.Epoch == d.Epoch && cur.Expires.Equal(d.Expires) && !cur.Released {
		return curETag, nil
	}
	return "", classify(err)
}

// addLease records st as run's lease in this store, unless a newer claim
// of the run made here is recorded already (this Claim was overtaken while
// it ran): then ErrClaimed.
func (s *Store) addLease(run uuid.UUID, st *leaseState) error {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if cur := s.leases.m[run]; cur != nil && cur.epoch > st.epoch {
		return fmt.Errorf("%w: claimed with epoch %d while this claim (epoch %d) was being made", cairn.ErrClaimed, cur.epoch, st.epoch)
	}
	s.leases.m[run] = st
	return nil
}

// readRun reads and decodes run's checkpoint, with the ETag of its object.
func (s *Store) readRun(ctx context.Context, run uuid.UUID) (*cairn.Checkpoint, string, error) {
	rec, etag, err := s.Read(ctx, run, "")
	if err != nil {
		return nil, "", err
	}
	cp, err := s.codec.DecodeRecord(rec)
	if err == nil && cp.RunID != run {
		err = fmt.Errorf("%w: object %s holds run %v", cairn.ErrCorrupt, s.runKey(run), cp.RunID)
	}
	return cp, etag, err
}

// fenceRun rewrites run's object stamped with l, conditional on the
// version the lease was based on, re-reading the run when an earlier
// holder wrote it meanwhile. It returns the checkpoint written. After it,
// no write conditional on an earlier version succeeds.
//
// A run read back stamped with this epoch or a later one was claimed
// again meanwhile (this claim's lease ended while it ran): the claim
// gives way with ErrClaimed rather than write over a newer owner. So does
// a run that keeps changing for claimAttempts reads.
func (s *Store) fenceRun(ctx context.Context, l *cairn.Lease, st *leaseState, cp *cairn.Checkpoint) (*cairn.Checkpoint, error) {
	for attempt := 0; ; attempt++ {
		stamped := l.Stamped(cp)
		err := s.writeLeased(ctx, l, stamped)
		if !errors.Is(err, cairn.ErrConflict) {
			return stamped, err
		}
		if attempt == claimAttempts-1 {
			return nil, fmt.Errorf("%w: the run changed %d times while being claimed", cairn.ErrClaimed, claimAttempts)
		}
		var etag string
		if cp, etag, err = s.readRun(ctx, l.RunID); err != nil {
			return nil, err
		}
		if e := cairn.LeaseEpoch(cp.Metadata); e >= l.Epoch {
			return nil, fmt.Errorf("%w: claimed again (epoch %d) while this claim (epoch %d) was being made", cairn.ErrClaimed, e, l.Epoch)
		}
		s.leases.mu.Lock()
		if s.leases.m[l.RunID] != st {
			s.leases.mu.Unlock()
			return nil, fmt.Errorf("%w: claimed again while this claim (epoch %d) was being made", cairn.ErrClaimed, l.Epoch)
		}
		st.runETag, st.lost = etag, false
		s.leases.mu.Unlock()
	}
}

// writeLeased writes c (stamped) under lease l with the durable protocol.
func (s *Store) writeLeased(ctx context.Context, l *cairn.Lease, c *cairn.Checkpoint) error {
	rec, err := s.codec.EncodeRecord(nil, c)
	if err != nil {
		return err
	}
	labels, _ := c.Labels() // EncodeRecord validated them
	res, err := s.Write(ctx, []Record{{RunID: c.RunID, Workflow: c.WorkflowName, Timestamp: c.Timestamp, Labels: labels, Data: rec, Lease: l.Epoch, Epoch: l.Epoch}}, nil)
	if len(res) == 1 && res[0].Err != nil {
		return res[0].Err
	}
	return err
}

// putLeased writes the object of a record leased at epoch. When its
// condition fails, the object may be this lease's own earlier write whose
// answer was lost (a retried flush or SaveLeased): an object stamped by
// this lease (its epoch, with an owner) can be nothing else, since plain
// Saves drop the owner and every claim has an epoch of its own. Its ETag
// is then taken as the lease's version and the write tried once more.
// The caller holds the run's lock.
func (s *Store) putLeased(ctx context.Context, e index.Entry, rec offloaded, cond Condition, epoch uint64) (string, error) {
	etag, err := s.putObject(ctx, e, rec, cond)
	if !errors.Is(err, cairn.ErrConflict) {
		return etag, err
	}
	cur, curETag, rerr := s.readRun(ctx, e.RunID)
	if rerr != nil || curETag == cond.IfMatch {
		return "", err
	}
	got, leased := cairn.LeaseStamp(cur.Metadata)
	if got < epoch && s.otherRegions(ctx, e.RunID, curETag) {
		// Another region's write of a lower epoch, which replication's
		// last-writer-wins kept after a partition: the lease outranks it
		// (see Regions); overwrite it, conditionally on what was read.
		return s.putObject(ctx, e, rec, Condition{IfMatch: curETag})
	}
	if !leased || got != epoch {
		return "", err
	}
	return s.putObject(ctx, e, rec, Condition{IfMatch: curETag})
}

// forgetLease drops st, if it is still run's lease here.
func (s *Store) forgetLease(run uuid.UUID, st *leaseState) {
	s.leases.mu.Lock()
	if s.leases.m[run] == st {
		delete(s.leases.m, run)
	}
	s.leases.mu.Unlock()
}

// LeaseVersion returns the ETag of the run object as l's holder last
// wrote it (after Claim, the claim's rewrite), or "" when this store holds
// no such lease: for a cache that fences its own writes by ETag.
func (s *Store) LeaseVersion(l *cairn.Lease) string {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if st := s.leases.m[l.RunID]; st != nil && st.epoch == l.Epoch {
		return st.runETag
	}
	return ""
}

// errTakenOver is the ErrConflict of a lease that ended: another claim
// took the run (here or elsewhere), or the lease was released.
func errTakenOver(l *cairn.Lease) error { return errLeaseEnded(l.Epoch) }

// errLeaseEnded is errTakenOver for the lease of epoch.
func errLeaseEnded(epoch uint64) error {
	return fmt.Errorf("%w: the lease of epoch %d was taken over or released", cairn.ErrConflict, epoch)
}

// CheckLease returns ErrConflict unless l is a lease this store made and
// still holds as far as it knows (not released, not taken over through
// this store, no leased write of it refused): what a leased Save checks
// before it takes a write. Takeovers by other processes are found by the
// write itself.
func (s *Store) CheckLease(l *cairn.Lease) error {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if st := s.leases.m[l.RunID]; st != nil && st.epoch == l.Epoch && !st.released && !st.lost {
		return nil
	}
	return errTakenOver(l)
}

// leaseCondition returns the condition of a leased write of run at epoch:
// If-Match on the lease's last write; ErrConflict if the lease ended. The
// caller holds the run's lock.
func (s *Store) leaseCondition(run uuid.UUID, epoch uint64) (Condition, error) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	st := s.leases.m[run]
	if st == nil || st.epoch != epoch || st.lost {
		return Condition{}, errLeaseEnded(epoch)
	}
	return Condition{IfMatch: st.runETag}, nil
}

// leaseWritten records the outcome of a leased write: the new version, or
// the end of the lease when its condition failed.
func (s *Store) leaseWritten(run uuid.UUID, epoch uint64, etag string, err error) {
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	st := s.leases.m[run]
	if st == nil || st.epoch != epoch {
		return
	}
	switch {
	case err == nil:
		st.runETag = etag
	case errors.Is(err, cairn.ErrConflict):
		st.lost = true // taken over: every later write fails too
	}
}

// SaveLeased implements cairn.Claimer: a Write of c stamped with l,
// conditional on the lease's last write.
func (s *Store) SaveLeased(ctx context.Context, l *cairn.Lease, c *cairn.Checkpoint) error {
	var run uuid.UUID
	if c != nil {
		run = c.RunID
	}
	ctx, sp := s.tel.Start(ctx, obs.Save, run)
	err := s.saveLeased(ctx, run, l, c)
	sp.End(err)
	return err
}

// saveLeased is SaveLeased of c, on run.
func (s *Store) saveLeased(ctx context.Context, run uuid.UUID, l *cairn.Lease, c *cairn.Checkpoint) error {
	if err := cairn.CheckLeased(l, c); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	if err := s.CheckLease(l); err != nil {
		return cairn.WrapOp("save", run, err)
	}
	return cairn.WrapOp("save", run, s.writeLeased(ctx, l, l.Stamped(c)))
}

// Renew implements cairn.Claimer with one PUT of the claim object.
func (s *Store) Renew(ctx context.Context, l *cairn.Lease) error {
	if l == nil {
		return cairn.WrapOp("renew", uuid.Nil, fmt.Errorf("%w: nil lease", cairn.ErrInvalid))
	}
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("renew", l.RunID, err)
	}
	expires := s.o.Now().Add(l.Duration).UTC()
	err := s.replaceClaim(ctx, l, &claimDoc{Run: l.RunID, Owner: l.Owner, Epoch: l.Epoch, Expires: expires})
	if err == nil {
		l.Expires = expires
	}
	return cairn.WrapOp("renew", l.RunID, err)
}

// Release implements cairn.Claimer with one PUT of the claim object. A
// write-back store must flush the lease's Saves before (tiered does).
func (s *Store) Release(ctx context.Context, l *cairn.Lease) error {
	if l == nil {
		return cairn.WrapOp("release", uuid.Nil, fmt.Errorf("%w: nil lease", cairn.ErrInvalid))
	}
	if err := s.checkWritable(ctx); err != nil {
		return cairn.WrapOp("release", l.RunID, err)
	}
	s.leases.mu.Lock()
	st := s.leases.m[l.RunID]
	s.leases.mu.Unlock()
	if st == nil || st.epoch != l.Epoch {
		// Released before (a released lease is forgotten), or taken
		// over: the claim object says which.
		cur, _, err := s.readClaim(ctx, l.RunID)
		if err == nil && (cur == nil || cur.Epoch != l.Epoch || !cur.Released) {
			err = errTakenOver(l)
		}
		return cairn.WrapOp("release", l.RunID, err)
	}
	err := s.replaceClaim(ctx, l, &claimDoc{Run: l.RunID, Owner: l.Owner, Epoch: l.Epoch, Expires: s.o.Now().UTC(), Released: true})
	return cairn.WrapOp("release", l.RunID, err)
}

// replaceClaim writes d over the claim object l last wrote. When the
// condition fails, it reads the object: the lease's own version (an
// earlier PUT that landed though its answer was lost) is replaced again;
// anything else means the run was taken over, ErrConflict. A release
// marks the lease released here; a failure that is not a conflict leaves
// it as it was.
func (s *Store) replaceClaim(ctx context.Context, l *cairn.Lease, d *claimDoc) error {
	s.leases.mu.Lock()
	st := s.leases.m[l.RunID]
	// A lease whose writes were refused (lost) may still be released, if
	// its claim is still the run's: others need not wait for it to end.
	if st == nil || st.epoch != l.Epoch || st.released || (st.lost && !d.Released) {
		s.leases.mu.Unlock()
		return errTakenOver(l)
	}
	s.leases.mu.Unlock()
	st.op.Lock()
	defer st.op.Unlock()
	s.leases.mu.Lock()
	if st.released {
		s.leases.mu.Unlock()
		if d.Released {
			return nil // released by a call that held op before this one
		}
		return errTakenOver(l)
	}
	etag := st.claimETag
	s.leases.mu.Unlock()
	for attempt := 0; ; attempt++ {
		newETag, err := s.writeClaim(ctx, d, etag)
		if err == nil {
			s.leases.mu.Lock()
			st.claimETag = newETag
			st.released = d.Released
			s.leases.mu.Unlock()
			if d.Released {
				s.forgetLease(l.RunID, st)
			}
			return nil
		}
		if !errors.Is(err, bucket.ErrPrecondition) || attempt > 0 {
			return classify(err)
		}
		cur, curETag, rerr := s.readClaim(ctx, l.RunID)
		if rerr != nil {
			return rerr
		}
		if cur != nil && cur.Epoch == l.Epoch && cur.Released && d.Released {
			s.forgetLease(l.RunID, st) // an earlier Release landed, its answer lost
			return nil
		}
		if cur != nil && cur.Epoch < l.Epoch && cur.Region != s.o.Region {
			// Another region's older claim, which replication kept after
			// a partition: this lease outranks it (see Regions).
			etag = curETag
			continue
		}
		if cur == nil || cur.Epoch != l.Epoch || cur.Released {
			s.forgetLease(l.RunID, st)
			return errTakenOver(l)
		}
		etag = curETag
	}
}

// claimable returns, of runs, those no live lease holds at now (their
// claim objects read in parallel): what List's Claimable keeps.
func (s *Store) claimable(ctx context.Context, runs []uuid.UUID) (map[uuid.UUID]bool, error) {
	free := make([]bool, len(runs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Concurrency)
	now := s.o.Now()
	for i, run := range runs {
		g.Go(func() error {
			d, _, err := s.readClaim(gctx, run)
			if errors.Is(err, cairn.ErrCorrupt) {
				err = nil // a damaged claim holds nothing: the next Claim replaces it
				d = nil
			}
			free[i] = err == nil && (d == nil || !d.live(now))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]bool, len(runs))
	for i, run := range runs {
		if free[i] {
			out[run] = true
		}
	}
	return out, nil
}

// Claimable returns, of runs, those no live lease holds now, reading each
// one's claim object (in parallel, up to Options.Concurrency at once).
func (s *Store) Claimable(ctx context.Context, runs []uuid.UUID) (map[uuid.UUID]bool, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.claimable(ctx, runs)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

var _ cairn.Claimer = (*Store)(nil)
