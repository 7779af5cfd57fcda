package s3store_test

// Review (review1) of what store URL errors repeat. Tests named
// TestR1Defect* fail on purpose: each documents a defect, with what is
// expected in its comment.

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/bucket"
)

// awsDocSecret is the example secret access key of AWS's documentation:
// 40 characters of base64, as every secret access key.
const awsDocSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

// r1Shows reports whether s holds awsDocSecret, as it is or escaped as
// in a URL query.
func r1Shows(s string) bool {
	return strings.Contains(s, awsDocSecret) || strings.Contains(s, url.QueryEscape(awsDocSecret))
}

// checkKMSKeyID (objectopts.go) says that "a secret pasted in its place is
// likely to hold another character (+, for one), and is refused". A
// secret access key is 40 characters of base64 ([A-Za-z0-9+/]); one
// without a '+' (about half of them: (63/64)^40 = 53%; AWS's own example
// is one) passes the check, so RedactURL shows it, and so does the error
// of a URL refused for another reason: here sse_kms_key_id without sse,
// a likely mistake of someone pasting credentials into the URL.
//
// Expected: the refusal does not print the secret. Fix: accept as a KMS
// key only the forms KMS defines (a key ID 1234abcd-12ab-..., mrk-<hex>,
// alias/name, arn:...:kms:...:key/... or :alias/...) and other servers'
// key names without '/', or let RedactURL show sse_kms_key_id only in
// those forms.
func TestR1DefectRedactURLShowsSecretPastedAsKMSKey(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "fake")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	raw := "s3://b/p?region=us-east-1&sse_kms_key_id=" + awsDocSecret
	if got := bucket.RedactURL(raw); r1Shows(got) {
		t.Errorf("RedactURL shows the secret: %s", got)
	}
	_, err := bucket.OpenURL(context.Background(), raw, nil)
	if !errors.Is(err, bucket.ErrInvalid) {
		t.Fatalf("sse_kms_key_id without sse: %v; want ErrInvalid", err)
	}
	if r1Shows(err.Error()) {
		t.Errorf("the refusal prints the secret:\n%v", err)
	}
}
