package main

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// testLsClaimable checks ls --claimable: runs a live lease holds are left
// out, released ones are back, and it pages with the label selector.
func testLsClaimable(t *testing.T, b backend) {
	c, raw, prefix := b.newCLI(t)
	seedLabeled(c)
	ctx := context.Background()
	d, err := durable.New(raw, &durable.Options{Prefix: strings.TrimSuffix(prefix, "/")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	claim := func(run string) *cairn.Lease {
		l, err := d.Claim(ctx, uuid.MustParse(run), &cairn.ClaimOptions{Owner: "test", Lease: time.Hour})
		if err != nil {
			t.Fatalf("Claim %s: %v", run, err)
		}
		return l
	}
	claim(lab5)
	if err := d.Release(ctx, claim(lab1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--claimable", "--label", "status=running"}, []string{lab3, lab1}},
		{[]string{"--claimable", "--label", "status=running", "--limit", "1"}, []string{lab3, lab1}},
		{[]string{"--claimable"}, []string{lab3, lab2, lab1, lab4}},
		{[]string{"--label", "status=running"}, []string{lab3, lab5, lab1}},
	} {
		if got := lsRuns(t, c, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %s: %v, want %v", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
