package bucket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Scheme opens the buckets of the store URLs of one scheme ("file",
// "mem", "s3"). This package registers file and mem; package s3store
// registers s3 when it is imported (import it for its side effect:
// import _ "github.com/cairnstore/cairn/s3store"), so a program that never
// names S3 links no cloud SDK.
type Scheme struct {
	// Params are the query parameters the scheme accepts, each with a
	// check of its value. A check must never repeat the value in its
	// error (it may be a secret put in the wrong place); RedactURL shows
	// a value only when its check passes.
	Params map[string]func(value string) error
	// Open opens the bucket u names with opts. u holds no user info, and
	// its query parameters are known, given once, non-empty and checked;
	// opts is never nil. With opts.ReadOnly, Open must write nothing
	// (OpenURL refuses the writes of the bucket it returns in any case).
	Open func(ctx context.Context, u *url.URL, opts *OpenOptions) (*Opened, error)
}

// OpenOptions configure OpenURL. Nil means defaults.
type OpenOptions struct {
	// Logger receives what the opened bucket logs. Nil: slog.Default()
	// when Debug is set, else nothing is logged.
	Logger *slog.Logger
	// Debug makes the opened bucket log every request it sends and every
	// response, at Debug level to Logger: for s3:// the AWS SDK's request
	// log (headers, never bodies) with the Authorization header,
	// X-Amz-Security-Token, signatures and credentials redacted. The
	// file and mem schemes send no requests and ignore it.
	Debug bool
	// ReadOnly opens the bucket for reading only: the bucket returned
	// refuses Put and Delete with ErrReadOnly, and opening it writes
	// nothing. A file:// URL then names a directory that must exist (see
	// DirOptions.ReadOnly): a missing one is an error naming it, never a
	// new empty store.
	ReadOnly bool
}

// Opened is a bucket opened from a store URL.
type Opened struct {
	Bucket Bucket
	// Prefix is the key prefix the URL names ("" for none).
	Prefix string
	// Timeout is the bound of each call that the URL sets (0: none set).
	// A store uses it to bound its background work as well.
	Timeout time.Duration
}

var schemes = struct {
	sync.RWMutex
	m map[string]Scheme
}{m: map[string]Scheme{}}

// schemeName is what a scheme must look like (RFC 3986, lower case, as
// url.Parse gives it).
var schemeName = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)

// Register makes OpenURL open the URLs of scheme with s. It panics if
// scheme is not a lower-case URL scheme, is registered twice, or s has no
// Open, as http.Handle does: each is a programming error found at start.
func Register(scheme string, s Scheme) {
	schemes.Lock()
	defer schemes.Unlock()
	if !schemeName.MatchString(scheme) {
		panic(fmt.Sprintf("bucket: Register of %q, not a lower-case URL scheme", scheme))
	}
	if s.Open == nil {
		panic("bucket: Register of scheme " + scheme + " without Open")
	}
	if _, dup := schemes.m[scheme]; dup {
		panic("bucket: scheme " + scheme + " registered twice")
	}
	schemes.m[scheme] = s
}

func lookup(scheme string) (Scheme, bool) {
	schemes.RLock()
	defer schemes.RUnlock()
	s, ok := schemes.m[scheme]
	return s, ok
}

func registered() []string {
	schemes.RLock()
	defer schemes.RUnlock()
	return keysOf(schemes.m)
}

func init() {
	Register("mem", Scheme{Open: func(context.Context, *url.URL, *OpenOptions) (*Opened, error) {
		return &Opened{Bucket: NewMem()}, nil
	}})
	Register("file", Scheme{Open: func(_ context.Context, u *url.URL, opts *OpenOptions) (*Opened, error) {
		if u.Host != "" && u.Host != "localhost" {
			return nil, errors.New("file URLs name a local path: file:///path")
		}
		if u.Path == "" {
			return nil, errors.New("file URL without a path")
		}
		b, err := OpenDir(u.Path, &DirOptions{ReadOnly: opts.ReadOnly})
		if err != nil {
			return nil, err
		}
		return &Opened{Bucket: b}, nil
	}})
}

// ErrUserInfo is the cause of the refusal of a store URL that holds
// credentials.
var ErrUserInfo = errors.New("credentials in a store URL (they come from the environment; for s3, the AWS default chain: environment, shared files, roles)")

// ErrScheme is the cause of the refusal of a store URL whose scheme is
// not registered.
var ErrScheme = errors.New("unknown scheme")

// OpenURL opens the bucket a store URL names, through the Scheme
// registered for its scheme:
//
//	file:///var/lib/cairn   a local directory (created if missing, unless
//	                        read-only)
//	mem://                  memory only, for tests
//	s3://bucket/prefix?...  with package s3store imported
//
// A URL holding user info (credentials), an unknown or repeated
// parameter, or a value its check refuses, is refused with every problem
// at once. Errors are a *URLError; the cause of a bucket that could not
// be opened stays in its chain (ErrNoBucket and fs.ErrNotExist for a
// missing directory opened read-only, fs.ErrPermission for one the
// process may not read). With opts.ReadOnly the bucket returned refuses
// every write with ErrReadOnly (see ReadOnly). opts may be nil.
func OpenURL(ctx context.Context, rawURL string, opts *OpenOptions) (*Opened, error) {
	var o OpenOptions
	if opts != nil {
		o = *opts
	}
	ob, err := openURL(ctx, rawURL, &o)
	if err != nil {
		return nil, &URLError{URL: RedactURL(rawURL), Err: err}
	}
	if o.ReadOnly {
		ob.Bucket = ReadOnly(ob.Bucket)
	}
	return ob, nil
}

// URLError is the error of OpenURL: the URL, as RedactURL shows it, and
// why it was refused or could not be opened. It matches ErrInvalid and
// its cause with errors.Is. It never repeats a parameter's value.
type URLError struct {
	URL string
	Err error
}

func (e *URLError) Error() string { return fmt.Sprintf("store URL %q: %v", e.URL, e.Err) }

// Unwrap returns ErrInvalid and the cause.
func (e *URLError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

func openURL(ctx context.Context, rawURL string, opts *OpenOptions) (*Opened, error) {
	u, q, err := parseStoreURL(rawURL)
	if err != nil {
		return nil, err
	}
	s, ok := lookup(u.Scheme)
	if !ok {
		hint := ""
		if u.Scheme == "s3" {
			hint = "; import github.com/cairnstore/cairn/s3store to register it"
		}
		names := registered()
		want := names[len(names)-1]
		if len(names) > 1 {
			want = strings.Join(names[:len(names)-1], ", ") + " or " + want
		}
		return nil, fmt.Errorf("%w %q (want %s)%s", ErrScheme, u.Scheme, want, hint)
	}
	if len(s.Params) == 0 && len(q) > 0 {
		names := keysOf(q)
		for i, k := range names {
			if !paramName.MatchString(k) {
				names[i] = "a parameter of " + strconv.Itoa(len(k)) + " bytes, not repeated"
			}
		}
		return nil, fmt.Errorf("%s URLs take no parameters (got %s)", u.Scheme, strings.Join(names, ", "))
	}
	if err := checkParams(s.Params, q); err != nil {
		return nil, err
	}
	return s.Open(ctx, u, opts)
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

// checkParams reports every problem with the parameters q of a URL whose
// scheme knows params.
func checkParams(params map[string]func(string) error, q url.Values) error {
	var errs []error
	for _, k := range keysOf(q) {
		check, known := params[k]
		switch {
		case !known:
			msg := "an unknown parameter (" + strconv.Itoa(len(k)) + " bytes, not repeated: it may be a secret)"
			if paramName.MatchString(k) {
				msg = fmt.Sprintf("unknown parameter %q", k)
			}
			if near := nearest(params, k); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			errs = append(errs, errors.New(msg+"; known: "+strings.Join(keysOf(params), ", ")))
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

// nearest returns the known parameter closest to k in edit distance, if
// it is close enough to be a typo.
func nearest(params map[string]func(string) error, k string) string {
	best, bestD := "", 3
	for _, name := range keysOf(params) {
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

// keysOf returns the keys of m in ascending order.
func keysOf[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// redacted stands for a value RedactURL does not show.
const redacted = "REDACTED"

// RedactURL returns a store URL fit for messages: without user info, and
// with the value of every query parameter replaced by REDACTED unless it
// is a parameter its scheme knows and whose value passes its check (a
// valid endpoint, region, duration...). Credentials never belong in a
// store URL, and if someone put them there, they are not printed.
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
	s, _ := lookup(u.Scheme)
	out := url.Values{}
	for k, vs := range q {
		check, known := s.Params[k]
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
