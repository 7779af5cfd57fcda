// Package bucket is the narrow object-storage interface that Cairn's
// durable tier is built on, with the errors every implementation reports.
//
// Three implementations pass the same conformance suite (package
// buckettest): the S3 one in package s3store (aws-sdk-go-v2; AWS S3, MinIO
// and other S3-compatible servers), an in-memory one (NewMem) for tests, and
// a local directory (NewDir), the embedded default for development without
// Docker or a cloud account.
//
// A key must not be both an object and, followed by '/', the start of
// another object's key ("a" and "a/b"): MinIO stores both but lists only
// one. Cairn's layout never does this; a store's prefix must not be the
// key of another object.
//
// The interface is small on purpose: every wrapper (metrics, faults,
// prefixes) must implement all of it. Capabilities beyond it belong in
// optional interfaces, found by a type assertion: Versioned reads and
// removes the versions of a bucket with versioning on (S3, and the
// in-memory NewMemVersioned; not the directory bucket).
//
// A bucket opened read-only (ReadOnly, OpenOptions.ReadOnly for store URLs,
// DirOptions.ReadOnly) writes nothing: Put and Delete fail with
// ErrReadOnly.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bucket stores immutable-per-version objects under string keys. All
// methods are safe for concurrent use, by goroutines and, for the S3 and
// directory buckets, by processes sharing the storage. Conditional writes
// are atomic: of several Puts conditional on the same state, exactly one
// succeeds.
type Bucket interface {
	// Get returns the object at key with its body, ETag and metadata.
	// It fails with ErrNotFound when there is none, with ErrNotModified
	// when opts.IfNoneMatch equals the current ETag (no body is sent),
	// and with ErrTooLarge when the object is larger than opts.MaxSize
	// (without reading more than that). opts may be nil.
	Get(ctx context.Context, key string, opts *GetOptions) (*Object, error)

	// Put stores body at key and returns the new ETag. With
	// opts.IfNoneMatch "*" it fails with ErrPrecondition when key exists;
	// with opts.IfMatch it fails with ErrPrecondition unless key exists
	// with that ETag. A server may answer a conditional Put that races
	// another with ErrBusy (HTTP 409), which means "retry". The body
	// is not retained. opts may be nil.
	Put(ctx context.Context, key string, body []byte, opts *PutOptions) (etag string, err error)

	// Head returns the ETag, size, modification time and metadata of the
	// object at key, or ErrNotFound.
	Head(ctx context.Context, key string) (*Info, error)

	// Delete removes the object at key. Deleting a missing key is not an
	// error.
	Delete(ctx context.Context, key string) error

	// List returns up to limit objects (a limit not between 1 and 1000
	// means 1000) whose keys start with prefix and sort after startAfter, in
	// ascending byte order of keys, and reports whether more follow.
	// Listed Infos carry no Metadata (S3 listings do not return it).
	List(ctx context.Context, prefix, startAfter string, limit int) (infos []Info, more bool, err error)
}

// GetOptions refine a Get. The zero value means no condition and no bound.
type GetOptions struct {
	// IfNoneMatch makes Get fail with ErrNotModified when the object's
	// ETag equals it: revalidating a cached copy costs no body.
	IfNoneMatch string
	// MaxSize, if positive, bounds the body: a larger object gives
	// ErrTooLarge and no more than MaxSize bytes are read.
	MaxSize int64
}

// PutOptions refine a Put. The zero value is an unconditional write with
// no metadata.
type PutOptions struct {
	// IfMatch makes the Put conditional on the object's current ETag.
	IfMatch string
	// IfNoneMatch "*" makes the Put conditional on the key being absent.
	// Other values are ErrInvalid.
	IfNoneMatch string
	// Metadata is stored with the object and returned by Get and Head.
	// Keys are lower-case letters, digits and '-'; keys and values are
	// printable US-ASCII, values without leading or trailing spaces (HTTP
	// drops them); all of them together at most MaxMetadataSize bytes,
	// each key counted with its "x-amz-meta-" header prefix (MinIO's rule,
	// stricter than AWS's). Anything else is ErrInvalid.
	Metadata map[string]string
}

// MaxMetadataSize is S3's limit on user metadata, in bytes: values and keys,
// each key with its "x-amz-meta-" prefix (MetadataHeaderPrefix).
const MaxMetadataSize = 2 << 10

// MetadataHeaderPrefix is the header prefix of user metadata, which counts
// against MaxMetadataSize once per key.
const MetadataHeaderPrefix = "x-amz-meta-"

// Info describes a stored object.
type Info struct {
	Key          string
	ETag         string // opaque; compare, never parse
	Size         int64
	LastModified time.Time
	Metadata     map[string]string // nil in List results
}

// Object is a stored object with its body. The caller owns Body.
type Object struct {
	Info
	Body []byte
}

// The errors Bucket implementations return, wrapped with the operation and
// key; the underlying SDK error, if any, stays in the chain. Context
// cancellation is returned as the context's error, never as one of these.
var (
	// ErrNotFound: no object at the key.
	ErrNotFound = errors.New("bucket: object not found")
	// ErrPrecondition: a conditional Put lost (HTTP 412): the key
	// exists (If-None-Match) or has another ETag (If-Match). Re-read and
	// re-apply.
	ErrPrecondition = errors.New("bucket: precondition failed")
	// ErrBusy: the server refused a conditional write because
	// another one on the same key was in flight (HTTP 409), or a
	// directory bucket's writer waited DirOptions.LockWait for its lock
	// in vain (another process holds it: stopped or stuck). Nothing was
	// written. Retry.
	ErrBusy = errors.New("bucket: busy with a concurrent conditional write")
	// ErrNotModified: the object's ETag equals GetOptions.IfNoneMatch.
	ErrNotModified = errors.New("bucket: not modified")
	// ErrTooLarge: the object is larger than GetOptions.MaxSize.
	ErrTooLarge = errors.New("bucket: object too large")
	// ErrCorrupt: the body received is damaged: shorter than its
	// Content-Length, or failing its checksum. No bytes are returned. The
	// damage may have been in transit, so a retry may succeed.
	ErrCorrupt = errors.New("bucket: damaged body")
	// ErrUnreadable: the stored object itself cannot be read (a damaged
	// file of a directory bucket). Unlike ErrCorrupt, reading again will
	// not help; Delete or an unconditional Put replaces it.
	ErrUnreadable = errors.New("bucket: unreadable object")
	// ErrInvalid: a bad key, option or metadata; nothing was sent.
	ErrInvalid = errors.New("bucket: invalid argument")
	// ErrNoBucket: the bucket itself does not exist (S3's NoSuchBucket),
	// as opposed to ErrNotFound, a missing object in a bucket that exists.
	// A configuration error: create the bucket or fix its name. Retrying
	// will not help.
	ErrNoBucket = errors.New("bucket: no such bucket")
	// ErrAccessDenied: the server refused the request's credentials (an
	// unknown access key, a signature made with the wrong secret, an
	// expired or invalid session token) or their permission for this
	// request. Fix the credentials or the permissions; retrying will not
	// help.
	ErrAccessDenied = errors.New("bucket: access denied")
	// ErrNoCredentials: no credentials to sign the request with were
	// found: none were given, none are in the environment or the shared
	// files, and there is no instance role. Nothing reached the server.
	// Configure credentials; retrying will not help. A credential source
	// that is configured but fails (a credential process, an SSO session)
	// is not this error: its own error says what to fix.
	ErrNoCredentials = errors.New("bucket: no credentials found")
	// ErrReadOnly: the bucket was opened read-only (ReadOnly,
	// OpenOptions.ReadOnly, DirOptions.ReadOnly) and refuses every Put
	// and Delete. Nothing was written. Open it for writing to write.
	ErrReadOnly = errors.New("bucket: opened read-only")
	// ErrUnreachable: no connection to the server could be made (after the
	// retries): its host name did not resolve, or connecting to it failed.
	// Nothing reached the server. Check the endpoint and the network; a
	// later retry may succeed.
	ErrUnreachable = errors.New("bucket: server unreachable")
)

// Error is a failed bucket operation.
type Error struct {
	Op  string // "get", "put", "head", "delete", "list", or Versioned's (see there)
	Key string // the key, or the prefix for list
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "bucket " + e.Op + ": " + e.Err.Error()
	}
	return "bucket " + e.Op + " " + e.Key + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// CheckKey reports whether key is usable in every implementation: 1 to
// 1024 bytes of printable ASCII other than backslash, not starting with
// '/', and with no empty, "." or ".." path segments (which a directory
// bucket could not store and some S3-compatible servers reject). A
// directory bucket also refuses a segment whose escaped file name would
// pass 255 bytes (any segment of up to 83 bytes fits); Cairn's own keys
// are far shorter.
func CheckKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: key of %d bytes", ErrInvalid, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e || c == '\\' {
			return fmt.Errorf("%w: key %q has byte 0x%02x", ErrInvalid, key, c)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: key %q has an empty, \".\" or \"..\" segment", ErrInvalid, key)
		}
	}
	return nil
}

// CheckPut validates the options of a Put; every implementation calls it
// so that all of them refuse the same things.
func CheckPut(opts *PutOptions) error {
	if opts == nil {
		return nil
	}
	if opts.IfNoneMatch != "" && opts.IfNoneMatch != "*" {
		return fmt.Errorf("%w: IfNoneMatch %q (only \"*\" is supported)", ErrInvalid, opts.IfNoneMatch)
	}
	if opts.IfMatch == "*" {
		return fmt.Errorf("%w: IfMatch \"*\" (name the ETag)", ErrInvalid)
	}
	if opts.IfNoneMatch != "" && opts.IfMatch != "" {
		return fmt.Errorf("%w: both IfMatch and IfNoneMatch", ErrInvalid)
	}
	size := 0
	for k, v := range opts.Metadata {
		size += len(MetadataHeaderPrefix) + len(k) + len(v)
		if k == "" {
			return fmt.Errorf("%w: empty metadata key", ErrInvalid)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: metadata key %q", ErrInvalid, k)
			}
		}
		if strings.TrimSpace(v) != v {
			return fmt.Errorf("%w: metadata %q has leading or trailing space (HTTP drops it)", ErrInvalid, k)
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e {
				return fmt.Errorf("%w: metadata %q has byte 0x%02x", ErrInvalid, k, c)
			}
		}
	}
	if size > MaxMetadataSize {
		return fmt.Errorf("%w: %d bytes of metadata, over %d", ErrInvalid, size, MaxMetadataSize)
	}
	return nil
}
