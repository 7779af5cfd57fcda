//go:build unix

package miniofixture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockBuild takes an exclusive flock on a file under os.TempDir, so that one process at a time
// builds the image while the others (parallel `go test` packages) wait. The kernel releases the
// lock if the holder dies.
func lockBuild(ctx context.Context, logf func(string, ...any)) (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), "cairn-minio-image.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if !logged {
			logf("miniofixture: another process is building the MinIO image; waiting on %s", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
