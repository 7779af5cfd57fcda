//go:build !unix

package bucket

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// tryLockFile is not implemented off Unix, so OpenDir fails there rather
// than give a bucket whose conditional writes are not atomic across
// processes.
func tryLockFile(*os.File) (bool, error) {
	return false, fmt.Errorf("directory bucket locking on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// lockHolder says nothing off Unix.
func lockHolder(*os.File) string { return "another process" }
