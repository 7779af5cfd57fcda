package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return -1
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// percentiles formats p50, p90 and p99 of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  (%d calls)", round(p(0.5)), round(p(0.9)), round(p(0.99)), len(s))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// where says in words where a store URL keeps its data.
func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return bucket.RedactURL(raw)
	}
	switch u.Scheme {
	case "file":
		return "the directory " + u.Path + " (" + bucket.RedactURL(raw) + ")"
	case "s3":
		at := "AWS S3"
		if ep := u.Query().Get("endpoint"); ep != "" {
			at = bucket.RedactURL(ep)
		}
		return fmt.Sprintf("bucket %s, prefix %q, at %s", u.Host, strings.Trim(u.Path, "/"), at)
	}
	return bucket.RedactURL(raw)
}
