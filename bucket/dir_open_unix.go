//go:build unix

package bucket

import "syscall"

// openFlags make opening an object file safe whatever was planted in its
// place: a named pipe without a writer does not block the open, and a
// symbolic link is not followed.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOFOLLOW
