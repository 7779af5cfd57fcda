package s3store

import (
	"strings"
	"testing"
)

// redact hides every secret an SDK log entry may hold, in any case and
// form, and keeps the rest.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ name, in, secret, keep string }{
		{"authorization", "PUT /b/k HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKID1/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc123\r\nHost: h\r\n",
			"AKID1", "Host: h"},
		{"signature", "Authorization: AWS4-HMAC-SHA256 Signature=abc123\n", "abc123", "Authorization: REDACTED"},
		{"session token", "X-Amz-Security-Token: tok/en+1\r\nX-Amz-Date: 20240101T000000Z\r\n", "tok/en+1", "X-Amz-Date: 20240101T000000Z"},
		{"canonical form", "host:h\nx-amz-security-token:tok2\nx-amz-date:d\n", "tok2", "x-amz-date:d"},
		{"presigned", "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID3%2F2024&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok3&x-id=GetObject HTTP/1.1",
			"AKID3", "x-id=GetObject"},
		{"presigned signature", "GET /b/k?X-Amz-Signature=deadbeef&X-Amz-Expires=60", "deadbeef", "X-Amz-Expires=60"},
		{"presigned token", "GET /b/k?x-amz-security-token=tok4 HTTP/1.1", "tok4", "HTTP/1.1"},
		{"sse-c key", "X-Amz-Server-Side-Encryption-Customer-Key: c2VjcmV0\r\n", "c2VjcmV0", "Customer-Key: REDACTED"},
		{"cookie", "Set-Cookie: session=s3cr3t\r\n", "s3cr3t", "Set-Cookie: REDACTED"},
		{"proxy", "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n", "dXNlcjpwYXNz", "Proxy-Authorization: REDACTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redact(tc.in)
			if strings.Contains(got, tc.secret) {
				t.Errorf("redact(%q) = %q shows %q", tc.in, got, tc.secret)
			}
			if !strings.Contains(got, tc.keep) {
				t.Errorf("redact(%q) = %q lost %q", tc.in, got, tc.keep)
			}
		})
	}
}
