package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairnstore/cairn/durable"
)

// storeOffload returns the offload options of the command's stores:
// --offload, else $CAIRN_OFFLOAD. "" and "off" mean none (values stored
// inline, as without the option; offloaded records are read either way);
// "on" means the default threshold (64 KiB); a size such as 128KiB, 1MiB
// or 65536 is the threshold: a state value at least that large is stored
// once, as content-addressed blobs (see durable.OffloadOptions). import
// then offloads the large values of what it imports, and export always
// writes them inline.
func storeOffload(e *env) (*durable.OffloadOptions, error) {
	v := e.flags.offload
	name := "--offload"
	if v == "" {
		v, name = e.getenv("CAIRN_OFFLOAD"), "CAIRN_OFFLOAD"
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "off":
		return nil, nil
	case "on":
		return &durable.OffloadOptions{}, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return nil, usagef("%s=%q: %v (want on, off, or a size such as 64KiB)", name, v, err)
	}
	if n < 4<<10 {
		return nil, usagef("%s=%q: the threshold must be at least 4KiB", name, v)
	}
	return &durable.OffloadOptions{Threshold: n}, nil
}

// parseSize parses a byte count with an optional unit: B, KiB (or K, KB),
// MiB (or M, MB), GiB (or G, GB), all powers of 1024.
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	n, err := strconv.Atoi(num)
	if err != nil || num == "" {
		return 0, fmt.Errorf("not a size")
	}
	shift := 0
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	if n > (1<<31-1)>>shift {
		return 0, fmt.Errorf("too large")
	}
	return n << shift, nil
}
