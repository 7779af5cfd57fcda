package regionsim_test

import (
	"testing"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/bucket/buckettest"
	"github.com/cairnstore/cairn/internal/regionsim"
)

// One site, its changes queued for the other and never delivered, is a
// versioned bucket like any other.
func TestSiteConformance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return regionsim.New(1, 2, nil).Site(0) })
}

func TestSiteVersioned(t *testing.T) {
	buckettest.RunVersioned(t, func(t *testing.T) buckettest.VersionedBucket { return regionsim.New(1, 2, nil).Site(1) })
}
