package bucket_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/internal/dirtest"
)

// ReadOnly reads through and refuses every write with ErrReadOnly,
// sending nothing to the bucket below.
func TestReadOnly(t *testing.T) {
	ctx := t.Context()
	mem := bucket.NewMem()
	if _, err := mem.Put(ctx, "a/k", []byte("v"), &bucket.PutOptions{Metadata: map[string]string{"m": "1"}}); err != nil {
		t.Fatal(err)
	}
	ro := bucket.ReadOnly(mem)
	if bucket.ReadOnly(ro) != ro {
		t.Error("ReadOnly of a read-only bucket wrapped it again")
	}
	checkReads(t, ro, "a/k", "v")
	checkRefusesWrites(t, ro, "a/k")
	if obj, err := mem.Get(ctx, "a/k", nil); err != nil || string(obj.Body) != "v" {
		t.Errorf("the bucket below after refused writes: %v, %v", obj, err)
	}
	if infos, _, _ := mem.List(ctx, "", "", 0); len(infos) != 1 {
		t.Errorf("the bucket below holds %d objects, want 1", len(infos))
	}
}

// checkReads checks that b reads key, which holds body.
func checkReads(t *testing.T, b bucket.Bucket, key, body string) {
	t.Helper()
	ctx := t.Context()
	if obj, err := b.Get(ctx, key, nil); err != nil || string(obj.Body) != body {
		t.Errorf("Get(%s) = %v, %v; want %q", key, obj, err, body)
	}
	if _, err := b.Head(ctx, key); err != nil {
		t.Errorf("Head(%s): %v", key, err)
	}
	if infos, _, err := b.List(ctx, "", "", 0); err != nil || len(infos) == 0 {
		t.Errorf("List: %v, %v", infos, err)
	}
	if _, err := b.Get(ctx, key+"-none", nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Errorf("Get of a missing key: %v, want ErrNotFound", err)
	}
}

// checkRefusesWrites checks that every Put and Delete on b fails with
// ErrReadOnly in a *bucket.Error.
func checkRefusesWrites(t *testing.T, b bucket.Bucket, key string) {
	t.Helper()
	ctx := t.Context()
	var be *bucket.Error
	for name, err := range map[string]error{
		"Put":             second(b.Put(ctx, key, []byte("w"), nil)),
		"Put new":         second(b.Put(ctx, key+"-new", []byte("w"), nil)),
		"Put IfNoneMatch": second(b.Put(ctx, key+"-new", []byte("w"), &bucket.PutOptions{IfNoneMatch: "*"})),
		"Delete":          b.Delete(ctx, key),
		"Delete missing":  b.Delete(ctx, key+"-none"),
	} {
		if !errors.Is(err, bucket.ErrReadOnly) || !errors.As(err, &be) {
			t.Errorf("%s on a read-only bucket: %v, want ErrReadOnly in a *bucket.Error", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// A read-only Dir needs its root to exist, and says so naming it; it
// never creates it.
func TestDirReadOnlyMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "doesnotexist")
	_, err := bucket.OpenDir(root, &bucket.DirOptions{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, bucket.ErrNoBucket) || !strings.Contains(err.Error(), root) {
		t.Errorf("OpenDir read-only of a missing root: %v; want fs.ErrNotExist and ErrNoBucket, naming %s", err, root)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing root after a read-only open: %v, want still missing", err)
	}
	ctx := t.Context()
	_, err = bucket.OpenURL(ctx, "file://"+root, &bucket.OpenOptions{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), root) {
		t.Errorf("OpenURL read-only of a missing directory: %v; want fs.ErrNotExist naming %s", err, root)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := bucket.OpenDir(file, &bucket.DirOptions{ReadOnly: true}); !errors.Is(err, bucket.ErrInvalid) {
		t.Errorf("OpenDir read-only of a regular file: %v, want ErrInvalid", err)
	}
}

// A read-only Dir reads a store another Dir wrote, and changes nothing on
// disk: no lock file, no temp directory, no file or directory touched,
// whatever it is asked.
func TestDirReadOnly(t *testing.T) {
	root := t.TempDir()
	w := newDirAt(t, root)
	ctx := t.Context()
	for _, k := range []string{"p/runs/a", "p/runs/b", "p/index/head"} {
		if _, err := w.Put(ctx, k, []byte("body of "+k), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, own := range []string{".cairn-lock", ".cairn-tmp"} {
		if err := os.RemoveAll(filepath.Join(root, own)); err != nil {
			t.Fatal(err)
		}
	}
	before := dirtest.Snapshot(t, root)
	for name, open := range map[string]func() (bucket.Bucket, error){
		"OpenDir": func() (bucket.Bucket, error) { return bucket.OpenDir(root, &bucket.DirOptions{ReadOnly: true}) },
		"OpenURL": func() (bucket.Bucket, error) {
			o, err := bucket.OpenURL(ctx, "file://"+root, &bucket.OpenOptions{ReadOnly: true})
			if err != nil {
				return nil, err
			}
			return o.Bucket, nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := open()
			if err != nil {
				t.Fatal(err)
			}
			checkReads(t, b, "p/runs/a", "body of p/runs/a")
			checkRefusesWrites(t, b, "p/runs/a")
			if after := dirtest.Snapshot(t, root); after != before {
				t.Errorf("the directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
