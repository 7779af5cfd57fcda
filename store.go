package cairn

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Store keeps the latest checkpoint of each run. It is the contract of
// blazen-persist's CheckpointStore (save, load, list, delete) plus Close.
//
// Every method takes a context first; when ctx is done before the method
// has taken effect, the method returns an error that wraps ctx.Err().
// Errors wrap the sentinels of this package in an [*Error] that names the
// operation and the run. All methods are safe for concurrent use.
type Store interface {
	// Save stores c under c.RunID, replacing any earlier checkpoint of
	// that run (the last writer wins unless the store fences writers, in
	// which case a lost race gives ErrConflict). Save validates and
	// encodes c before it writes anything: an unsavable checkpoint gives
	// ErrInvalid or ErrTooLarge and leaves the store as it was. Save does
	// not keep c: the caller may change it as soon as Save returns.
	// What "stored" means (durable, or cached until a flush) is the
	// implementation's to document.
	Save(ctx context.Context, c *Checkpoint) error

	// Load returns the latest checkpoint of runID, or ErrNotFound. The
	// result is a fresh copy that the caller owns and may change. A nil
	// runID (uuid.Nil, which Save refuses) is ErrInvalid, not ErrNotFound.
	Load(ctx context.Context, runID uuid.UUID) (*Checkpoint, error)

	// List returns one page of run summaries, newest first, ties broken
	// by run ID bytes ascending. A nil or zero opts lists every run (as
	// blazen-persist's list does). Paging by cursor is stable: a run
	// saved or deleted between two pages moves or vanishes, but no run
	// that stays unchanged is returned twice or skipped.
	List(ctx context.Context, opts *ListOptions) (*Page, error)

	// Delete removes runID. Deleting a run that does not exist is not an
	// error; that includes uuid.Nil, which no run has.
	Delete(ctx context.Context, runID uuid.UUID) error

	// Close makes everything saved so far durable, releases resources
	// and returns the first error in doing so. Every later call,
	// including Close, returns ErrClosed.
	Close(ctx context.Context) error
}

// ListOptions narrows and pages a List. The zero value, and nil, mean every
// run in one page.
type ListOptions struct {
	// Limit caps the number of summaries in the page. Zero means no cap;
	// a negative limit is ErrInvalid.
	Limit int
	// Cursor continues after the last run of an earlier page (its
	// Page.Next). Empty starts at the newest run. A cursor that this
	// package did not make is ErrInvalid.
	Cursor string
	// WorkflowName keeps only runs of that workflow. Empty keeps all.
	WorkflowName string
	// Since keeps runs whose timestamp is at or after it. Zero: no bound.
	Since time.Time
	// Until keeps runs whose timestamp is before it. Zero: no bound.
	Until time.Time
	// Labels keeps only runs that carry every one of these labels
	// (equality, ANDed; see [Labels]). Empty keeps all. Stores serve it
	// from their index, without reading run bodies. A selector breaking
	// the label rules is ErrInvalid.
	Labels map[string]string
	// Claimable keeps only runs that no live lease holds (see
	// [Claimer]): never leased, released, or past their lease. With
	// Labels (say status=running) it lists the runs a pool of workers
	// may resume. In stores that keep claims apart from their index it
	// costs a small read (the run's claim) per run the listing passes
	// over, held ones included: a busy pool, whose runs in progress are
	// the newest, lists faster with Until set before the runs saved in
	// the last part of a lease. It is a hint: a run may be claimed, or
	// finished, between List and Claim; Claim then says ErrClaimed, or
	// the lease's checkpoint shows the run done.
	Claimable bool
	// WithCheckpoints fills Summary.Checkpoint. Without it, List never
	// reads checkpoint bodies.
	WithCheckpoints bool
}

// Page is one page of a List.
type Page struct {
	// Runs are the summaries of this page in List order.
	Runs []Summary
	// Next is the cursor of the following page, or empty when this page
	// is the last.
	Next string
}

// Summary describes one run without its body.
type Summary struct {
	RunID        uuid.UUID
	WorkflowName string
	Timestamp    time.Time
	// Size is the length in bytes of the checkpoint's MessagePack record
	// before compression (the same in every Store).
	Size int64
	// Labels are the run's labels (nil when it has none). The caller owns
	// the map.
	Labels map[string]string
	// Checkpoint is the run's checkpoint when ListOptions.WithCheckpoints
	// was set, else nil. The caller owns it.
	Checkpoint *Checkpoint
}

// FillCheckpoints is for Store implementations serving
// ListOptions.WithCheckpoints: it calls load for every run of page that has
// no checkpoint, at most limit at once (any number when limit ≤ 0), and
// leaves out the runs load reports ErrNotFound for (deleted since they were
// listed). page.Next stays as it is. On another error page is left partly
// filled.
func FillCheckpoints(ctx context.Context, page *Page, limit int, load func(context.Context, uuid.UUID) (*Checkpoint, error)) error {
	g, gctx := errgroup.WithContext(ctx)
	if limit > 0 {
		g.SetLimit(limit)
	}
	gone := make([]bool, len(page.Runs))
	for i := range page.Runs {
		if page.Runs[i].Checkpoint != nil {
			continue
		}
		g.Go(func() error {
			cp, err := load(gctx, page.Runs[i].RunID)
			if errors.Is(err, ErrNotFound) {
				gone[i] = true
				return nil
			}
			page.Runs[i].Checkpoint = cp
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	kept := page.Runs[:0]
	for i, r := range page.Runs {
		if !gone[i] {
			kept = append(kept, r)
		}
	}
	page.Runs = kept
	return nil
}

// Key returns the position of s in List order.
func (s *Summary) Key() Key { return Key{Timestamp: s.Timestamp, RunID: s.RunID} }

// Key is a position in List order: newest timestamp first, ties broken by
// run ID bytes ascending. It reproduces the order of blazen-persist's redb
// store.
type Key struct {
	Timestamp time.Time
	RunID     uuid.UUID
}

// Compare returns -1 when k comes before o in List order, +1 when after,
// and 0 when they are equal.
func (k Key) Compare(o Key) int {
	if c := o.Timestamp.Compare(k.Timestamp); c != 0 {
		return c
	}
	return bytes.Compare(k.RunID[:], o.RunID[:])
}

const cursorVersion = 1

// Cursor returns the cursor that continues a List after k.
func (k Key) Cursor() string {
	var b [1 + 8 + 4 + 16]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(k.Timestamp.Unix()))
	binary.BigEndian.PutUint32(b[9:], uint32(k.Timestamp.Nanosecond()))
	copy(b[13:], k.RunID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseCursor returns the key a cursor made by Key.Cursor continues after.
func ParseCursor(s string) (Key, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 29 || b[0] != cursorVersion {
		return Key{}, fmt.Errorf("%w: malformed cursor %q", ErrInvalid, truncate(s))
	}
	ns := binary.BigEndian.Uint32(b[9:])
	if ns >= 1e9 {
		return Key{}, fmt.Errorf("%w: malformed cursor %q", ErrInvalid, truncate(s))
	}
	k := Key{Timestamp: time.Unix(int64(binary.BigEndian.Uint64(b[1:])), int64(ns)).UTC()}
	copy(k.RunID[:], b[13:])
	return k, nil
}

// Query is a validated ListOptions, for Store implementations.
type Query struct {
	ListOptions
	// After is the key the page starts after; HasAfter reports whether
	// there is one (a cursor was given).
	After    Key
	HasAfter bool
}

// Query validates o (nil means the zero options) and decodes its cursor.
// Every problem gives ErrInvalid.
func (o *ListOptions) Query() (Query, error) {
	var q Query
	if o != nil {
		q.ListOptions = *o
	}
	if q.Limit < 0 {
		return q, fmt.Errorf("%w: negative limit %d", ErrInvalid, q.Limit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, fmt.Errorf("%w: Until %v is before Since %v", ErrInvalid, q.Until, q.Since)
	}
	if len(q.Labels) > 0 {
		if err := ValidateLabels(q.Labels); err != nil {
			return q, fmt.Errorf("label selector: %w", err)
		}
	}
	if q.Cursor != "" {
		k, err := ParseCursor(q.Cursor)
		if err != nil {
			return q, err
		}
		q.After, q.HasAfter = k, true
	}
	return q, nil
}

// Match reports whether a run passes the filters of q (workflow, time
// window and labels; neither the cursor nor Claimable is a filter here).
func (q *Query) Match(workflow string, ts time.Time, labels map[string]string) bool {
	if !MatchLabels(labels, q.Labels) {
		return false
	}
	if q.WorkflowName != "" && workflow != q.WorkflowName {
		return false
	}
	if !q.Since.IsZero() && ts.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !ts.Before(q.Until) {
		return false
	}
	return true
}

// All iterates over every run that opts selects, across pages, in List
// order. opts.Limit, if set, is the page size used. Iteration stops at the
// first error, which is yielded with a zero Summary.
func All(ctx context.Context, s Store, opts *ListOptions) iter.Seq2[Summary, error] {
	return func(yield func(Summary, error) bool) {
		var o ListOptions
		if opts != nil {
			o = *opts
		}
		for {
			page, err := s.List(ctx, &o)
			if err != nil {
				yield(Summary{}, err)
				return
			}
			for _, r := range page.Runs {
				if !yield(r, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			o.Cursor = page.Next
		}
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
