package s3store

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/logging"
)

// debugLogMode is what S3Options.Debug logs: each request and response
// (headers only: bodies are checkpoints) and each retry. Not the signing
// details (LogSigning), whose canonical request repeats the session
// token.
const debugLogMode = aws.LogRequest | aws.LogResponse | aws.LogRetries

// sdkLogger is the SDK's logger of a client with S3Options.Debug: every
// entry, redacted, as one record at Debug level. The SDK's own warnings
// (a response without a checksum to validate) go at Debug as well: Cairn
// reports what matters as errors, and they are noise on servers that
// never send checksums.
type sdkLogger struct{ l *slog.Logger }

var _ logging.Logger = sdkLogger{}

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	ctx := context.Background() // the SDK gives its logger no context
	if !s.l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	text := strings.ReplaceAll(fmt.Sprintf(format, v...), "\r\n", "\n")
	s.l.LogAttrs(ctx, slog.LevelDebug, "cairn: s3 client", slog.String("sdk_level", string(c)),
		slog.String("text", redact(text)))
}

// The secrets an HTTP message of the SDK may show: headers whose whole
// value is one (the Authorization header holds the access key ID and the
// signature), and query parameters of presigned URLs.
var (
	secretHeaders = regexp.MustCompile(`(?im)^([a-z0-9_-]*(?:authorization|token|secret|credential|password|cookie|customer-key)[a-z0-9_-]*)[ \t]*:[^\r\n]*`)
	secretParams  = regexp.MustCompile(`(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|credential|` +
		`signature|awsaccesskeyid)=[^&\s,]*`)
)

// redact returns an HTTP message as the SDK logs it (a request or
// response dump, a retry note) with every secret replaced by REDACTED:
// the value of every header whose name speaks of authorization, a token,
// a secret, a credential, a password, a cookie or an SSE-C customer key
// (Authorization, X-Amz-Security-Token, an SSO bearer token, an instance
// metadata token, ...), and of the signature, credential and
// session-token query parameters. It matches
// header names in any case, in "Name: value" and in canonical
// "name:value" form.
func redact(text string) string {
	text = secretHeaders.ReplaceAllString(text, "$1: REDACTED")
	return secretParams.ReplaceAllString(text, "$1=REDACTED")
}

// logger returns the slog.Logger of o's SDK log (Debug): o.Logger, else
// slog.Default().
func (o *S3Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}
