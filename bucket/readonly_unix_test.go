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
	"github.com/cairnstore/cairn/internal/dirtest"
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
	dirtest.Chmod(t, root, 0o444, 0o555)
	before := dirtest.Snapshot(t, root)

	if _, err := bucket.OpenDir(root, nil); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("OpenDir for writing of a 0555 root: %v, want fs.ErrPermission", err)
	}
	ro, err := bucket.OpenDir(root, &bucket.DirOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenDir read-only of a 0555 root: %v", err)
	}
	checkReads(t, ro, "p/runs/b", "body of p/runs/b")
	checkRefusesWrites(t, ro, "p/runs/a")
	if after := dirtest.Snapshot(t, root); after != before {
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
