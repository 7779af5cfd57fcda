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
	"slices"
	"strings"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/tiered"
	"golang.org/x/sync/errgroup"
)

// exportFormats are the --format values of export, with the file suffix
// of the one-file-per-run formats.
var exportFormats = map[string]string{"jsonl": "", "msgpack": ".msgpack", "json": ".json"}

// runExport writes every run (of one workflow, with --workflow), newest
// first:
//
//   - jsonl (the default): one blazen-persist JSON record a line
//     (cairn.EncodeJSON: the six fields in order, map keys sorted), to
//     stdout or to the file --out, which appears only once it is complete;
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
func runExport(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "export", "")
	format := fs.String("format", "jsonl", "jsonl (one JSON record a line), msgpack or json (one RUN_ID.FORMAT file per run in --out)")
	out := fs.String("out", "", "jsonl: the file to write (default stdout); msgpack, json: the directory to write the files in")
	workflow := fs.String("workflow", "", "only runs of this workflow")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 0, 0); err != nil {
		return err
	}
	suffix, ok := exportFormats[*format]
	switch {
	case !ok:
		return usagef("--format %q: want jsonl, msgpack or json", *format)
	case suffix != "" && *out == "":
		return usagef("--format %s writes one file per run: give the directory with --out", *format)
	}
	return withStore(ctx, e, *storeFlag, nil, func(s *tiered.Store) error {
		p := startProgress(e, "exporting", "runs")
		defer p.finish()
		var write func(*cairn.Checkpoint) error
		var commit func() error
		if suffix == "" {
			w, c, abort, err := jsonlOutput(e, *out)
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
			if err := os.MkdirAll(*out, 0o777); err != nil {
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
				return writeFileAtomic(filepath.Join(*out, cp.RunID.String()+suffix), rec)
			}
			commit = func() error { return nil }
		}
		n, bad, err := exportRuns(ctx, s, *workflow, p, write)
		if err != nil {
			return err
		}
		if err := commit(); err != nil {
			return err
		}
		p.finish()
		if *out != "" {
			fmt.Fprintf(e.stdout, "exported %d %s to %s\n", n, plural(n, "run", "runs"), *out)
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

// importSource is one file (or stdin) to import.
type importSource struct {
	name string // as given, for messages
	open func() (io.ReadCloser, error)
}

// importSources expands the arguments of import: "-" is stdin, a
// directory stands for the files in it (not its subdirectories, nor
// names starting with '.'), in name order.
func importSources(e *env, args []string) ([]importSource, error) {
	var out []importSource
	file := func(p string) importSource {
		return importSource{name: p, open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	for _, a := range args {
		if a == "-" {
			out = append(out, importSource{name: "stdin", open: func() (io.ReadCloser, error) { return io.NopCloser(e.stdin), nil }})
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() { // a file, or a pipe (cairn import <(producer))
			out = append(out, file(a))
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		for _, d := range entries {
			if !strings.HasPrefix(d.Name(), ".") && d.Type().IsRegular() {
				out = append(out, file(filepath.Join(a, d.Name())))
			}
		}
	}
	return out, nil
}

// runImport saves the runs recorded in files, directories of files, or
// stdin ("-"). A file is either JSON — one record a line (what export
// writes), or one or more records in any layout (what show prints) — or a
// single blazen-persist MessagePack record, a map or a positional array,
// bare or in a zstd frame. A record replaces the stored run of the same
// ID.
//
// No record may exceed the codec's size limit (16 MiB): a longer one is
// refused without reading it all. A bad record is reported with its file
// and line and the others are imported all the same; the exit code is
// then 1. Runs are written in batches (write-back) and are durable when
// the count is printed. Stopped (SIGINT, SIGTERM, --timeout), it reads no
// more, flushes what it saved (within the stop grace) and prints that
// count before failing.
func runImport(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "import", "FILE|DIR|-...")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 1, -1); err != nil {
		return err
	}
	if n := slices.Index(fs.Args(), "-"); n >= 0 && slices.Index(fs.Args()[n+1:], "-") >= 0 {
		return usagef("import: stdin (-) given twice")
	}
	if slices.Contains(fs.Args(), "-") {
		// A read of stdin waiting on an idle producer does not see ctx
		// (nor does closing a blocking stdin end it): the import reads
		// through a pipe that a stopped import closes.
		pr, pw := io.Pipe()
		stdin := e.stdin
		go func() { _, err := io.Copy(pw, stdin); pw.CloseWithError(err) }()
		defer context.AfterFunc(ctx, func() { pw.CloseWithError(context.Cause(ctx)) })()
		piped := *e
		piped.stdin = pr
		e = &piped
	}
	srcs, err := importSources(e, fs.Args())
	if err != nil {
		return err
	}
	return withStore(ctx, e, *storeFlag, &tiered.Options{Mode: tiered.WriteBack}, func(s *tiered.Store) error {
		p := startProgress(e, "importing", "runs")
		defer p.finish()
		im := &importer{store: s, codec: cairn.DefaultCodec(), p: p}
		var werr error
		for _, src := range srcs {
			if werr = im.file(ctx, src); werr != nil {
				break
			}
		}
		if werr != nil && ctx.Err() == nil {
			return werr
		}
		// Stopped or done: make what was saved durable, then say how
		// much that is. A stopped import flushes within the stop grace.
		p.relabel("writing")
		fctx, cancel := finishContext(ctx)
		defer cancel()
		if err := s.Flush(fctx); err != nil {
			return fmt.Errorf("%d %s saved: %w: %w", im.saved, plural(im.saved, "run", "runs"), notDurable(fctx), err)
		}
		p.finish()
		fmt.Fprintf(e.stdout, "imported %d %s\n", im.saved, plural(im.saved, "run", "runs"))
		if werr != nil {
			return werr
		}
		if im.bad > 0 {
			return fmt.Errorf("%d %s could not be imported (listed above)", im.bad, plural(im.bad, "record", "records"))
		}
		return nil
	})
}

type importer struct {
	store *tiered.Store
	codec *cairn.Codec
	p     *progress
	saved int // records saved
	bad   int // records refused
}

// file imports one source. The error is for failures of the store or of
// reading; bad records are reported and counted.
func (im *importer) file(ctx context.Context, src importSource) error {
	rc, err := src.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	first, err := br.Peek(1)
	if errors.Is(err, io.EOF) {
		return nil // an empty file holds no records
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx) // stopped while waiting for input
		}
		return fmt.Errorf("%s: %w", src.name, err)
	}
	if bytes.IndexByte([]byte("{[ \t\r\n"), first[0]) < 0 {
		return im.binary(ctx, src.name, br)
	}
	sc := bufio.NewScanner(br)
	max := im.codec.MaxSize()
	sc.Buffer(make([]byte, 0, 64<<10), max)
	var sp jsonSplitter
	sc.Split(sp.split)
	for sc.Scan() {
		if err := im.record(ctx, fmt.Sprintf("%s line %d", src.name, sp.tokenLine), sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx) // stopped: stdin was cut, no record is bad
		}
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("record longer than the limit of %d bytes (the rest of the file is skipped)", max)
		}
		im.refuse("%s line %d: %v", src.name, sp.lines+sp.ahead+1, err)
	}
	return nil
}

// binary imports a file holding one MessagePack record, bare or in a
// zstd frame.
func (im *importer) binary(ctx context.Context, name string, r io.Reader) error {
	max := im.codec.MaxSize()
	limit := int64(max) + int64(max)/64 + 64<<10 // a compressed record of MaxSize fits
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx) // stopped while reading
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		im.refuse("%s: larger than the limit of %d bytes for one record", name, limit)
		return nil
	}
	return im.record(ctx, name, data)
}

// record decodes and saves one record; where names it in messages. Once
// ctx ends (the command was stopped) it saves nothing more.
func (im *importer) record(ctx context.Context, where string, data []byte) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	cp, err := im.codec.Unmarshal(data)
	if err != nil {
		im.refuse("%s: %s", where, strings.TrimPrefix(describe(err), cairn.ErrCorrupt.Error()+": "))
		return nil
	}
	err = im.store.Save(ctx, cp)
	if errors.Is(err, cairn.ErrInvalid) || errors.Is(err, cairn.ErrTooLarge) {
		im.refuse("%s: run %s: %s", where, cp.RunID, describe(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	im.saved++
	im.p.add(1)
	return nil
}

func (im *importer) refuse(format string, args ...any) {
	im.bad++
	im.p.warnf("cairn import: "+format, args...)
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
