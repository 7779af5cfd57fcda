package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// exportFormats are the --format values of export, with the file suffix
// of the one-file-per-run formats.
var exportFormats = map[string]string{"jsonl": "", "msgpack": ".msgpack", "json": ".json"}

// exportFlags are the flags of export.
type exportFlags struct {
	format, out, workflow string
}

func newExportCmd(e *env) *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "write checkpoints as JSON lines, or Blazen records",
		Long: "Write every run (of one workflow, with --workflow), newest first: JSON lines (blazen-persist's\n" +
			"JSON record) to stdout (or --out -) or the file --out, or one RUN_ID.msgpack (Blazen's bare MessagePack\n" +
			"record) or RUN_ID.json file per run in the directory --out. A run that cannot be read is named\n" +
			"on stderr and skipped; the others are written, and export exits 1 at the end.",
		Example: "  cairn export --out backup.jsonl\n  cairn export --format msgpack --out blazen-records/",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runExport(cmd.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "jsonl", "jsonl (one JSON record a line), msgpack or json (one RUN_ID.FORMAT file per run in --out)")
	fl.StringVar(&f.out, "out", "", "jsonl: the file to write (default, or -: stdout); msgpack, json: the directory to write the files in")
	fl.StringVar(&f.workflow, "workflow", "", "only runs of this workflow")
	return cmd
}

// exportJSON is what export --json prints when it writes to --out (to
// stdout it writes the JSON lines, which are JSON already): the runs
// written and those that could not be read.
type exportJSON struct {
	Exported   int    `json:"exported"`
	Unreadable int    `json:"unreadable"`
	Out        string `json:"out"`
	Format     string `json:"format"`
}

// runExport writes every run (of one workflow, with --workflow), newest
// first:
//
//   - jsonl (the default): one blazen-persist JSON record a line
//     (cairn.EncodeJSON: the six fields in order, map keys sorted), to
//     stdout (no --out, or --out -) or to the file --out, which appears
//     only once it is complete;
//   - msgpack: RUN_ID.msgpack in the directory --out, the bare MessagePack
//     record that blazen-persist writes (no zstd), which cairn import and
//     Blazen read back;
//   - json: RUN_ID.json in the directory --out, the JSON record.
//
// The same store gives the same bytes. A run whose object cannot be read
// (corrupt, too large) is named on stderr, one line each, and skipped: the
// others are written all the same, and the export then fails (exit 1).
// Any other error (the store unreachable, a full disk) stops it; files
// already written stay, a --out file of JSON lines is not written.
func runExport(ctx context.Context, e *env, f *exportFlags) error {
	suffix, ok := exportFormats[f.format]
	switch {
	case !ok:
		return usagef("--format %q: want jsonl, msgpack or json", f.format)
	case suffix != "" && f.out == "":
		return usagef("--format %s writes one file per run: give the directory with --out", f.format)
	case suffix != "" && f.out == "-":
		return usagef("--format %s writes one file per run: give the directory with --out (--out - is stdout, for jsonl; ./- names a directory)", f.format)
	}
	out := f.out
	if out == "-" { // stdout, as import - reads stdin (./- names a file)
		out = ""
	}
	return withStore(ctx, e, true, nil, func(s *tiered.Store) error {
		p := startProgress(e, "exporting", unitItems, "runs", 0)
		defer p.finish()
		var write func(*cairn.Checkpoint) error
		var commit func() error
		if suffix == "" {
			w, c, abort, err := jsonlOutput(e, out)
			if err != nil {
				return err
			}
			defer abort()
			write = func(cp *cairn.Checkpoint) error {
				rec, err := cairn.EncodeJSON(cp)
				if err != nil {
					return cairn.WrapOp("export", cp.RunID, err)
				}
				_, err = w.Write(append(rec, '\n'))
				return err
			}
			commit = c
		} else {
			if err := os.MkdirAll(f.out, 0o777); err != nil {
				return err
			}
			write = func(cp *cairn.Checkpoint) error {
				var rec []byte
				var err error
				if suffix == ".json" {
					rec, err = cairn.EncodeJSON(cp)
					rec = append(rec, '\n')
				} else {
					rec, err = cairn.DefaultCodec().EncodeRecord(nil, cp)
				}
				if err != nil {
					return cairn.WrapOp("export", cp.RunID, err)
				}
				return writeFileAtomic(filepath.Join(f.out, cp.RunID.String()+suffix), rec)
			}
			commit = func() error { return nil }
		}
		n, bad, err := exportRuns(ctx, s, f.workflow, p, write)
		if err != nil {
			return err
		}
		if err := commit(); err != nil {
			return err
		}
		p.finish()
		switch {
		case out != "" && e.flags.json:
			if err := printJSON(e.stdout, exportJSON{Exported: n, Unreadable: bad, Out: f.out, Format: f.format}); err != nil {
				return err
			}
		case out != "":
			fmt.Fprintf(e.stdout, "exported %d %s to %s\n", n, plural(n, "run", "runs"), f.out)
		}
		if bad > 0 {
			return fmt.Errorf("%d %s could not be read (listed above); the %d others were exported", bad, plural(bad, "run", "runs"), n)
		}
		return nil
	})
}

// exportBatch is how many runs export lists, and then loads in parallel,
// at a time.
const exportBatch = 100

// exportRuns writes every run of the store (of workflow, if not empty),
// newest first. A run whose object cannot be read (corrupt, too large,
// unreadable) is named on stderr, one line each, and skipped; a run
// deleted since it was listed is skipped. It returns the runs written and
// skipped as unreadable; any other error stops it.
func exportRuns(ctx context.Context, s *tiered.Store, workflow string, p *progress, write func(*cairn.Checkpoint) error) (n, bad int, err error) {
	opts := &cairn.ListOptions{WorkflowName: workflow, Limit: exportBatch}
	for {
		page, err := s.List(ctx, opts)
		if err != nil {
			return n, bad, err
		}
		cps := make([]*cairn.Checkpoint, len(page.Runs))
		errs := make([]error, len(page.Runs))
		var g errgroup.Group
		g.SetLimit(16)
		for i, r := range page.Runs {
			g.Go(func() error {
				cps[i], errs[i] = s.Load(ctx, r.RunID)
				return nil
			})
		}
		g.Wait()
		for i, r := range page.Runs {
			switch err := errs[i]; {
			case err == nil:
				if err := write(cps[i]); err != nil {
					return n, bad, err
				}
				n++
				p.add(1)
			case errors.Is(err, cairn.ErrNotFound):
			case unreadable(err):
				bad++
				p.warnf("cairn export: run %s: cannot read it, skipped: %s", r.RunID, describe(err))
			default:
				return n, bad, err
			}
		}
		if page.Next == "" {
			return n, bad, nil
		}
		opts.Cursor = page.Next
	}
}

// unreadable tells whether err says that a run's object cannot be read
// as a checkpoint, however often one tries: the other runs can still be.
func unreadable(err error) bool {
	return errors.Is(err, cairn.ErrCorrupt) || errors.Is(err, cairn.ErrTooLarge) || errors.Is(err, bucket.ErrUnreadable)
}

// jsonlOutput returns where export writes JSON lines: stdout, or a file
// that appears at path once commit is called (abort, a no-op after
// commit, removes it).
func jsonlOutput(e *env, path string) (w io.Writer, commit func() error, abort func(), err error) {
	if path == "" {
		bw := bufio.NewWriter(e.stdout)
		return bw, bw.Flush, func() {}, nil
	}
	f, err := createAtomic(path)
	if err != nil {
		return nil, nil, nil, err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	commit = func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return f.commit()
	}
	return bw, commit, f.abort, nil
}

// atomicFile is a temporary file next to path that becomes path on
// commit, so path never holds a partial export.
type atomicFile struct {
	*os.File
	path string
	done bool
}

func createAtomic(path string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it 0600
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &atomicFile{File: f, path: path}, nil
}

// commit syncs and closes the file and renames it to its path.
func (f *atomicFile) commit() error {
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// abort removes the file unless it was committed.
func (f *atomicFile) abort() {
	if !f.done {
		f.Close()
		os.Remove(f.Name())
	}
}

// writeFileAtomic writes data to path through an atomicFile.
func writeFileAtomic(path string, data []byte) error {
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	defer f.abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.commit()
}

// jsonSplitter splits a stream into its top-level JSON values, whatever
// the whitespace between them: JSON lines, an indented record, several.
// Anything that does not start like an object or array is returned up to
// the end of its line, for the decoder to refuse. It scans each byte once
// however the input arrives, and counts lines for messages.
type jsonSplitter struct {
	lines     int // newlines consumed so far
	tokenLine int // line (from 1) where the last token returned starts

	ahead int // newlines before the value being scanned, not consumed yet

	// State of the value being scanned at the start of data.
	pos   int
	depth int
	inStr bool
	esc   bool
}

func (sp *jsonSplitter) split(data []byte, atEOF bool) (int, []byte, error) {
	// Whitespace alone is consumed on its own. Whitespace before a value
	// is consumed with the value, in the same call: a scanner given an
	// advance without a token reads more input before calling again, so a
	// complete record after a newline would wait for the next one (from a
	// pipe, for as long as the producer is idle). The newlines before a
	// value not complete yet are kept in ahead, for the line number of a
	// value too long for the buffer.
	start := 0
	for start < len(data) && (data[start] == ' ' || data[start] == '\t' || data[start] == '\r' || data[start] == '\n') {
		start++
	}
	sp.ahead = 0
	if start == len(data) {
		sp.lines += bytes.Count(data[:start], []byte{'\n'})
		sp.pos = 0
		return start, nil, nil
	}
	end := -1
	if c := data[start]; c != '{' && c != '[' {
		if j := bytes.IndexByte(data[start:], '\n'); j >= 0 {
			end = start + j
		}
	} else {
		for i := max(sp.pos, start); i < len(data); i++ {
			c := data[i]
			switch {
			case sp.esc:
				sp.esc = false
			case sp.inStr:
				sp.esc = c == '\\'
				sp.inStr = c != '"'
			case c == '"':
				sp.inStr = true
			case c == '{' || c == '[':
				sp.depth++
			case c == '}' || c == ']':
				sp.depth--
			}
			if sp.depth == 0 {
				end = i + 1
				break
			}
		}
		sp.pos = len(data) // data[0] stays put until we advance
	}
	if end < 0 && !atEOF {
		sp.ahead = bytes.Count(data[:start], []byte{'\n'})
		return 0, nil, nil // more data
	}
	if end < 0 {
		end = len(data)
	}
	sp.lines += bytes.Count(data[:start], []byte{'\n'})
	sp.tokenLine = sp.lines + 1
	tok := data[start:end]
	sp.lines += bytes.Count(tok, []byte{'\n'})
	sp.pos, sp.depth, sp.inStr, sp.esc = 0, 0, false, false
	return end, tok, nil
}
