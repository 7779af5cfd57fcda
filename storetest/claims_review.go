package storetest

// Claim cases found by review: a hostile epoch in a record's lease stamp,
// and a plain Save that rewrites a held run's bytes unchanged.

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
)

// A plain Save may carry Metadata["cairn.lease"] (LeaseKey is an ordinary
// metadata key: nothing refuses it, and a Load-then-Save or an import
// carries it along). A stamp of epoch MaxUint64 makes the next Claim's
// epoch wrap to 0: the epoch does not grow ("each claim's is higher than
// every earlier claim's"), 0 is below every epoch a side-effect service
// has seen (Lease.Key), and in the durable stores 0 is Record.Lease's
// "not leased", so the lease's writes are unconditional and a plain Save
// of the run no longer ends it.
func testClaimEpochBound(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	cp := checkpoint(1, base)
	cp.Metadata[cairn.LeaseKey] = map[string]any{"owner": "imported", "epoch": uint64(math.MaxUint64)}
	if err := saveVisible(ctx, s, cp); err != nil {
		t.Logf("Save with a stamp of epoch MaxUint64 refused: %v (fine)", err)
		return
	}
	l, err := c.Claim(ctx, run, &cairn.ClaimOptions{Owner: "w", Lease: time.Minute})
	if err != nil {
		t.Logf("Claim over a stamp of epoch MaxUint64 refused: %v (fine)", err)
		return
	}
	if l.Epoch == 0 {
		t.Errorf("Claim over a record stamped with epoch MaxUint64 gave epoch 0: the epoch wrapped")
	}
	mustLoad(t, s, run) // a fenced store's plain Save is based on what it loaded
	other := checkpoint(1, base.Add(time.Second))
	other.State["by"] = "a plain Save"
	if err := saveVisible(ctx, s, other); err != nil {
		t.Fatal(err)
	}
	if err := saveLeased(ctx, s, l, checkpoint(1, base.Add(2*time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("SaveLeased (epoch %d) after a plain Save of the run: %v, want ErrConflict", l.Epoch, err)
	}
	if got := mustLoad(t, s, run); got.State["by"] != "a plain Save" {
		t.Errorf("the plain Save was silently overwritten by the lease of epoch %d", l.Epoch)
	}
}

// lease.go: "A worker that does not claim (a plain Save) is not stopped by
// leases, but cannot silently overwrite a holder either: the holder's next
// SaveLeased fails with ErrConflict." Here the other worker Loads the run
// and Saves it back unchanged (a migration re-saving every run, a no-op
// "touch"). memstore ends the lease; the bucket stores do not, because
// the object's ETag is the MD5 of identical bytes (ETag ABA), so the
// stores disagree on the contract.
func testClaimUnchangedResave(t *testing.T, s cairn.Store) {
	c := claimer(t, s)
	ctx := context.Background()
	run := runID(1)
	mustSave(t, s, checkpoint(1, base))
	l := mustClaim(t, c, run, "holder", time.Minute)
	if err := saveLeased(ctx, s, l, checkpoint(1, base.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := saveVisible(ctx, s, mustLoad(t, s, run)); err != nil { // another worker's plain Save
		t.Fatal(err)
	}
	if err := saveLeased(ctx, s, l, checkpoint(1, base.Add(2*time.Second))); !errors.Is(err, cairn.ErrConflict) {
		t.Errorf("SaveLeased after another worker's plain Save of the run: %v, want ErrConflict (as memstore does)", err)
	}
}
