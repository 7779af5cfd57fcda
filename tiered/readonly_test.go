package tiered_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/internal/dirtest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// Opening a directory store that does not exist for reading is an error
// naming it, and creates nothing: a mistyped path is not an empty store.
func TestOpenReadOnlyMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "doesnotexist")
	_, err := tiered.Open(context.Background(), "file://"+root, &tiered.Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, bucket.ErrNoBucket) || !strings.Contains(err.Error(), root) {
		t.Errorf("Open read-only of a missing directory: %v; want fs.ErrNotExist and bucket.ErrNoBucket, naming %s", err, root)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory after a read-only Open: %v, want still missing", err)
	}
}

// ReadOnly contradicts write-back; Durable.ReadOnly makes the tiered store
// read-only as well.
func TestReadOnlyOptions(t *testing.T) {
	if _, err := tiered.New(bucket.NewMem(), &tiered.Options{ReadOnly: true, Mode: tiered.WriteBack}); !errors.Is(err, cairn.ErrInvalid) {
		t.Errorf("ReadOnly with WriteBack: %v, want ErrInvalid", err)
	}
	s, err := tiered.New(bucket.NewMem(), &tiered.Options{Durable: durable.Options{ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Save(context.Background(), cp(uuid.New(), 1)); !errors.Is(err, cairn.ErrReadOnly) {
		t.Errorf("Save on a store whose durable store is read-only: %v, want ErrReadOnly", err)
	}
}

// saveRuns saves n runs with a label, through a write-back store opened on
// url, and returns them.
func saveRuns(t *testing.T, url string, o *tiered.Options, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	w, err := tiered.Open(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	var runs []uuid.UUID
	for i := range n {
		c := cp(uuid.New(), i)
		c.SetLabel("half", map[bool]string{true: "low", false: "high"}[i < n/2])
		if err := w.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, c.RunID)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return runs
}

// checkReadOnly reads runs through s (List, by label, Load twice, Verify)
// and checks that every write fails with ErrReadOnly.
func checkReadOnly(t *testing.T, s *tiered.Store, runs []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	n := 0
	for _, err := range cairn.All(ctx, s, &cairn.ListOptions{Limit: 7}) {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		n++
	}
	if n != len(runs) {
		t.Errorf("List: %d runs, want %d", n, len(runs))
	}
	page, err := s.List(ctx, &cairn.ListOptions{Labels: map[string]string{"half": "low"}})
	if err != nil || len(page.Runs) != len(runs)/2 {
		t.Errorf("List(half=low): %v, %v; want %d runs", page, err, len(runs)/2)
	}
	for range 2 { // the second from the cache
		for i, run := range runs {
			if c, err := s.Load(ctx, run); err != nil || c.State["step"] != int64(i) {
				t.Fatalf("Load(%v) = %v, %v", run, c, err)
			}
		}
	}
	if rep, err := s.Durable().Verify(ctx); err != nil || !rep.OK() || rep.Runs != len(runs) {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Errorf("Flush of a read-only store: %v", err)
	}
	lease := &cairn.Lease{RunID: runs[0], Owner: "r", Epoch: 1, Duration: time.Minute}
	rec, err := cairn.DefaultCodec().NewRecord(nil, cp(uuid.New(), 1))
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Save":       s.Save(ctx, cp(uuid.New(), 1)),
		"SaveRecord": s.SaveRecord(ctx, rec),
		"SaveLeased": s.SaveLeased(ctx, lease, cp(runs[0], 9)),
		"Delete":     s.Delete(ctx, runs[0]),
		"Claim":      second(s.Claim(ctx, runs[0], &cairn.ClaimOptions{Owner: "r"})),
		"Renew":      s.Renew(ctx, lease),
		"Release":    s.Release(ctx, lease),
	} {
		if !errors.Is(err, cairn.ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v, want cairn.ErrReadOnly", name, err)
		}
	}
	if st := s.Stats(); st.PUTs+st.IndexCommits > 0 {
		t.Errorf("stats of a read-only store: %+v, want no PUT or commit", st)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// A read-only store reads a directory store whose files are 0444 and
// directories 0555 (a process that is not root may do nothing else
// there) and changes nothing on disk, not even a lock file: the same
// files, modes and times after as before.
func TestReadOnlyDirectory(t *testing.T) {
	root := t.TempDir()
	url := "file://" + root
	runs := saveRuns(t, url, &tiered.Options{Mode: tiered.WriteBack}, 24)
	for _, own := range []string{".cairn-lock", ".cairn-tmp"} {
		if err := os.RemoveAll(filepath.Join(root, own)); err != nil {
			t.Fatal(err)
		}
	}
	dirtest.Chmod(t, root, 0o444, 0o555)
	before := dirtest.Snapshot(t, root)
	s, err := tiered.Open(context.Background(), url, &tiered.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open read-only: %v", err)
	}
	checkReadOnly(t, s, runs)
	if after := dirtest.Snapshot(t, root); after != before {
		t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
