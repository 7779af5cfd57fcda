package tiered

import (
	"context"
	"fmt"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
)

// Open returns a Store for a store URL, opened by bucket.OpenURL:
//
//	file:///var/lib/cairn            a local directory (created if missing)
//	mem://                           memory only, for tests
//	s3://bucket/prefix?endpoint=...  S3 or an S3-compatible server, once
//	                                 package s3store is imported (see its
//	                                 doc for the parameters)
//
// The URL's path, if any, is the key prefix (it replaces
// opts.Durable.Prefix), and a call timeout the URL sets also bounds each
// background flush unless opts.FlushTimeout is set. A refused URL is
// ErrInvalid with a *bucket.URLError, which shows the URL only as
// bucket.RedactURL does and never repeats a parameter's value, which may
// be a secret put in the wrong place. opts.Logger and opts.Debug go to
// the bucket (bucket.OpenOptions): with Debug, an s3:// bucket logs its
// requests, secrets redacted. opts may be nil.
//
// With opts.ReadOnly (or opts.Durable.ReadOnly) the bucket is opened
// read-only too: nothing is created or written, and a file:// directory
// that does not exist is an error naming it, which matches fs.ErrNotExist
// and bucket.ErrNoBucket (never a new empty store); one the process may
// not read matches fs.ErrPermission.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	oo := bucket.OpenOptions{Logger: o.Logger, Debug: o.Debug, ReadOnly: o.ReadOnly || o.Durable.ReadOnly}
	ob, err := bucket.OpenURL(ctx, rawURL, &oo)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cairn.ErrInvalid, err)
	}
	if ob.Prefix != "" {
		o.Durable.Prefix = ob.Prefix
	}
	if o.FlushTimeout == 0 && ob.Timeout > 0 {
		o.FlushTimeout = ob.Timeout
	}
	return New(ob.Bucket, &o)
}
