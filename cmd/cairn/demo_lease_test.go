package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// A Flush that reports only runs taken over is a lost lease, not a
// failure; one that also reports another error is a failure.
func TestOnlyLostLeases(t *testing.T) {
	run := uuid.New()
	conflict := cairn.WrapOp("flush", run, fmt.Errorf("%w: taken over", cairn.ErrConflict))
	other := errors.New("the bucket is gone")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{cairn.WrapOp("flush", uuid.Nil, errors.Join(nil, conflict)), true},
		{cairn.WrapOp("flush", uuid.Nil, errors.Join(nil, conflict, conflict)), true},
		{cairn.WrapOp("flush", uuid.Nil, errors.Join(other, conflict)), false},
		{cairn.WrapOp("flush", uuid.Nil, other), false},
		{nil, false},
	} {
		if got := onlyLostLeases(tc.err); got != tc.want {
			t.Errorf("onlyLostLeases(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
