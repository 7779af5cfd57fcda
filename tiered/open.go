package tiered

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/s3store/bucket"
)

// Open returns a Store for a URL:
//
//	file:///var/lib/cairn            a local directory (created if missing)
//	mem://                           memory only, for tests
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//
// For s3:// the credentials come from the AWS default chain (environment,
// shared files, instance roles); they are never part of the URL. Query
// parameters: endpoint (omit for AWS), region, path_style (true for
// MinIO), checksum=when_required (for S3-compatible servers that reject
// the SDK's default checksums). so and opts may be nil.
func Open(ctx context.Context, rawURL string, so *s3store.Options, opts *Options) (*Store, error) {
	b, prefix, err := openBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: store URL %q: %w", cairn.ErrInvalid, RedactURL(rawURL), err)
	}
	var o s3store.Options
	if so != nil {
		o = *so
	}
	if prefix != "" {
		o.Prefix = prefix
	}
	d, err := s3store.New(b, &o)
	if err != nil {
		return nil, err
	}
	return New(d, o.Codec, opts)
}

func openBucket(ctx context.Context, rawURL string) (bucket.Bucket, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a secret
		}
		return nil, "", err
	}
	switch u.Scheme {
	case "mem":
		return bucket.NewMem(), "", nil
	case "file":
		dir := u.Path
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", errors.New("file URLs name a local path: file:///path")
		}
		if dir == "" {
			return nil, "", errors.New("file URL without a path")
		}
		b, err := bucket.NewDir(dir)
		return b, "", err
	case "s3":
		if u.Host == "" {
			return nil, "", errors.New("s3 URL without a bucket: s3://bucket/prefix")
		}
		q := u.Query()
		o := &s3store.S3Options{Endpoint: q.Get("endpoint"), Region: q.Get("region")}
		if v := q.Get("path_style"); v != "" {
			if o.PathStyle, err = strconv.ParseBool(v); err != nil {
				return nil, "", fmt.Errorf("path_style=%q: %w", v, err)
			}
		}
		switch v := q.Get("checksum"); v {
		case "", "default":
		case "when_required":
			o.ChecksumWhenRequired = true
		default:
			return nil, "", fmt.Errorf("checksum=%q (want when_required or default)", v)
		}
		client, err := s3store.NewS3Client(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return s3store.NewS3(client, u.Host), strings.Trim(u.Path, "/"), nil
	}
	return nil, "", fmt.Errorf("unknown scheme %q (want file, s3 or mem)", u.Scheme)
}

// RedactURL drops user info from a store URL and from the endpoint in its
// query, for messages: credentials never belong in a store URL, and if
// someone put them there, they are not printed.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	if q := u.Query(); q.Has("endpoint") {
		q.Set("endpoint", RedactURL(q.Get("endpoint")))
		u.RawQuery = q.Encode()
	}
	return u.String()
}
