//go:build unix

package bucket_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairnstore/cairn/bucket"
)

// A read-only Dir reads a store whose files are 0444 and directories 0555,
// which a writable one cannot even open, and a root it may not read is an
// error that keeps fs.ErrPermission. Permissions bind only a process
// that is not root: as root, the test runs itself again as nobody.
func TestDirReadOnlyPermissions(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestDirReadOnlyPermissions")
		return
	}
	root := t.TempDir()
	w := newDirAt(t, root)
	ctx := t.Context()
	for _, k := range []string{"p/runs/a", "p/runs/b"} {
		if _, err := w.Put(ctx, k, []byte("body of "+k), nil); err != nil {
			t.Fatal(err)
		}
	}
	chmodTree(t, root, 0o444, 0o555)
	t.Cleanup(func() { chmodTree(t, root, 0o644, 0o755) }) // so that the directory can be removed
	before := snapshotTree(t, root)

	if _, err := bucket.OpenDir(root, nil); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("OpenDir for writing of a 0555 root: %v, want fs.ErrPermission", err)
	}
	ro, err := bucket.OpenDir(root, &bucket.DirOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenDir read-only of a 0555 root: %v", err)
	}
	checkReads(t, ro, "p/runs/b", "body of p/runs/b")
	checkRefusesWrites(t, ro, "p/runs/a")
	if after := snapshotTree(t, root); after != before {
		t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	if err := os.Chmod(root, 0); err != nil {
		t.Fatal(err)
	}
	_, err = bucket.OpenDir(root, &bucket.DirOptions{ReadOnly: true})
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), root) {
		t.Errorf("OpenDir read-only of a root it may not read: %v, want fs.ErrPermission naming %s", err, root)
	}
	_, err = bucket.OpenURL(ctx, "file://"+root, &bucket.OpenOptions{ReadOnly: true})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("OpenURL read-only of a root it may not read: %v, want fs.ErrPermission", err)
	}
}

// chmodTree sets the mode of every file under root to file and of every
// directory, root included, to dir (children first, so the walk can go
// on).
func chmodTree(t *testing.T, root string, file, dir fs.FileMode) {
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
			if err := os.Chmod(p, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, p)
			return nil
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

// runAsNobody runs the test named name again in a copy of this test
// binary, as the user nobody (65534), and fails if it does not pass
// there.
func runAsNobody(t *testing.T, name string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cp := filepath.Join(dir, "bucket.test")
	if err := copyFile(exe, cp); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cp, "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("running as root, and cannot run the test as nobody to check permissions: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
	t.Logf("%s as nobody:\n%s", name, out)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
