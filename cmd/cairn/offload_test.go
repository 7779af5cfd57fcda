package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// import --offload stores the large values of what it imports once, as
// blobs (in a sealed store too); export writes them inline again: the same
// plain records an unoffloaded store exports.
func TestImportOffloadsExportInlines(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for i := range 3 {
		words := make([]string, 30000)
		for j := range words {
			words[j] = fmt.Sprintf("w%d", rng.IntN(100000))
		}
		rec, err := cairn.EncodeJSON(&cairn.Checkpoint{WorkflowName: "big", RunID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprint(i))),
			Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
			State:     map[string]any{"doc": strings.Join(words, " "), "i": int64(i)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(rec)
		b.WriteByte('\n')
	}
	records := filepath.Join(t.TempDir(), "runs.jsonl")
	if err := os.WriteFile(records, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := "file://" + t.TempDir()
	cairnOK(t, "import", records, "--store", plain)
	want := cairnOK(t, "export", "--store", plain)

	kr := newKeyringFile(t, "k1")
	for _, extra := range [][]string{{"--offload", "on"}, {"--offload", "64KiB", "--keyring", kr}} {
		dir := t.TempDir()
		store := "file://" + dir
		cairnOK(t, append([]string{"import", records, "--store", store}, extra...)...)
		blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
		if len(blobs) == 0 {
			t.Fatalf("import %v stored no blobs", extra)
		}
		// Read without --offload: offloaded records read all the same.
		got := cairnOK(t, append([]string{"export", "--store", store}, extra[2:]...)...)
		if got != want {
			t.Fatalf("export of the offloaded store %v differs from the plain one's", extra)
		}
		cairnOK(t, append([]string{"verify", "--store", store}, extra[2:]...)...)
	}
	// A blob lost: verify names the run whose value it held, and exits 1.
	dir := t.TempDir()
	store := "file://" + dir
	cairnOK(t, "import", records, "--store", store, "--offload", "on")
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
	if err := os.Remove(blobs[0]); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := cairnEnv(t, nil, "verify", "--store", store)
	if code != 1 || !strings.Contains(stdout, "blob ") || !strings.Contains(stdout, "missing") {
		t.Fatalf("verify with a blob lost: exit %d\n%s", code, stdout)
	}
	stdout, _, _ = cairnEnv(t, nil, "verify", "--store", store, "--json")
	if !strings.Contains(stdout, `"kind": "blob"`) {
		t.Fatalf("verify --json with a blob lost:\n%s", stdout)
	}
	// gc keeps every blob a run references, and the young ones.
	cairnOK(t, "gc", "--store", store)
	if after, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*")); len(after) != len(blobs)-1 {
		t.Fatalf("gc deleted blobs: %d left of %d", len(after), len(blobs)-1)
	}
	if out := cairnOK(t, "gc", "--store", store, "--json"); !strings.Contains(out, `"blobs": []`) {
		t.Errorf("gc --json without blobs to delete:\n%s", out)
	}
	if _, _, code := cairnEnv(t, nil, "gc", "--store", store, "--blob-grace", "-1h"); code != 2 {
		t.Errorf("gc --blob-grace -1h: exit %d, want 2", code)
	}
	for _, bad := range []string{"3KiB", "lots", "12XB"} {
		_, _, code := cairnEnv(t, nil, "ls", "--store", plain, "--offload", bad)
		if code != 2 {
			t.Errorf("--offload %s: exit %d, want 2", bad, code)
		}
	}
}
