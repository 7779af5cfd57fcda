package durable

import "crypto/sha256"

// blobName is the name of a blob holding chunk: its content address.
func (s *Store) blobName(chunk []byte) [32]byte { return sha256.Sum256(chunk) }
