package bucket

import (
	"context"
	"fmt"
	"time"
)

// Version describes one version of an object, or a delete marker, in a
// versioned bucket.
type Version struct {
	Key          string
	VersionID    string // opaque; compare, never parse or order
	ETag         string // "" for a delete marker
	Size         int64  // 0 for a delete marker
	LastModified time.Time
	// Latest: this is the key's current version, the one Get returns (or,
	// for a delete marker, the reason Get finds nothing).
	Latest bool
	// DeleteMarker: a version that Delete added in place of a body.
	DeleteMarker bool
}

// Versioned is implemented by buckets that can keep every version of an
// object: S3 (package s3store) and the in-memory bucket. Implementing it
// does not mean versioning is on; Versioning says. The directory bucket
// does not implement it.
//
// In a bucket with versioning on, every Put adds a version with a new
// VersionID and makes it current; Delete adds a delete marker, a version
// without a body, and makes it current, so that Get, Head and List find
// nothing; the versions before stay, noncurrent, until DeleteVersion
// removes them. (Delete of a key that is missing or already deleted adds
// another marker on AWS S3, none on MinIO; callers must expect either.) Conditional Puts are judged against the current version,
// as if the noncurrent ones did not exist: IfNoneMatch "*" succeeds when
// the current version is a delete marker. In a bucket where versioning
// was never on, every object has the one version "null".
//
// The methods are safe for concurrent use, with each other and with the
// Bucket methods. Their errors are *Error values with the operations
// "versioning", "listversions", "getversion" and "deleteversion" and the
// sentinels of this package; context errors are returned as they are.
// An empty versionID is ErrInvalid, never "the current version".
type Versioned interface {
	// Versioning reports whether versioning is on: true for S3's
	// "Enabled", false for "Suspended" or never enabled.
	Versioning(ctx context.Context) (bool, error)

	// ListVersions lists the versions and delete markers of the keys that
	// start with prefix: keys in ascending byte order, each key's versions
	// newest (current) first. It starts after the version versionMarker
	// of keyMarker, or after every version of keyMarker when
	// versionMarker is empty, or at the first key when both are empty (a
	// versionMarker without a keyMarker is ErrInvalid). It returns up to
	// limit entries (a limit not between 1 and 1000 means 1000); more
	// reports that more follow, and nextKey and nextVersion are then the
	// markers of the next page (otherwise empty). The markers are opaque:
	// pass them back as they are, never read nextKey as a key (MinIO
	// appends its own state to it). A page may hold fewer than limit
	// entries even when more follow. Markers other than a previous page's
	// next ones give unspecified results.
	//
	// Pages are not a snapshot of the whole listing: versions added or
	// removed between pages may or may not appear. When the version the
	// markers name was removed in between (say, by a caller deleting
	// versions as it pages), MinIO starts that key's versions over, so
	// the next page repeats the ones that remain: whatever a caller does
	// with a listed version must be idempotent.
	ListVersions(ctx context.Context, prefix, keyMarker, versionMarker string, limit int) (vs []Version, nextKey, nextVersion string, more bool, err error)

	// GetVersion is Get of one version, current or not: the same body,
	// ETag, metadata and options (IfNoneMatch, MaxSize), the same
	// errors. A version that does not exist, or was deleted, is
	// ErrNotFound; so is a delete marker. opts may be nil.
	GetVersion(ctx context.Context, key, versionID string, opts *GetOptions) (*Object, error)

	// DeleteVersion permanently removes one version or delete marker.
	// When it removes the current version, the newest remaining one
	// becomes current (a delete marker removed makes the object found
	// again). Removing a missing version is not an error. Unlike Delete it
	// adds no delete marker.
	DeleteVersion(ctx context.Context, key, versionID string) error
}

// NullVersion is the VersionID of an object stored while versioning was
// off: in a bucket where it was never on, every object's only version.
const NullVersion = "null"

// CheckVersionArgs validates the arguments of GetVersion and
// DeleteVersion; every implementation calls it so that all of them refuse
// the same things.
func CheckVersionArgs(key, versionID string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if versionID == "" {
		return fmt.Errorf("%w: empty version ID", ErrInvalid)
	}
	if len(versionID) > 1024 {
		return fmt.Errorf("%w: version ID of %d bytes", ErrInvalid, len(versionID))
	}
	for i := 0; i < len(versionID); i++ {
		if c := versionID[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: version ID %q has byte 0x%02x", ErrInvalid, versionID, c)
		}
	}
	return nil
}

// CheckListVersions validates the markers of ListVersions.
func CheckListVersions(keyMarker, versionMarker string) error {
	if versionMarker != "" && keyMarker == "" {
		return fmt.Errorf("%w: a version marker without a key marker", ErrInvalid)
	}
	return nil
}
