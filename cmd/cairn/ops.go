package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// withStore opens the store named by the --store flag, runs f on it and
// closes it, keeping the first error.
func withStore(ctx context.Context, e *env, storeFlag string, opts *tiered.Options, f func(*tiered.Store) error) (err error) {
	s, _, err := openStore(ctx, e, storeFlag, opts)
	if err != nil {
		return err
	}
	defer closeStore(ctx, s, &err)
	return f(s)
}

// onStore parses the flags of a command that takes no arguments and runs
// f on its store.
func onStore(ctx context.Context, e *env, fs *flag.FlagSet, storeFlag *string, args []string, f func(*tiered.Store) error) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 0, 0); err != nil {
		return err
	}
	return withStore(ctx, e, *storeFlag, nil, f)
}

// wantArgs checks the number of arguments left after the flags.
func wantArgs(fs *flag.FlagSet, min, max int) error {
	switch n := fs.NArg(); {
	case n < min:
		return usagef("missing argument (run cairn %s -h)", fs.Name())
	case max >= 0 && n > max:
		return usagef("unexpected argument %q (run cairn %s -h)", fs.Arg(max), fs.Name())
	}
	return nil
}

// timeFlag parses an RFC 3339 time given to a flag; empty means none.
func timeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := cairn.ParseTimestamp(v)
	if err != nil {
		return t, usagef("--%s %q: want an RFC 3339 time such as 2024-06-10T06:13:20Z", name, v)
	}
	return t, nil
}

// lsJSON is the document ls --json prints; see runLs.
type lsJSON struct {
	Runs []lsRun `json:"runs"`
	Next string  `json:"next"`
}

type lsRun struct {
	RunID        string            `json:"run_id"`
	WorkflowName string            `json:"workflow_name"`
	Timestamp    string            `json:"timestamp"`
	Size         int64             `json:"size"`
	Labels       map[string]string `json:"labels"` // never nil: {} for none
}

// lsFlags are the flags of ls beside --store and --timeout.
type lsFlags struct {
	workflow, since, until, cursor *string
	limit                          *int
	asJSON, claimable              *bool
	labels                         labelArgs
}

func newLsFlags(fs *flag.FlagSet) *lsFlags {
	f := &lsFlags{
		workflow: fs.String("workflow", "", "only runs of this workflow"),
		since:    fs.String("since", "", "only runs at or after this RFC 3339 time"),
		until:    fs.String("until", "", "only runs before this RFC 3339 time"),
		limit:    fs.Int("limit", 50, "at most this many runs (0: all)"),
		cursor:   fs.String("cursor", "", "continue after an earlier page (the cursor it printed)"),
		asJSON:   fs.Bool("json", false, "print one JSON document (schema in the docs) instead of a table"),
		claimable: fs.Bool("claimable", false,
			"only runs no live lease holds (never claimed, released or expired): with --label status=running, what workers may resume"),
	}
	fs.Var(&f.labels, "label", "only runs with this label, as KEY=VALUE (repeat for several: a run must have all)")
	return f
}

// options returns the ListOptions f asks for, or a usage error.
func (f *lsFlags) options() (*cairn.ListOptions, error) {
	if *f.limit < 0 {
		return nil, usagef("--limit %d: want 0 (all) or more", *f.limit)
	}
	opts := &cairn.ListOptions{WorkflowName: *f.workflow, Limit: *f.limit, Cursor: *f.cursor, Claimable: *f.claimable}
	var err error
	if opts.Since, err = timeFlag("since", *f.since); err != nil {
		return nil, err
	}
	if opts.Until, err = timeFlag("until", *f.until); err != nil {
		return nil, err
	}
	if *f.cursor != "" {
		if _, err := cairn.ParseCursor(*f.cursor); err != nil {
			return nil, usagef("--cursor: %s is not a cursor that cairn ls printed", quoteShort(*f.cursor))
		}
	}
	if opts.Labels, err = f.labels.selector(); err != nil {
		return nil, err
	}
	return opts, nil
}

// labelArgs are the values of a repeatable --label KEY=VALUE flag.
type labelArgs []string

func (l *labelArgs) String() string { return strings.Join(*l, " ") }

func (l *labelArgs) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// selector returns the label selector of l (nil for none), or a usage
// error naming the first --label that is not KEY=VALUE, repeats a key or
// breaks the label rules (cairn.Labels).
func (l labelArgs) selector() (map[string]string, error) {
	if len(l) == 0 {
		return nil, nil
	}
	sel := make(map[string]string, len(l))
	for _, arg := range l {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, usagef("--label %s: want KEY=VALUE, such as status=running", quoteShort(arg))
		}
		if _, dup := sel[k]; dup {
			return nil, usagef("--label %s: label %s given twice (a run has one value per key)", quoteShort(arg), quoteShort(k))
		}
		if err := cairn.ValidateLabels(map[string]string{k: v}); err != nil {
			return nil, usagef("--label %s: %s", quoteShort(arg), labelRule(err))
		}
		sel[k] = v
	}
	if err := cairn.ValidateLabels(sel); err != nil {
		return nil, usagef("--label: %s", labelRule(err))
	}
	return sel, nil
}

// labelRule is the rule a cairn.ValidateLabels error states, without the
// sentinel's prefix.
func labelRule(err error) string {
	return strings.TrimPrefix(err.Error(), cairn.ErrInvalid.Error()+": ")
}

// runLs lists one page of runs, newest first (ties by run ID bytes), as a
// table on stdout; the cursor of the next page, if there is one, goes to
// stderr as the --cursor to pass. --label KEY=VALUE keeps the runs with
// that label; several --label flags keep the runs with all of them.
// --claimable keeps the runs no live lease holds (cairn.Claimer), at the
// cost of a small read per run listed.
//
// With --json it prints one JSON document instead, for scripts:
//
//	{
//	  "runs": [
//	    {
//	      "run_id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
//	      "workflow_name": "demo",
//	      "timestamp": "2024-06-10T06:13:20.123456789Z",
//	      "size": 179,
//	      "labels": {
//	        "status": "running"
//	      }
//	    }
//	  ],
//	  "next": ""
//	}
//
// runs is in List order and is [] (never null) when there are none;
// run_id is the hyphenated UUID; timestamp is chrono's RFC 3339 form in
// UTC (the fraction omitted when zero, else 3, 6 or 9 digits); size is the
// length in bytes of the run's MessagePack record before compression;
// labels is an object of the run's labels, keys sorted, and {} (never
// null, never absent) for a run without any; next is the opaque cursor to
// pass to --cursor for the following page, "" on the last one. The
// fields, their names and their order are stable; new fields may be
// added.
func runLs(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "ls", "")
	f := newLsFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 0, 0); err != nil {
		return err
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	return withStore(ctx, e, *storeFlag, nil, func(s *tiered.Store) error {
		page, err := s.List(ctx, opts)
		if err != nil {
			return err
		}
		doc, err := lsDocument(page)
		if err != nil {
			return err
		}
		if *f.asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetEscapeHTML(false) // a workflow "a&b" stays readable
			enc.SetIndent("", "  ")
			return enc.Encode(doc)
		}
		return printLs(e, doc)
	})
}

// lsDocument returns what ls prints of page.
func lsDocument(page *cairn.Page) (lsJSON, error) {
	doc := lsJSON{Runs: make([]lsRun, len(page.Runs)), Next: page.Next}
	for i, r := range page.Runs {
		ts, err := cairn.FormatTimestamp(r.Timestamp)
		if err != nil {
			return doc, cairn.WrapOp("list", r.RunID, err)
		}
		labels := r.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		doc.Runs[i] = lsRun{RunID: r.RunID.String(), WorkflowName: r.WorkflowName, Timestamp: ts, Size: r.Size, Labels: labels}
	}
	return doc, nil
}

// printLs prints doc as ls's table, and the cursor of the next page on
// stderr.
func printLs(e *env, doc lsJSON) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN ID\tWORKFLOW\tTIMESTAMP\tSIZE\tLABELS")
	for _, r := range doc.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.RunID, printable(r.WorkflowName), r.Timestamp, r.Size, labelsCell(r.Labels))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if doc.Next != "" {
		fmt.Fprintf(e.stderr, "more runs: repeat with --cursor %s\n", doc.Next)
	}
	return nil
}

// labelsCell is the LABELS cell of a run: key=value pairs in key order,
// separated by commas, a value quoted when it holds a comma, a quote, a
// space or a character that is not printable; "-" for none.
func labelsCell(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	pairs := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		if strings.ContainsFunc(v, func(r rune) bool { return r == ',' || r == '"' || r == ' ' || !strconv.IsPrint(r) }) {
			v = strconv.Quote(v)
		}
		pairs = append(pairs, k+"="+v)
	}
	return strings.Join(pairs, ",")
}

// printable quotes a workflow name that would break a table row or play
// tricks on a terminal (control characters, tabs, an empty name).
func printable(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\t' || r == ' ' }) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// runShow prints a run's checkpoint as blazen-persist's JSON record,
// indented. A run that does not exist exits with 3.
func runShow(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "show", "RUN_ID")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 1, 1); err != nil {
		return err
	}
	id, err := parseRunID(fs.Arg(0))
	if err != nil {
		return err
	}
	return withStore(ctx, e, *storeFlag, nil, func(s *tiered.Store) error {
		cp, err := s.Load(ctx, id)
		if err != nil {
			return err
		}
		rec, err := cairn.EncodeJSON(cp)
		if err != nil {
			return cairn.WrapOp("show", id, err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, rec, "", "  "); err != nil {
			return cairn.WrapOp("show", id, err)
		}
		buf.WriteByte('\n')
		_, err = e.stdout.Write(buf.Bytes())
		return err
	})
}

// missingRuns is the error of an rm that was given runs that do not
// exist: exit code 3, like any run not found.
type missingRuns []uuid.UUID

func (m missingRuns) Error() string {
	ids := make([]string, len(m))
	for i, id := range m {
		ids[i] = id.String()
	}
	if len(m) == 1 {
		return "run not found: " + ids[0]
	}
	return fmt.Sprintf("%d runs not found: %s", len(m), strings.Join(ids, ", "))
}

func (m missingRuns) Is(target error) bool { return target == cairn.ErrNotFound }

// runRm deletes runs and prints "deleted RUN_ID" for each. Runs that do
// not exist are reported and leave the exit code 3; the others are
// deleted all the same. Every argument is checked before anything is
// deleted: one invalid run ID deletes nothing.
func runRm(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "rm", "RUN_ID...")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := wantArgs(fs, 1, -1); err != nil {
		return err
	}
	var ids []uuid.UUID
	for _, a := range fs.Args() {
		id, err := parseRunID(a)
		if err != nil {
			return err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return withStore(ctx, e, *storeFlag, nil, func(s *tiered.Store) error {
		var missing missingRuns
		for _, id := range ids {
			ok, err := s.Durable().Exists(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err() // interrupted: not a missing run
				}
				ok = true // unreadable (a damaged object file): delete it all the same
			}
			if !ok {
				missing = append(missing, id)
				continue
			}
			if err := s.Delete(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "deleted %s\n", id)
		}
		if len(missing) > 0 {
			return missing
		}
		return nil
	})
}

// runVerify compares the index with the run objects, decodes every object
// and prints what it found. It exits with 1 when anything is wrong.
func runVerify(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "verify", "")
	return onStore(ctx, e, fs, storeFlag, args, func(s *tiered.Store) error {
		p := startProgress(e, "verifying", "")
		rep, err := s.Durable().Verify(ctx)
		p.finish()
		if err != nil {
			return err
		}
		w := e.stdout
		fmt.Fprintf(w, "checked %d run %s\n", rep.Runs, plural(rep.Runs, "object", "objects"))
		if rep.Index != nil {
			fmt.Fprintf(w, "index       %s (reindex rebuilds it from the objects; nothing is lost)\n", describe(rep.Index))
		}
		for _, id := range slices.SortedFunc(maps.Keys(rep.Corrupt), compareIDs) {
			fmt.Fprintf(w, "corrupt     %s: %s\n", id, describe(rep.Corrupt[id]))
		}
		for _, id := range rep.Missing {
			fmt.Fprintf(w, "missing     %s: indexed, but its object is gone (reindex repairs this)\n", id)
		}
		for _, id := range rep.Mismatched {
			fmt.Fprintf(w, "mismatched  %s: the index disagrees with the object (reindex --full repairs this)\n", id)
		}
		if rep.Index == nil {
			for _, id := range rep.Unindexed {
				fmt.Fprintf(w, "unindexed   %s: a run the index does not list, such as a save whose commit was lost (reindex adds it; gc never deletes it)\n", id)
			}
		} else if n := len(rep.Unindexed); n > 0 {
			fmt.Fprintf(w, "unindexed   %d %s, all the index cannot list (reindex adds them; gc never deletes them)\n", n, plural(n, "run", "runs"))
		}
		for _, id := range rep.Dead {
			fmt.Fprintf(w, "dead        %s: the object of a deleted run, its delete cut short (gc removes it)\n", id)
		}
		for _, k := range rep.Strays {
			fmt.Fprintf(w, "stray       %q: a key under runs/ that names no run\n", k)
		}
		for _, id := range rep.SplitBrain {
			fmt.Fprintf(w, "split brain %s: two regions wrote it at the same epoch; the tie rules chose (claim and save it to settle it)\n", id)
		}
		for _, id := range rep.Stale {
			fmt.Fprintf(w, "stale       %s: its object holds a region's losing write (cairn reconcile restores the winner)\n", id)
		}
		if rep.OK() {
			fmt.Fprintln(w, "ok")
			return nil
		}
		n := len(rep.Corrupt) + len(rep.Missing) + len(rep.Mismatched) + len(rep.Unindexed) + len(rep.Dead) + len(rep.Strays) +
			len(rep.SplitBrain) + len(rep.Stale)
		if rep.Index != nil {
			n++
		}
		return fmt.Errorf("%d %s found (listed on stdout)", n, plural(n, "problem", "problems"))
	})
}

// quoteShort quotes s for a message, at most its first 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…(%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// runReindex rebuilds the index from the run objects. It goes on past
// objects it cannot read, names them, and exits with 1 at the end.
func runReindex(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "reindex", "")
	full := fs.Bool("full", false, "read every object's metadata, trusting no index entry (repairs what verify reports as mismatched)")
	return onStore(ctx, e, fs, storeFlag, args, func(s *tiered.Store) error {
		p := startProgress(e, "reindexing", "objects")
		seen := 0
		rep, err := s.Durable().Reindex(ctx, &durable.ReindexOptions{Full: *full, Progress: func(done, _ int) {
			p.add(done - seen)
			seen = done
		}})
		p.finish()
		if err != nil {
			return err
		}
		w := e.stdout
		for _, d := range rep.IndexDamage {
			fmt.Fprintf(w, "old index   %s\n", describe(d))
		}
		for _, id := range slices.SortedFunc(maps.Keys(rep.Corrupt), compareIDs) {
			fmt.Fprintf(w, "skipped     %s: %s (left in place)\n", id, describe(rep.Corrupt[id]))
		}
		for _, id := range rep.Dead {
			fmt.Fprintf(w, "dead        %s: the object of a deleted run (gc removes it)\n", id)
		}
		fmt.Fprintf(w, "indexed %d %s of %d %s\n", rep.Indexed, plural(rep.Indexed, "run", "runs"), rep.Runs, plural(rep.Runs, "object", "objects"))
		if n := len(rep.Corrupt); n > 0 {
			return fmt.Errorf("%d unreadable %s skipped (listed on stdout)", n, plural(n, "object", "objects"))
		}
		return nil
	})
}

// runGC deletes what it can prove dead: the objects of deleted runs whose
// delete was cut short, expired runs and index objects no snapshot needs.
// Objects the index does not list are reported, never deleted.
func runGC(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "gc", "")
	dry := fs.Bool("dry-run", false, "report what would be deleted, delete nothing")
	grace := fs.Duration("grace", 15*time.Minute, "leave index objects and objects of deleted runs younger than this (never less than a minute)")
	versions := fs.Bool("versions", false, "also delete old versions and delete markers in a versioned bucket (but versions a region's write still names)")
	return onStore(ctx, e, fs, storeFlag, args, func(s *tiered.Store) error {
		if *grace <= 0 {
			return usagef("--grace %v: want a positive duration such as 15m", *grace)
		}
		p := startProgress(e, "collecting garbage", "")
		rep, err := s.Durable().GC(ctx, &durable.GCOptions{Grace: *grace, DryRun: *dry, Versions: *versions})
		p.finish()
		if rep != nil {
			verb := "deleted"
			if *dry {
				verb = "would delete"
			}
			w := e.stdout
			for _, id := range rep.Expired {
				fmt.Fprintf(w, "%s expired run %s\n", verb, id)
			}
			for _, id := range rep.Dead {
				fmt.Fprintf(w, "%s object of deleted run %s\n", verb, id)
			}
			for _, id := range rep.Unindexed {
				fmt.Fprintf(w, "kept unindexed run %s (cairn reindex lists it)\n", id)
			}
			fmt.Fprintf(w, "%s %d expired %s, %d %s of deleted runs, %d index logs, %d index snapshots, %d index pages\n",
				verb, len(rep.Expired), plural(len(rep.Expired), "run", "runs"),
				len(rep.Dead), plural(len(rep.Dead), "object", "objects"),
				rep.Index.Logs, rep.Index.Snapshots, rep.Index.Pages)
			if *versions {
				fmt.Fprintf(w, "%s %d old %s\n", verb, rep.Versions, plural(rep.Versions, "version", "versions"))
			}
		}
		return err
	})
}

// runReconcile restores, for the runs that several regions wrote, the
// state the index chose where replication kept a losing one.
func runReconcile(ctx context.Context, e *env, args []string) error {
	fs, storeFlag := newFlags(e, "reconcile", "")
	anyRegion := fs.Bool("any-region", false, "also restore states other regions won (when such a region is gone for good)")
	return onStore(ctx, e, fs, storeFlag, args, func(s *tiered.Store) error {
		p := startProgress(e, "reconciling", "")
		rep, err := s.Durable().Reconcile(ctx, &durable.ReconcileOptions{AnyRegion: *anyRegion})
		p.finish()
		if err != nil {
			return err
		}
		w := e.stdout
		for _, id := range rep.Restored {
			fmt.Fprintf(w, "restored    %s: the winning state is the current version again\n", id)
		}
		for _, id := range rep.Elsewhere {
			fmt.Fprintf(w, "elsewhere   %s: another region's state won; that region restores it (or --any-region)\n", id)
		}
		for _, id := range rep.Claims {
			fmt.Fprintf(w, "claim       %s: its newest claim is the current one again\n", id)
		}
		for _, id := range slices.SortedFunc(maps.Keys(rep.Unrestorable), compareIDs) {
			fmt.Fprintf(w, "kept        %s: %s; its object stays as it is\n", id, describe(rep.Unrestorable[id]))
		}
		fmt.Fprintf(w, "checked %d %s written in more than one region, restored %d\n", rep.Checked, plural(rep.Checked, "run", "runs"), len(rep.Restored))
		if n := len(rep.Unrestorable); n > 0 {
			return fmt.Errorf("%d %s could not be restored (listed on stdout)", n, plural(n, "run", "runs"))
		}
		return nil
	})
}
