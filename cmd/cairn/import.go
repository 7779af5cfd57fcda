package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// importMode is what import does with a run the store already holds.
type importMode int

const (
	// importIfNewer keeps the newer checkpoint: a record replaces the
	// stored run only if its timestamp is later (the default).
	importIfNewer importMode = iota
	// importSkipExisting never replaces a stored run.
	importSkipExisting
	// importOverwrite always replaces it: the last record read wins.
	importOverwrite
)

func (m importMode) String() string {
	return [...]string{"if-newer", "skip-existing", "overwrite"}[m]
}

// skipReason says why a record of this mode was skipped.
func (m importMode) skipReason() string {
	if m == importSkipExisting {
		return "already in the store"
	}
	return "the store's copy is as new or newer"
}

// importFlags are the flags of import.
type importFlags struct {
	ifNewer, skipExisting, overwrite, dryRun bool
}

// mode returns the mode the flags choose, or a usage error when they
// choose more than one.
func (f *importFlags) mode() (importMode, error) {
	var set []string
	m := importIfNewer
	for _, c := range []struct {
		on   bool
		name string
		mode importMode
	}{{f.ifNewer, "--if-newer", importIfNewer}, {f.skipExisting, "--skip-existing", importSkipExisting}, {f.overwrite, "--overwrite", importOverwrite}} {
		if c.on {
			set, m = append(set, c.name), c.mode
		}
	}
	if len(set) > 1 {
		return m, usagef("%s: choose one of --if-newer (the default), --skip-existing and --overwrite", strings.Join(set, " and "))
	}
	return m, nil
}

func newImportCmd(e *env) *cobra.Command {
	f := &importFlags{}
	cmd := &cobra.Command{
		Use:   "import FILE|DIR|-...",
		Short: "read JSON lines, or Blazen MessagePack or JSON records",
		Long: "Save the runs recorded in files, directories of files, or stdin (-): JSON lines (what export\n" +
			"writes), JSON records in any layout (what show prints), or Blazen MessagePack records (a map\n" +
			"or a positional array, bare or zstd). A bad record is named with its file and line; the others\n" +
			"are imported, and the exit code is then 1. A directory stands for its files, links to files\n" +
			"included, in name order; what else it holds is named on stderr and skipped.\n\n" +
			"A run the store already holds is replaced only by a newer checkpoint (--if-newer, the\n" +
			"default: equal or older timestamps are skipped and counted), never (--skip-existing), or\n" +
			"always (--overwrite). --dry-run reports what would be imported and skipped, writing nothing.\n\n" +
			"Runs are written in batches (objects, then one index commit); a run counts as imported once\n" +
			"its batch is committed. Stopped (SIGINT, SIGTERM, --timeout), it reads no more, commits the\n" +
			"batch in hand within the stop grace, and prints the count: those runs are listed.",
		Example: "  cairn import backup.jsonl\n  cairn import --dry-run --skip-existing blazen-records/\n  producer | cairn import -",
		Args:    minArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runImport(cmd.Context(), e, f, args) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.ifNewer, "if-newer", false, "replace a stored run only with a newer checkpoint; skip equal or older ones (the default)")
	fl.BoolVar(&f.skipExisting, "skip-existing", false, "never replace a stored run")
	fl.BoolVar(&f.overwrite, "overwrite", false, "always replace a stored run: the last record read wins")
	fl.BoolVar(&f.dryRun, "dry-run", false, "report what would be imported and skipped, write nothing")
	return cmd
}

// Import batches: a batch is written (one Write: its objects, then one
// index commit) when it holds importBatchRuns runs or importBatchBytes of
// records, or importBatchWait after its first record (records from an
// idle pipe are not held back), or when the input ends.
const (
	importBatchRuns  = 1000
	importBatchBytes = 32 << 20
	importBatchWait  = time.Second
	// importRounds bounds the writes of one record whose run another
	// writer keeps changing between the check of its timestamp and the
	// write (a conditional write that fails).
	importRounds = 3
)

// importJSON is what import --json prints: the mode, and how many
// records were imported (with dry_run: would be), skipped (the store
// holds the run, as new or newer with if-newer) and refused (bad
// records, named on stderr). With dry_run, runs lists each record's
// outcome in the order read, refused ones included, and is [] (never
// null) for none; without dry_run it is absent.
type importJSON struct {
	Mode     string          `json:"mode"`
	DryRun   bool            `json:"dry_run"`
	Imported int             `json:"imported"`
	Skipped  int             `json:"skipped"`
	Refused  int             `json:"refused"`
	Runs     []importRunJSON `json:"runs,omitzero"` // nil: not a dry run
}

// importRunJSON is a record's outcome in a dry run: action is import,
// skip or refuse, with the reason for the last two. run_id is absent for
// a record refused before its run ID could be read.
type importRunJSON struct {
	RunID  string `json:"run_id,omitempty"`
	Where  string `json:"where"` // file and line
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// runImport saves the runs recorded in files, directories of files, or
// stdin ("-"). A file is either JSON — one record a line (what export
// writes), or one or more records in any layout (what show prints) — or a
// single blazen-persist MessagePack record, a map or a positional array,
// bare or in a zstd frame. What happens to a run the store holds already
// is the mode's (importMode).
//
// No record may exceed the codec's size limit (16 MiB): a longer one is
// refused without reading it all. A bad record is reported with its file
// and line and the others are imported all the same; the exit code is
// then 1. Runs are written in batches and counted once committed: the
// count printed is of runs listed in the store. Stopped (SIGINT, SIGTERM,
// --timeout), it reads no more, writes the batch in hand (within the stop
// grace) and prints that count before failing.
func runImport(ctx context.Context, e *env, f *importFlags, args []string) error {
	mode, err := f.mode()
	if err != nil {
		return err
	}
	if n := slices.Index(args, "-"); n >= 0 && slices.Index(args[n+1:], "-") >= 0 {
		return usagef("stdin (-) given twice")
	}
	if slices.Contains(args, "-") {
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
	srcs, err := importSources(e, args)
	if err != nil {
		return err
	}
	return withStore(ctx, e, f.dryRun, nil, func(s *tiered.Store) error {
		label := "importing"
		if f.dryRun {
			label = "importing (dry run)"
		}
		p := startProgress(e, label, unitBytes, "", sourcesSize(srcs))
		defer p.finish()
		im := newImporter(e, s.Durable(), mode, f.dryRun, p)
		err := im.run(ctx, srcs)
		p.finish()
		if perr := im.report(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		if im.refused > 0 {
			return fmt.Errorf("%d %s could not be imported (listed above)", im.refused, plural(im.refused, "record", "records"))
		}
		return nil
	})
}

// sourcesSize returns the bytes of srcs when all are regular files, else
// 0 (not known: stdin, a pipe).
func sourcesSize(srcs []importSource) int64 {
	var n int64
	for _, s := range srcs {
		if s.size < 0 {
			return 0
		}
		n += s.size
	}
	return n
}

// importItem is one record read, or why a record was refused.
type importItem struct {
	where string       // file and line, for messages
	run   uuid.UUID    // the record's run; uuid.Nil when refused before it was known
	rec   cairn.Record // zero when refused
	why   string       // why the record was refused
}

// importer imports records into a durable store in batches (see run).
type importer struct {
	d     *durable.Store
	codec *cairn.Codec
	mode  importMode
	dry   bool
	p     *progress
	e     *env
	log   *slog.Logger

	batchRuns, batchBytes int
	batchWait             time.Duration

	// The batch being gathered.
	batch      []importItem
	batchSize  int
	inBatch    map[uuid.UUID]bool
	batchTimer *time.Timer
	// planned is, in a dry run, the timestamp of each run an earlier
	// record would have written: what the store would hold by now.
	planned map[uuid.UUID]time.Time

	imported, skipped, refused int
	runs                       []importRunJSON // dry run, --json
}

func newImporter(e *env, d *durable.Store, mode importMode, dry bool, p *progress) *importer {
	return &importer{d: d, codec: d.Codec(), mode: mode, dry: dry, p: p, e: e, log: e.logger(),
		batchRuns: importBatchRuns, batchBytes: importBatchBytes, batchWait: importBatchWait,
		inBatch: map[uuid.UUID]bool{}, planned: map[uuid.UUID]time.Time{}}
}

// run imports the records of srcs. One goroutine reads and decodes them
// while this one gathers them in batches and writes them. Once ctx ends,
// no record is read any more and the batch in hand is written under the
// command's finishing context (the stop grace); the error is then ctx's
// cause. The error is for failures of the store or of reading; bad
// records are reported and counted.
func (im *importer) run(ctx context.Context, srcs []importSource) error {
	wctx, cancel := finishContext(ctx)
	defer cancel()
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	// Read-ahead, for reading and writing to overlap: records are small
	// as a rule, and one of the codec's largest (16 MiB) fills a batch.
	items := make(chan importItem, 64)
	var readErr error
	go func() {
		defer close(items)
		readErr = im.read(rctx, srcs, items)
	}()
	im.batchTimer = time.NewTimer(time.Hour)
	im.batchTimer.Stop()
	defer im.batchTimer.Stop()
	for {
		select {
		case it, ok := <-items:
			if !ok {
				if err := im.flush(wctx); err != nil {
					return err
				}
				if readErr != nil && ctx.Err() != nil {
					return context.Cause(ctx)
				}
				return readErr
			}
			if err := im.take(wctx, it); err != nil {
				return err
			}
		case <-im.batchTimer.C:
			if err := im.flush(wctx); err != nil {
				return err
			}
		case <-ctx.Done():
			if err := im.flush(wctx); err != nil {
				return err
			}
			return context.Cause(ctx)
		}
	}
}

// take adds one item to the batch, writing the batch first if it holds
// the same run (a later record of a run is decided against the earlier
// one's outcome), and after if it is full.
func (im *importer) take(ctx context.Context, it importItem) error {
	if it.why != "" {
		if im.dry && len(im.batch) > 0 {
			// The outcomes are listed in the order read: the batch's first.
			if err := im.flush(ctx); err != nil {
				return err
			}
		}
		im.refuse(it, it.why)
		return nil
	}
	run := it.rec.RunID()
	if im.inBatch[run] {
		if err := im.flush(ctx); err != nil {
			return err
		}
	}
	im.batch = append(im.batch, it)
	im.batchSize += len(it.rec.Bytes())
	im.inBatch[run] = true
	if len(im.batch) == 1 {
		im.batchTimer.Reset(im.batchWait)
	}
	if len(im.batch) >= im.batchRuns || im.batchSize >= im.batchBytes {
		return im.flush(ctx)
	}
	return nil
}

// flush writes the batch and starts a new one.
func (im *importer) flush(ctx context.Context) error {
	im.batchTimer.Stop()
	batch := im.batch
	im.batch, im.batchSize = nil, 0
	clear(im.inBatch)
	if len(batch) == 0 {
		return nil
	}
	err := im.write(ctx, batch)
	status := fmt.Sprintf("%d imported", im.imported)
	if im.skipped > 0 {
		status += fmt.Sprintf(", %d skipped", im.skipped)
	}
	im.p.setStatus("%s", status)
	return err
}

// decision is what import does with one record of a batch: write it
// (on a condition), skip it, or refuse it.
type decision struct {
	cond   durable.Condition // of the write
	skip   string            // why it is skipped
	refuse string            // why it is refused
}

// write decides and writes one batch: the records to write in one Write,
// the others skipped. A record whose conditional write fails (another
// writer changed its run since it was decided) is decided again, for at
// most importRounds rounds. Only the records of a committed Write count
// as imported.
func (im *importer) write(ctx context.Context, batch []importItem) error {
	todo := batch
	for round := 1; len(todo) > 0; round++ {
		if round > importRounds {
			for _, it := range todo {
				im.refuse(it, fmt.Sprintf("run %s: another writer changed it while it was being imported, %d times; not imported", it.rec.RunID(), importRounds))
			}
			return nil
		}
		decisions, err := im.decide(ctx, todo)
		if err != nil {
			// Nothing of it is written yet: whatever ended ctx, no
			// write is in flight, so nothing saved is at risk.
			n := len(todo)
			return fmt.Errorf("a batch of %d %s (from %s) was not imported: %w", n, plural(n, "run", "runs"), todo[0].where, err)
		}
		var recs []durable.Record
		var written []importItem
		conds := make(importFence, len(todo))
		for i, it := range todo {
			d := decisions[i]
			switch {
			case d.refuse != "":
				im.refuse(it, d.refuse)
			case d.skip != "":
				im.skip(it, d.skip)
			case im.dry:
				im.plan(it)
			default:
				r := it.rec
				recs = append(recs, durable.Record{RunID: r.RunID(), Workflow: r.WorkflowName(), Timestamp: r.Timestamp(), Labels: r.Labels(), Epoch: r.Epoch(), Data: r.Bytes()})
				written = append(written, it)
				conds[r.RunID()] = d.cond
			}
		}
		if len(recs) == 0 {
			return nil
		}
		res, err := im.d.Write(ctx, recs, &durable.WriteOptions{Fence: conds})
		if err != nil {
			return batchError(ctx, written, err)
		}
		todo = nil
		var failed error
		for i, r := range res {
			switch {
			case r.Err == nil:
				im.imported++
			case errors.Is(r.Err, cairn.ErrConflict) && im.mode == importSkipExisting:
				im.skip(written[i], im.mode.skipReason())
			case errors.Is(r.Err, cairn.ErrConflict):
				todo = append(todo, written[i])
			case failed == nil:
				failed = fmt.Errorf("%s: %w", written[i].where, r.Err)
			}
		}
		im.log.Debug("import batch committed", "runs", len(recs), "imported", im.imported, "skipped", im.skipped, "retry", len(todo), "round", round)
		if failed != nil {
			return failed
		}
	}
	return nil
}

// batchError is the error of a Write of a batch of records that did not
// commit: none of them counts as imported. When ctx, the finishing
// context, has ended (a stopped import's grace passed), it says what was
// saved may not be durable.
func batchError(ctx context.Context, batch []importItem, err error) error {
	n := len(batch)
	msg := fmt.Sprintf("a batch of %d %s (from %s) did not commit (cairn reindex lists what it wrote)", n, plural(n, "run", "runs"), batch[0].where)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w: %w", msg, notDurable(ctx), err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// decide returns what to do with each record of items, reading the
// stored runs in parallel when the mode needs them.
func (im *importer) decide(ctx context.Context, items []importItem) ([]decision, error) {
	out := make([]decision, len(items))
	if im.mode == importOverwrite {
		return out, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, it := range items {
		g.Go(func() (err error) {
			out[i], err = im.decideOne(gctx, it.rec)
			return err
		})
	}
	return out, g.Wait()
}

// decideOne decides for one record, with if-newer or skip-existing. It
// only reads im.planned, which decide's caller alone writes.
func (im *importer) decideOne(ctx context.Context, rec cairn.Record) (decision, error) {
	run := rec.RunID()
	if ts, ok := im.planned[run]; ok { // dry run: an earlier record's outcome
		if im.mode == importSkipExisting || !rec.Timestamp().After(ts) {
			return decision{skip: im.mode.skipReason()}, nil
		}
		return decision{}, nil
	}
	if im.mode == importSkipExisting {
		if !im.dry {
			return decision{cond: durable.Condition{IfAbsent: true}}, nil // a conflict is a skip
		}
		ok, err := im.d.Exists(ctx, run)
		if err != nil {
			return decision{}, err
		}
		if ok {
			return decision{skip: im.mode.skipReason()}, nil
		}
		return decision{}, nil
	}
	stored, etag, err := im.d.Read(ctx, run, "")
	if errors.Is(err, cairn.ErrNotFound) {
		return decision{cond: durable.Condition{IfAbsent: true}}, nil
	}
	var h cairn.RecordHeader
	if err == nil {
		h, err = im.codec.ReadHeader(stored)
	}
	switch {
	case err != nil && (unreadable(err) || errors.Is(err, cairn.ErrInvalid)):
		return decision{refuse: fmt.Sprintf("run %s: the store's copy cannot be read (%s); --overwrite replaces it", run, describe(err))}, nil
	case err != nil:
		return decision{}, err
	case !rec.Timestamp().After(h.Timestamp):
		ts, _ := cairn.FormatTimestamp(h.Timestamp)
		return decision{skip: im.mode.skipReason() + " (" + ts + ")"}, nil
	}
	return decision{cond: durable.Condition{IfMatch: etag}}, nil
}

// importFence makes each record's write conditional on what decide saw.
// durable.Write reads it while writing (Condition) and reports into it
// (Written) from several goroutines: it is only read then.
type importFence map[uuid.UUID]durable.Condition

func (f importFence) Condition(run uuid.UUID) durable.Condition { return f[run] }
func (f importFence) Written(uuid.UUID, string)                 {}

// skip counts a skipped record (and lists it, in a dry run).
func (im *importer) skip(it importItem, why string) {
	im.skipped++
	if im.dry {
		im.dryLine(it, "skip", why)
	}
}

// plan counts a record a dry run would import.
func (im *importer) plan(it importItem) {
	im.imported++
	im.planned[it.rec.RunID()] = it.rec.Timestamp()
	im.dryLine(it, "import", "")
}

func (im *importer) dryLine(it importItem, action, why string) {
	id := it.rec.RunID().String()
	if im.e.flags.json {
		im.runs = append(im.runs, importRunJSON{RunID: id, Where: it.where, Action: action, Reason: why})
		return
	}
	line := fmt.Sprintf("would %-6s %s (%s)", action, id, it.where)
	if why != "" {
		line += ": " + why
	}
	fmt.Fprintln(im.e.stdout, line)
}

// refuse counts a refused record and names it on stderr (and lists it,
// in a dry run with --json).
func (im *importer) refuse(it importItem, why string) {
	im.refused++
	im.p.warnf("cairn import: %s: %s", it.where, why)
	if im.dry && im.e.flags.json {
		id := ""
		if it.run != uuid.Nil {
			id = it.run.String()
		}
		im.runs = append(im.runs, importRunJSON{RunID: id, Where: it.where, Action: "refuse", Reason: why})
	}
}

// report prints the counts on stdout: "imported 5 runs", with what was
// skipped; "would import" in a dry run; the JSON document with --json.
func (im *importer) report() error {
	if im.e.flags.json {
		runs := im.runs
		if im.dry && runs == nil {
			runs = []importRunJSON{}
		}
		return printJSON(im.e.stdout, importJSON{Mode: im.mode.String(), DryRun: im.dry, Imported: im.imported,
			Skipped: im.skipped, Refused: im.refused, Runs: runs})
	}
	verb := "imported"
	if im.dry {
		verb = "would import"
	}
	line := fmt.Sprintf("%s %d %s", verb, im.imported, plural(im.imported, "run", "runs"))
	if im.skipped > 0 {
		skipped := "skipped"
		if im.dry {
			skipped = "would skip"
		}
		line += fmt.Sprintf(", %s %d (%s)", skipped, im.skipped, im.mode.skipReason())
	}
	_, err := fmt.Fprintln(im.e.stdout, line)
	return err
}

// importSource is one file (or stdin) to import.
type importSource struct {
	name string // as given, for messages
	size int64  // of a regular file; -1 otherwise
	open func() (io.ReadCloser, error)
}

// importSources expands the arguments of import: "-" is stdin, a
// directory stands for the files in it (not its subdirectories, nor
// names starting with '.'), in name order. A symbolic link in a
// directory counts as what it points to: a regular file is read, a
// directory is skipped. What a directory holds besides its files
// (subdirectories, named pipes, sockets, devices) is skipped and named
// on stderr, one line each; an entry that cannot be examined (a link to
// nothing) is an error, as an argument that cannot be is.
func importSources(e *env, args []string) ([]importSource, error) {
	var out []importSource
	file := func(p string, fi os.FileInfo) importSource {
		size := int64(-1)
		if fi.Mode().IsRegular() {
			size = fi.Size()
		}
		return importSource{name: p, size: size, open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	for _, a := range args {
		if a == "-" {
			out = append(out, importSource{name: "stdin", size: -1, open: func() (io.ReadCloser, error) { return io.NopCloser(e.stdin), nil }})
			continue
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() { // a file, or a pipe (cairn import <(producer))
			out = append(out, file(a, fi))
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		for _, d := range entries {
			if strings.HasPrefix(d.Name(), ".") {
				continue
			}
			p := filepath.Join(a, d.Name())
			fi, err := os.Stat(p) // through a link
			if err != nil {
				return nil, err
			}
			switch {
			case fi.Mode().IsRegular():
				out = append(out, file(p, fi))
			case fi.IsDir():
				fmt.Fprintf(e.stderr, "cairn import: %s: skipped: a directory (import reads the files of %s, not its subdirectories)\n", p, a)
			default:
				fmt.Fprintf(e.stderr, "cairn import: %s: skipped: not a regular file (%s)\n", p, fileKind(fi.Mode()))
			}
		}
	}
	return out, nil
}

// fileKind names the type of a file that is neither regular nor a
// directory, for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.Type().String()
}

// read reads and decodes the records of srcs and sends them on out, until
// the end of the last source, a failure to read, or ctx's end (then its
// cause).
func (im *importer) read(ctx context.Context, srcs []importSource, out chan<- importItem) error {
	r := &recordReader{codec: im.codec, out: out, p: im.p}
	for _, src := range srcs {
		if err := r.file(ctx, src); err != nil {
			return err
		}
	}
	return nil
}

// recordReader reads records from sources (file), for the importer.
type recordReader struct {
	codec *cairn.Codec
	out   chan<- importItem
	p     *progress
}

// file reads one source. The error is for failures of reading, or ctx's
// end; bad records are sent as refused items.
func (r *recordReader) file(ctx context.Context, src importSource) error {
	rc, err := src.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(progressReader{rc, r.p}, 64<<10)
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
		return r.binary(ctx, src.name, br)
	}
	sc := bufio.NewScanner(br)
	max := r.codec.MaxSize()
	sc.Buffer(make([]byte, 0, 64<<10), max)
	var sp jsonSplitter
	sc.Split(sp.split)
	for sc.Scan() {
		if err := r.record(ctx, fmt.Sprintf("%s line %d", src.name, sp.tokenLine), sc.Bytes()); err != nil {
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
		return r.send(ctx, importItem{where: fmt.Sprintf("%s line %d", src.name, sp.lines+sp.ahead+1), why: err.Error()})
	}
	return nil
}

// binary reads a file holding one MessagePack record, bare or in a zstd
// frame.
func (r *recordReader) binary(ctx context.Context, name string, rd io.Reader) error {
	max := r.codec.MaxSize()
	limit := int64(max) + int64(max)/64 + 64<<10 // a compressed record of MaxSize fits
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx) // stopped while reading
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return r.send(ctx, importItem{where: name, why: fmt.Sprintf("larger than the limit of %d bytes for one record", limit)})
	}
	return r.record(ctx, name, data)
}

// record decodes one record and sends it, or why it is refused; where
// names it in messages.
func (r *recordReader) record(ctx context.Context, where string, data []byte) error {
	cp, err := r.codec.Unmarshal(data)
	if err != nil {
		return r.send(ctx, importItem{where: where, why: strings.TrimPrefix(describe(err), cairn.ErrCorrupt.Error()+": ")})
	}
	rec, err := r.codec.NewRecord(nil, cairn.Unleased(cp)) // a lease stamp keeps its epoch only, as a Save
	if err == nil {
		err = r.codec.CheckRecord(rec) // what durable.Write would refuse for the whole batch
	}
	if err != nil {
		return r.send(ctx, importItem{where: where, run: cp.RunID, why: fmt.Sprintf("run %s: %s", cp.RunID, describe(err))})
	}
	return r.send(ctx, importItem{where: where, run: cp.RunID, rec: rec})
}

// send sends it to the importer, unless ctx ends first.
func (r *recordReader) send(ctx context.Context, it importItem) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	select {
	case r.out <- it:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// progressReader counts the bytes read on a progress.
type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}
