package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairnstore/cairn/bucket"
)

// init registers the s3 scheme of store URLs with package bucket. The
// package doc ("Store URLs") lists its parameters: keep it in step with
// params.
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
	"max_attempts":    func(v string) error { _, err := parseAttempts(v); return err },
	"max_backoff":     func(v string) error { _, err := parseTimeout(v); return err },
	"sse":             func(v string) error { return checkSSE(s3types.ServerSideEncryption(v)) },
	"sse_kms_key_id":  checkKMSKeyID,
	"sse_bucket_key":  func(v string) error { _, err := parseBool(v); return err },
	"storage_class":   func(v string) error { return checkStorageClass(s3types.StorageClass(v)) },
	"tags":            func(v string) error { _, err := parseTags(v); return err },
}

// openURL opens the bucket of an s3:// URL. Opening sends no request, so
// a read-only open (opts.ReadOnly) needs nothing more here: OpenURL makes
// the bucket refuse writes.
func openURL(ctx context.Context, u *url.URL, opts *bucket.OpenOptions) (*bucket.Opened, error) {
	if u.Host == "" {
		return nil, errors.New("s3 URL without a bucket: s3://bucket/prefix")
	}
	o := optionsOf(u.Query())
	o.Logger, o.Debug = opts.Logger, opts.Debug
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
	if v := q.Get("max_attempts"); v != "" {
		o.MaxAttempts, _ = parseAttempts(v)
	}
	if v := q.Get("max_backoff"); v != "" {
		o.MaxBackoff, _ = parseTimeout(v)
	}
	o.SSE = s3types.ServerSideEncryption(q.Get("sse"))
	o.SSEKMSKeyID = q.Get("sse_kms_key_id")
	if v := q.Get("sse_bucket_key"); v != "" {
		o.SSEBucketKey, _ = parseBool(v)
	}
	o.StorageClass = s3types.StorageClass(q.Get("storage_class"))
	if v := q.Get("tags"); v != "" {
		o.Tags, _ = parseTags(v)
	}
	return o
}

func parseAttempts(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive whole number of attempts (1: no retry)")
	}
	return n, nil
}

// parseTags reads the tags parameter: key:value pairs separated by
// commas (S3 tags never hold a comma), a key ending at its first ':', a
// value possibly empty. Its errors name tags by their position.
func parseTags(v string) (map[string]string, error) {
	var (
		tags []tag
		errs []error
	)
	for i, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(pair, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("tag %d: want key:value", i+1))
			continue
		}
		tags = append(tags, tag{pos: i + 1, key: k, value: val})
	}
	if err := checkTags(tags, ""); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.key] = t.value
	}
	return m, nil
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
