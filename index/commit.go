package index

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/s3store/bucket"
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
	b := &Batch{ID: uuid.New(), Ops: ops}
	body, err := ix.encode(b)
	if err != nil {
		return 0, err
	}
	ix.mu.Lock()
	known := ix.tail
	ix.mu.Unlock()
	if known == 0 {
		// A fresh process: learn the tail from the head rather than by
		// losing races from log 1 on. Failing that, the races teach it.
		_, _ = ix.load(ctx)
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
			// The number is taken, perhaps by us: a PUT whose answer was
			// lost may have landed, and the SDK retries such PUTs on its
			// own, so a 412 can answer our own earlier attempt. The
			// batch ID settles it.
			var there Batch
			if _, gerr := ix.get(ctx, ix.logKey(seq), &there); gerr == nil && there.ID == b.ID {
				ix.committed(seq, len(ops), len(body))
				return seq, nil
			} else if gerr != nil && !errors.Is(gerr, cairn.ErrCorrupt) && !errors.Is(gerr, bucket.ErrNotFound) {
				err = gerr // could not tell: try the same number again
				break
			}
			ix.mu.Lock()
			ix.stats.Conflicts++
			ix.mu.Unlock()
			seqs, lerr := ix.listSeqs(ctx, ix.root+"log/", seq-1)
			if lerr != nil {
				err = lerr
				break
			}
			if len(seqs) > 0 && seqs[len(seqs)-1] >= seq {
				seq = seqs[len(seqs)-1] + 1
				continue // a lost race is not a failure: no backoff
			}
			// A 412 for a number the listing does not show: never skip
			// a number (readers would see a gap); try it again.
		case errors.Is(err, bucket.ErrConflict):
			// 409: another conditional write to the same key was in
			// flight; the number may or may not be taken now.
		case ctx.Err() != nil:
			return 0, fmt.Errorf("index commit: %w (last error: %w)", ctx.Err(), err)
		}
		// Any other error leaves it open whether the log landed: the
		// same number is tried again, and a 412 there is settled above.
		if berr := backoff(ctx, attempt); berr != nil {
			return 0, fmt.Errorf("index commit: %w (last error: %w)", berr, err)
		}
	}
}

func (ix *Index) committed(seq uint64, ops, bytes int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.tail = max(ix.tail, seq)
	ix.stats.Commits++
	ix.stats.CommitOps += int64(ops)
	ix.stats.IndexBytes += int64(bytes)
}

// maybeCompact starts a compaction in the background when the tail after
// the newest snapshot this process knows is long enough and none is
// running here.
func (ix *Index) maybeCompact(seq uint64) {
	ix.mu.Lock()
	long := seq-ix.manifest.Seq >= uint64(ix.o.CompactAfter)
	ix.mu.Unlock()
	if !long || !ix.compacting.TryLock() {
		return
	}
	ix.bg.Add(1)
	go func() {
		defer ix.bg.Done()
		defer ix.compacting.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 4*ix.o.RetryFor)
		defer cancel()
		if err := ix.compact(ctx); err != nil {
			// A failed compaction is retried after a later commit;
			// the tail grows meanwhile, nothing is lost.
			ix.mu.Lock()
			ix.stats.CompactionErrors++
			ix.stats.LastCompactionError = err
			ix.mu.Unlock()
		}
	}()
}
