package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/seal"
)

// parseRekey parses rekey --json.
func parseRekey(t *testing.T, out string) rekeyJSON {
	t.Helper()
	var doc rekeyJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("rekey --json: %v\n%s", err, out)
	}
	return doc
}

// unverified returns the objects of the store in dir that do not open
// with the primary key of the keyring file kr alone (seal.Verify).
func unverified(t *testing.T, dir, kr string) map[string]error {
	t.Helper()
	raw, err := bucket.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.LoadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := seal.Verify(context.Background(), raw, k, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

// copyFile copies the file at from to a new file in a temporary
// directory, mode 0600, and returns its path.
func copyFile(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(from))
	if err := os.WriteFile(to, must(os.ReadFile(from)), 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// The rotation the help describes: rotate, rekey (verified, JSON that
// parses), retire the old key; every command still reads every run the
// same, with the new key alone, and the old key alone opens nothing.
func TestRekeyRotateRetire(t *testing.T) {
	t.Parallel()
	records, ids := sealedRecords(t, 40)
	kr := newKeyringFile(t, "old")
	oldOnly := copyFile(t, kr)
	dir := t.TempDir()
	store := "file://" + dir
	cairnOK(t, "import", records, "--store", store, "--keyring", kr)
	before := cairnOK(t, "export", "--store", store, "--keyring", kr)
	ls := cairnOK(t, "ls", "--store", store, "--keyring", kr, "--json")

	if _, stderr, code := cairnEnv(t, nil, "rekey", "--store", store); code != exitUsage || !strings.Contains(stderr, "--keyring") {
		t.Errorf("rekey without a keyring: exit %d, %q; want a usage error naming --keyring", code, stderr)
	}
	cairnOK(t, "keyring", "rotate", kr, "--id", "new")
	if len(unverified(t, dir, kr)) == 0 {
		t.Fatal("before rekey, every object opens with the new key alone: the test proves nothing")
	}
	doc := parseRekey(t, cairnOK(t, "rekey", "--store", store, "--keyring", kr, "--json"))
	if !doc.Verified || doc.Primary != "new" || doc.Objects <= len(ids) || doc.Resealed != doc.Objects || doc.Current != 0 || len(doc.Failed) != 0 || len(doc.Unverified) != 0 || doc.Stopped {
		t.Fatalf("rekey: %+v", doc)
	}
	if bad := unverified(t, dir, kr); len(bad) != 0 {
		t.Fatalf("after rekey, objects the new key alone does not open: %v", bad)
	}
	// Again: nothing to do, said in text.
	text := cairnOK(t, "rekey", "--store", store, "--keyring", kr)
	if !regexp.MustCompile(`^rekeyed \d+ objects to key new: 0 resealed, \d+ already current, 0 failed\nverified: every object opens with key new alone`).MatchString(text) {
		t.Errorf("rekey again:\n%s", text)
	}

	cairnOK(t, "keyring", "retire", kr, "old")
	if got := cairnOK(t, "export", "--store", store, "--keyring", kr); got != before {
		t.Errorf("export after rotate, rekey and retire differs:\n%s\nwant\n%s", got, before)
	}
	if got := cairnOK(t, "ls", "--store", store, "--keyring", kr, "--json"); got != ls {
		t.Errorf("ls after rotate, rekey and retire:\n%s\nwant\n%s", got, ls)
	}
	cairnOK(t, "show", ids[7].String(), "--store", store, "--keyring", kr)
	cairnOK(t, "verify", "--store", store, "--keyring", kr)
	_, stderr, code := cairnEnv(t, nil, "show", ids[7].String(), "--store", store, "--keyring", oldOnly)
	if code != exitFailure || !strings.Contains(stderr, "hint: the store holds objects sealed with a key that the keyring lacks") {
		t.Errorf("show with the retired key alone: exit %d, %q", code, stderr)
	}
}

// A rekey stopped partway (its context cancelled, as by SIGINT or
// SIGTERM) exits 130 or 143 and says how far it got; the store reads the
// same meanwhile, and a rerun finishes the job: verified, nothing lost,
// and the old key can go.
func TestRekeyStoppedThenRerun(t *testing.T) {
	t.Parallel()
	records, _ := sealedRecords(t, 300)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{{"SIGINT", syscall.SIGINT, 130}, {"SIGTERM", syscall.SIGTERM, 143}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kr := newKeyringFile(t, "old")
			dir := t.TempDir()
			store := "file://" + dir
			cairnOK(t, "import", records, "--store", store, "--keyring", kr)
			before := cairnOK(t, "export", "--store", store, "--keyring", kr)
			cairnOK(t, "keyring", "rotate", kr, "--id", "new")

			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			stopAt := 0
			stdout, stderr, code := cairnCtx(ctx, t, nil, func(done, total int) {
				if stopAt == 0 {
					stopAt = total / 3
				}
				if done == stopAt {
					cancel(&stopped{sig: tc.sig})
				}
			}, "rekey", "--store", store, "--keyring", kr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if stderr != "cairn rekey: interrupted by "+tc.name+"\n" {
				t.Errorf("stderr %q", stderr)
			}
			if !regexp.MustCompile(`^stopped after \d+ of \d+ objects \(\d+ resealed, 0 already under key new\): run cairn rekey again to finish\n$`).MatchString(stdout) {
				t.Errorf("stdout %q", stdout)
			}
			bad := unverified(t, dir, kr)
			if len(bad) == 0 {
				t.Fatal("every object is under the new key: the rekey was not stopped partway")
			}
			if got := cairnOK(t, "export", "--store", store, "--keyring", kr); got != before {
				t.Fatal("export after the stopped rekey differs from before")
			}

			doc := parseRekey(t, cairnOK(t, "rekey", "--store", store, "--keyring", kr, "--json"))
			if !doc.Verified || doc.Current == 0 || doc.Resealed < len(bad) || doc.Resealed+doc.Current != doc.Objects {
				t.Fatalf("rerun: %+v; want verified, resuming (%d objects left)", doc, len(bad))
			}
			cairnOK(t, "keyring", "retire", kr, "old")
			if bad := unverified(t, dir, kr); len(bad) != 0 {
				t.Fatalf("after the rerun, objects the new key alone does not open: %v", bad)
			}
			if got := cairnOK(t, "export", "--store", store, "--keyring", kr); got != before {
				t.Error("export after the rerun and retire differs from before")
			}
		})
	}
}

// Objects that rekey cannot reseal (sealed with a key the keyring lacks,
// not sealed) are listed with why, in text and JSON; it exits 1, with the
// hint of the keyring, and the store is not verified.
func TestRekeyReportsWhatItCannotReseal(t *testing.T) {
	t.Parallel()
	records, _ := sealedRecords(t, 5)
	kr := newKeyringFile(t, "mine")
	dir := t.TempDir()
	store := "file://" + dir
	cairnOK(t, "import", records, "--store", store, "--keyring", kr)
	raw, err := bucket.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := seal.LoadKeyring(newKeyringFile(t, "foreign"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := seal.Wrap(raw, foreign).Put(ctx, "strays/foreign", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, "strays/plain", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	cairnOK(t, "keyring", "rotate", kr, "--id", "next")

	stdout, stderr, code := cairnEnv(t, nil, "rekey", "--store", store, "--keyring", kr, "--json")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	doc := parseRekey(t, stdout)
	if doc.Verified || len(doc.Failed) != 2 || doc.Failed[0].Key != "strays/foreign" || doc.Failed[1].Key != "strays/plain" ||
		!strings.Contains(doc.Failed[0].Detail, "not in the keyring") || !strings.Contains(doc.Failed[1].Detail, "not sealed") ||
		doc.Resealed != doc.Objects-2 {
		t.Errorf("rekey --json: %+v", doc)
	}
	if !regexp.MustCompile(`^cairn rekey: 2 objects of \d+ not under key next alone \(listed on stdout\).*\ncairn rekey: hint: .*key that the keyring lacks.*--keyring.*\n$`).MatchString(stderr) {
		t.Errorf("stderr %q", stderr)
	}
	text, _, code := cairnEnv(t, nil, "rekey", "--store", store, "--keyring", kr)
	if code != exitFailure || !regexp.MustCompile(`(?m)^failed      strays/foreign: .*not in the keyring.*\nfailed      strays/plain: .*not sealed.*\nnot verified: keep every key`).MatchString(text) {
		t.Errorf("rekey: exit %d\n%s", code, text)
	}
	if _, stderr, code := cairnEnv(t, nil, "rekey", "--store", "file://"+filepath.Join(dir, "nope"), "--keyring", kr); code != exitFailure || !strings.Contains(stderr, "does not exist") {
		t.Errorf("rekey of a store that does not exist: exit %d, %q", code, stderr)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use: the progress
// bar draws from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// With stderr a terminal, rekey draws progress.go's bar (the count of
// the total, the rate, the time left) while it works, and erases it;
// stdout gets the report alone.
func TestRekeyProgressBar(t *testing.T) {
	t.Parallel()
	records, _ := sealedRecords(t, 20)
	kr := newKeyringFile(t, "old")
	store := "file://" + t.TempDir()
	cairnOK(t, "import", records, "--store", store, "--keyring", kr)
	cairnOK(t, "keyring", "rotate", kr, "--id", "new")
	var stdout bytes.Buffer
	var stderr lockedBuffer
	drawn := false
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, tty: true, getenv: func(string) string { return "" },
		rekeyProgress: func(done, total int) {
			if done != total/2 {
				return
			}
			// Wait (not for a time: for the bar) until the bar shows
			// the count of the total.
			want := fmt.Sprintf("/%d objects", total)
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if s := stderr.String(); strings.Contains(s, "rekeying") && strings.Contains(s, want) {
					drawn = true
					return
				}
			}
		}}
	if code := run(context.Background(), e, []string{"rekey", "--store", store, "--keyring", kr}); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !drawn {
		t.Errorf("no progress bar drawn on a terminal: %q", stderr.String())
	}
	if !strings.HasSuffix(stderr.String(), erase) {
		t.Errorf("the bar was not erased: %q", stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "rekeyed ") {
		t.Errorf("stdout %q", stdout.String())
	}
}
