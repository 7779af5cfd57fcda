//go:build !unix

package miniofixture

import (
	"context"
	"sync"
)

var buildMu sync.Mutex

// lockBuild serializes builds within this process only; there is no flock here.
func lockBuild(ctx context.Context, logf func(string, ...any)) (unlock func(), err error) {
	buildMu.Lock()
	return buildMu.Unlock, nil
}
