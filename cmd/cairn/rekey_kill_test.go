package main

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/seal"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// Keys rotated with writers running (a write-back, fenced store in this
// process, with the rotated keyring) while `cairn rekey`, a process of its
// own, is SIGKILLed partway and run again: nothing any writer acknowledged
// is lost, and at the end every object opens with the new key alone.
func TestRekeyKilledWithWritersRunning(t *testing.T) {
	t.Parallel()
	records, ids := sealedRecords(t, 1500)
	kr := newKeyringFile(t, "old")
	dir := t.TempDir()
	store := "file://" + dir
	cairnOK(t, "import", records, "--store", store, "--keyring", kr)
	cairnOK(t, "keyring", "rotate", kr, "--id", "new")
	rotated, err := seal.LoadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	opts := &tiered.Options{Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond, Fencing: true}
	opts.Durable.Keyring = rotated
	w, err := tiered.Open(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	last := map[uuid.UUID]int64{} // the last Save acknowledged (and flushed at the end)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(halt)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[(int(n)*7+g*311)%300] // a fifth of the runs: rekey reseals the rest
				// A fenced worker resumes a run it loaded: its Save is
				// conditional on the version it read.
				if _, err := w.Load(ctx, id); err != nil {
					t.Errorf("Load during rekey: %v", err)
					return
				}
				c := &cairn.Checkpoint{WorkflowName: "sealed-wf", RunID: id, Timestamp: time.Now().UTC(),
					State: map[string]any{"n": n, "g": int64(g)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
				if err := w.Save(ctx, c); err != nil {
					t.Errorf("Save during rekey: %v", err)
					return
				}
				mu.Lock()
				last[id] = n*10 + int64(g)
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}

	// The rekey process, killed once part of the store is resealed.
	cmd := exec.Command(buildDemoBinary(t), "rekey", "--store", store, "--keyring", kr, "--concurrency", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(2 * time.Minute); resealedFiles(t, dir, "new") < 100 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	left := len(unverified(t, dir, kr))
	if left == 0 {
		t.Fatal("the rekey finished before it was killed: make the store larger")
	}

	// Run again, writers still running: it finishes and verifies.
	doc := parseRekey(t, cairnOK(t, "rekey", "--store", store, "--keyring", kr, "--json"))
	halt()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !doc.Verified {
		t.Fatalf("rerun after the kill: %+v", doc)
	}
	// Anything the writers sealed after the rerun's pass is under the new
	// key too (they had the rotated keyring): retire the old one.
	cairnOK(t, "keyring", "retire", kr, "old")
	if bad := unverified(t, dir, kr); len(bad) != 0 {
		t.Fatalf("%d objects the new key alone does not open after the rerun (%d were left by the kill): %v", len(bad), left, bad)
	}
	retired, err := seal.LoadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	opts.Durable.Keyring = retired
	r, err := tiered.Open(ctx, store, &tiered.Options{ReadOnly: true, Durable: opts.Durable})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	for id, v := range last {
		c, err := r.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load %v: %v", id, err)
		}
		if got := c.State["n"].(int64)*10 + c.State["g"].(int64); got != v {
			t.Fatalf("run %v holds save %d, want the last acknowledged, %d", id, got, v)
		}
	}
	if len(last) == 0 {
		t.Fatal("the writers saved nothing")
	}
	t.Logf("%d objects left by the kill, %d runs rewritten by writers meanwhile, %d resealed by the rerun", left, len(last), doc.Resealed)
}

// resealedFiles counts the objects of the directory store at dir whose
// seal names the key id (the directory bucket keeps metadata in each
// file's JSON header, which is read only as far as that).
func resealedFiles(t *testing.T, dir, id string) int {
	t.Helper()
	n := 0
	want := []byte(`"v1.` + id + `.`)
	_ = filepath.WalkDir(filepath.Join(dir, "runs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		head := make([]byte, 2048)
		k, _ := io.ReadFull(f, head)
		if bytes.Contains(head[:k], want) {
			n++
		}
		return nil
	})
	return n
}
