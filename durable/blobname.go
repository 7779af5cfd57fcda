package durable

import (
	"crypto/hmac"
	"crypto/sha256"
)

// blobName is the name of a blob holding chunk: its content address, the
// SHA-256 of the chunk; in a sealed store (Options.Keyring), an
// HMAC-SHA256 under a key derived from the keyring's primary key, so that
// a reader of the bucket cannot confirm a guess of a blob's content by
// its name. (Names made under an earlier primary stay valid: records name
// their blobs; a value whose blob has another name is simply written
// again.)
func (s *Store) blobName(chunk []byte) [32]byte {
	if s.blobNameKey == nil {
		return sha256.Sum256(chunk)
	}
	m := hmac.New(sha256.New, s.blobNameKey)
	m.Write(chunk)
	var n [32]byte
	m.Sum(n[:0])
	return n
}

// blobNamed reports whether chunk is the content of the blob name. In a
// sealed store, the seal binds each blob's body to its key (so to its
// name): the name need not, and after a key rotation cannot, be computed
// again.
func (s *Store) blobNamed(chunk []byte, name [32]byte) bool {
	return s.blobNameKey != nil || sha256.Sum256(chunk) == name
}
