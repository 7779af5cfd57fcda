package cairn

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Claimer is implemented by stores that lease runs to workers, so that a
// pool of workers resumes each run in one worker at a time and a worker
// that lost its run finds out before it overwrites anything.
//
// # The protocol
//
// A worker claims a run before acting on it. The claim succeeds only when
// no live lease holds the run (none, released, or past its Expires), and
// gives a Lease with an Epoch one higher than any before it: the epoch
// orders the run's owners. Claiming also rewrites the run's object
// (stamping the new epoch into its record, under the reserved Metadata key
// [LeaseKey]), so every write a previous owner makes after the claim fails
// its condition. The holder saves with SaveLeased, renews before Expires
// and releases when done (or lets the lease run out if it crashes). Stores
// that share a bucket coordinate through conditional writes only: there is
// no other coordinator.
//
// # What a lease guarantees
//
// A lease is a promise made with the claimer's clock: nobody else will
// claim the run before Expires, provided the other workers' clocks do not
// run more than the margin you leave ahead of the claimer's. Clocks skew
// and processes pause (GC, SIGSTOP, a suspended VM), so a holder can never
// be sure it still holds its lease when its next instruction runs. Safety
// therefore does not rest on the lease but on the epoch, a fencing token:
//   - Every SaveLeased, and every flush of one, is a write conditional on
//     the version the holder last wrote. After a takeover that version is
//     gone, so the old holder's next SaveLeased, Flush or Renew fails with
//     ErrConflict and never overwrites the new owner's state, however long
//     it was paused and whatever its clock says.
//   - Side effects outside the store (charging a card, sending an email)
//     need the same protection from the service that performs them: pass
//     [Lease.Key] (run, step and epoch) with the request, and let the
//     service perform each run and step once and refuse an epoch lower than
//     one it has seen for it. The lease then only makes takeovers rare;
//     the epoch makes them safe.
//
// A worker that does not claim (a plain Save) is not stopped by leases,
// but cannot silently overwrite a holder either: the holder's next
// SaveLeased fails with ErrConflict.
type Claimer interface {
	// Claim takes runID for opts.Owner, for opts.Lease from now. It
	// returns ErrClaimed when another live lease holds the run, another
	// worker claimed it at the same moment, or the run kept changing
	// while the claim rewrote it (try again later), ErrNotFound when the run has
	// no checkpoint (there is nothing to resume; the worker that creates a
	// run owns it), and ErrInvalid for a bad owner or lease. The returned
	// Lease carries the run's checkpoint as claimed.
	Claim(ctx context.Context, runID uuid.UUID, opts *ClaimOptions) (*Lease, error)

	// Renew extends l by its Duration from now and updates l.Expires.
	// Renew and Release of one lease may run at the same time (a renewal
	// loop and the worker's Release). A
	// lease another worker took over gives ErrConflict; a released one,
	// ErrConflict too. Renew a lease well before it expires.
	Renew(ctx context.Context, l *Lease) error

	// Release gives the run up: any worker may claim it at once. A lease
	// taken over (claimed by another) gives ErrConflict; releasing twice
	// is not an error. A lease whose writes were refused by a plain Save
	// or a Delete of the run, but that no other claim took, is released.
	// A write-back store flushes the lease's unflushed SaveLeased calls
	// first, so that they are written while the lease still fences them.
	Release(ctx context.Context, l *Lease) error

	// SaveLeased is Save for the holder of l: the write (or, write-back,
	// its flush) succeeds only if no other worker wrote the run since the
	// holder last did. Otherwise it is ErrConflict, and so is every later
	// SaveLeased of l: the run was taken over. c.RunID must be l.RunID.
	// The store stamps c's record with the lease (Metadata[LeaseKey]).
	SaveLeased(ctx context.Context, l *Lease, c *Checkpoint) error
}

// LeaseKey is the Metadata key under which a leased write records its
// lease in the run's record: a map {"owner": string, "epoch": integer}.
// Loads return it like any metadata; the store writes it, not the caller.
const LeaseKey = "cairn.lease"

// DefaultLease is the lease a zero ClaimOptions.Lease means.
const DefaultLease = 30 * time.Second

// MaxOwner bounds the length of ClaimOptions.Owner in bytes.
const MaxOwner = 128

// ClaimOptions configure a Claim.
type ClaimOptions struct {
	// Owner names the claiming worker (1 to MaxOwner bytes of UTF-8),
	// for people reading leases: the epoch, not the name, tells owners
	// apart, so two workers may share a name.
	Owner string
	// Lease is how long the claim holds without renewal. Zero means
	// DefaultLease; it must not be negative.
	Lease time.Duration
}

// CheckClaim validates the arguments of a Claim: run not nil, opts as
// Check validates them. It returns the options with defaults filled in.
func CheckClaim(run uuid.UUID, opts *ClaimOptions) (ClaimOptions, error) {
	if err := CheckRunID("claim", run); err != nil {
		return ClaimOptions{}, err
	}
	return opts.Check()
}

// Check validates o (nil is ErrInvalid: a claim needs an owner) and
// returns it with the default lease filled in.
func (o *ClaimOptions) Check() (ClaimOptions, error) {
	if o == nil {
		return ClaimOptions{}, fmt.Errorf("%w: a claim needs ClaimOptions with an Owner", ErrInvalid)
	}
	c := *o
	switch {
	case c.Owner == "" || len(c.Owner) > MaxOwner:
		return c, fmt.Errorf("%w: owner of %d bytes, 1 to %d allowed", ErrInvalid, len(c.Owner), MaxOwner)
	case !utf8.ValidString(c.Owner):
		return c, fmt.Errorf("%w: owner is not valid UTF-8", ErrInvalid)
	case c.Lease < 0:
		return c, fmt.Errorf("%w: negative lease %v", ErrInvalid, c.Lease)
	case c.Lease == 0:
		c.Lease = DefaultLease
	}
	return c, nil
}

// Lease is a worker's hold on a run, from Claimer.Claim. The worker owns
// the struct; Renew updates Expires. A Lease is for the store that made
// it.
type Lease struct {
	RunID uuid.UUID
	Owner string
	// Epoch orders the run's owners: each claim's is higher than every
	// earlier claim's. Use it as a fencing token (see Key).
	Epoch uint64
	// Duration is the lease Claim was given, and that Renew extends by.
	Duration time.Duration
	// Expires is when the lease ends unless renewed, by the clock of the
	// process that claimed or last renewed it.
	Expires time.Time
	// Checkpoint is the run's checkpoint as claimed (with the claim's
	// stamp in Metadata[LeaseKey]): the state to resume from. The caller
	// owns it.
	Checkpoint *Checkpoint
}

// Key returns the key that identifies one attempt at a side effect of
// step: "<run>/<step>/<epoch>". A service that performs side effects
// keeps, per run and step, whether it performed it and the highest epoch
// it saw, performs a step once, and refuses a lower epoch: then a step's
// effect happens once however many workers attempt it, and a worker that
// lost its lease cannot act after the new owner did.
func (l *Lease) Key(step string) string {
	return fmt.Sprintf("%s/%s/%d", l.RunID, step, l.Epoch)
}

// CheckLeased validates the arguments of SaveLeased: l and c not nil, and
// c of l's run. Errors wrap ErrInvalid.
func CheckLeased(l *Lease, c *Checkpoint) error {
	switch {
	case l == nil:
		return fmt.Errorf("%w: nil lease", ErrInvalid)
	case c == nil:
		return fmt.Errorf("%w: nil checkpoint", ErrInvalid)
	case c.RunID != l.RunID:
		return fmt.Errorf("%w: checkpoint of run %v under the lease of run %v", ErrInvalid, c.RunID, l.RunID)
	}
	return nil
}

// Stamped returns a shallow copy of c whose Metadata (copied) records l
// under LeaseKey: what a leased write stores. c is not changed.
func (l *Lease) Stamped(c *Checkpoint) *Checkpoint {
	cp := *c
	cp.Metadata = make(map[string]any, len(c.Metadata)+1)
	for k, v := range c.Metadata {
		cp.Metadata[k] = v
	}
	cp.Metadata[LeaseKey] = map[string]any{"owner": l.Owner, "epoch": l.Epoch}
	return &cp
}

// MaxEpoch bounds lease epochs: a claim that would pass it fails with
// ErrCorrupt (only a hostile claim object or record can get there), and a
// stamp above it is ErrInvalid. Epochs thus never wrap around.
const MaxEpoch = 1<<53 - 1

// LeaseEpoch returns the epoch recorded under LeaseKey in a record's
// metadata, and 0 when there is none (never leased, or not readable as
// one).
func LeaseEpoch(metadata map[string]any) uint64 {
	e, _ := LeaseStamp(metadata)
	return e
}

// LeaseStamp returns the epoch recorded under LeaseKey in a record's
// metadata (0 when there is none or it is not readable as one), and
// whether the stamp is a leased write's (it names the owner) rather than
// one a plain Save kept (see Unleased).
func LeaseStamp(metadata map[string]any) (epoch uint64, leased bool) {
	m, ok := metadata[LeaseKey].(map[string]any)
	if !ok {
		return 0, false
	}
	switch e := m["epoch"].(type) {
	case uint64:
		epoch = e
	case int64:
		epoch = uint64(max(e, 0))
	case int:
		epoch = uint64(max(e, 0))
	}
	if epoch > MaxEpoch {
		return 0, false
	}
	_, leased = m["owner"].(string)
	return epoch, leased && epoch > 0
}

// checkLeaseStamp validates a LeaseKey entry of metadata, if any: a map
// of an epoch (an integer from 1 to MaxEpoch) and optionally an owner (a
// string of at most MaxOwner bytes), nothing else.
func checkLeaseStamp(metadata map[string]any) error {
	raw, ok := metadata[LeaseKey]
	if !ok {
		return nil
	}
	m, ok := raw.(map[string]any)
	bad := !ok || len(m) > 2
	if !bad {
		for k, v := range m {
			switch k {
			case "epoch":
				bad = bad || !validEpoch(v)
			case "owner":
				o, isString := v.(string)
				bad = bad || !isString || o == "" || len(o) > MaxOwner
			default:
				bad = true
			}
		}
		_, hasEpoch := m["epoch"]
		bad = bad || !hasEpoch
	}
	if bad {
		return fmt.Errorf("%w: metadata[%q] is not a lease stamp {\"epoch\": 1..%d, \"owner\": string}", ErrInvalid, LeaseKey, uint64(MaxEpoch))
	}
	return nil
}

func validEpoch(v any) bool {
	switch e := v.(type) {
	case uint64:
		return e >= 1 && e <= MaxEpoch
	case int64:
		return e >= 1 && e <= MaxEpoch
	case int:
		return e >= 1 && e <= MaxEpoch
	}
	return false
}

// Unleased returns what a plain Save stores of c: c itself, or, when its
// Metadata holds a lease stamp (a checkpoint loaded from a leased run and
// saved again), a shallow copy whose stamp keeps the epoch but not the
// owner. A plain Save's bytes can then never equal a leased write's, so
// an ETag a lease holder's write is conditional on never comes back
// (S3's ETags are content hashes), and the epoch it records still bounds
// the next claim's from below.
func Unleased(c *Checkpoint) *Checkpoint {
	if c == nil {
		return nil
	}
	m, changed := unleased(c.Metadata)
	if !changed {
		return c
	}
	cp := *c
	cp.Metadata = m
	return &cp
}

// unleasedMetadata returns what a plain Save stores of metadata: metadata
// itself, or a copy whose lease stamp keeps the epoch but not the owner.
func unleasedMetadata(metadata map[string]any) map[string]any {
	m, _ := unleased(metadata)
	return m
}

func unleased(metadata map[string]any) (map[string]any, bool) {
	m, ok := metadata[LeaseKey].(map[string]any)
	if !ok {
		return metadata, false
	}
	if _, owned := m["owner"]; !owned {
		return metadata, false
	}
	out := make(map[string]any, len(metadata))
	for k, v := range metadata {
		out[k] = v
	}
	out[LeaseKey] = map[string]any{"epoch": m["epoch"]}
	return out, true
}
