package tiered

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
)

// Open returns a Store for a URL:
//
//	file:///var/lib/cairn            a local directory (created if missing)
//	mem://                           memory only, for tests
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1
//
// For s3:// the credentials come from the AWS default chain (environment,
// shared files, instance roles); a URL holding user info, in itself or in
// its endpoint, is refused. The query parameters of s3:// URLs:
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
//	                 default 2m (s3store.DefaultTimeout); also the bound of
//	                 each background flush unless opts.FlushTimeout is set
//	attempt_timeout  bound of each attempt of a call; default 30s
//	                 (s3store.DefaultRequestTimeout)
//
// file:// and mem:// URLs take no parameters. An unknown or repeated
// parameter, or a value that does not parse, is refused. Every error wraps
// cairn.ErrInvalid, shows the URL only as RedactURL does and never repeats
// a parameter's value, which may be a secret put in the wrong place. so
// and opts may be nil.
func Open(ctx context.Context, rawURL string, so *durable.Options, opts *Options) (*Store, error) {
	b, prefix, s3o, err := openBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: store URL %q: %w", cairn.ErrInvalid, RedactURL(rawURL), err)
	}
	var o durable.Options
	if so != nil {
		o = *so
	}
	if prefix != "" {
		o.Prefix = prefix
	}
	d, err := durable.New(b, &o)
	if err != nil {
		return nil, err
	}
	var to Options
	if opts != nil {
		to = *opts
	}
	if to.FlushTimeout == 0 && s3o != nil && s3o.Timeout > 0 {
		to.FlushTimeout = s3o.Timeout
	}
	return New(d, o.Codec, &to)
}

// ErrUserInfo is the cause of the refusal of a store URL that holds
// credentials.
var ErrUserInfo = errors.New("credentials in a store URL (they come from the AWS default chain: environment, shared files, roles)")

// s3Params are the query parameters of s3:// URLs, each with a check of
// its value that never repeats it.
var s3Params = map[string]func(string) error{
	"endpoint":        s3store.CheckEndpoint,
	"region":          checkRegion,
	"path_style":      func(v string) error { _, err := parseBool(v); return err },
	"checksum":        checkChecksum,
	"timeout":         func(v string) error { _, err := parseTimeout(v); return err },
	"attempt_timeout": func(v string) error { _, err := parseTimeout(v); return err },
}

func openBucket(ctx context.Context, rawURL string) (bucket.Bucket, string, *s3store.S3Options, error) {
	u, q, err := parseStoreURL(rawURL)
	if err != nil {
		return nil, "", nil, err
	}
	switch u.Scheme {
	case "mem", "file":
		if len(q) > 0 {
			return nil, "", nil, fmt.Errorf("%s URLs take no parameters (got %s)", u.Scheme, strings.Join(sortedKeys(q), ", "))
		}
	}
	switch u.Scheme {
	case "mem":
		return bucket.NewMem(), "", nil, nil
	case "file":
		dir := u.Path
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", nil, errors.New("file URLs name a local path: file:///path")
		}
		if dir == "" {
			return nil, "", nil, errors.New("file URL without a path")
		}
		b, err := bucket.NewDir(dir)
		return b, "", nil, err
	case "s3":
		if u.Host == "" {
			return nil, "", nil, errors.New("s3 URL without a bucket: s3://bucket/prefix")
		}
		if err := checkParams(q); err != nil {
			return nil, "", nil, err
		}
		o := s3Options(q)
		client, err := s3store.NewS3Client(ctx, o)
		if err != nil {
			return nil, "", nil, err
		}
		return s3store.NewS3(client, u.Host), strings.Trim(u.Path, "/"), o, nil
	}
	return nil, "", nil, fmt.Errorf("unknown scheme %q (want file, s3 or mem)", u.Scheme)
}

// parseStoreURL parses a store URL and its query, refusing user info. Its
// errors never repeat any part of the URL: a URL that does not parse may
// hold anything.
func parseStoreURL(rawURL string) (*url.URL, url.Values, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if strings.Contains(rawURL, "@") {
			return nil, nil, fmt.Errorf("%w; and it does not parse as a URL", ErrUserInfo)
		}
		return nil, nil, errors.New("does not parse as a URL")
	}
	if u.User != nil || credentialsInPath(u) {
		return nil, nil, ErrUserInfo
	}
	switch {
	case u.Scheme == "" || u.Opaque != "":
		// "s3:key:secret@bucket" parses as an opaque URL with no user.
		return nil, nil, errors.New("want scheme:// (file:///path, s3://bucket/prefix or mem://)")
	case strings.Contains(rawURL, "#"):
		return nil, nil, errors.New("a store URL takes no #fragment")
	case u.Scheme == "mem" && (u.Host != "" || u.Path != ""):
		return nil, nil, errors.New("mem:// takes no host or path")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, nil, errors.New("the query does not parse (a bad %-escape or ';'?)")
	}
	return u, q, nil
}

// credentialsInPath reports whether a URL that is not a local path has an
// '@' before its query: user info in a form url.Parse does not see as such
// ("s3:///key:secret@bucket", "s3:/key:secret@bucket"). Bucket names never
// hold one.
func credentialsInPath(u *url.URL) bool {
	return u.Scheme != "file" && strings.Contains(u.Host+u.Path+u.Opaque, "@")
}

// paramName is what an unknown parameter's name must look like to be
// repeated in a message: lower-case words, as the known ones; anything
// else may be a secret pasted in the wrong place.
var paramName = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

// checkParams reports every problem with the parameters of an s3 URL.
func checkParams(q url.Values) error {
	var errs []error
	for _, k := range sortedKeys(q) {
		check, known := s3Params[k]
		switch {
		case !known:
			msg := "an unknown parameter (" + strconv.Itoa(len(k)) + " bytes, not repeated: it may be a secret)"
			if paramName.MatchString(k) {
				msg = fmt.Sprintf("unknown parameter %q", k)
			}
			if near := nearest(k); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			errs = append(errs, errors.New(msg+"; known: "+strings.Join(sortedKeys(s3Params), ", ")))
		case len(q[k]) > 1:
			errs = append(errs, fmt.Errorf("parameter %s given %d times", k, len(q[k])))
		case q[k][0] == "":
			errs = append(errs, fmt.Errorf("parameter %s is empty", k))
		default:
			if err := check(q[k][0]); err != nil {
				errs = append(errs, fmt.Errorf("parameter %s: %w", k, err))
			}
		}
	}
	return errors.Join(errs...)
}

// s3Options builds the client options from checked parameters.
func s3Options(q url.Values) *s3store.S3Options {
	o := &s3store.S3Options{Endpoint: q.Get("endpoint"), Region: q.Get("region")}
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

// nearest returns the known parameter closest to k in edit distance, if
// it is close enough to be a typo.
func nearest(k string) string {
	best, bestD := "", 3
	for _, name := range sortedKeys(s3Params) {
		if d := editDistance(strings.ToLower(k), name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment) of a and b, so that a swap of two letters costs one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// redacted stands for a value RedactURL does not show.
const redacted = "REDACTED"

// RedactURL returns a store URL fit for messages: without user info, and
// with the value of every query parameter replaced by REDACTED unless it
// is a known parameter whose value passes its check (a valid endpoint,
// region, duration...). Credentials never belong in a store URL, and if
// someone put them there, they are not printed.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable)"
	}
	if u.Opaque != "" || credentialsInPath(u) {
		return u.Scheme + ":" + redacted
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		u.RawQuery = redacted
		return u.String()
	}
	out := url.Values{}
	for k, vs := range q {
		check, known := s3Params[k]
		if !known && !paramName.MatchString(k) {
			k = redacted
		}
		for _, v := range vs {
			if !known || check(v) != nil {
				v = redacted
			}
			out.Add(k, v)
		}
	}
	u.RawQuery = out.Encode()
	return u.String()
}
