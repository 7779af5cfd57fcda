//go:build unix

package bucket_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
)

// TestDirNotRegular: a named pipe, a socket or a symbolic link planted
// where an object file should be is unreadable, at once: never opened for
// blocking reads, never followed. It is listed (so a check can name it)
// and Delete or an unconditional Put replaces it.
func TestDirNotRegular(t *testing.T) {
	const key = "p/runs/x"
	plant := map[string]func(t *testing.T, d *bucket.Dir, p string){
		"NamedPipe": func(t *testing.T, _ *bucket.Dir, p string) {
			if err := syscall.Mkfifo(p, 0o666); err != nil {
				t.Fatal(err)
			}
		},
		"Socket": func(t *testing.T, _ *bucket.Dir, p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		},
		"SymlinkToObject": func(t *testing.T, d *bucket.Dir, p string) {
			// Even a link to a valid object file of the same key.
			other := filepath.Join(t.TempDir(), "x.obj")
			if _, err := d.Put(t.Context(), key, []byte("body"), nil); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p, other); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, p); err != nil {
				t.Fatal(err)
			}
		},
		"SymlinkToPipe": func(t *testing.T, _ *bucket.Dir, p string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(fifo, p); err != nil {
				t.Fatal(err)
			}
		},
		"DanglingSymlink": func(t *testing.T, _ *bucket.Dir, p string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "nothing"), p); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, plant := range plant {
		t.Run(name, func(t *testing.T) {
			d := newDir(t)
			ctx := t.Context()
			p := filepath.Join(d.Root(), "p/runs/x.obj")
			if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
				t.Fatal(err)
			}
			plant(t, d, p)
			within := func(what string, f func() error) error {
				t.Helper()
				done := make(chan error, 1)
				go func() { done <- f() }()
				select {
				case err := <-done:
					return err
				case <-time.After(time.Second):
					t.Fatalf("%s still blocked after a second", what)
					return nil
				}
			}
			unreadable := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, bucket.ErrUnreadable) || errors.Is(err, bucket.ErrNotFound) || !strings.Contains(err.Error(), "not a regular file") {
					t.Fatalf("%s: %v, want ErrUnreadable naming a file that is not regular", what, err)
				}
			}
			unreadable("Get", within("Get", func() error { _, err := d.Get(ctx, key, nil); return err }))
			unreadable("Head", within("Head", func() error { _, err := d.Head(ctx, key); return err }))
			unreadable("Put IfMatch", within("Put IfMatch", func() error {
				_, err := d.Put(ctx, key, []byte("new"), &bucket.PutOptions{IfMatch: `"e"`})
				return err
			}))
			var infos []bucket.Info
			if err := within("List", func() (err error) { infos, _, err = d.List(ctx, "", "", 0); return err }); err != nil ||
				len(infos) != 1 || infos[0].Key != key || infos[0].ETag != "" {
				t.Fatalf("List = %+v, %v; want the key without an ETag", infos, err)
			}
			if err := within("Delete", func() error { return d.Delete(ctx, key) }); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Get(ctx, key, nil); !errors.Is(err, bucket.ErrNotFound) {
				t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
			}
			os.MkdirAll(filepath.Dir(p), 0o777) // Delete removed it, empty
			plant(t, d, p)
			if _, err := d.Put(ctx, key, []byte("new"), nil); err != nil {
				t.Fatal(err)
			}
			if obj, err := d.Get(ctx, key, nil); err != nil || string(obj.Body) != "new" {
				t.Fatalf("Get after replacing = %v, %v", obj, err)
			}
		})
	}
}
