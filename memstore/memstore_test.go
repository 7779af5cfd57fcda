package memstore_test

import (
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/memstore"
	"github.com/cairnstore/cairn/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cairn.Store { return memstore.New(nil) })
}
