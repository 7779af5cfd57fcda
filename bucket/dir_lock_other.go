//go:build !unix

package bucket

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// lockFile is not implemented off Unix, so NewDir fails there rather than
// give a bucket whose conditional writes are not atomic across processes.
func lockFile(*os.File) error {
	return fmt.Errorf("directory bucket locking on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
