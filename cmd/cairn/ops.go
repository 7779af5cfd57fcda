package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/spf13/cobra"
)

// withStore opens the store the command works on (storeURL), runs f on
// it and closes it, keeping the first error. readOnly is for the commands
// that only read (see openStore).
func withStore(ctx context.Context, e *env, readOnly bool, opts *tiered.Options, f func(*tiered.Store) error) (err error) {
	s, err := openStore(ctx, e, storeURL(e), readOnly, opts)
	if err != nil {
		return err
	}
	defer closeStore(ctx, s, &err)
	return f(s)
}

// printJSON writes v as one indented JSON document, as --json prints.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // a workflow "a&b" stays readable
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// idStrings returns run IDs as strings, [] (never null in JSON) for none.
func idStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// runError is a run and what is wrong with it, in --json documents.
type runError struct {
	RunID  string `json:"run_id"`
	Detail string `json:"detail"`
}

// runErrors returns m as runErrors in run ID order, [] for none.
func runErrors(m map[uuid.UUID]error) []runError {
	out := []runError{}
	for _, id := range slices.SortedFunc(maps.Keys(m), compareIDs) {
		out = append(out, runError{RunID: id.String(), Detail: describe(m[id])})
	}
	return out
}

// timeArg parses the value of --since or --until (flag names it): a date
// (2024-01-01: midnight UTC), an RFC 3339 time (2024-01-01T10:00:00Z, any
// offset), or a duration meaning that long before now (90m, 24h, 7d).
// Empty means none; anything else is a usage error.
func timeArg(e *env, flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := cairn.ParseTimestamp(v); err == nil {
		return t, nil
	}
	if d, ok := agoDuration(v); ok {
		now := time.Now
		if e.now != nil {
			now = e.now
		}
		return now().Add(-d).UTC(), nil
	}
	return time.Time{}, usagef("--%s %s: want a date (2024-01-01), an RFC 3339 time (2024-01-01T10:00:00Z) or how long ago (90m, 24h, 7d)", flag, quoteShort(v))
}

// agoDuration parses a positive duration: Go's (90m, 24h, 1h30m) or a
// whole number of days (7d).
func agoDuration(v string) (time.Duration, bool) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 1_000_000 {
			return 0, false
		}
		return time.Duration(days) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
}

// lsFlags are the flags of ls.
type lsFlags struct {
	workflow, since, until, cursor string
	limit                          int
	claimable                      bool
	labels                         []string
}

func newLsCmd(e *env) *cobra.Command {
	f := &lsFlags{}
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "list runs, newest first",
		Long: "List one page of runs, newest first (ties by run ID), as a table; the cursor of the next\n" +
			"page goes to stderr. --since is inclusive, --until exclusive; each takes a date, an RFC 3339\n" +
			"time or how long ago. With --json, one JSON document (see the README) instead.",
		Example: "  cairn ls --since 24h --label status=running\n  cairn ls --workflow orders --since 2024-01-01 --until 2024-02-01 --json",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runLs(cmd.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workflow, "workflow", "", "only runs of this workflow")
	fl.StringVar(&f.since, "since", "", "only runs at or after this time: 2024-01-01, 2024-01-01T10:00:00Z, or how long ago (24h, 90m, 7d)")
	fl.StringVar(&f.until, "until", "", "only runs before this time (the same forms as --since)")
	fl.IntVar(&f.limit, "limit", 50, "at most this many runs (0: all)")
	fl.StringVar(&f.cursor, "cursor", "", "continue after an earlier page (the cursor it printed)")
	fl.BoolVar(&f.claimable, "claimable", false,
		"only runs no live lease holds (never claimed, released or expired): with --label status=running, what workers may resume")
	fl.StringArrayVar(&f.labels, "label", nil, "only runs with this label, as KEY=VALUE (repeat for several: a run must have all)")
	return cmd
}

// options returns the ListOptions f asks for, or a usage error.
func (f *lsFlags) options(e *env) (*cairn.ListOptions, error) {
	if f.limit < 0 {
		return nil, usagef("--limit %d: want 0 (all) or more", f.limit)
	}
	opts := &cairn.ListOptions{WorkflowName: f.workflow, Limit: f.limit, Cursor: f.cursor, Claimable: f.claimable}
	var err error
	if opts.Since, err = timeArg(e, "since", f.since); err != nil {
		return nil, err
	}
	if opts.Until, err = timeArg(e, "until", f.until); err != nil {
		return nil, err
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && !opts.Since.Before(opts.Until) {
		return nil, usagef("--since %s is not before --until %s: no run can match", quoteShort(f.since), quoteShort(f.until))
	}
	if f.cursor != "" {
		if _, err := cairn.ParseCursor(f.cursor); err != nil {
			return nil, usagef("--cursor: %s is not a cursor that cairn ls printed", quoteShort(f.cursor))
		}
	}
	if opts.Labels, err = labelSelector(f.labels); err != nil {
		return nil, err
	}
	return opts, nil
}

// labelSelector returns the label selector of the --label values l (nil
// for none), or a usage error naming the first that is not KEY=VALUE,
// repeats a key or breaks the label rules (cairn.Labels).
func labelSelector(l []string) (map[string]string, error) {
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
func runLs(ctx context.Context, e *env, f *lsFlags) error {
	opts, err := f.options(e)
	if err != nil {
		return err
	}
	return withStore(ctx, e, true, nil, func(s *tiered.Store) error {
		page, err := s.List(ctx, opts)
		if err != nil {
			return err
		}
		doc, err := lsDocument(page)
		if err != nil {
			return err
		}
		if e.flags.json {
			return printJSON(e.stdout, doc)
		}
		return printLs(e, doc)
	})
}

func newShowCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:               "show RUN_ID",
		Short:             "print a checkpoint as JSON",
		Long:              "Print a run's checkpoint as blazen-persist's JSON record, indented (it is JSON with or without --json).\nA run that does not exist exits with 3.",
		Args:              exactArgs(1),
		ValidArgsFunction: completeRunIDs(e, false),
		RunE:              func(cmd *cobra.Command, args []string) error { return runShow(cmd.Context(), e, args[0]) },
	}
}

// runShow prints a run's checkpoint as blazen-persist's JSON record,
// indented. A run that does not exist exits with 3.
func runShow(ctx context.Context, e *env, arg string) error {
	id, err := parseRunID(arg)
	if err != nil {
		return err
	}
	return withStore(ctx, e, true, nil, func(s *tiered.Store) error {
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

// completeRunIDs completes a run ID argument from the store's newest
// runs (at most 1,000, read-only, within 5 seconds), each with its
// workflow and timestamp as the description, but those already given.
// A command taking one run ID (many false) is offered none once it has
// it.
func completeRunIDs(e *env, many bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		var out []cobra.Completion
		err := withStore(ctx, e, true, nil, func(s *tiered.Store) error {
			page, err := s.List(ctx, &cairn.ListOptions{Limit: 1000})
			if err != nil {
				return err
			}
			for _, r := range page.Runs {
				id := r.RunID.String()
				if strings.HasPrefix(id, toComplete) && !slices.Contains(args, id) {
					ts, _ := cairn.FormatTimestamp(r.Timestamp)
					out = append(out, cobra.CompletionWithDesc(id, printable(r.WorkflowName)+" "+ts))
				}
			}
			return nil
		})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError | cobra.ShellCompDirectiveNoFileComp
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func newRmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm RUN_ID...",
		Short: "delete runs",
		Long: "Delete runs and print \"deleted RUN_ID\" for each. Runs that do not exist are named and leave\n" +
			"the exit code 3; the others are deleted all the same. One invalid run ID deletes nothing.",
		Args:              minArgs(1),
		ValidArgsFunction: completeRunIDs(e, true),
		RunE:              func(cmd *cobra.Command, args []string) error { return runRm(cmd.Context(), e, args) },
	}
}

// rmJSON is what rm --json prints: the runs deleted and those not found,
// in the order given ([] for none).
type rmJSON struct {
	Deleted []string `json:"deleted"`
	Missing []string `json:"missing"`
}

// runRm deletes runs and prints "deleted RUN_ID" for each. Runs that do
// not exist are reported and leave the exit code 3; the others are
// deleted all the same. Every argument is checked before anything is
// deleted: one invalid run ID deletes nothing.
func runRm(ctx context.Context, e *env, args []string) error {
	var ids []uuid.UUID
	for _, a := range args {
		id, err := parseRunID(a)
		if err != nil {
			return err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return withStore(ctx, e, false, nil, func(s *tiered.Store) error {
		var missing missingRuns
		var deleted []uuid.UUID
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
			deleted = append(deleted, id)
			if !e.flags.json {
				fmt.Fprintf(e.stdout, "deleted %s\n", id)
			}
		}
		if e.flags.json {
			if err := printJSON(e.stdout, rmJSON{Deleted: idStrings(deleted), Missing: idStrings(missing)}); err != nil {
				return err
			}
		}
		if len(missing) > 0 {
			return missing
		}
		return nil
	})
}

func newVerifyCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "check the index against the objects",
		Long: "Compare the index with the run objects and decode every object; report what is wrong, with\n" +
			"what to do about it, and exit 1 if anything is.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd.Context(), e) },
	}
}

// verifyJSON is what verify --json prints: the run objects checked,
// whether all is well, and each problem (problems is [] when ok). kind is
// one of index, corrupt, missing, mismatched, unindexed, dead, stray,
// split_brain, stale, blob; run_id is absent for index and stray (key is the
// stray key).
type verifyJSON struct {
	Objects  int           `json:"objects"`
	OK       bool          `json:"ok"`
	Problems []verifyIssue `json:"problems"`
}

type verifyIssue struct {
	Kind   string `json:"kind"`
	RunID  string `json:"run_id,omitempty"`
	Key    string `json:"key,omitempty"`
	Detail string `json:"detail"`
}

// runVerify compares the index with the run objects, decodes every object
// and prints what it found. It exits with 1 when anything is wrong.
func runVerify(ctx context.Context, e *env) error {
	return withStore(ctx, e, true, nil, func(s *tiered.Store) error {
		p := startProgress(e, "verifying", unitItems, "objects", 0)
		rep, err := s.Durable().VerifyWith(ctx, &durable.VerifyOptions{Progress: func(done, total int) {
			if done == 1 {
				p.setTotal(int64(total))
			}
			p.set(int64(done))
		}})
		p.finish()
		if err != nil {
			return err
		}
		issues := verifyIssues(rep)
		if e.flags.json {
			if err := printJSON(e.stdout, verifyJSON{Objects: rep.Runs, OK: rep.OK(), Problems: issues}); err != nil {
				return err
			}
		} else {
			printVerify(e.stdout, rep)
		}
		if rep.OK() {
			return nil
		}
		n := len(issues)
		causes := []error{rep.Index}
		for _, id := range slices.SortedFunc(maps.Keys(rep.Corrupt), compareIDs) {
			causes = append(causes, rep.Corrupt[id])
		}
		for _, id := range slices.SortedFunc(maps.Keys(rep.BrokenBlobs), compareIDs) {
			causes = append(causes, rep.BrokenBlobs[id])
		}
		return &reportError{msg: fmt.Sprintf("%d %s found (listed on stdout)", n, plural(n, "problem", "problems")), causes: causes}
	})
}

// printVerify prints verify's report for a person.
func printVerify(w io.Writer, rep *durable.Report) {
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
	for _, id := range slices.SortedFunc(maps.Keys(rep.BrokenBlobs), compareIDs) {
		fmt.Fprintf(w, "blob        %s: %s (a large value it references is missing or damaged: restore the blob from a backup or version, or save the run again)\n", id, describe(rep.BrokenBlobs[id]))
	}
	if rep.OK() {
		fmt.Fprintln(w, "ok")
	}
}

// verifyIssues lists the problems of rep, in the order printVerify
// prints them. With a damaged index, the unindexed runs count as one
// problem (the index), as printVerify says, and are not listed.
func verifyIssues(rep *durable.Report) []verifyIssue {
	out := []verifyIssue{}
	add := func(kind string, ids []uuid.UUID, detail string) {
		for _, id := range ids {
			out = append(out, verifyIssue{Kind: kind, RunID: id.String(), Detail: detail})
		}
	}
	if rep.Index != nil {
		out = append(out, verifyIssue{Kind: "index", Detail: describe(rep.Index)})
	}
	for _, re := range runErrors(rep.Corrupt) {
		out = append(out, verifyIssue{Kind: "corrupt", RunID: re.RunID, Detail: re.Detail})
	}
	add("missing", rep.Missing, "indexed, but its object is gone")
	add("mismatched", rep.Mismatched, "the index disagrees with the object")
	if rep.Index == nil {
		add("unindexed", rep.Unindexed, "a run the index does not list")
	} else if len(rep.Unindexed) > 0 {
		out = append(out, verifyIssue{Kind: "unindexed", Detail: fmt.Sprintf("%d runs the damaged index cannot list", len(rep.Unindexed))})
	}
	add("dead", rep.Dead, "the object of a deleted run")
	for _, k := range rep.Strays {
		out = append(out, verifyIssue{Kind: "stray", Key: k, Detail: "a key under runs/ that names no run"})
	}
	add("split_brain", rep.SplitBrain, "two regions wrote it at the same epoch")
	add("stale", rep.Stale, "its object holds a region's losing write")
	for _, re := range runErrors(rep.BrokenBlobs) {
		out = append(out, verifyIssue{Kind: "blob", RunID: re.RunID, Detail: re.Detail})
	}
	return out
}

func newReindexCmd(e *env) *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:   "reindex",
		Short: "rebuild the index from the objects",
		Long: "Rebuild the index from the run objects, whatever its state. Objects that cannot be read are\n" +
			"named, left in place, and make it exit 1 at the end.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReindex(cmd.Context(), e, full) },
	}
	cmd.Flags().BoolVar(&full, "full", false, "read every object's metadata, trusting no index entry (repairs what verify reports as mismatched)")
	return cmd
}

// reindexJSON is what reindex --json prints.
type reindexJSON struct {
	Objects  int        `json:"objects"`   // run objects listed
	Indexed  int        `json:"indexed"`   // runs in the rebuilt index
	OldIndex []string   `json:"old_index"` // what could not be read of the old index
	Skipped  []runError `json:"skipped"`   // unreadable objects, left in place
	Dead     []string   `json:"dead"`      // objects of deleted runs (gc removes them)
}

// runReindex rebuilds the index from the run objects. It goes on past
// objects it cannot read, names them, and exits with 1 at the end.
func runReindex(ctx context.Context, e *env, full bool) error {
	return withStore(ctx, e, false, nil, func(s *tiered.Store) error {
		p := startProgress(e, "reindexing", unitItems, "objects", 0)
		rep, err := s.Durable().Reindex(ctx, &durable.ReindexOptions{Full: full, Progress: func(done, total int) {
			p.setTotal(int64(total))
			p.set(int64(done))
		}})
		p.finish()
		if err != nil {
			return err
		}
		if e.flags.json {
			doc := reindexJSON{Objects: rep.Runs, Indexed: rep.Indexed, OldIndex: []string{}, Skipped: runErrors(rep.Corrupt), Dead: idStrings(rep.Dead)}
			for _, d := range rep.IndexDamage {
				doc.OldIndex = append(doc.OldIndex, describe(d))
			}
			if err := printJSON(e.stdout, doc); err != nil {
				return err
			}
		} else {
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
		}
		if n := len(rep.Corrupt); n > 0 {
			return fmt.Errorf("%d unreadable %s skipped (listed on stdout)", n, plural(n, "object", "objects"))
		}
		return nil
	})
}

func newGCCmd(e *env) *cobra.Command {
	var o durable.GCOptions
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "delete dead objects, expired runs and index objects no longer needed",
		Long: "Delete what is proven dead: the objects of deleted runs whose delete was cut short, expired\n" +
			"runs, and index objects no snapshot needs. Objects the index does not list are reported, never\n" +
			"deleted. --dry-run only reads.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGC(cmd.Context(), e, &o) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.DryRun, "dry-run", false, "report what would be deleted, delete nothing")
	fl.DurationVar(&o.Grace, "grace", 15*time.Minute, "leave index objects and objects of deleted runs younger than this (never less than a minute)")
	fl.BoolVar(&o.Versions, "versions", false, "also delete old versions and delete markers in a versioned bucket (but versions a region's write still names)")
	fl.DurationVar(&o.BlobGrace, "blob-grace", durable.DefaultBlobGrace, "delete unreferenced blobs of large values only once their hour ended this long ago (never less than 4h)")
	return cmd
}

// gcJSON is what gc --json prints: the runs and objects deleted (or that
// would be, with dry_run), those kept, and the index objects and old
// versions counted.
type gcJSON struct {
	DryRun    bool     `json:"dry_run"`
	Expired   []string `json:"expired"`
	Dead      []string `json:"dead"`
	Unindexed []string `json:"unindexed"` // kept: reindex lists them
	Index     struct {
		Logs      int `json:"logs"`
		Snapshots int `json:"snapshots"`
		Pages     int `json:"pages"`
	} `json:"index"`
	Versions int      `json:"versions"`
	Blobs    []string `json:"blobs"` // blobs of large values no run references
}

// runGC deletes what it can prove dead: the objects of deleted runs whose
// delete was cut short, expired runs and index objects no snapshot needs.
// Objects the index does not list are reported, never deleted.
func runGC(ctx context.Context, e *env, o *durable.GCOptions) error {
	if o.Grace <= 0 {
		return usagef("--grace %v: want a positive duration such as 15m", o.Grace)
	}
	if o.BlobGrace <= 0 {
		return usagef("--blob-grace %v: want a positive duration such as 6h (never less than 4h is used)", o.BlobGrace)
	}
	return withStore(ctx, e, o.DryRun, nil, func(s *tiered.Store) error {
		p := startProgress(e, "collecting garbage", unitItems, "", 0)
		rep, err := s.Durable().GC(ctx, o)
		p.finish()
		if rep == nil {
			return err
		}
		if e.flags.json {
			doc := gcJSON{DryRun: o.DryRun, Expired: idStrings(rep.Expired), Dead: idStrings(rep.Dead), Unindexed: idStrings(rep.Unindexed), Versions: rep.Versions, Blobs: rep.Blobs}
			if doc.Blobs == nil {
				doc.Blobs = []string{}
			}
			doc.Index.Logs, doc.Index.Snapshots, doc.Index.Pages = rep.Index.Logs, rep.Index.Snapshots, rep.Index.Pages
			if perr := printJSON(e.stdout, doc); err == nil {
				err = perr
			}
			return err
		}
		verb := "deleted"
		if o.DryRun {
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
		if o.Versions {
			fmt.Fprintf(w, "%s %d old %s\n", verb, rep.Versions, plural(rep.Versions, "version", "versions"))
		}
		if n := len(rep.Blobs); n > 0 {
			fmt.Fprintf(w, "%s %d unreferenced %s of large values\n", verb, n, plural(n, "blob", "blobs"))
		}
		return err
	})
}

func newReconcileCmd(e *env) *cobra.Command {
	var anyRegion bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "restore the winning state of runs two regions wrote",
		Long: "For each run that several regions wrote, restore the state the index chose where replication\n" +
			"kept a losing one. A region restores the states it won; --any-region also those of a region\n" +
			"gone for good.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReconcile(cmd.Context(), e, anyRegion) },
	}
	cmd.Flags().BoolVar(&anyRegion, "any-region", false, "also restore states other regions won (when such a region is gone for good)")
	return cmd
}

// reconcileJSON is what reconcile --json prints.
type reconcileJSON struct {
	Checked      int        `json:"checked"`      // runs written in more than one region
	Restored     []string   `json:"restored"`     // the winning state is current again
	Elsewhere    []string   `json:"elsewhere"`    // another region's state won: that region restores it
	Claims       []string   `json:"claims"`       // the newest claim is current again
	Unrestorable []runError `json:"unrestorable"` // left as they are
}

// runReconcile restores, for the runs that several regions wrote, the
// state the index chose where replication kept a losing one.
func runReconcile(ctx context.Context, e *env, anyRegion bool) error {
	return withStore(ctx, e, false, nil, func(s *tiered.Store) error {
		p := startProgress(e, "reconciling", unitItems, "", 0)
		rep, err := s.Durable().Reconcile(ctx, &durable.ReconcileOptions{AnyRegion: anyRegion})
		p.finish()
		if err != nil {
			return err
		}
		if e.flags.json {
			err = printJSON(e.stdout, reconcileJSON{Checked: rep.Checked, Restored: idStrings(rep.Restored), Elsewhere: idStrings(rep.Elsewhere),
				Claims: idStrings(rep.Claims), Unrestorable: runErrors(rep.Unrestorable)})
			if err != nil {
				return err
			}
		} else {
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
		}
		if n := len(rep.Unrestorable); n > 0 {
			return fmt.Errorf("%d %s could not be restored (listed on stdout)", n, plural(n, "run", "runs"))
		}
		return nil
	})
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

// labelRule is the rule a cairn.ValidateLabels error states, without the
// sentinel's prefix.
func labelRule(err error) string {
	return strings.TrimPrefix(err.Error(), cairn.ErrInvalid.Error()+": ")
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
