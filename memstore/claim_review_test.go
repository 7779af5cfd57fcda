package memstore_test

import (
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/memstore"
	"github.com/cairnstore/cairn/storetest"
)

func TestReviewClaims(t *testing.T) {
	storetest.RunClaimReview(t, func(t *testing.T) cairn.Store { return memstore.New(nil) })
}
