package durable

import (
	"context"

	"github.com/cairnstore/cairn/index"
)

// IndexOf returns the index of s, for tests that inspect or drive it.
func IndexOf(s *Store) *index.Index { return s.ix }

// PutObjectOnly writes the object of r without its index commit: what a
// Save cut short between its two steps leaves behind.
func PutObjectOnly(ctx context.Context, s *Store, r Record) (string, error) {
	if err := s.writable(ctx); err != nil {
		return "", err
	}
	return s.putObject(ctx, s.entry(r), offloaded{rec: r.Data}, Condition{})
}

// WaitBackground waits for the background work of s to end: its index's
// compaction, and the reconciliation of the runs a compaction decided
// between regions (which may commit, and so compact again), so that a
// test driving a simulated bucket from one goroutine stays deterministic.
func WaitBackground(s *Store) {
	for range 2 {
		s.ix.Wait()
		s.bg.wg.Wait()
	}
}
