package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairnstore/cairn/bucket"
)

// S3 is a bucket.Bucket over one bucket of Amazon S3 or an S3-compatible
// server (MinIO and others), through aws-sdk-go-v2.
//
// Every SDK error is classified once, here: 404 (NoSuchKey, NotFound) is
// bucket.ErrNotFound, 412 is bucket.ErrPrecondition, 409 is
// bucket.ErrBusy and 304 is bucket.ErrNotModified. A 404 that names the
// bucket (NoSuchBucket) is bucket.ErrNoBucket, not ErrNotFound: a missing
// bucket is a configuration error, not a missing object; so is an error
// of the KMS (codes kms:... or KMS....: a key of S3Options.SSEKMSKeyID that
// does not exist or is disabled), which carries no sentinel. The codes of
// refused credentials or permissions (AccessDenied, InvalidAccessKeyId,
// SignatureDoesNotMatch, ExpiredToken, InvalidToken, and Forbidden, a 403
// to a HEAD) are bucket.ErrAccessDenied. With no answer from the server,
// a host name that does not resolve or a connection that cannot be made
// is bucket.ErrUnreachable. When the SDK's default credential chain finds
// no credentials (it ends at the instance role, which fails),
// the error is bucket.ErrNoCredentials; other failures of a credential
// source carry no sentinel. The SDK's error stays in the chain, so
// errors.As still finds *smithyhttp.ResponseError or smithy.APIError
// (status, error code, request ID). Context cancellation and deadlines
// are returned as they are (errors.Is(err, context.Canceled)), never as
// one of the sentinels. Every error is a *bucket.Error naming the
// operation and key.
//
// Retries are the SDK's: its standard retryer repeats requests that fail
// with 500, 502, 503, 504, an unmodeled 429, throttling error codes
// (SlowDown), connection errors and per-attempt timeouts, rewinding the
// request body, up to S3Options.MaxAttempts attempts with a jittered
// exponential backoff of at most S3Options.MaxBackoff before each retry,
// all within S3Options.Timeout. A call whose attempts all failed returns
// the last attempt's error inside the SDK's *retry.MaxAttemptsError
// ("exceeded maximum number of attempts, N"), classified as that attempt's
// error would be. It does not retry 409, 412 or other 4xx answers. Because a retried conditional Put may
// have been applied by the server on an earlier attempt whose answer was
// lost, ErrPrecondition from a Put does not prove that someone else wrote
// the key: the caller must read the key and recognise its own write.
//
// Errors that happen after the SDK returned, while Get reads the body (a
// connection cut mid-body, a checksum mismatch), are not retried and are
// no sentinel: the caller may retry the Get.
//
// An S3 is safe for concurrent use and holds no state besides the client
// and the bucket name. The caller owns the client.
type S3 struct {
	client *s3.Client
	bucket string
}

var _ bucket.Bucket = (*S3)(nil)

// String names the bucket and the server behind it: the endpoint's host
// (never user info), or AWS and the region. The probe's verdicts and
// messages use it.
func (b *S3) String() string {
	if b == nil || b.client == nil {
		return "S3 bucket (no client)"
	}
	endpoint := "AWS " + b.client.Options().Region
	if e := b.client.Options().BaseEndpoint; e != nil {
		if u, err := url.Parse(*e); err == nil {
			endpoint = u.Host
		} else {
			endpoint = "(unparsable endpoint)"
		}
	}
	return fmt.Sprintf("S3 bucket %s at %s", b.bucket, endpoint)
}

// NewS3 returns the bucket named bucketName, accessed through client.
// Nothing is sent: a missing bucket or bad credentials show up on the
// first call. The caller owns client and may share it between buckets.
// A nil client or an empty name makes every call fail with
// bucket.ErrInvalid.
func NewS3(client *s3.Client, bucketName string) *S3 {
	return &S3{client: client, bucket: bucketName}
}

// Defaults of S3Options' bounds. A server that accepts connections and
// never answers costs a caller at most DefaultTimeout per call, never a
// hang. 30 s per attempt leaves room for the largest object Cairn writes
// (a 16 MiB checkpoint) at about 5 Mbit/s, and is the order of time after
// which a retry on a fresh connection does better than waiting; 2 min is
// the standard retryer's 3 attempts plus backoff, with margin, and still
// short enough that an operator sees an error rather than a hang.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultTimeout        = 2 * time.Minute
)

// S3Options configure the client NewS3Client builds. The zero value, like
// a nil *S3Options, means the SDK's defaults (region and credentials from
// the environment and shared config files, AWS endpoints, virtual-hosted
// addressing, the standard retryer with 3 attempts, CRC32 checksums on
// uploads and checksum validation on downloads) and Cairn's bounds:
// DefaultRequestTimeout per attempt, DefaultTimeout per call.
type S3Options struct {
	// Endpoint is the base URL of an S3-compatible server, such as
	// http://127.0.0.1:9000 for MinIO. Empty means AWS.
	Endpoint string
	// Region signs the requests. Empty means the SDK's default chain
	// (AWS_REGION, the shared config file); it is an error if that finds
	// none either.
	Region string
	// PathStyle addresses buckets as endpoint/bucket/key rather than
	// bucket.endpoint/key. MinIO and most S3-compatible servers need it.
	PathStyle bool
	// Credentials sign the requests. Nil means the SDK's default chain
	// (environment, shared files, SSO, web identity, container and
	// instance roles), resolved lazily on the first request.
	Credentials aws.CredentialsProvider

	// Concurrency sizes the HTTP connection pool: at most this many
	// connections to the endpoint, all of them kept for reuse. Set it to
	// the number of requests the caller runs in parallel. Zero keeps the
	// SDK's pool (10 idle connections per host). It cannot be combined
	// with Transport, which brings its own pool.
	Concurrency int
	// RequestTimeout bounds each attempt, not the whole call: from
	// dialling to the last byte of the response body (for Get, the whole
	// download). An attempt that runs out of time fails with an error
	// that matches context.DeadlineExceeded, and the SDK retries it like
	// any connection error. Zero means DefaultRequestTimeout (30 s).
	// There is no "no limit": to wait longer, give a longer duration.
	RequestTimeout time.Duration
	// Timeout bounds each whole call (Get, Put, Head, Delete, List, and
	// any other request sent through the client): every attempt, the
	// backoff between them, credential resolution and, for Get, reading
	// the body. It applies even when the caller's context has no
	// deadline; a context that ends sooner still ends the call sooner.
	// A call that runs out of time fails with an error that matches
	// context.DeadlineExceeded and names this bound. Zero means
	// DefaultTimeout (2 min).
	Timeout time.Duration
	// MaxAttempts is the number of attempts the SDK's standard retryer
	// makes per request, the first included: 1 disables retries. Zero
	// keeps the SDK's default (3, or AWS_MAX_ATTEMPTS). Which errors are
	// retried, the backoff and the retry quota stay the SDK's.
	MaxAttempts int
	// MaxBackoff bounds the delay before each retry of the standard
	// retryer (its exponential backoff with jitter: a random delay up to
	// 2^attempt seconds, at most MaxBackoff). Zero keeps the SDK's bound
	// (20 s). Retries still end at MaxAttempts, at Timeout, or when the
	// SDK's retry quota (shared by the client's calls) runs out under a
	// burst of failures, whichever comes first: with more attempts or a
	// longer backoff, raise Timeout too.
	MaxBackoff time.Duration
	// ChecksumWhenRequired sends request checksums and validates response
	// checksums only where S3 requires them, instead of the SDK's
	// default (since 2025) of a CRC32 on every upload and validation of
	// every download that carries one. Some S3-compatible servers reject
	// or mishandle those checksums. With it set, a download corrupted in
	// transit is not detected here; the layers above must check it.
	ChecksumWhenRequired bool

	// SSE, SSEKMSKeyID, SSEBucketKey, StorageClass and Tags are sent with
	// every PutObject made through the client: each object Cairn writes
	// (run objects, index logs, pages, snapshots and head, claims, the
	// probe's objects) carries them, conditional writes included (they
	// are headers beside If-None-Match and If-Match). A PutObject whose
	// input sets one of them itself keeps its own (SSE, key and bucket
	// key as one). Cairn writes only with PutObject: no copy, no
	// multipart upload. Their zero values send nothing, so the bucket's
	// defaults apply.

	// SSE is the server-side encryption of the objects written: "AES256"
	// (SSE-S3, keys S3 manages), "aws:kms" (SSE-KMS) or "aws:kms:dsse"
	// (dual-layer SSE-KMS). Empty sends none: the bucket's default
	// encryption applies (on AWS, SSE-S3 at least). Reads need no header:
	// S3 decrypts for a caller that may use the key (kms:Decrypt, for
	// SSE-KMS). SSE-C, where the client sends the key with every request,
	// is not supported.
	SSE s3types.ServerSideEncryption
	// SSEKMSKeyID names the KMS key of SSE-KMS: a key ID, a key ARN, an
	// alias ("alias/name") or an alias ARN on AWS, a key name on MinIO
	// and other servers with a KMS. Empty means the key of the bucket's
	// default encryption, else AWS's managed key aws/s3. It is an error
	// without SSE "aws:kms" or "aws:kms:dsse".
	SSEKMSKeyID string
	// SSEBucketKey asks S3 to use an S3 Bucket Key for SSE-KMS, which
	// cuts the requests S3 makes to KMS, and their cost, for a store that
	// writes often. False sends nothing: the bucket's setting applies. It
	// is an error without SSE "aws:kms".
	SSEBucketKey bool
	// StorageClass is the storage class of the objects written, one of
	// the SDK's s3types.StorageClass values, such as STANDARD_IA or, on
	// MinIO, REDUCED_REDUNDANCY. GLACIER and DEEP_ARCHIVE are refused:
	// their objects cannot be read before a restore, and Cairn reads what
	// it writes. Mind the minimum storage duration of the infrequent
	// access classes: every Save rewrites its run's object, and index
	// logs and pages are small objects (docs/s3.md). Empty sends none:
	// STANDARD, or the server's default.
	StorageClass s3types.StorageClass
	// Tags are the object tags of the objects written, sent as the
	// x-amz-tagging header (URL-encoded), so every overwrite replaces the
	// object's tag set with these. S3's limits apply: at most 10 tags; a
	// key of 1 to 128 characters, not starting with "aws:"; a value of
	// at most 256; letters, digits, spaces and + - = . _ : / @ only
	// (lengths in UTF-16 code units, as S3 counts them). MinIO is
	// stricter: it refuses letters beyond ASCII (InvalidTag). Writing
	// tags needs the s3:PutObjectTagging permission besides s3:PutObject.
	// The map is copied when the client is built.
	Tags map[string]string

	// Transport replaces the HTTP transport, for example with a
	// fault-injecting or instrumented one. Redirects are not followed and
	// RequestTimeout still applies. To replace the whole HTTP client, set
	// s3.Options.HTTPClient in OptFns instead.
	Transport http.RoundTripper
	// OptFns are passed to s3.NewFromConfig after the options above, and
	// may change anything they set.
	OptFns []func(*s3.Options)

	// Debug logs, at Debug level to Logger, every request the client
	// sends and every response (headers, never bodies) and each retry:
	// the SDK's log (aws.LogRequest, LogResponse, LogRetries), with the
	// values of the Authorization, X-Amz-Security-Token, SSE-C key and
	// cookie headers and of signature and credential query parameters
	// replaced by REDACTED. Without it the SDK's logger is off: it would
	// print its warnings to stderr, and the client reports failures as
	// errors.
	Debug bool
	// Logger receives the log of Debug. Nil: slog.Default().
	Logger *slog.Logger
}

// validate reports every problem with o at once.
func (o *S3Options) validate() error {
	var errs []error
	if o.Endpoint != "" {
		if err := CheckEndpoint(o.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("Endpoint: %w", err))
		}
	}
	if o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("Concurrency %d is negative", o.Concurrency))
	}
	if o.Concurrency > 0 && o.Transport != nil {
		errs = append(errs, errors.New("Concurrency sizes the default transport; with Transport set, size your own"))
	}
	if o.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout %s is negative", o.RequestTimeout))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout %s is negative", o.Timeout))
	}
	if o.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d is negative", o.MaxAttempts))
	}
	if o.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("MaxBackoff %s is negative", o.MaxBackoff))
	}
	errs = append(errs, o.checkObjectOptions()...)
	for i, fn := range o.OptFns {
		if fn == nil {
			errs = append(errs, fmt.Errorf("OptFns[%d] is nil", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("s3store: %w: S3Options: %w", bucket.ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// NewS3Client builds an S3 client from opts (nil means defaults; see
// S3Options). It validates every option and reports all problems at once,
// wrapped around bucket.ErrInvalid. It loads the SDK's shared
// configuration (environment, config files) for what opts leave unset, so
// ctx bounds that; no request is sent to the endpoint.
func NewS3Client(ctx context.Context, opts *S3Options) (*s3.Client, error) {
	o, err := resolveOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := o.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	// Through cfg rather than an option function, so that the SDK still
	// applies its defaults (dial and TLS timeouts) to a buildable client.
	cfg.HTTPClient = o.httpClient()
	client := s3.NewFromConfig(cfg, append([]func(*s3.Options){o.apply}, o.OptFns...)...)
	if err := checkSharedEndpoint(&o, client); err != nil {
		return nil, err
	}
	return client, nil
}

// resolveOptions returns a copy of opts (nil: the zero value), validated,
// with Cairn's bounds in place of zero durations.
func resolveOptions(opts *S3Options) (S3Options, error) {
	var o S3Options
	if opts != nil {
		o = *opts
	}
	if err := o.validate(); err != nil {
		return o, err
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return o, nil
}

// loadConfig loads the SDK's shared configuration for what o leaves unset,
// requires a region, and makes the credentials quiet (quietCredentials).
func (o *S3Options) loadConfig(ctx context.Context) (aws.Config, error) {
	// The SDK would print some warnings (the instance-metadata fallback of
	// the credential chain) to stderr; a library returns errors instead,
	// and logs only when asked to (Debug).
	// Debug's request log is the S3 client's alone (apply): the credential
	// chain's own clients (SSO, STS, instance metadata) log nothing, since
	// their requests and answers carry tokens and credentials.
	load := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return cfg, fmt.Errorf("s3store: load the AWS shared configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, fmt.Errorf("s3store: %w: S3Options: no Region, and none in AWS_REGION or the shared config file", bucket.ErrInvalid)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = quietCredentials{
			CredentialsProvider: cfg.Credentials,
			instanceRole:        aws.IsCredentialsProvider(cfg.Credentials, &ec2rolecreds.Provider{}),
		}
	}
	return cfg, nil
}

// httpClient returns the HTTP client of o: around o.Transport if set,
// else the SDK's, with its pool sized to o.Concurrency; either way
// bounding each attempt by o.RequestTimeout.
func (o *S3Options) httpClient() aws.HTTPClient {
	if o.Transport != nil {
		return &http.Client{
			Transport:     o.Transport,
			Timeout:       o.RequestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	hc := awshttp.NewBuildableClient()
	if n := o.Concurrency; n > 0 {
		hc = hc.WithTransportOptions(func(tr *http.Transport) {
			tr.MaxConnsPerHost = n
			tr.MaxIdleConnsPerHost = n
			if tr.MaxIdleConns != 0 && tr.MaxIdleConns < n {
				tr.MaxIdleConns = n
			}
		})
	}
	return hc.WithTimeout(o.RequestTimeout)
}

// apply sets the client options o names; OptFns run after it.
func (o *S3Options) apply(so *s3.Options) {
	so.APIOptions = append(so.APIOptions, callDeadline(o.Timeout))
	if o.Debug {
		so.Logger, so.ClientLogMode = sdkLogger{o.logger()}, debugLogMode
	}
	if o.Endpoint != "" {
		so.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.PathStyle {
		so.UsePathStyle = true
	}
	if o.MaxAttempts > 0 {
		so.RetryMaxAttempts = o.MaxAttempts
	}
	if o.MaxBackoff > 0 {
		// Wrapped here, before the SDK wraps the result for
		// RetryMaxAttempts, so both bounds hold.
		so.Retryer = retry.AddWithMaxBackoffDelay(so.Retryer, o.MaxBackoff)
	}
	if w := o.objectHeaders(); w != nil {
		so.APIOptions = append(so.APIOptions, w.middleware())
	}
	if o.ChecksumWhenRequired {
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
}

// checkSharedEndpoint checks an endpoint client got from the environment
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) or the shared config file
// (endpoint_url, a services section) as one given in o is: the SDK would
// repeat a bad one, credentials and all.
func checkSharedEndpoint(o *S3Options, client *s3.Client) error {
	ep := client.Options().BaseEndpoint
	if o.Endpoint != "" || ep == nil || *ep == "" {
		return nil
	}
	if err := CheckEndpoint(*ep); err != nil {
		return fmt.Errorf("s3store: %w: the endpoint from the environment or the shared config: %w", bucket.ErrInvalid, err)
	}
	return nil
}

// quietCredentials is a credentials provider whose errors never carry
// what a credential process printed: the SDK quotes the output of a
// credential_process it cannot parse, secret key and all.
type quietCredentials struct {
	aws.CredentialsProvider
	// instanceRole: the provider is the instance role's, where the SDK's
	// default chain ends when nothing else is configured, so that its
	// failure means that no credentials were found (s3Classify).
	instanceRole bool
}

func (q quietCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := q.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		err = &credentialsError{err: err, instanceRole: q.instanceRole}
	}
	return c, err
}

// credentialsError is a failure to get credentials, its message cut before
// any output of a credential process. The provider's error stays in the
// chain for errors.As; print this one, not its cause.
type credentialsError struct {
	err          error
	instanceRole bool // see quietCredentials
}

func (e *credentialsError) Error() string {
	msg := e.err.Error()
	if i := strings.Index(msg, "output:"); i >= 0 {
		msg = msg[:i] + "output: (not shown: it may hold a secret)"
	}
	return msg
}

func (e *credentialsError) Unwrap() error { return e.err }

// ErrEndpoint is the cause of every refusal of an endpoint URL by
// CheckEndpoint (wrapped in bucket.ErrInvalid by NewS3Client).
var ErrEndpoint = errors.New("s3store: invalid endpoint")

// CheckEndpoint returns nil if endpoint is a usable base URL of an S3
// server: http:// or https://, a host and an optional port, nothing else
// (no user info, path, query or fragment). Its errors wrap ErrEndpoint and
// never repeat the endpoint, which may hold credentials.
func CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return fmt.Errorf("%w: not a URL (want http:// or https:// and a host, such as http://127.0.0.1:9000)", ErrEndpoint)
	case u.User != nil:
		return fmt.Errorf("%w: holds user info (credentials come from the AWS default chain, never from a URL)", ErrEndpoint)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: want http:// or https:// and a host, such as http://127.0.0.1:9000", ErrEndpoint)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: no host", ErrEndpoint)
	case u.Path != "" && u.Path != "/" || u.RawPath != "":
		return fmt.Errorf("%w: must not have a path (the bucket and prefix go in the store URL)", ErrEndpoint)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%w: must not have a query or a fragment", ErrEndpoint)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("%w: bad port", ErrEndpoint)
		}
	}
	return nil
}

// callDeadline bounds each call made through the client by d, whatever
// the caller's context: the middleware sits in the Initialize step, which
// runs once per call, outside the retry loop. A GetObject's deadline ends
// when its body is closed, so that reading the body is bounded too.
func callDeadline(d time.Duration) func(*middleware.Stack) error {
	mw := middleware.InitializeMiddlewareFunc("cairn.CallDeadline", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		cctx, cancel := context.WithTimeout(ctx, d)
		out, md, err := next.HandleInitialize(cctx, in)
		if err != nil {
			if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
				err = &TimeoutError{Timeout: d, Err: err}
			}
			cancel()
			return out, md, err
		}
		if g, ok := out.Result.(*s3.GetObjectOutput); ok && g.Body != nil {
			g.Body = &cancelOnClose{ReadCloser: g.Body, cancel: cancel, parent: ctx, ctx: cctx, timeout: d}
		} else {
			cancel()
		}
		return out, md, err
	})
	return func(stack *middleware.Stack) error { return stack.Initialize.Add(mw, middleware.Before) }
}

// TimeoutError is the error of a call that S3Options.Timeout cut short
// (not the caller's context). It matches context.DeadlineExceeded.
type TimeoutError struct {
	Timeout time.Duration // S3Options.Timeout
	Err     error         // the SDK's error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer within the S3 call timeout (%s): %v", e.Timeout, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// cancelOnClose ends a call's deadline when its body is closed. A read
// that fails because the deadline passed fails with a *TimeoutError.
type cancelOnClose struct {
	io.ReadCloser
	cancel      context.CancelFunc
	parent, ctx context.Context // the caller's, and the one with the deadline
	timeout     time.Duration
}

func (c *cancelOnClose) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err != nil && err != io.EOF && c.parent.Err() == nil && errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
		err = &TimeoutError{Timeout: c.timeout, Err: fmt.Errorf("%w: %w", context.DeadlineExceeded, err)}
	}
	return n, err
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// ready refuses calls on an S3 that NewS3 was given no client or name.
func (b *S3) ready() error {
	if b == nil || b.client == nil {
		return fmt.Errorf("%w: S3 bucket has no client", bucket.ErrInvalid)
	}
	if b.bucket == "" {
		return fmt.Errorf("%w: S3 bucket has no name", bucket.ErrInvalid)
	}
	return nil
}

// check refuses a call that could not work before anything is sent.
func (b *S3) check(key string) error {
	if err := b.ready(); err != nil {
		return err
	}
	return bucket.CheckKey(key)
}

// s3MaxPrealloc bounds the buffer Get allocates up front from the
// server's Content-Length; larger bodies grow as they arrive.
const s3MaxPrealloc = 64 << 20

// Get implements bucket.Bucket. The body is read in full before Get
// returns and the response is always closed. A body shorter than the
// Content-Length the server announced (a connection cut mid-body) is an
// error, never short data; with checksum validation on (the default), so
// is a body whose checksum does not match. Neither is retried. With
// opts.MaxSize set, an object whose Content-Length exceeds it is refused
// before its body is read, and no more than MaxSize+1 bytes are read from
// a server that announced less.
func (b *S3) Get(ctx context.Context, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	if err := b.check(key); err != nil {
		return nil, &bucket.Error{Op: "get", Key: key, Err: err}
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	return b.get(ctx, "get", in, opts)
}

// get sends in, a GetObject of in.Key, and reads the answer as Get
// documents; op names the operation in errors.
func (b *S3) get(ctx context.Context, op string, in *s3.GetObjectInput, opts *bucket.GetOptions) (*bucket.Object, error) {
	key := aws.ToString(in.Key)
	var o bucket.GetOptions
	if opts != nil {
		o = *opts
	}
	if o.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(o.IfNoneMatch)
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, s3Fail(ctx, op, key, err)
	}
	defer out.Body.Close()

	size := aws.ToInt64(out.ContentLength)
	if out.ContentLength == nil {
		size = -1
	}
	if o.MaxSize > 0 && size > o.MaxSize {
		return nil, &bucket.Error{Op: op, Key: key,
			Err: fmt.Errorf("%w: %d bytes, limit %d", bucket.ErrTooLarge, size, o.MaxSize)}
	}
	var r io.Reader = out.Body
	if o.MaxSize > 0 {
		r = io.LimitReader(out.Body, o.MaxSize+1)
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(min(size, s3MaxPrealloc)))
	}
	// Read to EOF, not just size bytes: the SDK validates the checksum
	// when it sees EOF.
	if _, err := buf.ReadFrom(r); err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			// A body cut short or failing its checksum: damaged in
			// transit. The caller may retry; it never gets the bytes.
			err = fmt.Errorf("%w: %w", bucket.ErrCorrupt, err)
		}
		return nil, s3Fail(ctx, op, key, fmt.Errorf("read body: %w", err))
	}
	body := buf.Bytes()
	n := int64(len(body))
	if o.MaxSize > 0 && n > o.MaxSize {
		return nil, &bucket.Error{Op: op, Key: key,
			Err: fmt.Errorf("%w: more than %d bytes", bucket.ErrTooLarge, o.MaxSize)}
	}
	if size >= 0 && n != size {
		return nil, &bucket.Error{Op: op, Key: key,
			Err: fmt.Errorf("%w: read body: %d bytes, Content-Length %d: %w", bucket.ErrCorrupt, n, size, io.ErrUnexpectedEOF)}
	}
	if body == nil {
		body = []byte{}
	}
	return &bucket.Object{
		Info: bucket.Info{
			Key:          key,
			ETag:         aws.ToString(out.ETag),
			Size:         n,
			LastModified: aws.ToTime(out.LastModified),
			Metadata:     s3Metadata(out.Metadata),
		},
		Body: body,
	}, nil
}

// Put implements bucket.Bucket. Besides what bucket.CheckPut refuses, it
// refuses with ErrInvalid metadata that S3 would alter or reject: values
// with leading or trailing spaces, and more than MaxMetadataSize bytes
// when each key counts with its 11-byte "x-amz-meta-" header prefix.
// body is sent with its Content-Length from
// a seekable reader, so the SDK can sign it, checksum it and rewind it for
// a retry; it is not read after Put returns. If-Match on a key that does
// not exist is ErrPrecondition (S3 answers 404 there). See the type's
// documentation for what ErrPrecondition means after a retry.
func (b *S3) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if err := b.check(key); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	if err := bucket.CheckPut(opts); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	var o bucket.PutOptions
	if opts != nil {
		o = *opts
	}
	// The HTTP transport may still be reading a request body after the
	// response came back (a server may answer a failed precondition
	// before reading the body), so the body is fenced off when Put
	// returns: the caller may reuse its slice at once.
	rd := &s3Body{r: bytes.NewReader(body)}
	defer rd.release()
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		Body:          rd,
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/octet-stream"),
	}
	if o.IfMatch != "" {
		in.IfMatch = aws.String(o.IfMatch)
	}
	if o.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(o.IfNoneMatch)
	}
	if len(o.Metadata) > 0 {
		in.Metadata = o.Metadata // the SDK only reads it
	}
	var optFns []func(*s3.Options)
	if o.IfMatch != "" || o.IfNoneMatch != "" {
		// No "Expect: 100-continue" (the SDK adds it above 2 MB): MinIO
		// then answers a failed precondition in the middle of the body
		// and closes the connection, and Go's transport reports the
		// broken pipe rather than the 412, on every retry. Without it
		// MinIO reads the body and answers 412.
		optFns = append(optFns, func(so *s3.Options) { so.ContinueHeaderThresholdBytes = -1 })
	}
	out, err := b.client.PutObject(ctx, in, optFns...)
	if err != nil {
		ferr := s3Fail(ctx, "put", key, err)
		if o.IfMatch != "" && errors.Is(ferr, bucket.ErrNotFound) {
			ferr = &bucket.Error{Op: "put", Key: key,
				Err: fmt.Errorf("%w: If-Match on a missing key: %w", bucket.ErrPrecondition, err)}
		}
		return "", ferr
	}
	return aws.ToString(out.ETag), nil
}

// Head implements bucket.Bucket. A 404 is ErrNotFound even when it is the
// bucket that is missing: a HEAD response has no body to tell them apart.
func (b *S3) Head(ctx context.Context, key string) (*bucket.Info, error) {
	if err := b.check(key); err != nil {
		return nil, &bucket.Error{Op: "head", Key: key, Err: err}
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s3Fail(ctx, "head", key, err)
	}
	return &bucket.Info{
		Key:          key,
		ETag:         aws.ToString(out.ETag),
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
		Metadata:     s3Metadata(out.Metadata),
	}, nil
}

// Delete implements bucket.Bucket. S3 answers 204 whether or not the key
// existed; a server that answers 404 for a missing key is treated the
// same. A missing bucket is an error.
func (b *S3) Delete(ctx context.Context, key string) error {
	if err := b.check(key); err != nil {
		return &bucket.Error{Op: "delete", Key: key, Err: err}
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		ferr := s3Fail(ctx, "delete", key, err)
		if errors.Is(ferr, bucket.ErrNotFound) {
			return nil
		}
		return ferr
	}
	return nil
}

// List implements bucket.Bucket with one ListObjectsV2 request. A limit of
// 0, below 0 or above 1000 means 1000, as in bucket.Mem. more is the
// server's IsTruncated; a page may hold fewer than limit entries even when
// more follow.
func (b *S3) List(ctx context.Context, prefix, startAfter string, limit int) ([]bucket.Info, bool, error) {
	fail := func(err error) ([]bucket.Info, bool, error) {
		return nil, false, &bucket.Error{Op: "list", Key: prefix, Err: err}
	}
	if err := b.ready(); err != nil {
		return fail(err)
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(b.bucket),
		MaxKeys: aws.Int32(int32(limit)),
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	out, err := b.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, false, s3Fail(ctx, "list", prefix, err)
	}
	infos := make([]bucket.Info, 0, len(out.Contents))
	for _, c := range out.Contents {
		infos = append(infos, bucket.Info{
			Key:          aws.ToString(c.Key),
			ETag:         aws.ToString(c.ETag),
			Size:         aws.ToInt64(c.Size),
			LastModified: aws.ToTime(c.LastModified),
		})
	}
	return infos, aws.ToBool(out.IsTruncated), nil
}

// s3Metadata returns the user metadata the SDK decoded (keys lower-case),
// or nil when there is none, as bucket.Mem does.
func s3Metadata(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// s3Fail wraps err, an error from the SDK or from reading a response,
// in a *bucket.Error, classifying it by HTTP status and S3 error code.
func s3Fail(ctx context.Context, op, key string, err error) error {
	return &bucket.Error{Op: op, Key: key, Err: s3Classify(ctx, err)}
}

// s3AccessCodes are the S3 error codes of a request refused for its
// credentials or their permissions. Forbidden is the code the SDK gives a
// 403 to a HEAD, which has no body to name one. Other 403s (a skewed
// clock, an archived object) are not about the credentials.
var s3AccessCodes = map[string]bool{
	"AccessDenied":          true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"ExpiredToken":          true,
	"InvalidToken":          true,
	"InvalidTokenId":        true, // MinIO: a session token it does not know
	"Forbidden":             true,
}

// s3Classify maps err to the bucket sentinels, keeping err in the chain.
// Context errors are left alone.
func s3Classify(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		// Before the status: the chain may hold the answer of the
		// instance-metadata service, which is not the bucket's.
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case ce.instanceRole:
			return fmt.Errorf("%w: %w", bucket.ErrNoCredentials, err)
		}
		return err
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var sentinel error
	switch {
	case status == http.StatusNotModified:
		sentinel = bucket.ErrNotModified
	case status == http.StatusPreconditionFailed:
		sentinel = bucket.ErrPrecondition
	case status == http.StatusConflict:
		sentinel = bucket.ErrBusy
	case code == "NoSuchBucket":
		sentinel = bucket.ErrNoBucket
	case strings.HasPrefix(code, "kms:") || strings.HasPrefix(code, "KMS."):
		// The KMS refused the key of S3Options.SSEKMSKeyID (MinIO
		// answers a missing key with 404 kms:KeyNotFound): a
		// configuration error, never a missing object, and a Put with
		// If-Match must not take it for one.
	case status == http.StatusNotFound:
		sentinel = bucket.ErrNotFound
	case s3AccessCodes[code]:
		sentinel = bucket.ErrAccessDenied
	case status == 0 && ctx.Err() != nil:
		// No answer from the server, and the context is done: the SDK
		// gave up because of it even if its error does not say so.
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	case status == 0 && s3Unreachable(err):
		sentinel = bucket.ErrUnreachable
	}
	if sentinel != nil {
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	return err
}

// s3Unreachable reports whether err, which came with no answer from the
// server, is a failure to reach it: a host name that did not resolve, or a
// connection that could not be made.
func s3Unreachable(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// s3Body is the seekable request body of a Put. release makes later reads
// fail, so that a transport that still reads after PutObject returned
// never touches the caller's slice again.
type s3Body struct {
	mu       sync.Mutex
	r        *bytes.Reader
	released bool
}

var s3ErrBodyReleased = errors.New("s3store: request body read after Put returned")

func (b *s3Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return 0, s3ErrBodyReleased
	}
	return b.r.Read(p)
}

func (b *s3Body) Seek(offset int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return 0, s3ErrBodyReleased
	}
	return b.r.Seek(offset, whence)
}

func (b *s3Body) release() {
	b.mu.Lock()
	b.released = true
	b.r = nil
	b.mu.Unlock()
}
