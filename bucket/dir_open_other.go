//go:build !unix

package bucket

// openFlags adds nothing off Unix, where NewDir fails anyway (see
// lockFile).
const openFlags = 0
