// Package dirtest helps tests of the directory store check what a store
// did to the files under its root.
package dirtest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Snapshot describes every file and directory under root, root included:
// path, mode, size and modification time, one a line. Two equal
// snapshots mean nothing was created, removed, written or chmodded.
func Snapshot(t testing.TB, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Chmod sets the mode of every file under root to file and of every
// directory, root included, to dir (children first, so that the walk can
// go on), and puts back 0644 and 0755 when the test ends, so that its
// temporary directory can be removed.
func Chmod(t testing.TB, root string, file, dir fs.FileMode) {
	t.Helper()
	chmod(t, root, file, dir)
	t.Cleanup(func() { chmod(t, root, 0o644, 0o755) })
}

func chmod(t testing.TB, root string, file, dir fs.FileMode) {
	t.Helper()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, file)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], dir); err != nil {
			t.Fatal(err)
		}
	}
}
