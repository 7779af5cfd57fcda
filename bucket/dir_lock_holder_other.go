//go:build unix && !linux

package bucket

import "os"

// lockHolder cannot name the process holding the lock off Linux.
func lockHolder(*os.File) string { return "another process" }
