package regionsim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/regionsim"
)

// Two regions cut off from each other both create the same key; once
// healed, the later write wins at both, and the other stays as a
// noncurrent version.
func Example() {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	sim := regionsim.New(1, 2, &regionsim.Options{
		Clock: func(site int) time.Time { return t0 },
		Skew:  []time.Duration{0, time.Second}, // region 1 runs a second ahead
	})
	east, west := sim.Site(0), sim.Site(1)
	create := &bucket.PutOptions{IfNoneMatch: "*"}

	sim.Cut()
	_, errEast := east.Put(ctx, "runs/r1", []byte("east's step 1"), create)
	_, errWest := west.Put(ctx, "runs/r1", []byte("west's step 1"), create)
	fmt.Println("both created:", errEast == nil && errWest == nil)

	sim.Heal()
	sim.Settle()
	converged, _ := sim.Converged("")
	fmt.Println("converged:", converged)
	for _, site := range []*regionsim.Site{east, west} {
		obj, _ := site.Get(ctx, "runs/r1", nil)
		vs, _, _, _, _ := site.ListVersions(ctx, "runs/", "", "", 0)
		fmt.Printf("%s (%d versions)\n", obj.Body, len(vs))
	}
	// Output:
	// both created: true
	// converged: true
	// west's step 1 (2 versions)
	// west's step 1 (2 versions)
}
