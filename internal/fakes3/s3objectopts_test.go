package fakes3_test

// Tests of s3store's options that every object written through the
// client carries (SSE, SSEKMSKeyID, SSEBucketKey, StorageClass, Tags), of
// retries (MaxAttempts, MaxBackoff), and of their URL parameters. Without
// Docker they run over gofakes3 behind a handler that records the headers
// of every PUT; they live in this module so that gofakes3 stays out of the
// library's go.mod. s3store's TestS3MinIO/ObjectOptions and
// TestS3EncryptionMinIO check what a real server stored.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/fakes3"
	"github.com/cairnstore/cairn/internal/s3check"
	"github.com/cairnstore/cairn/s3store"
)

// The headers the object options become.
const (
	hSSE       = "X-Amz-Server-Side-Encryption"
	hKMSKey    = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
	hBucketKey = "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"
	hClass     = "X-Amz-Storage-Class"
	hTagging   = "X-Amz-Tagging"
)

var s3ObjectHeaders = []string{hSSE, hKMSKey, hBucketKey, hClass, hTagging}

// s3Put is a PUT that reached the server: its key and headers.
type s3Put struct {
	key    string
	header http.Header
}

// s3Recorder records every PUT that reaches the server it wraps, and
// fails the first failPuts of them with 503.
type s3Recorder struct {
	mu       sync.Mutex
	puts     []s3Put
	failPuts int
}

func (r *s3Recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut {
			r.mu.Lock()
			r.puts = append(r.puts, s3Put{key: strings.TrimPrefix(req.URL.Path, "/"+fakes3.Bucket+"/"), header: req.Header.Clone()})
			fail := r.failPuts > 0
			if fail {
				r.failPuts--
			}
			r.mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>`)
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}

// take returns the PUTs recorded since the last take.
func (r *s3Recorder) take() []s3Put {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.puts
	r.puts = nil
	return p
}

func (r *s3Recorder) fail(n int) {
	r.mu.Lock()
	r.failPuts = n
	r.mu.Unlock()
}

// s3Recorded starts gofakes3 behind a recorder and returns a client of it
// built with the options mod sets.
func s3Recorded(t *testing.T, mod func(*s3store.S3Options)) (*s3.Client, *s3Recorder) {
	t.Helper()
	rec := &s3Recorder{}
	o := &s3store.S3Options{Endpoint: fakes3.Server(t, rec.wrap), Region: "us-east-1", PathStyle: true, Credentials: s3Static}
	if mod != nil {
		mod(o)
	}
	c, err := s3store.NewS3Client(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

const s3KeyARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// s3Tags holds every character class S3 allows, each needing a different
// escape in the header.
var s3Tags = map[string]string{"team": "ml ops", "path": "a/b+c=d@e:f_g.h-i", "é": "ü", "empty": ""}

// The x-amz-tagging header of s3Tags: key order, %20 for a space.
const s3Tagging = "empty=&path=a%2Fb%2Bc%3Dd%40e%3Af_g.h-i&team=ml%20ops&%C3%A9=%C3%BC"

var s3OptionCases = []struct {
	name string
	mod  func(*s3store.S3Options)
	want map[string]string // header: value; the other object headers absent
}{
	{"None", nil, nil},
	{"SSE-S3", func(o *s3store.S3Options) { o.SSE = "AES256" }, map[string]string{hSSE: "AES256"}},
	{"SSE-KMS", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID, o.SSEBucketKey = "aws:kms", s3KeyARN, true },
		map[string]string{hSSE: "aws:kms", hKMSKey: s3KeyARN, hBucketKey: "true"}},
	{"SSE-KMS-DefaultKey", func(o *s3store.S3Options) { o.SSE = s3types.ServerSideEncryptionAwsKms },
		map[string]string{hSSE: "aws:kms"}},
	{"DSSE-KMS", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "aws:kms:dsse", "alias/cairn" },
		map[string]string{hSSE: "aws:kms:dsse", hKMSKey: "alias/cairn"}},
	{"StorageClass", func(o *s3store.S3Options) { o.StorageClass = s3types.StorageClassStandardIa },
		map[string]string{hClass: "STANDARD_IA"}},
	{"Tags", func(o *s3store.S3Options) { o.Tags = s3Tags }, map[string]string{hTagging: s3Tagging}},
	{"All", func(o *s3store.S3Options) {
		o.SSE, o.SSEKMSKeyID, o.StorageClass, o.Tags = "aws:kms", "k1", "ONEZONE_IA", map[string]string{"a": "1"}
	}, map[string]string{hSSE: "aws:kms", hKMSKey: "k1", hClass: "ONEZONE_IA", hTagging: "a=1"}},
}

// checkObjectHeaders fails t unless every PUT in puts carries exactly the
// object headers of want.
func checkObjectHeaders(t *testing.T, puts []s3Put, want map[string]string) {
	t.Helper()
	for _, p := range puts {
		for _, h := range s3ObjectHeaders {
			if got, ok := p.header[h]; want[h] != "" && (len(got) != 1 || got[0] != want[h]) || want[h] == "" && ok {
				t.Errorf("PUT %s: %s: %q; want %q", p.key, h, got, want[h])
			}
		}
	}
}

// Each option reaches every PutObject as its header, beside the headers
// of a conditional write, which still works.
func TestS3ObjectOptionsReachPut(t *testing.T) {
	for _, tc := range s3OptionCases {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := s3Recorded(t, tc.mod)
			b := s3store.NewS3(c, fakes3.Bucket)
			ctx := s3Ctx(t)
			etag, err := b.Put(ctx, "k", []byte("v1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Put(ctx, "k", []byte("v2"), &bucket.PutOptions{IfNoneMatch: "*"}); !errors.Is(err, bucket.ErrPrecondition) {
				t.Errorf("If-None-Match: * over an existing key: %v; want ErrPrecondition", err)
			}
			if _, err := b.Put(ctx, "k", []byte("v3"), &bucket.PutOptions{IfMatch: etag, Metadata: map[string]string{"m": "1"}}); err != nil {
				t.Errorf("If-Match with the current ETag: %v", err)
			}
			if _, err := b.Put(ctx, "new", []byte("v"), &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
				t.Errorf("If-None-Match: * of a new key: %v", err)
			}
			puts := rec.take()
			if len(puts) != 4 {
				t.Fatalf("%d PUTs reached the server; want 4", len(puts))
			}
			if puts[1].header.Get("If-None-Match") != "*" || puts[2].header.Get("If-Match") != etag {
				t.Errorf("conditional headers lost: %v, %v", puts[1].header, puts[2].header)
			}
			checkObjectHeaders(t, puts, tc.want)
			if tc.name == "Tags" {
				q, err := url.ParseQuery(puts[0].header.Get(hTagging))
				if err != nil {
					t.Fatal(err)
				}
				for k, want := range s3Tags {
					if got := q[k]; len(got) != 1 || got[0] != want {
						t.Errorf("x-amz-tagging decodes %q to %q; want %q", k, got, want)
					}
				}
			}
		})
	}
}

// A PutObject that sets options itself keeps its own (the encryption
// options as one), gets the others, and its input is not modified.
func TestS3ObjectOptionsCallerWins(t *testing.T) {
	c, rec := s3Recorded(t, func(o *s3store.S3Options) {
		o.SSE, o.SSEKMSKeyID, o.SSEBucketKey, o.StorageClass, o.Tags = "aws:kms", "k1", true, "STANDARD_IA", map[string]string{"a": "1"}
	})
	in := &s3.PutObjectInput{Bucket: aws.String(fakes3.Bucket), Key: aws.String("k"), Body: strings.NewReader("v"),
		ServerSideEncryption: "AES256", StorageClass: "STANDARD"}
	if _, err := c.PutObject(s3Ctx(t), in); err != nil {
		t.Fatal(err)
	}
	checkObjectHeaders(t, rec.take(), map[string]string{hSSE: "AES256", hClass: "STANDARD", hTagging: "a=1"})
	if in.Tagging != nil || in.SSEKMSKeyId != nil || in.BucketKeyEnabled != nil {
		t.Errorf("the caller's input was modified: %+v", in)
	}
}

// Every kind of PUT a durable store makes carries the options: run
// objects, claims, index logs, pages, snapshots and head, and the
// probe's objects.
func TestDurableWritesCarryObjectOptions(t *testing.T) {
	want := map[string]string{hSSE: "aws:kms", hKMSKey: s3KeyARN, hBucketKey: "true", hClass: "STANDARD_IA", hTagging: s3Tagging}
	c, rec := s3Recorded(t, func(o *s3store.S3Options) {
		o.SSE, o.SSEKMSKeyID, o.SSEBucketKey, o.StorageClass, o.Tags = "aws:kms", s3KeyARN, true, "STANDARD_IA", s3Tags
	})
	b := s3store.NewS3(c, fakes3.Bucket)
	ctx := s3Ctx(t)

	// gofakes3 fails the probe (it keeps old metadata on overwrite), after
	// the probe's PUTs: those are checked, then the store skips it.
	probed, err := durable.New(b, &durable.Options{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := probed.CheckServer(ctx); !errors.Is(err, durable.ErrUnsafeServer) {
		t.Fatalf("probe of gofakes3: %v; want ErrUnsafeServer", err)
	}
	s3check.WriteAll(t, ctx, b, true)

	puts := rec.take()
	checkObjectHeaders(t, puts, want)
	var keys []string
	conditional := 0
	for _, p := range puts {
		keys = append(keys, p.key)
		if p.header.Get("If-None-Match") != "" || p.header.Get("If-Match") != "" {
			conditional++
		}
	}
	s3check.CheckKinds(t, keys, "p/cairn-probe/tmp/")
	if conditional == 0 {
		t.Error("no conditional PUT among them")
	}
	t.Logf("%d PUTs, %d conditional", len(puts), conditional)
}

// The standard retryer makes MaxAttempts attempts, the first included,
// waiting at most MaxBackoff before each retry; a call that fails them
// all says so.
func TestS3MaxAttempts(t *testing.T) {
	c, rec := s3Recorded(t, func(o *s3store.S3Options) { o.MaxAttempts, o.MaxBackoff = 5, time.Millisecond })
	b := s3store.NewS3(c, fakes3.Bucket)
	ctx := s3Ctx(t)

	rec.fail(4)
	if _, err := b.Put(ctx, "k", []byte("v"), &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatalf("Put after 4 × 503 with 5 attempts: %v", err)
	}
	if n := len(rec.take()); n != 5 {
		t.Errorf("%d attempts; want 5", n)
	}

	rec.fail(5)
	_, err := b.Put(ctx, "k2", []byte("v"), nil)
	var mae *retry.MaxAttemptsError
	if !errors.As(err, &mae) || mae.Attempt != 5 || s3Status(err) != 503 ||
		!strings.Contains(err.Error(), "exceeded maximum number of attempts, 5") || !strings.Contains(err.Error(), "k2") {
		t.Errorf("Put after 5 × 503 with 5 attempts: %v; want the SDK's MaxAttemptsError naming 5 attempts and the key", err)
	}
	if n := len(rec.take()); n != 5 {
		t.Errorf("%d attempts; want 5", n)
	}

	delay := func(r aws.Retryer) (longest time.Duration) {
		for range 50 {
			d, err := r.RetryDelay(12, errors.New("x"))
			if err != nil {
				t.Fatal(err)
			}
			longest = max(longest, d)
		}
		return longest
	}
	if d := delay(c.Options().Retryer); d > time.Millisecond {
		t.Errorf("a backoff of %s with MaxBackoff 1ms", d)
	}
	plain, _ := s3Recorded(t, nil)
	if d := delay(plain.Options().Retryer); d <= time.Second {
		t.Errorf("the longest of 50 backoffs without MaxBackoff is %s; the SDK's bound is 20s", d)
	}
}

// The URL parameters reach the requests: headers on every PUT, and
// max_attempts (with max_backoff keeping the test fast).
func TestS3URLObjectOptions(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "fake")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	rec := &s3Recorder{}
	q := url.Values{
		"endpoint": {fakes3.Server(t, rec.wrap)}, "region": {"us-east-1"},
		"sse": {"aws:kms"}, "sse_kms_key_id": {s3KeyARN}, "sse_bucket_key": {"true"},
		"storage_class": {"STANDARD_IA"}, "tags": {"team:ml ops,path:a/b+c=d@e:f_g.h-i,é:ü,empty:"},
		"max_attempts": {"2"}, "max_backoff": {"1ms"},
	}
	ctx := s3Ctx(t)
	opened, err := bucket.OpenURL(ctx, "s3://"+fakes3.Bucket+"/p?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := opened.Bucket
	if _, err := b.Put(ctx, "k", []byte("v"), &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
	checkObjectHeaders(t, rec.take(), map[string]string{hSSE: "aws:kms", hKMSKey: s3KeyARN, hBucketKey: "true", hClass: "STANDARD_IA", hTagging: s3Tagging})

	rec.fail(1)
	if _, err := b.Put(ctx, "k2", []byte("v"), nil); err != nil {
		t.Errorf("Put after one 503 with max_attempts=2: %v", err)
	}
	rec.fail(2)
	if _, err := b.Put(ctx, "k3", []byte("v"), nil); !strings.Contains(fmt.Sprint(err), "exceeded maximum number of attempts, 2") {
		t.Errorf("Put after two 503s with max_attempts=2: %v; want it to give up after 2", err)
	}
	if n := len(rec.take()); n != 4 {
		t.Errorf("%d attempts; want 2 + 2", n)
	}
}

// Bad object options are refused at NewS3Client, all at once, wrapped
// around ErrInvalid, without repeating what they refuse.
func TestS3ObjectOptionsValidation(t *testing.T) {
	ctx := context.Background()
	const secret = "SECRETxyz"
	base := func() *s3store.S3Options {
		return &s3store.S3Options{Endpoint: "http://127.0.0.1:9", Region: "r", Credentials: s3Static}
	}
	long := func(n int, r string) string { return strings.Repeat(r, n) }
	wide := "\U00020000" // a letter of two UTF-16 code units
	for _, tc := range []struct {
		name string
		mod  func(*s3store.S3Options)
		want []string // in the error; "" for no error
	}{
		{"SSE", func(o *s3store.S3Options) { o.SSE = secret }, []string{"SSE: want AES256"}},
		{"SSEC", func(o *s3store.S3Options) { o.SSE = "aws:fsx" }, []string{"SSE: want AES256"}},
		{"KeyWithoutKMS", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "AES256", "alias/"+secret },
			[]string{"SSEKMSKeyID is set without SSE aws:kms"}},
		{"KeyWithoutSSE", func(o *s3store.S3Options) { o.SSEKMSKeyID = "alias/" + secret }, []string{"SSEKMSKeyID is set without"}},
		{"BadKey", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "aws:kms", secret+"+/=" }, []string{"SSEKMSKeyID: not a KMS key"}},
		{"LongKey", func(o *s3store.S3Options) { o.SSE, o.SSEKMSKeyID = "aws:kms", long(2049, "k") }, []string{"SSEKMSKeyID: not a KMS key"}},
		{"BucketKeyWithoutKMS", func(o *s3store.S3Options) { o.SSE, o.SSEBucketKey = "aws:kms:dsse", true }, []string{"SSEBucketKey is set without SSE aws:kms"}},
		{"Glacier", func(o *s3store.S3Options) { o.StorageClass = "GLACIER" }, []string{"StorageClass: GLACIER objects cannot be read before a restore"}},
		{"DeepArchive", func(o *s3store.S3Options) { o.StorageClass = "DEEP_ARCHIVE" }, []string{"StorageClass: DEEP_ARCHIVE"}},
		{"UnknownClass", func(o *s3store.S3Options) { o.StorageClass = secret }, []string{"StorageClass: not a storage class"}},
		{"LowerCaseClass", func(o *s3store.S3Options) { o.StorageClass = "standard_ia" }, []string{"StorageClass: not a storage class"}},
		{"ElevenTags", func(o *s3store.S3Options) {
			o.Tags = map[string]string{}
			for i := range 11 {
				o.Tags[fmt.Sprint("k", i)] = "v"
			}
		}, []string{"11 tags; S3 allows at most 10"}},
		{"TenTags", func(o *s3store.S3Options) {
			o.Tags = map[string]string{}
			for i := range 10 {
				o.Tags[fmt.Sprint("k", i)] = "v"
			}
		}, []string{""}},
		{"TagLimits", func(o *s3store.S3Options) {
			// In key order: "", "AWS:...", "a...", "b...", "c", "d", "e...".
			o.Tags = map[string]string{
				"":                   "v",
				"AWS:" + secret:      "v",
				"a" + long(128, "k"): "v",
				"b" + secret + "#":   "v",
				"c":                  secret + "!",
				"d":                  long(257, "v"),
				"e" + long(64, wide): "v", // 129 UTF-16 code units
			}
		}, []string{"Tags: tag 1 (in key order): empty key", `tag 2 (in key order): key starts with "aws:"`,
			"tag 3 (in key order): key longer than 128", "tag 4 (in key order): key holds a character",
			"tag 5 (in key order): value holds a character", "tag 6 (in key order): value longer than 256",
			"tag 7 (in key order): key longer than 128"}},
		{"TagsAtLimits", func(o *s3store.S3Options) {
			o.Tags = map[string]string{long(128, "k"): long(256, "v"), long(64, wide): long(128, wide), "x": ""}
		}, []string{""}},
		{"AllAtOnce", func(o *s3store.S3Options) {
			o.SSE, o.StorageClass, o.MaxBackoff, o.Tags = secret, "GLACIER", -time.Second, map[string]string{"aws:x": "y"}
		}, []string{"SSE:", "StorageClass:", "MaxBackoff", "Tags:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.mod(o)
			_, err := s3store.NewS3Client(ctx, o)
			if tc.want[0] == "" {
				if err != nil {
					t.Fatalf("valid options refused: %v", err)
				}
				return
			}
			if !errors.Is(err, bucket.ErrInvalid) {
				t.Fatalf("err %v; want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error repeats the value it refuses:\n%v", err)
			}
		})
	}
}

// Each URL parameter refuses bad values with an error naming the
// parameter and never the value, which RedactURL hides as well.
func TestS3URLObjectParamsRefused(t *testing.T) {
	const secret = "SECRETxyz"
	ctx := context.Background()
	for _, tc := range []struct{ query, want string }{
		{"sse=" + secret, "parameter sse: want AES256"},
		{"sse=aes256", "parameter sse: want AES256"},
		{"sse_kms_key_id=" + secret + "%2B", "parameter sse_kms_key_id: not a KMS key"},
		{"sse_bucket_key=" + secret, "parameter sse_bucket_key: want true or false"},
		{"storage_class=" + secret, "parameter storage_class: not a storage class"},
		{"storage_class=GLACIER", "parameter storage_class: GLACIER objects cannot be read"},
		{"tags=" + secret, "parameter tags: tag 1: want key:value"},
		{"tags=a:1,," + secret + ":x%23", "tag 2: want key:value"},
		{"tags=a:1,b:" + secret + "%21", "tag 2: value holds a character"},
		{"tags=a:1,a:" + secret, "tag 2: same key as tag 1"},
		{"tags=a:1,b:" + strings.Repeat(secret, 30), "tag 2: value longer than 256"},
		{"tags=" + strings.Repeat("k:v,", 10) + "k" + secret + ":v", "11 tags"},
		{"max_attempts=0", "parameter max_attempts: want a positive whole number"},
		{"max_attempts=" + secret, "parameter max_attempts: want a positive whole number"},
		{"max_backoff=-1s", "parameter max_backoff: want a positive Go duration"},
		{"max_backoff=" + secret, "parameter max_backoff: want a positive Go duration"},
		// Checked by NewS3Client, against each other: the values are
		// valid, so the URL in the error shows them.
		{"sse_kms_key_id=alias/k1", "SSEKMSKeyID is set without SSE aws:kms"},
		{"sse=AES256&sse_bucket_key=true", "SSEBucketKey is set without SSE aws:kms"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			raw := "s3://b/p?endpoint=http://127.0.0.1:9&region=us-east-1&" + tc.query
			_, err := bucket.OpenURL(ctx, raw, nil)
			if !errors.Is(err, bucket.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want ErrInvalid saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error repeats the value: %v", err)
			}
			if r := bucket.RedactURL(raw); strings.Contains(r, secret) {
				t.Errorf("RedactURL shows the refused value: %s", r)
			}
		})
	}
}
