//go:build unix

package durable_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/google/uuid"
)

// A named pipe planted as a run's object file in a directory store makes
// Load fail at once, saying the object is unreadable, instead of hanging.
func TestLoadNamedPipeRunFile(t *testing.T) {
	d, err := bucket.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := durable.New(d, &durable.Options{Prefix: "cairn"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	run := uuid.MustParse("67e55044-10b1-426f-9247-bb680e5fe0c8")
	cp := &cairn.Checkpoint{WorkflowName: "w", RunID: run, Timestamp: time.Now(), State: map[string]any{"a": int64(1)}}
	if err := s.Save(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	var file string
	filepath.WalkDir(d.Root(), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Name() == run.String()+".obj" {
			file = p
		}
		return err
	})
	if file == "" {
		t.Fatal("no object file for the run")
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o666); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Load(t.Context(), run); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, bucket.ErrUnreadable) || !errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, cairn.ErrNotFound) {
			t.Fatalf("Load = %v, want an unreadable object, ErrCorrupt", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Load still blocked after a second")
	}
}
