package main

import (
	"strings"
	"testing"
)

// Mistakes in the command line are usage errors (2), failures to reach
// the store failures (1), each one line.
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: cliEnv("AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret-never-printed", "AWS_REGION=us-east-1")}
	for _, tc := range []struct {
		store    string
		code     int
		patterns []string
	}{
		{"ftp://host/x", exitUsage, []string{`^cairn ls: store URL "ftp://host/x": unknown scheme "ftp" \(want file, mem or s3\)\n$`}},
		{"file://host/x", exitUsage, []string{`file URLs name a local path`}},
		{"s3:///prefix", exitUsage, []string{`s3 URL without a bucket`}},
		{"s3://b/p?path_style=maybe", exitUsage, []string{`parameter path_style: want true or false`}},
		{"s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1&path_style=true", exitFailure,
			[]string{`^cairn ls: list: cannot reach the endpoint 127\.0\.0\.1:1: .*connection refused\n$`}},
	} {
		r := c.run("", "ls", "--store", tc.store)
		r.check(t, tc.code, tc.patterns...)
		if strings.Contains(r.stderr, "secret-never-printed") {
			t.Errorf("the secret key was printed: %s", r.stderr)
		}
	}
	if r := c.run("", "ls", "-h"); r.code != exitOK || r.stderr != "" || !strings.Contains(r.stdout, "Usage:\n  cairn ls [flags]\n") || !strings.Contains(r.stdout, "--workflow") {
		t.Errorf("ls -h: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := c.run("", "show", "--store", "mem://", absentRun); r.code != exitNotFound {
		t.Errorf("show on mem://: exit %d: %s", r.code, r.stderr)
	}
}
