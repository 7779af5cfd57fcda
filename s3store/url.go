package s3store

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// Importing this package registers the s3 scheme of store URLs with
// package bucket (bucket.OpenURL, tiered.Open):
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1
//
// The credentials come from the AWS default chain (environment, shared
// files, instance roles); a URL holding user info, in itself or in its
// endpoint, is refused. The query parameters:
//
//	endpoint         base URL of an S3-compatible server, http(s)://host[:port]
//	                 and nothing more; omit it for AWS
//	region           the signing region; default: AWS_REGION or the shared
//	                 config file
//	path_style       true or false: address the bucket as endpoint/bucket
//	                 rather than bucket.endpoint; default true when an
//	                 endpoint is given (MinIO and most S3-compatible servers
//	                 need it), false for AWS
//	checksum         when_required (for servers that reject the SDK's
//	                 default checksums) or default
//	timeout          bound of each S3 call, retries included (Go duration);
//	                 default 2m (DefaultTimeout); a store opened from the URL
//	                 also bounds each background flush by it
//	attempt_timeout  bound of each attempt of a call; default 30s
//	                 (DefaultRequestTimeout)
func init() {
	bucket.Register("s3", bucket.Scheme{Params: params, Open: openURL})
}

// params are the query parameters of s3:// URLs, each with a check of
// its value that never repeats it.
var params = map[string]func(string) error{
	"endpoint":        CheckEndpoint,
	"region":          checkRegion,
	"path_style":      func(v string) error { _, err := parseBool(v); return err },
	"checksum":        checkChecksum,
	"timeout":         func(v string) error { _, err := parseTimeout(v); return err },
	"attempt_timeout": func(v string) error { _, err := parseTimeout(v); return err },
}

// openURL opens the bucket of an s3:// URL. Opening sends no request, so
// a read-only open (opts.ReadOnly) needs nothing more here: OpenURL makes
// the bucket refuse writes.
func openURL(ctx context.Context, u *url.URL, _ *bucket.OpenOptions) (*bucket.Opened, error) {
	if u.Host == "" {
		return nil, errors.New("s3 URL without a bucket: s3://bucket/prefix")
	}
	o := optionsOf(u.Query())
	client, err := NewS3Client(ctx, o)
	if err != nil {
		return nil, err
	}
	return &bucket.Opened{Bucket: NewS3(client, u.Host), Prefix: strings.Trim(u.Path, "/"), Timeout: o.Timeout}, nil
}

// optionsOf builds the client options from checked parameters.
func optionsOf(q url.Values) *S3Options {
	o := &S3Options{Endpoint: q.Get("endpoint"), Region: q.Get("region")}
	o.PathStyle = o.Endpoint != ""
	if v := q.Get("path_style"); v != "" {
		o.PathStyle, _ = parseBool(v)
	}
	o.ChecksumWhenRequired = q.Get("checksum") == "when_required"
	if v := q.Get("timeout"); v != "" {
		o.Timeout, _ = parseTimeout(v)
	}
	if v := q.Get("attempt_timeout"); v != "" {
		o.RequestTimeout, _ = parseTimeout(v)
	}
	return o
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive Go duration such as 30s or 2m")
	}
	return d, nil
}

func checkChecksum(v string) error {
	if v != "when_required" && v != "default" {
		return errors.New("want when_required or default")
	}
	return nil
}

// checkRegion accepts region names as AWS and S3-compatible servers spell
// them (us-east-1, auto, fr-par): lower-case letters, digits and hyphens.
// Anything else, a secret pasted in the wrong place for one, is refused.
func checkRegion(v string) error {
	ok := len(v) <= 64
	for _, c := range v {
		ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
	}
	if !ok {
		return errors.New("not a region name (lower-case letters, digits and hyphens, such as us-east-1)")
	}
	return nil
}
