//go:build unix

package bucket_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// holdLockEnv makes the test binary a process that takes the flock of the
// file it names, prints "locked" and waits to be killed.
const holdLockEnv = "CAIRN_DIR_HOLD_LOCK"

func holdLock(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	time.Sleep(time.Hour)
	return 0
}

// flockFile takes the flock of the file at path through an open file of
// its own, as another writer would, and returns the release.
func flockFile(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// TestDirLockWait: a Put or Delete that cannot take the root's lock fails
// with ErrBusy once LockWait has passed, naming the lock file (and, on
// Linux, the process holding it), and writes nothing; one whose ctx ends
// first returns ctx's error. Once the lock is free, writes go on.
func TestDirLockWait(t *testing.T) {
	root := t.TempDir()
	if _, err := bucket.OpenDir(root, &bucket.DirOptions{LockWait: -time.Second}); err == nil || !strings.Contains(err.Error(), "LockWait") {
		t.Errorf("OpenDir with a negative LockWait: %v, want an error naming LockWait", err)
	}
	const wait = 300 * time.Millisecond
	d, err := bucket.OpenDir(root, &bucket.DirOptions{LockWait: wait})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := d.Put(ctx, "gone", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(root, ".cairn-lock")
	release := flockFile(t, lock)

	for _, op := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"Put", func(ctx context.Context) error { _, err := d.Put(ctx, "k", []byte("v"), nil); return err }},
		{"PutIfNoneMatch", func(ctx context.Context) error {
			_, err := d.Put(ctx, "k", []byte("v"), &bucket.PutOptions{IfNoneMatch: "*"})
			return err
		}},
		{"Delete", func(ctx context.Context) error { return d.Delete(ctx, "gone") }},
	} {
		start := time.Now()
		err := op.do(ctx)
		took := time.Since(start)
		if !errors.Is(err, bucket.ErrBusy) || !strings.Contains(err.Error(), lock) {
			t.Errorf("%s with the lock held elsewhere: %v, want ErrBusy naming %s", op.name, err, lock)
		}
		if runtime.GOOS == "linux" && !strings.Contains(fmt.Sprint(err), "process "+strconv.Itoa(os.Getpid())) {
			t.Errorf("%s: %v, want the holder named (process %d)", op.name, err, os.Getpid())
		}
		if took < wait || took > wait+5*time.Second {
			t.Errorf("%s failed after %v, want about %v", op.name, took, wait)
		}

		short, cancel := context.WithTimeout(ctx, wait/6)
		start = time.Now()
		err = op.do(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bucket.ErrBusy) || time.Since(start) >= wait {
			t.Errorf("%s with a ctx ending before LockWait: %v after %v, want the ctx's error at once", op.name, err, time.Since(start))
		}
	}
	if _, err := d.Get(ctx, "k", nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("Get of the refused Put's key: %v, want ErrNotFound", err)
	}
	if _, err := d.Get(ctx, "gone", nil); err != nil {
		t.Errorf("Get of the refused Delete's key: %v, want it still there", err)
	}

	release()
	if _, err := d.Put(ctx, "k", []byte("v"), nil); err != nil {
		t.Errorf("Put once the lock is free: %v", err)
	}
	if err := d.Delete(ctx, "gone"); err != nil {
		t.Errorf("Delete once the lock is free: %v", err)
	}
}

// TestDirLockHolderStopped: another process stopped (SIGSTOP) while it
// holds the root's lock, as a paused VM or container would be, makes
// writers fail with ErrBusy after LockWait, naming it as stopped, rather
// than wait forever; they succeed once it is gone.
func TestDirLockHolderStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip("no executable to re-run:", err)
	}
	root := t.TempDir()
	d, err := bucket.OpenDir(root, &bucket.DirOptions{LockWait: 200 * time.Millisecond})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+filepath.Join(root, ".cairn-lock"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if sc := bufio.NewScanner(out); !sc.Scan() || sc.Text() != "locked" {
		t.Fatalf("the holder did not take the lock: %q %s", sc.Text(), stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, cmd.Process.Pid, 'T')

	_, err = d.Put(t.Context(), "k", []byte("v"), nil)
	if !errors.Is(err, bucket.ErrBusy) {
		t.Fatalf("Put with the lock held by a stopped process: %v, want ErrBusy", err)
	}
	if want := fmt.Sprintf("process %d (", cmd.Process.Pid); runtime.GOOS == "linux" &&
		(!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ", stopped)")) {
		t.Errorf("Put's error %q does not name the holder (%s...) as stopped", err, want)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := d.Put(t.Context(), "k", []byte("v"), nil); err != nil {
		t.Errorf("Put once the holder is gone: %v", err)
	}
}

// waitState waits until process pid is in state (as /proc/pid/stat shows
// it); where there is no /proc, it waits a moment.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			return
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not in state %c after 10 s: %s", pid, state, stat)
		}
		time.Sleep(time.Millisecond)
	}
}
