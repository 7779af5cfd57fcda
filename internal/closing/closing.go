// Package closing holds how a store's Close waits for work it stopped.
package closing

import (
	"context"
	"time"
)

// Grace is how long Wait still waits for done once ctx has ended. Work
// with nothing left to do (a flusher with nothing dirty, a store with no
// compaction running) stops within microseconds of being told, but only
// once its goroutine runs: without a grace, Close on an ended context
// would fail, and say runs may be lost, with nothing in progress at all.
const Grace = 100 * time.Millisecond

// Wait waits for done until ctx ends, and then for at most Grace more. It
// returns nil once done is closed, else ctx's error.
func Wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	t := time.NewTimer(Grace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return ctx.Err()
	}
}
