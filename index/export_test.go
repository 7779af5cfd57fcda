package index

import (
	"context"

	"github.com/cairnstore/cairn/index/internal/format"
)

// Lookup exposes lookup to the tests of package index_test, which check
// it against a model.
var Lookup = (*Index).lookup

// KeepsLabelSet reports whether the snapshot ix reads from keeps the
// by-label set, so that tests can tell which path a label List took.
func KeepsLabelSet(ix *Index) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.manifest.Labeled
}

// DropLabelSet rewrites the manifest of the snapshot the head names as a
// binary that does not know the by-label set writes it when it compacts:
// without ByLabel, Labeled and LabelsUnsure. Readers that have the manifest cached keep
// their copy; use a new Index to read the rewritten one.
func DropLabelSet(ctx context.Context, ix *Index) error {
	var h format.Head
	if _, err := ix.get(ctx, ix.headKey(), &h); err != nil {
		return err
	}
	var m format.Manifest
	if _, err := ix.get(ctx, ix.snapKey(h.Seq), &m); err != nil {
		return err
	}
	m.ByLabel, m.Labeled, m.LabelsUnsure = nil, false, false
	_, err := ix.put(ctx, ix.snapKey(h.Seq), &m, nil)
	return err
}
