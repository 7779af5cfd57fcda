package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairnstore/cairn/bucket"
)

// An S3 implements bucket.Versioned whether or not its bucket has
// versioning on: Versioning asks the server. Errors are classified as the
// Bucket methods' are (see S3), and two more answers are mapped for
// versions: a GET of a delete marker (405 MethodNotAllowed) is
// bucket.ErrNotFound, and a DeleteVersion of a missing version succeeds
// whether the server answers 204 or 404. A version ID the server cannot
// parse (AWS and MinIO answer 400 InvalidArgument) carries no sentinel:
// IDs come from ListVersions, so it is a caller's bug.
var _ bucket.Versioned = (*S3)(nil)

// Versioning implements bucket.Versioned with GetBucketVersioning: true
// when the status is Enabled, false when it is Suspended or the bucket
// never had versioning. Reading it needs the s3:GetBucketVersioning
// permission, which a policy for objects alone does not grant
// (bucket.ErrAccessDenied).
func (b *S3) Versioning(ctx context.Context) (bool, error) {
	if err := b.ready(); err != nil {
		return false, &bucket.Error{Op: "versioning", Err: err}
	}
	out, err := b.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b.bucket)})
	if err != nil {
		return false, s3Fail(ctx, "versioning", "", err)
	}
	return out.Status == s3types.BucketVersioningStatusEnabled, nil
}

// GetVersion implements bucket.Versioned with a GetObject of the version:
// body, bounds and errors as Get's.
func (b *S3) GetVersion(ctx context.Context, key, versionID string, opts *bucket.GetOptions) (*bucket.Object, error) {
	if err := b.checkVersion(key, versionID); err != nil {
		return nil, &bucket.Error{Op: "getversion", Key: key, Err: err}
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), VersionId: aws.String(versionID)}
	obj, err := b.get(ctx, "getversion", in, opts)
	if err != nil && httpStatus(err) == http.StatusMethodNotAllowed {
		// S3's answer to a GET of a delete marker.
		return nil, &bucket.Error{Op: "getversion", Key: key,
			Err: fmt.Errorf("%w: version %s is a delete marker: %w", bucket.ErrNotFound, versionID, errors.Unwrap(err))}
	}
	return obj, err
}

// DeleteVersion implements bucket.Versioned with a DeleteObject of the
// version. A missing version is not an error, whether the server answers
// 204 (S3) or 404; a missing bucket is.
func (b *S3) DeleteVersion(ctx context.Context, key, versionID string) error {
	if err := b.checkVersion(key, versionID); err != nil {
		return &bucket.Error{Op: "deleteversion", Key: key, Err: err}
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), VersionId: aws.String(versionID),
	})
	if err != nil {
		ferr := s3Fail(ctx, "deleteversion", key, err)
		if errors.Is(ferr, bucket.ErrNotFound) {
			return nil
		}
		return ferr
	}
	return nil
}

func (b *S3) checkVersion(key, versionID string) error {
	if err := b.ready(); err != nil {
		return err
	}
	return bucket.CheckVersionArgs(key, versionID)
}

// ListVersions implements bucket.Versioned with one ListObjectVersions
// request. A limit of 0, below 0 or above 1000 means 1000. The server
// answers versions and delete markers in two lists; they are merged by
// key, then newest first (the current one first, then by LastModified;
// a version before a delete marker of the same time, which S3's
// millisecond times leave undecided). The next markers are the server's
// (MinIO's key marker carries its listing state), so paging follows the
// server's own order whatever the merge decided.
func (b *S3) ListVersions(ctx context.Context, prefix, keyMarker, versionMarker string, limit int) ([]bucket.Version, string, string, bool, error) {
	fail := func(err error) ([]bucket.Version, string, string, bool, error) {
		return nil, "", "", false, &bucket.Error{Op: "listversions", Key: prefix, Err: err}
	}
	if err := b.ready(); err != nil {
		return fail(err)
	}
	if err := bucket.CheckListVersions(keyMarker, versionMarker); err != nil {
		return fail(err)
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	in := &s3.ListObjectVersionsInput{
		Bucket:  aws.String(b.bucket),
		MaxKeys: aws.Int32(int32(limit)),
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if keyMarker != "" {
		in.KeyMarker = aws.String(keyMarker)
	}
	if versionMarker != "" {
		in.VersionIdMarker = aws.String(versionMarker)
	}
	out, err := b.client.ListObjectVersions(ctx, in)
	if err != nil {
		return nil, "", "", false, s3Fail(ctx, "listversions", prefix, err)
	}
	vs := mergeVersions(out.Versions, out.DeleteMarkers)
	if !aws.ToBool(out.IsTruncated) {
		return vs, "", "", false, nil
	}
	nextKey, nextVersion := aws.ToString(out.NextKeyMarker), aws.ToString(out.NextVersionIdMarker)
	if nextKey == "" && len(vs) > 0 {
		// A server that leaves the markers out continues after the last
		// entry, as S3 does.
		nextKey, nextVersion = vs[len(vs)-1].Key, vs[len(vs)-1].VersionID
	}
	if nextKey == "" {
		return fail(errors.New("s3store: the server reported more versions but no entry nor marker to continue from"))
	}
	return vs, nextKey, nextVersion, true, nil
}

// mergeVersions merges the versions and the delete markers of one
// ListObjectVersions page, each in the server's order, into one list in
// the order ListVersions documents.
func mergeVersions(objs []s3types.ObjectVersion, markers []s3types.DeleteMarkerEntry) []bucket.Version {
	out := make([]bucket.Version, 0, len(objs)+len(markers))
	i, j := 0, 0
	for i < len(objs) || j < len(markers) {
		var v, m bucket.Version
		if i < len(objs) {
			v = objVersion(objs[i])
		}
		if j < len(markers) {
			m = markerVersion(markers[j])
		}
		if j == len(markers) || i < len(objs) && versionFirst(v, m) {
			out = append(out, v)
			i++
		} else {
			out = append(out, m)
			j++
		}
	}
	return out
}

// versionFirst reports whether version v comes before delete marker m.
func versionFirst(v, m bucket.Version) bool {
	switch {
	case v.Key != m.Key:
		return v.Key < m.Key
	case v.Latest != m.Latest:
		return v.Latest
	}
	return !m.LastModified.After(v.LastModified)
}

func objVersion(o s3types.ObjectVersion) bucket.Version {
	return bucket.Version{
		Key:          aws.ToString(o.Key),
		VersionID:    aws.ToString(o.VersionId),
		ETag:         aws.ToString(o.ETag),
		Size:         aws.ToInt64(o.Size),
		LastModified: aws.ToTime(o.LastModified),
		Latest:       aws.ToBool(o.IsLatest),
	}
}

func markerVersion(m s3types.DeleteMarkerEntry) bucket.Version {
	return bucket.Version{
		Key:          aws.ToString(m.Key),
		VersionID:    aws.ToString(m.VersionId),
		LastModified: aws.ToTime(m.LastModified),
		Latest:       aws.ToBool(m.IsLatest),
		DeleteMarker: true,
	}
}

// httpStatus returns the HTTP status of the answer in err's chain, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
