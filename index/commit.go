package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
)

type pending struct {
	ops  []Op
	done chan error
}

// Commit makes ops durable in the index, in one log object shared with
// the ops of every other Commit of this Index that is waiting at the same
// time (group commit). Ops of one Commit are applied in order; a later
// Commit overrides an earlier one for the same run.
//
// If ctx ends first, Commit returns ctx's error, but the ops may still be
// committed by the batch they joined: a canceled Commit is not undone.
// Conflicts with other writers are retried for Options.RetryFor.
func (ix *Index) Commit(ctx context.Context, ops ...Op) error {
	if len(ops) == 0 {
		return nil
	}
	p := &pending{ops: ops, done: make(chan error, 1)}
	ix.mu.Lock()
	ix.queue = append(ix.queue, p)
	lead := !ix.leading
	ix.leading = true
	ix.mu.Unlock()
	if lead {
		go ix.lead()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lead commits the queue, batch after batch, until it is empty. Its
// context is its own, so one caller's cancellation does not fail the
// others' ops.
func (ix *Index) lead() {
	for {
		ix.mu.Lock()
		batch := ix.queue
		ix.queue = nil
		if len(batch) == 0 {
			ix.leading = false
			ix.mu.Unlock()
			return
		}
		ix.mu.Unlock()
		var ops []Op
		for _, p := range batch {
			ops = append(ops, p.ops...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), ix.o.RetryFor)
		seq, err := ix.commitBatch(ctx, ops)
		var g *gaveUp
		if errors.As(err, &g) && ctx.Err() != nil {
			// The retry budget is the index's own, not a caller's
			// deadline: what failed is the server's last answer.
			err = fmt.Errorf("index commit: gave up after retrying for %v: %w", ix.o.RetryFor, g.last)
		}
		cancel()
		if err == nil {
			// Before the callers return, so that a Wait after a Commit
			// sees the compaction it started.
			ix.maybeCompact(seq)
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// commitBatch writes one log object holding ops at the next free number.
func (ix *Index) commitBatch(ctx context.Context, ops []Op) (uint64, error) {
	if ix.region != "" {
		ops = slices.Clone(ops)
		for i := range ops {
			ops[i].Entry.Region = ix.region
		}
	}
	b := &format.Batch{ID: uuid.New(), Ops: ops}
	body, err := ix.encode(b)
	if err != nil {
		return 0, err
	}
	if err := ix.ensureMarker(ctx); err != nil {
		return 0, err
	}
	if err := ix.freshTail(ctx); err != nil {
		return 0, err
	}
	ix.mu.Lock()
	seq := ix.tail + 1
	ix.mu.Unlock()
	for attempt := 0; ; attempt++ {
		_, err := ix.b.Put(ctx, ix.logKey(seq), body, &bucket.PutOptions{IfNoneMatch: "*"})
		switch {
		case err == nil:
			ix.committed(seq, len(ops), len(body))
			return seq, nil
		case errors.Is(err, bucket.ErrPrecondition):
			var ours, raced bool
			taken := seq
			seq, ours, raced, err = ix.settleTaken(ctx, seq, b.ID, err)
			if ours {
				ix.committed(seq, len(ops), len(body))
				return seq, nil
			}
			if raced {
				ix.logRaced(ctx, taken, seq)
				continue // a lost race is not a failure: no backoff
			}
		case errors.Is(err, bucket.ErrBusy):
			// 409: another conditional write to the same key was in
			// flight; the number may or may not be taken now.
		case refusedForGood(err):
			// The server will refuse every attempt alike (the policy,
			// the bucket, the request): say so now, with its answer,
			// instead of retrying until the deadline hides it.
			return 0, fmt.Errorf("index commit: %w", err)
		case ctx.Err() != nil:
			return 0, &gaveUp{ctxErr: ctx.Err(), last: err}
		}
		// Any other error leaves it open whether the log landed: the
		// same number is tried again, and a 412 there is settled by
		// settleTaken.
		ix.logRetry(ctx, seq, attempt, err)
		if berr := backoff(ctx, attempt); berr != nil {
			return 0, &gaveUp{ctxErr: berr, last: err}
		}
	}
}

// freshTail learns the log tail again unless this process saw it less
// than refreshAfter ago. A fresh process, or one that has not seen the log
// for a while, must: GC may have deleted log numbers since, and a
// conditional create of a deleted number succeeds, so the tail must be
// learned from the head before writing. Without it, no commit is safe.
func (ix *Index) freshTail(ctx context.Context) error {
	ix.mu.Lock()
	stale := ix.tailAt.IsZero() || ix.o.Now().Sub(ix.tailAt) > refreshAfter
	ix.mu.Unlock()
	if !stale {
		return nil
	}
	if err := ix.refreshTail(ctx); err != nil {
		return fmt.Errorf("index commit: reading the tail: %w", err)
	}
	return nil
}

// settleTaken decides what a commit of batch id does after a 412 (err)
// on log seq. The number is taken, perhaps by us: a PUT whose answer was
// lost may have landed, and the SDK retries such PUTs on its own, so a 412
// can answer our own earlier attempt. The batch ID settles it. ours means
// the log is this batch: committed at seq. raced means another writer
// took it: try next at once. Otherwise the commit backs off and tries
// next, last being the error to report if it gives up.
func (ix *Index) settleTaken(ctx context.Context, seq uint64, id uuid.UUID, err error) (next uint64, ours, raced bool, last error) {
	ours, serr := ix.whose(ctx, seq, id)
	switch {
	case ours:
		return seq, true, false, nil
	case errors.Is(serr, errCollected):
		// Taken, then collected by GC: this process is behind. Learn
		// the tail again rather than reuse the number.
		if rerr := ix.refreshTail(ctx); rerr != nil {
			return seq, false, false, rerr
		}
		// GC collects only logs a snapshot covers, so the reloaded tail
		// is at least seq then; a 412 that no log backs (a faulty
		// proxy) leaves seq as it is.
		ix.mu.Lock()
		next = max(seq, ix.tail+1)
		ix.mu.Unlock()
		return next, false, false, serr // back off before the next try
	case serr != nil:
		return seq, false, false, serr // could not tell: try the same number again
	}
	ix.mu.Lock()
	ix.stats.Conflicts++
	ix.mu.Unlock()
	seqs, lerr := ix.listSeqs(ctx, ix.root+"log/", seq-1)
	if lerr != nil {
		return seq, false, false, lerr
	}
	if len(seqs) > 0 && seqs[len(seqs)-1] >= seq {
		return seqs[len(seqs)-1] + 1, false, true, nil
	}
	// A 412 for a number the listing does not show: never skip a number
	// (readers would see a gap); try it again.
	return seq, false, false, err
}

// refreshTail learns the log tail from the head and the logs after it.
// When the index is damaged, the tail is learned from listings instead,
// so that commits go on (List fails until a Reindex). A bucket with no
// index at all is ErrNoIndex: a commit there would start a new index
// over runs it does not list.
func (ix *Index) refreshTail(ctx context.Context) error {
	_, err := ix.load(ctx)
	if errors.Is(err, ErrDamaged) {
		err = ix.learnTail(ctx)
	}
	return err
}

// refreshAfter is how old a process's knowledge of the log tail may be
// before a commit reads the head again. GC deletes a log only when the
// snapshot covering it has been the head for longer than its grace period,
// which it keeps above MinGCGrace, twice this: a writer that saw the tail
// less than refreshAfter ago cannot pick a number GC has freed.
const refreshAfter = MinGCGrace / 2

var errCollected = errors.New("index: log collected")

// whose tells whether the log at seq is the batch id: after a 412, the
// number may be taken by our own earlier attempt. errCollected means the
// log is gone (GC took it); another error means it could not tell.
func (ix *Index) whose(ctx context.Context, seq uint64, id uuid.UUID) (bool, error) {
	var there format.Batch
	_, err := ix.get(ctx, ix.logKey(seq), &there)
	switch {
	case err == nil:
		return there.ID == id, nil
	case errors.Is(err, bucket.ErrNotFound):
		return false, errCollected
	case errors.Is(err, cairn.ErrCorrupt):
		return false, nil // not ours: ours decodes
	}
	return false, err
}

// committed records that log seq, holding ops ops in size bytes, is
// written: the tail is at least seq, as of now.
func (ix *Index) committed(seq uint64, ops, size int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.tail = max(ix.tail, seq)
	ix.tailAt = ix.o.Now()
	ix.stats.Commits++
	ix.stats.CommitOps += int64(ops)
	ix.stats.IndexBytes += int64(size)
}

// maybeCompact starts a compaction in the background when the tail after
// the newest snapshot this process knows is long enough and none is
// running here.
func (ix *Index) maybeCompact(seq uint64) {
	ix.mu.Lock()
	// A region still reading another's snapshot compacts after its first
	// commit: until it has a snapshot of its own, the other regions' GC
	// keeps their logs for it.
	long := seq-coverage(ix.manifest)[ix.region]+uint64(ix.foreignTail) >= uint64(ix.o.CompactAfter) ||
		ix.manifest.Region != ix.region
	ix.mu.Unlock()
	if long {
		ix.startCompaction()
	}
}

// compactIfBehind starts a compaction in the background when the other
// regions' logs after the snapshot are twice the compaction threshold: a
// region that only reads must compact too, or its reads grow with the
// other regions' tails and those regions' GC keeps their logs for it.
func (ix *Index) compactIfBehind() {
	ix.mu.Lock()
	behind := ix.foreignTail >= 2*ix.o.CompactAfter || ix.manifest.Region != ix.region
	ix.mu.Unlock()
	if behind {
		ix.startCompaction()
	}
}

// startCompaction starts a compaction in the background unless one is
// running in this process or the index is read-only.
func (ix *Index) startCompaction() {
	if ix.o.ReadOnly || !ix.compacting.TryLock() {
		return
	}
	ix.bg.Add(1)
	go func() {
		defer ix.bg.Done()
		defer ix.compacting.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 4*ix.o.RetryFor)
		defer cancel()
		start, before := time.Now(), ix.Stats().Compactions
		err := ix.compact(ctx)
		ix.logCompaction(start, before, err)
		if err != nil {
			// A failed compaction is retried after a later commit;
			// the tail grows meanwhile, nothing is lost.
			ix.mu.Lock()
			ix.stats.CompactionErrors++
			ix.stats.LastCompactionError = err
			ix.mu.Unlock()
		}
	}()
}

// refusedForGood reports whether err is an answer that no retry changes:
// access denied, no such bucket or credentials, an invalid request, a
// body over the server's limit.
func refusedForGood(err error) bool {
	for _, e := range []error{bucket.ErrAccessDenied, bucket.ErrNoBucket, bucket.ErrNoCredentials, bucket.ErrInvalid, bucket.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// gaveUp is the error of a commit that stopped retrying because its
// context ended: that context's error, and the bucket's last one.
type gaveUp struct{ ctxErr, last error }

func (e *gaveUp) Error() string {
	return fmt.Sprintf("index commit: %v (last error: %v)", e.ctxErr, e.last)
}

func (e *gaveUp) Unwrap() []error { return []error{e.ctxErr, e.last} }
