package s3store

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

// Each parameter of an s3:// URL sets its S3Options field.
func TestOptionsOf(t *testing.T) {
	q := url.Values{
		"endpoint": {"http://127.0.0.1:9000"}, "region": {"eu-west-3"}, "path_style": {"false"},
		"checksum": {"when_required"}, "timeout": {"1m"}, "attempt_timeout": {"5s"},
		"max_attempts": {"7"}, "max_backoff": {"250ms"},
		"sse": {"aws:kms"}, "sse_kms_key_id": {"alias/cairn"}, "sse_bucket_key": {"true"},
		"storage_class": {"STANDARD_IA"}, "tags": {"team:ml ops,url:http://x/y,empty:"},
	}
	for k := range q {
		if _, ok := params[k]; !ok {
			t.Fatalf("%s is not a parameter", k)
		}
	}
	if len(q) != len(params) {
		t.Fatalf("the test sets %d of the %d parameters", len(q), len(params))
	}
	want := S3Options{
		Endpoint: "http://127.0.0.1:9000", Region: "eu-west-3", PathStyle: false, ChecksumWhenRequired: true,
		Timeout: time.Minute, RequestTimeout: 5 * time.Second, MaxAttempts: 7, MaxBackoff: 250 * time.Millisecond,
		SSE: "aws:kms", SSEKMSKeyID: "alias/cairn", SSEBucketKey: true, StorageClass: "STANDARD_IA",
		Tags: map[string]string{"team": "ml ops", "url": "http://x/y", "empty": ""},
	}
	if got := optionsOf(q); !reflect.DeepEqual(*got, want) {
		t.Errorf("optionsOf:\n got %+v\nwant %+v", *got, want)
	}
}
