package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// This file holds the options every object written through the client
// carries (S3Options.SSE, SSEKMSKeyID, SSEBucketKey, StorageClass, Tags):
// their checks, and the middleware that puts them on each PutObject. The
// checks never repeat a value they refuse, as the checks of URL
// parameters must not (bucket.Scheme).

// S3's limits on object tags.
const (
	maxTags        = 10
	maxTagKeyLen   = 128 // UTF-16 code units, as S3 counts
	maxTagValueLen = 256
)

// tagChars are the characters S3 allows in tag keys and values.
var tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// kmsKeyForms are what SSEKMSKeyID may be: AWS's forms (key ID, a
// multi-Region key ID, alias, key or alias ARN), and a key name as other
// servers' KMS have them (MinIO's: letters, digits, - _ .).
var kmsKeyForms = []*regexp.Regexp{
	regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
	regexp.MustCompile(`^mrk-[0-9a-f]{32}$`),
	regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,256}$`),
	regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]{1,256})$`),
	regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`),
}

// secretShaped is the shape of an AWS secret access key: 40 characters of
// base64. A key name of that shape is refused, so that a secret pasted in
// the wrong place is never taken, nor shown by bucket.RedactURL (which
// shows a parameter's value only when its check passes).
var secretShaped = regexp.MustCompile(`^[A-Za-z0-9/+]{40}$`)

// checkObjectOptions reports every problem with the object options of o.
func (o *S3Options) checkObjectOptions() []error {
	var errs []error
	if err := checkSSE(o.SSE); err != nil {
		errs = append(errs, fmt.Errorf("SSE: %w", err))
	}
	kms := o.SSE == s3types.ServerSideEncryptionAwsKms || o.SSE == s3types.ServerSideEncryptionAwsKmsDsse
	if o.SSEKMSKeyID != "" {
		if !kms {
			errs = append(errs, errors.New("SSEKMSKeyID is set without SSE aws:kms or aws:kms:dsse, the only encryptions that take a key"))
		}
		if err := checkKMSKeyID(o.SSEKMSKeyID); err != nil {
			errs = append(errs, fmt.Errorf("SSEKMSKeyID: %w", err))
		}
	}
	if o.SSEBucketKey && o.SSE != s3types.ServerSideEncryptionAwsKms {
		errs = append(errs, errors.New("SSEBucketKey is set without SSE aws:kms (S3 Bucket Keys serve SSE-KMS alone, not dual-layer)"))
	}
	if err := checkStorageClass(o.StorageClass); err != nil {
		errs = append(errs, fmt.Errorf("StorageClass: %w", err))
	}
	if err := checkTags(tagsOf(o.Tags), " (in key order)"); err != nil {
		errs = append(errs, fmt.Errorf("Tags: %w", err))
	}
	return errs
}

// checkSSE accepts the server-side encryptions a writer may ask for, and
// none ("").
func checkSSE(v s3types.ServerSideEncryption) error {
	switch v {
	case "", s3types.ServerSideEncryptionAes256, s3types.ServerSideEncryptionAwsKms, s3types.ServerSideEncryptionAwsKmsDsse:
		return nil
	}
	return errors.New("want AES256 (SSE-S3), aws:kms (SSE-KMS) or aws:kms:dsse (dual-layer SSE-KMS)")
}

func checkKMSKeyID(v string) error {
	if len(v) > 2048 || secretShaped.MatchString(v) {
		return errors.New("not a KMS key ID, key ARN, alias or key name (it has the shape of a secret access key)")
	}
	for _, form := range kmsKeyForms {
		if form.MatchString(v) {
			return nil
		}
	}
	return errors.New("not a KMS key ID, key ARN, alias or key name (letters, digits and - _ .)")
}

// checkStorageClass accepts the SDK's storage classes, but for those whose
// objects cannot be read without a restore, and none ("").
func checkStorageClass(v s3types.StorageClass) error {
	switch {
	case v == "":
		return nil
	case v == s3types.StorageClassGlacier || v == s3types.StorageClassDeepArchive:
		return fmt.Errorf("%s objects cannot be read before a restore, and Cairn reads what it writes (GLACIER_IR can be read at once)", v)
	case !slices.Contains(s3types.StorageClass("").Values(), v):
		return errors.New("not a storage class S3 knows (STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, REDUCED_REDUNDANCY...)")
	}
	return nil
}

// A tag is one object tag, with its position in what the user gave (from
// 1), by which errors name it.
type tag struct {
	pos        int
	key, value string
}

// tagsOf returns the tags of m in key order.
func tagsOf(m map[string]string) []tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]tag, len(keys))
	for i, k := range keys {
		tags[i] = tag{pos: i + 1, key: k, value: m[k]}
	}
	return tags
}

// checkTags reports every problem with tags against S3's limits, naming
// each tag by its position (order says in what order, for the message),
// never by its key or value.
func checkTags(tags []tag, order string) error {
	var errs []error
	if len(tags) > maxTags {
		errs = append(errs, fmt.Errorf("%d tags; S3 allows at most %d on an object", len(tags), maxTags))
	}
	first := map[string]int{}
	for _, t := range tags {
		fail := func(msg string) { errs = append(errs, fmt.Errorf("tag %d%s: %s", t.pos, order, msg)) }
		switch {
		case t.key == "":
			fail("empty key")
		case utf16Len(t.key) > maxTagKeyLen:
			fail(fmt.Sprintf("key longer than %d characters", maxTagKeyLen))
		case strings.HasPrefix(strings.ToLower(t.key), "aws:"):
			fail(`key starts with "aws:", which AWS reserves for its own tags`)
		case !tagChars.MatchString(t.key):
			fail("key holds a character S3 refuses (allowed: letters, digits, spaces and + - = . _ : / @)")
		}
		switch {
		case utf16Len(t.value) > maxTagValueLen:
			fail(fmt.Sprintf("value longer than %d characters", maxTagValueLen))
		case !tagChars.MatchString(t.value):
			fail("value holds a character S3 refuses (allowed: letters, digits, spaces and + - = . _ : / @)")
		}
		if p, dup := first[t.key]; dup {
			fail(fmt.Sprintf("same key as tag %d", p))
		} else {
			first[t.key] = t.pos
		}
	}
	return errors.Join(errs...)
}

// utf16Len is the length of s in UTF-16 code units, in which S3 counts
// the length of tags.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// encodeTags returns tags as the x-amz-tagging header wants them: a URL
// query, key=value pairs joined by &, each part percent-encoded (a space
// as %20, never +, which a server may take for a literal +), in key
// order so that the same tags always give the same header.
func encodeTags(m map[string]string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var b strings.Builder
	for i, t := range tagsOf(m) {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(esc(t.key) + "=" + esc(t.value))
	}
	return b.String()
}

// objectHeaders are the object options of an S3Options, as every
// PutObject through the client carries them.
type objectHeaders struct {
	sse       s3types.ServerSideEncryption
	kmsKeyID  string
	bucketKey bool
	class     s3types.StorageClass
	tagging   string // encodeTags of the tags
}

// objectHeaders returns the object options of o, or nil when it sets
// none. o is valid.
func (o *S3Options) objectHeaders() *objectHeaders {
	if o.SSE == "" && o.StorageClass == "" && len(o.Tags) == 0 {
		return nil
	}
	return &objectHeaders{sse: o.SSE, kmsKeyID: o.SSEKMSKeyID, bucketKey: o.SSEBucketKey,
		class: o.StorageClass, tagging: encodeTags(o.Tags)}
}

// middleware puts h on every PutObject sent through the client. It sits
// first in the Initialize step, before the SDK validates and serializes
// the input, and once per call: every retry sends the same headers.
func (h *objectHeaders) middleware() func(*middleware.Stack) error {
	mw := middleware.InitializeMiddlewareFunc("cairn.ObjectHeaders", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if p, ok := in.Parameters.(*s3.PutObjectInput); ok {
			in.Parameters = h.fill(p)
		}
		return next.HandleInitialize(ctx, in)
	})
	return func(stack *middleware.Stack) error { return stack.Initialize.Add(mw, middleware.Before) }
}

// fill returns a copy of p (the caller's, left as it is) with h's
// options where p sets none. The encryption options go as one: a call
// that names any encryption of its own (SSE-C included) keeps its own.
func (h *objectHeaders) fill(p *s3.PutObjectInput) *s3.PutObjectInput {
	c := *p
	if c.ServerSideEncryption == "" && c.SSEKMSKeyId == nil && c.BucketKeyEnabled == nil && c.SSECustomerAlgorithm == nil {
		c.ServerSideEncryption = h.sse
		if h.kmsKeyID != "" {
			c.SSEKMSKeyId = aws.String(h.kmsKeyID)
		}
		if h.bucketKey {
			c.BucketKeyEnabled = aws.Bool(true)
		}
	}
	if c.StorageClass == "" {
		c.StorageClass = h.class
	}
	if c.Tagging == nil && h.tagging != "" {
		c.Tagging = aws.String(h.tagging)
	}
	return &c
}
