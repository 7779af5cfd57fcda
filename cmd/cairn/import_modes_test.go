package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// The tests of import's modes, batches and stops, run in this process.

const modeRun = "00000000-0000-4000-8000-0000000000c1"

var modeT0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// modeRecord is a JSON record of modeRun at ts whose state says what it
// is.
func modeRecord(t *testing.T, ts time.Time, what string) string {
	t.Helper()
	rec, err := cairn.EncodeJSON(&cairn.Checkpoint{WorkflowName: "modes", RunID: uuid.MustParse(modeRun), Timestamp: ts,
		State: map[string]any{"what": what}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return string(rec) + "\n"
}

// writeTemp writes content to a new file and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// storedWhat returns the "what" of modeRun's stored state, "" when the
// run does not exist.
func storedWhat(t *testing.T, store string) string {
	t.Helper()
	stdout, stderr, code := runIn(t, "show", "--store", store, modeRun)
	if code == exitNotFound {
		return ""
	}
	if code != exitOK {
		t.Fatalf("show: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`"what": "(\w+)"`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("show: %s", stdout)
	}
	return m[1]
}

// A record of a run the store holds is imported or skipped by its
// timestamp and the mode: with --if-newer (the default) only a newer one
// replaces the stored run; with --skip-existing none; with --overwrite
// any. --dry-run says the same and writes nothing.
func TestImportModes(t *testing.T) {
	t.Parallel()
	const (
		imported = "imported 1 run\n"
		newer    = "imported 0 runs, skipped 1 (the store's copy is as new or newer)\n"
		existing = "imported 0 runs, skipped 1 (already in the store)\n"
	)
	for _, tc := range []struct {
		mode   []string
		offset time.Duration // of the incoming record's timestamp from the stored one's
		out    string
	}{
		{nil, -time.Hour, newer},
		{nil, 0, newer},
		{nil, time.Hour, imported},
		{[]string{"--if-newer"}, -time.Nanosecond, newer},
		{[]string{"--if-newer"}, time.Nanosecond, imported},
		{[]string{"--skip-existing"}, -time.Hour, existing},
		{[]string{"--skip-existing"}, 0, existing},
		{[]string{"--skip-existing"}, time.Hour, existing},
		{[]string{"--overwrite"}, -time.Hour, imported},
		{[]string{"--overwrite"}, 0, imported},
		{[]string{"--overwrite"}, time.Hour, imported},
	} {
		name := fmt.Sprintf("%v %+v", tc.mode, tc.offset)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			store := "file://" + dir
			if out, stderr, code := runIn(t, "import", "--store", store, writeTemp(t, "stored.jsonl", modeRecord(t, modeT0, "stored"))); out != imported || code != 0 {
				t.Fatalf("import of the stored record: %q, exit %d: %s", out, code, stderr)
			}
			incoming := writeTemp(t, "incoming.jsonl", modeRecord(t, modeT0.Add(tc.offset), "incoming"))

			// The dry run says what the import does, and writes nothing.
			before := dirState(t, dir)
			out, stderr, code := runIn(t, append([]string{"import", "--dry-run", "--store", store, incoming}, tc.mode...)...)
			if wantDry := strings.ReplaceAll(strings.ReplaceAll(tc.out, "imported", "would import"), "skipped", "would skip"); code != 0 || !strings.HasSuffix(out, wantDry) {
				t.Errorf("dry run: %q, exit %d, stderr %q; want it to end with %q", out, code, stderr, wantDry)
			}
			action := "import"
			if tc.out != imported {
				action = "skip  "
			}
			if want := "would " + action + " " + modeRun + " (" + incoming + " line 1)"; !strings.HasPrefix(out, want) {
				t.Errorf("dry run: %q, want it to start with %q", out, want)
			}
			if after := dirState(t, dir); after != before {
				t.Errorf("the dry run changed the store:\n%s\nwas:\n%s", after, before)
			}

			out, stderr, code = runIn(t, append([]string{"import", incoming, "--store", store}, tc.mode...)...)
			if out != tc.out || code != 0 || stderr != "" {
				t.Errorf("import: %q, exit %d, stderr %q; want %q", out, code, stderr, tc.out)
			}
			want := "stored"
			if tc.out == imported {
				want = "incoming"
			}
			if got := storedWhat(t, store); got != want {
				t.Errorf("the store holds the %s record, want the %s one", got, want)
			}
		})
	}
}

// dirState is the names and contents of every file under dir, for
// comparing a store before and after.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %x\n", strings.TrimPrefix(p, dir), data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A dry run into a store that does not hold the run would import it, and
// does not; one into a store that does not exist is an error naming it.
func TestImportDryRunNewRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := "file://" + dir
	in := writeTemp(t, "in.jsonl", modeRecord(t, modeT0, "incoming"))
	out, stderr, code := runIn(t, "--json", "import", "--dry-run", "--store", store, in)
	want := `{
  "mode": "if-newer",
  "dry_run": true,
  "imported": 1,
  "skipped": 0,
  "refused": 0,
  "runs": [
    {
      "run_id": "` + modeRun + `",
      "where": "` + in + ` line 1",
      "action": "import"
    }
  ]
}
`
	if out != want || code != 0 || stderr != "" {
		t.Errorf("dry run --json: exit %d, stderr %q\n%s\nwant:\n%s", code, stderr, out, want)
	}
	if got := storedWhat(t, store); got != "" {
		t.Errorf("the dry run imported the run: %s", got)
	}
	missing := filepath.Join(dir, "nothing-here")
	_, stderr, code = runIn(t, "import", "--dry-run", "--store", "file://"+missing, in)
	if code != exitFailure || stderr != "cairn import: store directory "+missing+" does not exist (this command only reads, and creates nothing: check --store or $CAIRN_STORE)\n" {
		t.Errorf("dry run into a missing store: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run created the store: %v", err)
	}
}

// The same run twice in one input: the later record is decided against
// the earlier one's outcome, as if imported one after the other.
func TestImportSameRunTwice(t *testing.T) {
	t.Parallel()
	in := writeTemp(t, "twice.jsonl", modeRecord(t, modeT0.Add(time.Hour), "newer")+modeRecord(t, modeT0, "older"))
	for _, tc := range []struct {
		mode []string
		out  string
		what string
	}{
		{nil, "imported 1 run, skipped 1 (the store's copy is as new or newer)\n", "newer"},
		{[]string{"--skip-existing"}, "imported 1 run, skipped 1 (already in the store)\n", "newer"},
		{[]string{"--overwrite"}, "imported 2 runs\n", "older"},
		{[]string{"--dry-run"}, "would import 1 run, would skip 1 (the store's copy is as new or newer)\n", ""},
	} {
		store := "file://" + t.TempDir()
		out, stderr, code := runIn(t, append([]string{"import", "--store", store, in}, tc.mode...)...)
		if !strings.HasSuffix(out, tc.out) || code != 0 {
			t.Errorf("import %v: %q, exit %d, %s; want %q", tc.mode, out, code, stderr, tc.out)
		}
		if got := storedWhat(t, store); got != tc.what {
			t.Errorf("import %v: the store holds %q, want %q", tc.mode, got, tc.what)
		}
	}
}

// The modes are exclusive: two of them are a usage error.
func TestImportModesExclusive(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--skip-existing", "--overwrite"},
		{"--if-newer", "--overwrite"},
		{"--if-newer", "--skip-existing", "--dry-run"},
	} {
		_, stderr, code := runIn(t, append([]string{"import", "--store", "mem://", "x.jsonl"}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, ": choose one of --if-newer (the default), --skip-existing and --overwrite\n") {
			t.Errorf("import %v: exit %d, %q", args, code, stderr)
		}
	}
}

// bulkRecords returns JSON lines of n runs of workflow "bulk", one second
// apart, and their run IDs in that order.
func bulkRecords(t *testing.T, n int) ([]byte, []uuid.UUID) {
	t.Helper()
	var buf bytes.Buffer
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte("bulk-"+strconv.Itoa(i)))
		rec, err := cairn.EncodeJSON(&cairn.Checkpoint{WorkflowName: "bulk", RunID: ids[i], Timestamp: modeT0.Add(time.Duration(i) * time.Second),
			State: map[string]any{"i": int64(i)}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(rec)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), ids
}

// stopAfter is a stdin that gives data, then stops the command (cancels
// its context with a SIGINT cause) and blocks until it has stopped.
type stopAfter struct {
	data []byte
	stop func()
	ctx  context.Context
}

func (r *stopAfter) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.stop()
		<-r.ctx.Done()
		return 0, context.Cause(r.ctx)
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// An import stopped partway (its context cancelled, as by SIGINT) exits
// 130, prints how many runs it imported, and the store lists exactly
// those: the first ones read, every batch it counted committed.
func TestImportCancelledMidway(t *testing.T) {
	t.Parallel()
	const total = 2500 // two full batches and a part of one
	data, ids := bulkRecords(t, total)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var stdout, stderr bytes.Buffer
	in := &stopAfter{data: data, ctx: ctx, stop: func() { cancel(&stopped{sig: os.Interrupt}) }}
	e := &env{stdin: in, stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	dir := t.TempDir()
	if code := run(ctx, e, []string{"import", "--store", "file://" + dir, "-"}); code != 130 {
		t.Fatalf("exit %d, want 130; stderr %q", code, stderr.String())
	}
	if stderr.String() != "cairn import: interrupted by SIGINT\n" {
		t.Errorf("stderr %q", stderr.String())
	}
	m := regexp.MustCompile(`^imported (\d+) runs\n$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("stdout %q", stdout.String())
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 || n > total {
		t.Fatalf("imported %d of %d", n, total)
	}
	listed := listAll(t, "file://"+dir)
	if len(listed) != n {
		t.Fatalf("imported %d runs, the store lists %d", n, len(listed))
	}
	for _, id := range ids[:n] {
		if !listed[id] {
			t.Fatalf("run %v reported imported is not listed", id)
		}
	}
	t.Logf("imported %d of %d before the stop", n, total)
}

// listAll returns the runs the store at url lists.
func listAll(t *testing.T, url string) map[uuid.UUID]bool {
	t.Helper()
	ctx := context.Background()
	s, err := tiered.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	out := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(ctx, s, nil) {
		if err != nil {
			t.Fatal(err)
		}
		out[sum.RunID] = true
	}
	return out
}

// failCommits is a bucket whose index commits fail once ok of them have
// succeeded.
type failCommits struct {
	bucket.Bucket
	ok      int32
	commits atomic.Int32
}

var errCommitRefused = errors.New("commit refused")

func (b *failCommits) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if strings.HasPrefix(key, "index/log/") && b.commits.Add(1) > b.ok {
		return "", errCommitRefused
	}
	return b.Bucket.Put(ctx, key, body, opts)
}

// newTestImporter returns an importer of batches of batchRuns into d,
// printing on stdout.
func newTestImporter(d *durable.Store, mode importMode, batchRuns int, stdout io.Writer) *importer {
	e := &env{stdout: stdout, stderr: io.Discard, getenv: func(string) string { return "" }}
	im := newImporter(e, d, mode, false, startProgress(e, "importing", unitBytes, "", 0))
	im.batchRuns = batchRuns
	return im
}

// Runs count as imported once their batch is committed: when a commit
// fails, the import fails naming the batch, and the count is of the runs
// the store lists.
func TestImportCountsCommittedOnly(t *testing.T) {
	t.Parallel()
	data, ids := bulkRecords(t, 25)
	file := writeTemp(t, "bulk.jsonl", string(data))
	b := &failCommits{Bucket: bucket.NewMem(), ok: 1}
	d, err := durable.New(b, &durable.Options{Index: &index.Options{RetryFor: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	var stdout bytes.Buffer
	im := newTestImporter(d, importIfNewer, 10, &stdout)
	srcs, err := importSources(im.e, []string{file})
	if err != nil {
		t.Fatal(err)
	}
	err = im.run(context.Background(), srcs)
	if !errors.Is(err, errCommitRefused) || !strings.Contains(err.Error(), "a batch of 10 runs (from "+file+" line 11) did not commit (cairn reindex lists what it wrote)") {
		t.Fatalf("import with the second commit refused: %v", err)
	}
	if im.imported != 10 {
		t.Errorf("counted %d imported, want the 10 of the committed batch", im.imported)
	}
	page, err := d.List(context.Background(), &cairn.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 10 {
		t.Fatalf("the store lists %d runs, want 10", len(page.Runs))
	}
	for _, r := range page.Runs {
		if i := slices.Index(ids, r.RunID); i < 0 || i >= 10 {
			t.Errorf("run %v (record %d) listed; only the first batch committed", r.RunID, i)
		}
	}
}

// racingWriter is a bucket where another writer saves a newer checkpoint
// of a run just before import's conditional write of it.
type racingWriter struct {
	bucket.Bucket
	once  sync.Once
	other func()
}

func (b *racingWriter) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if strings.Contains(key, "runs/") && opts != nil && (opts.IfMatch != "" || opts.IfNoneMatch != "") {
		b.once.Do(b.other)
	}
	return b.Bucket.Put(ctx, key, body, opts)
}

// Another writer saving the run between import's check of its timestamp
// and its write: the write is conditional, so it fails, and the record is
// decided again against what the other writer saved. An older record is
// then skipped (with --if-newer), a newer one imported; with
// --skip-existing, the run now exists.
func TestImportRacesAnotherWriter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode     importMode
		incoming time.Duration // after the stored record
		other    time.Duration // the other writer's, after the stored record
		want     string
		imported int
	}{
		{importIfNewer, time.Hour, 2 * time.Hour, "other", 0},
		{importIfNewer, 3 * time.Hour, 2 * time.Hour, "incoming", 1},
		{importSkipExisting, time.Hour, 2 * time.Hour, "other", 0},
	} {
		t.Run(fmt.Sprintf("%v", tc), func(t *testing.T) {
			ctx := context.Background()
			mem := bucket.NewMem()
			raw, err := durable.New(mem, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close(ctx)
			save := func(ts time.Time, what string) {
				t.Helper()
				err := raw.Save(ctx, &cairn.Checkpoint{WorkflowName: "modes", RunID: uuid.MustParse(modeRun), Timestamp: ts,
					State: map[string]any{"what": what}, PendingEvents: []cairn.Event{}, Metadata: map[string]any{}})
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.mode == importIfNewer {
				save(modeT0, "stored")
			}
			rw := &racingWriter{Bucket: mem, other: func() { save(modeT0.Add(tc.other), "other") }}
			d, err := durable.New(rw, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close(ctx)
			im := newTestImporter(d, tc.mode, 10, io.Discard)
			srcs, err := importSources(im.e, []string{writeTemp(t, "in.jsonl", modeRecord(t, modeT0.Add(tc.incoming), "incoming"))})
			if err != nil {
				t.Fatal(err)
			}
			if err := im.run(ctx, srcs); err != nil {
				t.Fatal(err)
			}
			if im.imported != tc.imported || im.imported+im.skipped != 1 || im.refused != 0 {
				t.Errorf("imported %d, skipped %d, refused %d; want %d imported", im.imported, im.skipped, im.refused, tc.imported)
			}
			cp, err := raw.Load(ctx, uuid.MustParse(modeRun))
			if err != nil {
				t.Fatal(err)
			}
			if cp.State["what"] != tc.want {
				t.Errorf("the store holds %v, want %s", cp.State["what"], tc.want)
			}
		})
	}
}

// A dry run lists every record's outcome in the order read, refused ones
// included (with run_id when the record named its run): the same records
// a real import refuses, and counts in "refused".
func TestImportDryRunListsRefused(t *testing.T) {
	t.Parallel()
	store := "file://" + t.TempDir()
	if _, stderr, code := runIn(t, "import", "--store", store, writeTemp(t, "empty.jsonl", "")); code != 0 {
		t.Fatalf("import of nothing: exit %d, %s", code, stderr)
	}
	badLabels := `{"workflow_name":"x","run_id":"` + modeRun + `","timestamp":"2024-01-01T00:00:00Z","state":{},"pending_events":[],"metadata":{"cairn.labels":5}}`
	in := writeTemp(t, "in.jsonl", modeRecord(t, modeT0, "first")+"\x01garbage\n"+badLabels+"\n"+modeRecord(t, modeT0.Add(time.Hour), "second"))
	out, stderr, code := runIn(t, "--json", "import", "--dry-run", "--store", store, in)
	if code != exitFailure || strings.Count(stderr, "\n") != 3 {
		t.Errorf("dry run of 2 bad records: exit %d, stderr:\n%s", code, stderr)
	}
	var doc importJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got []string
	for _, r := range doc.Runs {
		got = append(got, fmt.Sprintf("%s %s %s", r.Action, r.RunID, strings.TrimPrefix(r.Where, in+" ")))
	}
	want := []string{"import " + modeRun + " line 1", "refuse  line 2", "refuse " + modeRun + " line 3", "import " + modeRun + " line 4"}
	if !slices.Equal(got, want) || doc.Imported != 2 || doc.Refused != 2 || doc.Runs[1].Reason == "" || doc.Runs[2].Reason == "" {
		t.Errorf("dry run: %+v\nruns %q\nwant %q", doc, got, want)
	}
	if got := storedWhat(t, store); got != "" {
		t.Errorf("the dry run imported the run: %s", got)
	}
	// The real import refuses the same two.
	var real importJSON
	out, _, code = runIn(t, "--json", "import", "--store", store, in)
	if err := json.Unmarshal([]byte(out), &real); err != nil || code != exitFailure || real.Refused != 2 || real.Imported != 2 || real.Runs != nil {
		t.Errorf("import: exit %d, %+v, %v\n%s", code, real, err, out)
	}
}
