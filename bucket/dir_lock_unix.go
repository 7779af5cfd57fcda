//go:build unix

package bucket

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on f, waiting for it. Closing f
// releases it. flock locks belong to the open file, so two opens of the
// lock file exclude each other even within one process.
func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
