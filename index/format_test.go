package index

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn/gen/wire"
	"github.com/cairnstore/cairn/index/internal/format"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite testdata/format.golden with the current encoding")

const goldenFormat = "testdata/format.golden"

// goldenValues are fixed values of every type the index writes to the
// bucket, each field set (and an optional one left out where that is
// what a writer does), in the order of testdata/format.golden.
func goldenValues() []struct {
	name  string
	value wire.Marshaler
	fresh func() wire.Unmarshaler
} {
	ts := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	run1 := uuid.MustParse("0195f2a4-3c1e-7b2d-9a41-5e6f70819203")
	run2 := uuid.MustParse("a1b2c3d4-e5f6-4789-8abc-def012345678")
	saved := format.Entry{RunID: run1, Timestamp: ts, Workflow: "nightly-etl", Size: 48213,
		Expires: ts.Add(72 * time.Hour), ETag: `"9b2cf535f27731c974343645a3985328"`}
	listed := format.Entry{RunID: run2, Timestamp: ts.Add(-time.Second), Workflow: "w", Size: 7}
	tomb := format.Op{Entry: format.Entry{RunID: run2, Timestamp: ts.Add(time.Minute), ETag: `"d41d8cd98f00b204e9800998ecf8427e"`}, Delete: true}
	ref := format.PageRef{ID: "5f0c7e9e-2d4b-4c1a-9e7d-3b8a6f1e2c40", Count: 2048, First: format.Entry{RunID: run1, Timestamp: ts}}
	runRef := format.PageRef{ID: "c3a1d2e4-8f5b-4a6c-b7d9-0e1f2a3b4c5d", Count: 3, First: format.Entry{RunID: run1}}
	labeled := saved
	labeled.Labels = "status=running&tenant=acme%2Fus"
	posting := labeled
	posting.ETag, posting.Pair = "", "status=running"
	labelRef := format.PageRef{ID: "e7f8a9b0-1c2d-4e3f-8a4b-5c6d7e8f9a0b", Count: 2048,
		First: format.Entry{RunID: run1, Timestamp: ts, Pair: "status=running"}}
	type golden = struct {
		name  string
		value wire.Marshaler
		fresh func() wire.Unmarshaler
	}
	values := []golden{
		{"Entry", &saved, func() wire.Unmarshaler { return new(format.Entry) }},
		{"Entry/listed", &listed, func() wire.Unmarshaler { return new(format.Entry) }},
		{"Entry/labeled", &labeled, func() wire.Unmarshaler { return new(format.Entry) }},
		{"Entry/posting", &posting, func() wire.Unmarshaler { return new(format.Entry) }},
		{"Op/save", &format.Op{Entry: saved}, func() wire.Unmarshaler { return new(format.Op) }},
		{"Op/delete", &tomb, func() wire.Unmarshaler { return new(format.Op) }},
		{"Batch", &format.Batch{ID: uuid.MustParse("7c9e6679-7425-40de-944b-e07fc1f90ae7"), Ops: []format.Op{{Entry: saved}, tomb}},
			func() wire.Unmarshaler { return new(format.Batch) }},
		{"Batch/barrier", &format.Batch{ID: uuid.MustParse("16fd2706-8baf-433b-82eb-8c7fada847da"), Ops: []format.Op{}},
			func() wire.Unmarshaler { return new(format.Batch) }},
		{"Page", &format.Page{Entries: []format.Entry{listed, {RunID: run1, Timestamp: ts, Workflow: "nightly-etl", Size: 48213, Expires: ts.Add(72 * time.Hour)}}},
			func() wire.Unmarshaler { return new(format.Page) }},
		{"Page/by-label", &format.Page{Entries: []format.Entry{posting, {RunID: run2, Timestamp: ts, Workflow: "w", Size: 7, Labels: "tenant=acme%2Fus", Pair: "tenant=acme%2Fus"}}},
			func() wire.Unmarshaler { return new(format.Page) }},
		{"OpPage", &format.OpPage{Ops: []format.Op{{Entry: saved}, tomb}}, func() wire.Unmarshaler { return new(format.OpPage) }},
		{"PageRef", &ref, func() wire.Unmarshaler { return new(format.PageRef) }},
		{"PageRef/by-label", &labelRef, func() wire.Unmarshaler { return new(format.PageRef) }},
		{"Level", &format.Level{Count: 3, Pages: []format.PageRef{runRef}}, func() wire.Unmarshaler { return new(format.Level) }},
		{"Manifest", &format.Manifest{Seq: 96, Created: ts.Add(time.Hour), Count: 2049, ByTime: []format.PageRef{ref, runRef},
			RunLevels: []format.Level{{Count: 3, Pages: []format.PageRef{runRef}}, {Count: 2048, Pages: []format.PageRef{ref}}}, Base: 64,
			ByLabel: []format.PageRef{}},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Manifest/empty", &format.Manifest{Seq: 7, Created: ts, ByTime: []format.PageRef{}, RunLevels: []format.Level{}, Base: 7,
			ByLabel: []format.PageRef{}},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Manifest/labeled", &format.Manifest{Seq: 128, Created: ts.Add(2 * time.Hour), Count: 2049, ByTime: []format.PageRef{ref},
			RunLevels: []format.Level{{Count: 2049, Pages: []format.PageRef{runRef}}}, Base: 96,
			ByLabel: []format.PageRef{labelRef}, Labeled: true},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Manifest/labeled-empty", &format.Manifest{Seq: 8, Created: ts, ByTime: []format.PageRef{}, RunLevels: []format.Level{}, Base: 7,
			ByLabel: []format.PageRef{}, Labeled: true},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Manifest/labels-unsure", &format.Manifest{Seq: 160, Created: ts.Add(3 * time.Hour), Count: 2049, ByTime: []format.PageRef{ref},
			RunLevels: []format.Level{{Count: 2049, Pages: []format.PageRef{runRef}}}, Base: 128,
			ByLabel: []format.PageRef{labelRef}, Labeled: true, LabelsUnsure: true},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Entry/region", &format.Entry{RunID: run1, Timestamp: ts, Workflow: "nightly-etl", Size: 48213, ETag: `"9b2cf535f27731c974343645a3985328"`,
			Epoch: 3, Region: "eu-west"}, func() wire.Unmarshaler { return new(format.Entry) }},
		{"Manifest/regions", &format.Manifest{Seq: 12, Created: ts, Count: 2049, ByTime: []format.PageRef{ref},
			RunLevels: []format.Level{{Count: 2049, Pages: []format.PageRef{runRef}}}, Base: 9,
			ByLabel: []format.PageRef{labelRef}, Labeled: true, Region: "eu-west",
			Streams: []format.StreamSeq{{Region: "", Seq: 40}, {Region: "us-east", Seq: 7}}, Sources: []string{"eu-west", "us-east"}},
			func() wire.Unmarshaler { return new(format.Manifest) }},
		{"Head", &format.Head{Seq: 96}, func() wire.Unmarshaler { return new(format.Head) }},
		{"Head/new", &format.Head{}, func() wire.Unmarshaler { return new(format.Head) }},
	}
	for _, v := range values {
		// A writer writes nil lists as empty ones, which read back empty.
		if m, ok := v.value.(*format.Manifest); ok && m.Streams == nil {
			m.Streams, m.Sources = []format.StreamSeq{}, []string{}
		}
	}
	return values
}

// TestFormatGolden pins the MessagePack encoding of the index's objects
// byte for byte: what is in buckets today must read, and what is written
// must be what older readers expect. Each golden value must also decode
// back to the value it was made from.
func TestFormatGolden(t *testing.T) {
	values := goldenValues()
	var out strings.Builder
	out.WriteString("# MessagePack encoding of the index's objects (before compression), one per line: name, hex.\n")
	out.WriteString("# Written by go test ./index -run TestFormatGolden -update; never edit by hand.\n")
	for _, v := range values {
		b, err := v.value.AppendMsgpack(nil)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		fmt.Fprintf(&out, "%s %x\n", v.name, b)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenFormat), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFormat, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := readGolden(t, goldenFormat)
	if len(golden) != len(values) {
		t.Fatalf("%s holds %d values, want %d", goldenFormat, len(golden), len(values))
	}
	for i, v := range values {
		g := golden[i]
		if g.name != v.name {
			t.Fatalf("%s line %d is %s, want %s", goldenFormat, i+1, g.name, v.name)
		}
		got, _ := v.value.AppendMsgpack(nil)
		if !bytes.Equal(got, g.data) {
			t.Errorf("%s encodes as\n%x\nwant\n%x", v.name, got, g.data)
		}
		dec := v.fresh()
		if err := wire.Unmarshal(g.data, dec); err != nil {
			t.Errorf("%s: decoding the golden bytes: %v", v.name, err)
			continue
		}
		if !reflect.DeepEqual(dec, v.value) {
			t.Errorf("%s decodes as\n%+v\nwant\n%+v", v.name, dec, v.value)
		}
	}
}

type goldenLine struct {
	name string
	data []byte
}

// readGolden returns the lines of the golden file at path.
func readGolden(t *testing.T, path string) []goldenLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestFormatGolden -update to write it)", err)
	}
	defer f.Close()
	var lines []goldenLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, h, ok := strings.Cut(text, " ")
		data, err := hex.DecodeString(h)
		if !ok || err != nil {
			t.Fatalf("%s: bad line %q", path, text)
		}
		lines = append(lines, goldenLine{name, data})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// goldenV1 is the golden file of the format before labels, and goldenV2
// the one before regions, kept as they were written: objects in buckets
// today.
const (
	goldenV1 = "testdata/format-v1.golden"
	goldenV2 = "testdata/format-v2.golden"
)

// TestFormatV1Decodes checks that every object of the format before labels
// (and before the by-label set) still decodes into the value it was made
// from, the fields added since left zero: a manifest from then reads as
// one that does not keep the by-label set, so List filters its by-time
// pages.
func TestFormatV1Decodes(t *testing.T) { testOlderFormat(t, goldenV1, sinceV1) }

// TestFormatV2Decodes checks the same of the format before regions: its
// entries have no epoch and come from the default region's stream, its
// manifests are the default region's and cover no other stream.
func TestFormatV2Decodes(t *testing.T) { testOlderFormat(t, goldenV2, sinceV2) }

// testOlderFormat checks that every value of the golden file path decodes
// into the golden value of its name, since zeroing in it the fields added
// after path was written.
func testOlderFormat(t *testing.T, path string, since func(wire.Marshaler)) {
	values := map[string]wire.Marshaler{}
	fresh := map[string]func() wire.Unmarshaler{}
	for _, v := range goldenValues() {
		values[v.name], fresh[v.name] = v.value, v.fresh
	}
	lines := readGolden(t, path)
	if len(lines) == 0 {
		t.Fatalf("%s holds no values", path)
	}
	for _, g := range lines {
		want, ok := values[g.name]
		if !ok {
			t.Errorf("%s: %s is no longer a golden value", path, g.name)
			continue
		}
		since(want)
		dec := fresh[g.name]()
		if err := wire.Unmarshal(g.data, dec); err != nil {
			t.Errorf("%s: decoding the old bytes: %v", g.name, err)
			continue
		}
		if !reflect.DeepEqual(dec, want) {
			t.Errorf("%s (%s) decodes as\n%+v\nwant\n%+v", g.name, path, dec, want)
		}
	}
}

// sinceV1 zeroes in a golden value the fields added after format-v1.golden
// was written whose zero value the golden values do not already have
// (Entry.Labels and Entry.Pair are empty in every value v1 holds).
func sinceV1(v wire.Marshaler) {
	sinceV2(v)
	if m, ok := v.(*format.Manifest); ok {
		m.ByLabel, m.Labeled, m.LabelsUnsure = nil, false, false
	}
}

// sinceV2 zeroes the fields added after format-v2.golden was written
// (Entry.Epoch and Entry.Region are zero in every value v2 holds).
func sinceV2(v wire.Marshaler) {
	if m, ok := v.(*format.Manifest); ok {
		m.Region, m.Streams, m.Sources = "", nil, nil
	}
}
