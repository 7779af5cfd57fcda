//go:build unix

package bucket

import (
	"os"
	"syscall"
)

// tryLockFile takes an exclusive flock on f if no other open file holds
// one, and reports whether it did. Closing f releases it. flock locks
// belong to the open file, so two opens of the lock file exclude each
// other even within one process.
func tryLockFile(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return false, err
	case ferr == syscall.EWOULDBLOCK:
		return false, nil
	}
	return ferr == nil, ferr
}
