package bucket_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/bucket/buckettest"
)

// The test binary doubles as the second process of TestDirProcesses.
const (
	helperRootEnv = "CAIRN_DIR_HELPER_ROOT"
	helperIDEnv   = "CAIRN_DIR_HELPER_ID"
	helperGoEnv   = "CAIRN_DIR_HELPER_GO"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(helperRootEnv); root != "" {
		os.Exit(dirHelper(root, os.Getenv(helperIDEnv), os.Getenv(helperGoEnv)))
	}
	if lock := os.Getenv(holdLockEnv); lock != "" {
		os.Exit(holdLock(lock))
	}
	os.Exit(m.Run())
}

func newDir(t *testing.T) *bucket.Dir {
	t.Helper()
	return newDirAt(t, t.TempDir())
}

// newDirAt opens a Dir on root, skipping the test where Dir is not
// supported.
func newDirAt(t *testing.T, root string) *bucket.Dir {
	t.Helper()
	d, err := bucket.NewDir(root)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDirConformance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return newDir(t) })
}

func TestDirKeyAndChildren(t *testing.T) { buckettest.KeyAndChildren(t, newDir(t)) }

// Work shared by the racing instances and processes: conditional creates
// of raceKeys keys, each body naming its writer, and casIncrements
// increments of one counter.
const (
	raceKeys      = 40
	casIncrements = 25
	counterKey    = "prefix/index/head"
)

func raceKey(i int) string { return fmt.Sprintf("prefix/index/log/%020d", i) }

// raceWork runs the shared work as writer id and returns the keys it won.
func raceWork(ctx context.Context, b bucket.Bucket, id string) (won []int, err error) {
	for i := range raceKeys {
		_, err := b.Put(ctx, raceKey(i), []byte(id), &bucket.PutOptions{IfNoneMatch: "*"})
		switch {
		case err == nil:
			won = append(won, i)
		case !errors.Is(err, bucket.ErrPrecondition):
			return nil, err
		}
		if i < casIncrements {
			if err := buckettest.Increment(ctx, b, counterKey); err != nil {
				return nil, err
			}
		}
	}
	return won, nil
}

// checkRace checks that every race key was won by exactly one writer,
// whose name it holds, and that no increment was lost.
func checkRace(t *testing.T, b bucket.Bucket, wins map[string][]int, writers int) {
	t.Helper()
	winner := map[int]string{}
	for id, won := range wins {
		for _, i := range won {
			if other, ok := winner[i]; ok {
				t.Fatalf("%s and %s both created %s", other, id, raceKey(i))
			}
			winner[i] = id
		}
	}
	for i := range raceKeys {
		obj, err := b.Get(t.Context(), raceKey(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(obj.Body) != winner[i] {
			t.Fatalf("%s holds %q, but its winner was %q", raceKey(i), obj.Body, winner[i])
		}
	}
	obj, err := b.Get(t.Context(), counterKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(writers * casIncrements); string(obj.Body) != want {
		t.Fatalf("counter = %s, want %s: increments were lost", obj.Body, want)
	}
}

// TestDirInstances races Dirs opened separately on one root, as separate
// processes would; their process mutexes do not exclude each other, only
// the file lock does.
func TestDirInstances(t *testing.T) {
	root := t.TempDir()
	const instances = 4
	var ds []*bucket.Dir
	for range instances {
		ds = append(ds, newDirAt(t, root))
	}
	if _, err := ds[0].Put(t.Context(), counterKey, []byte("0"), nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	wins := map[string][]int{}
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			id := "instance " + strconv.Itoa(i)
			won, err := raceWork(t.Context(), d, id)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			wins[id] = won
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkRace(t, ds[1], wins, instances)
}

// TestDirProcesses races child processes (this test binary, re-executed)
// and this one on one root: the flock path across processes.
func TestDirProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip("no executable to re-run:", err)
	}
	root := t.TempDir()
	goFile := filepath.Join(t.TempDir(), "go")
	d := newDirAt(t, root)
	if _, err := d.Put(t.Context(), counterKey, []byte("0"), nil); err != nil {
		t.Fatal(err)
	}

	const children = 3
	type child struct {
		id     string
		cmd    *exec.Cmd
		stdout *bufio.Scanner
		stderr bytes.Buffer
	}
	var kids []*child
	for i := range children {
		c := &child{id: "process " + strconv.Itoa(i)}
		c.cmd = exec.CommandContext(t.Context(), exe, "-test.run=^$")
		c.cmd.Env = append(os.Environ(), helperRootEnv+"="+root, helperIDEnv+"="+c.id, helperGoEnv+"="+goFile)
		c.cmd.Stderr = &c.stderr
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdout = bufio.NewScanner(out)
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, c)
	}
	// Start everyone at once, this process too, once every child has
	// started up and opened the bucket.
	for _, c := range kids {
		if !c.stdout.Scan() || c.stdout.Text() != "ready" {
			c.cmd.Wait()
			t.Fatalf("%s did not start: %q\n%s", c.id, c.stdout.Text(), c.stderr.Bytes())
		}
	}
	if err := os.WriteFile(goFile, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	wins := map[string][]int{}
	won, err := raceWork(t.Context(), d, "parent")
	if err != nil {
		t.Fatal(err)
	}
	wins["parent"] = won
	for _, c := range kids {
		for c.stdout.Scan() {
			n, ok := strings.CutPrefix(c.stdout.Text(), "won ")
			i, err := strconv.Atoi(n)
			if !ok || err != nil {
				t.Fatalf("%s printed %q", c.id, c.stdout.Text())
			}
			wins[c.id] = append(wins[c.id], i)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s", c.id, err, c.stderr.Bytes())
		}
	}
	checkRace(t, d, wins, children+1)
	t.Logf("wins per writer: %v", func() map[string]int {
		n := map[string]int{}
		for id, w := range wins {
			n[id] = len(w)
		}
		return n
	}())
}

// dirHelper is a child process of TestDirProcesses.
func dirHelper(root, id, goFile string) int {
	d, err := bucket.NewDir(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "never told to go")
			return 1
		}
		time.Sleep(100 * time.Microsecond)
	}
	won, err := raceWork(context.Background(), d, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, i := range won {
		fmt.Printf("won %d\n", i)
	}
	return 0
}

func TestDirLayout(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	for _, key := range []string{"Runs/.tmp/a.obj", "Runs/.tmp", "p/runs/x", "p/runs/x/y"} {
		if _, err := d.Put(ctx, key, []byte(key), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"^runs/%2etmp/a%2eobj.obj", "^runs/%2etmp.obj", "p/runs/x.obj", "p/runs/x/y.obj"} {
		if fi, err := os.Stat(filepath.Join(d.Root(), p)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("object file %s: %v", p, err)
		}
	}
	ents, _ := os.ReadDir(d.Root())
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".cairn-lock", ".cairn-tmp", "^runs", "p"}; !slices.Equal(names, want) {
		t.Errorf("root holds %q, want %q", names, want)
	}
	tmp, _ := os.ReadDir(filepath.Join(d.Root(), ".cairn-tmp"))
	if len(tmp) != 0 {
		t.Errorf(".cairn-tmp holds %d files after the Puts", len(tmp))
	}

	// Deleting the last objects removes the directories they leave empty.
	for _, key := range []string{"Runs/.tmp/a.obj", "Runs/.tmp", "p/runs/x/y"} {
		if err := d.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"^runs", "p/runs/x"} {
		if _, err := os.Stat(filepath.Join(d.Root(), p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after its last object was deleted: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "p/runs/x.obj")); err != nil {
		t.Errorf("deleting p/runs/x/y: %v", err)
	}
}

// TestDirForeignFiles: files Dir did not write, or that no key maps to,
// are not listed and not found; Dir's own files stay out of listings.
func TestDirForeignFiles(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	if _, err := d.Put(ctx, "p/a", []byte("a"), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		".DS_Store", "p/.DS_Store", "README", "p/x.OBJ", "p/A.obj", "p/x%2.obj",
		"p/%2e%2e/y.obj", "p/%2e.obj", ".cairn-tmp/put-1-0000", "p/b~",
	} {
		os.WriteFile(filepath.Join(d.Root(), p), []byte("foreign"), 0o666)
	}
	os.MkdirAll(filepath.Join(d.Root(), "p/dir.obj"), 0o777)
	infos, more, err := d.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != "p/a" || more {
		t.Fatalf("List = %+v, want only p/a", infos)
	}
	for _, key := range []string{"README", "p/x.OBJ", "p/dir", "p/b~"} {
		if _, err := d.Get(ctx, key, nil); !errors.Is(err, bucket.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
		}
	}
	// A directory with an object's name is left alone by Delete.
	if err := d.Delete(ctx, "p/dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "p/dir.obj")); err != nil {
		t.Fatal(err)
	}
}

// TestDirReservedNames: keys that look like Dir's own names are stored
// like any other, and Dir keeps working around them.
func TestDirReservedNames(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	keys := []string{".cairn-lock", ".cairn-tmp", ".cairn-tmp/put-1-0000", ".tmp/x", "a/.tmp/x", "a/.cairn-tmp/x", "x.obj", "x.obj/y"}
	for _, key := range keys {
		if _, err := d.Put(ctx, key, []byte(key), &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
	}
	for _, key := range keys {
		if _, err := d.Put(ctx, key, []byte("again"), &bucket.PutOptions{IfNoneMatch: "*"}); !errors.Is(err, bucket.ErrPrecondition) {
			t.Fatalf("second create of %q = %v", key, err)
		}
		obj, err := d.Get(ctx, key, nil)
		if err != nil || string(obj.Body) != key {
			t.Fatalf("Get(%q) = %v, %v", key, obj, err)
		}
	}
	infos, _, err := d.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(infos))
	for i, info := range infos {
		got[i] = info.Key
	}
	if want := slices.Sorted(slices.Values(keys)); !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	for _, key := range keys {
		if err := d.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{".cairn-lock", ".cairn-tmp"} {
		if _, err := os.Stat(filepath.Join(d.Root(), p)); err != nil {
			t.Fatalf("Dir's own %s after deleting look-alike keys: %v", p, err)
		}
	}
	if _, err := d.Put(ctx, "after", nil, &bucket.PutOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
}

// TestDirLongSegment: a segment whose file name would pass 255 bytes is
// ErrInvalid, as documented, and nothing is written.
func TestDirLongSegment(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	ok := []string{
		"p/" + strings.Repeat("a", 251),       // 255 with ".obj"
		"p/" + strings.Repeat("%", 83),        // 249 escaped, 253 with ".obj"
		"p/" + strings.Repeat("A", 83),        // 166 escaped
		strings.Repeat("d", 255) + "/x",       // a directory name of 255
		strings.Repeat("^", 85) + "/x",        // 255 escaped
		strings.Repeat("Z", 127) + "/x",       // 254 escaped
		"p/" + strings.Repeat("b", 250) + ".", // 251 bytes, 255 with ".obj"
	}
	bad := []string{
		"p/" + strings.Repeat("a", 252),
		"p/" + strings.Repeat("%", 84),
		strings.Repeat("d", 256) + "/x",
		strings.Repeat("^", 86) + "/x",
		"p/" + strings.Repeat("B", 126),
	}
	for _, key := range ok {
		if _, err := d.Put(ctx, key, []byte("x"), nil); err != nil {
			t.Errorf("Put of %d bytes: %v", len(key), err)
		}
	}
	for _, key := range bad {
		_, err := d.Put(ctx, key, []byte("x"), nil)
		if !errors.Is(err, bucket.ErrInvalid) {
			t.Errorf("Put(%.20q...) = %v, want ErrInvalid", key, err)
		}
		if _, err := d.Get(ctx, key, nil); !errors.Is(err, bucket.ErrInvalid) {
			t.Errorf("Get(%.20q...) = %v, want ErrInvalid", key, err)
		}
	}
	infos, _, err := d.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(ok) {
		t.Fatalf("List found %d objects, want %d", len(infos), len(ok))
	}
}

// header builds the start of an object file (see Dir): magic, length, JSON.
func header(magic, js string) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	return append(b, js...)
}

func TestDirCorrupt(t *testing.T) {
	const key = "p/runs/x"
	good := `{"key":"p/runs/x","etag":"\"e\"","size":4,"modified":"2026-11-25T19:39:35Z"}`
	cases := []struct {
		name string
		file []byte
	}{
		{"Empty", nil},
		{"ShortMagic", []byte("cairn")},
		{"NoLength", []byte("cairnob1\x00\x00")},
		{"UnknownMagic", append(header("cairnob9", good), "body"...)},
		{"NotAnObjectFile", []byte("just some bytes someone copied here")},
		{"HugeHeaderLength", append([]byte("cairnob1\xff\xff\xff\xff"), good...)},
		{"HeaderPastEnd", header("cairnob1", good)[:20]},
		{"BadJSON", append(header("cairnob1", `{"key":`), "body"...)},
		{"WrongKey", append(header("cairnob1", strings.Replace(good, "p/runs/x", "p/runs/y", 1)), "body"...)},
		{"NoETag", append(header("cairnob1", strings.Replace(good, `"\"e\""`, `""`, 1)), "body"...)},
		{"TruncatedBody", append(header("cairnob1", good), "bo"...)},
		{"LongerBody", append(header("cairnob1", good), "body and more"...)},
		{"NegativeSize", append(header("cairnob1", strings.Replace(good, `"size":4`, `"size":-4`, 1)), "body"...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDir(t)
			ctx := t.Context()
			if err := os.MkdirAll(filepath.Join(d.Root(), "p/runs"), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d.Root(), "p/runs/x.obj"), tc.file, 0o666); err != nil {
				t.Fatal(err)
			}
			corrupt := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), "corrupt object file") {
					t.Fatalf("%s: %v, want a corrupt object file error", what, err)
				}
				if !errors.Is(err, bucket.ErrUnreadable) {
					t.Fatalf("%s: %v is not ErrUnreadable", what, err)
				}
				for _, s := range []error{bucket.ErrNotFound, bucket.ErrPrecondition, bucket.ErrInvalid, bucket.ErrBusy, bucket.ErrCorrupt} {
					if errors.Is(err, s) {
						t.Fatalf("%s: %v is %v", what, err, s)
					}
				}
				var be *bucket.Error
				if !errors.As(err, &be) || be.Key != key && be.Op != "list" {
					t.Fatalf("%s: %v is not a *bucket.Error for %q", what, err, key)
				}
			}
			_, err := d.Get(ctx, key, nil)
			corrupt("Get", err)
			_, err = d.Head(ctx, key)
			corrupt("Head", err)
			// List names it, as S3 would, without reading it.
			if infos, _, err := d.List(ctx, "p/", "", 0); err != nil || len(infos) != 1 || infos[0].Key != key ||
				infos[0].Size != int64(len(tc.file)) || infos[0].ETag != "" {
				t.Fatalf("List = %+v, %v; want the key, the file's size and no ETag", infos, err)
			}
			_, err = d.Put(ctx, key, []byte("new"), &bucket.PutOptions{IfMatch: `"e"`})
			corrupt("Put IfMatch", err)
			// The key exists, whatever it holds.
			if _, err := d.Put(ctx, key, []byte("new"), &bucket.PutOptions{IfNoneMatch: "*"}); !errors.Is(err, bucket.ErrPrecondition) {
				t.Fatalf("Put IfNoneMatch = %v, want ErrPrecondition", err)
			}
			// Listing around it still works.
			if _, _, err := d.List(ctx, "p/", key, 0); err != nil {
				t.Fatalf("List after the corrupt key: %v", err)
			}
			// An unconditional Put replaces it; so would a Delete.
			if _, err := d.Put(ctx, key, []byte("new"), nil); err != nil {
				t.Fatal(err)
			}
			if obj, err := d.Get(ctx, key, nil); err != nil || string(obj.Body) != "new" {
				t.Fatalf("Get after replacing = %v, %v", obj, err)
			}
		})
	}

	t.Run("Delete", func(t *testing.T) {
		d := newDir(t)
		os.MkdirAll(filepath.Join(d.Root(), "p/runs"), 0o777)
		os.WriteFile(filepath.Join(d.Root(), "p/runs/x.obj"), []byte("garbage"), 0o666)
		if err := d.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Get(t.Context(), key, nil); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
	})
}

func TestNewDir(t *testing.T) {
	if _, err := bucket.NewDir(""); err == nil {
		t.Error("NewDir(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o666)
	if _, err := bucket.NewDir(file); err == nil {
		t.Error("NewDir on a regular file succeeded")
	}

	// A root that does not exist yet is created; a relative one is made
	// absolute.
	root := filepath.Join(t.TempDir(), "a", "b")
	d, err := bucket.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if d.Root() != root {
		t.Errorf("Root() = %q, want %q", d.Root(), root)
	}
	t.Chdir(filepath.Dir(root))
	d2, err := bucket.NewDir("b")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Root() != root {
		t.Errorf("Root() = %q, want %q", d2.Root(), root)
	}

	// Temp files of dead writers go; a recent one (a live writer's) stays.
	tmp := filepath.Join(root, ".cairn-tmp")
	old, recent := filepath.Join(tmp, "put-1-old"), filepath.Join(tmp, "put-1-new")
	os.WriteFile(old, nil, 0o666)
	os.WriteFile(recent, nil, 0o666)
	long := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, long, long)
	if _, err := bucket.NewDir(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent temp file removed: %v", err)
	}
}

// TestDirTmpRemoved: a Put recreates the temp directory if someone
// removed it.
func TestDirTmpRemoved(t *testing.T) {
	d := newDir(t)
	if err := os.RemoveAll(filepath.Join(d.Root(), ".cairn-tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(t.Context(), "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
}

// A damaged file's message quotes a short prefix of what it holds, however
// long: here a 60 KB key in its header.
func TestDirCorruptMessageShort(t *testing.T) {
	d := newDir(t)
	long := strings.Repeat("k", 60<<10)
	js := `{"key":"` + long + `","etag":"\"e\"","size":4,"modified":"2026-11-25T19:39:35Z"}`
	os.MkdirAll(filepath.Join(d.Root(), "p"), 0o777)
	if err := os.WriteFile(filepath.Join(d.Root(), "p/x.obj"), append(header("cairnob1", js), "body"...), 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := d.Get(t.Context(), "p/x", nil)
	if !errors.Is(err, bucket.ErrUnreadable) || len(err.Error()) > 300+len(d.Root()) {
		t.Fatalf("Get: %d bytes: %.400v", len(err.Error()), err)
	}
}
