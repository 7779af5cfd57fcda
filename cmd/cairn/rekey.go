package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/seal"
	"github.com/spf13/cobra"
)

func newRekeyCmd(e *env) *cobra.Command {
	var concurrency int
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "reseal every object under the keyring's primary key, and verify",
		Long: "Reseal every object of the store (--store) under the primary key of its keyring (--keyring\n" +
			"or $CAIRN_KEYRING, required), then verify that every object opens with the primary key\n" +
			"alone. Only each object's data key is resealed: bodies are rewritten unchanged, and a\n" +
			"writer's write in between wins. It is safe alongside writers that use the new keyring, and\n" +
			"resumable: objects already under the primary are skipped, so a rekey that was stopped is\n" +
			"finished by running it again. Exit 0 only when the store is verified.\n\n" +
			"To rotate a store's key:\n" +
			"  1. cairn keyring rotate FILE          (a new primary key; the old one still opens)\n" +
			"  2. give every process that writes the store the new FILE, and restart them\n" +
			"  3. cairn rekey --keyring FILE         (until it reports the store verified)\n" +
			"  4. cairn keyring retire FILE OLD_ID   (keep a copy of the old file while noncurrent\n" +
			"                                        versions of a versioned bucket may be read)",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRekey(cmd.Context(), e, concurrency) },
	}
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "objects resealed at once")
	return cmd
}

// rekeyJSON is what rekey --json prints: the key objects are now sealed
// with, the counts of seal.RekeyReport, each object that failed or did not
// verify with why ([] for none), and whether the store is verified.
type rekeyJSON struct {
	Primary    string        `json:"primary"`
	Objects    int           `json:"objects"`
	Resealed   int           `json:"resealed"`
	Current    int           `json:"current"`
	Failed     []rekeyObject `json:"failed"`
	Unverified []rekeyObject `json:"unverified"`
	Verified   bool          `json:"verified"`
	Stopped    bool          `json:"stopped,omitempty"`
	report     *seal.RekeyReport
}

type rekeyObject struct {
	Key    string `json:"key"`
	Detail string `json:"detail"`
}

// rekeyObjects returns m's keys with why, sorted by key, [] for none.
func rekeyObjects(m map[string]error) []rekeyObject {
	out := []rekeyObject{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, rekeyObject{Key: k, Detail: describe(m[k])})
	}
	return out
}

// runRekey reseals the store's objects under its keyring's primary key
// (seal.Rekey on the raw bucket the store URL names, at its prefix) and
// prints the report. It fails unless the store is verified.
func runRekey(ctx context.Context, e *env, concurrency int) error {
	if concurrency < 1 || concurrency > 1024 {
		return usagef("--concurrency %d: want 1 to 1024", concurrency)
	}
	kr, err := storeKeyring(e)
	if err != nil {
		return err
	}
	if kr == nil {
		return usagef("rekey needs the store's keyring: give it with --keyring FILE or $CAIRN_KEYRING")
	}
	url := storeURL(e)
	if err := checkStoreDir(url); err != nil {
		return err // nothing to rekey, and a typo must not create a store
	}
	oo := bucket.OpenOptions{}
	if e.flags.debug {
		oo.Logger, oo.Debug = e.log, true
	}
	e.logger().Debug("open bucket", "url", bucket.RedactURL(url), "keyring", kr.String())
	ob, err := bucket.OpenURL(ctx, url, &oo)
	if err != nil {
		var ue *bucket.URLError
		if errors.As(err, &ue) && !errors.As(err, new(*fs.PathError)) && !errors.Is(err, fs.ErrPermission) {
			return &usageError{ue.Error()}
		}
		return err
	}
	p := startProgress(e, "rekeying", unitItems, "objects", 0)
	defer p.finish()
	rep, err := seal.Rekey(ctx, ob.Bucket, kr, ob.Prefix, &seal.RekeyOptions{
		Concurrency: concurrency,
		Progress: func(done, total int) {
			if done == 1 {
				p.setTotal(int64(total))
			}
			p.set(int64(done))
			if done == total {
				p.relabel("verifying")
			}
			if e.rekeyProgress != nil {
				e.rekeyProgress(done, total)
			}
		},
	})
	p.finish()
	if rep == nil {
		return err // the listing failed, or the command was stopped during it
	}
	stopped := err != nil && ctx.Err() != nil
	doc := rekeyJSON{
		Primary: kr.Primary(), Objects: rep.Objects, Resealed: rep.Resealed, Current: rep.Current,
		Failed: rekeyObjects(rep.Failed), Unverified: rekeyObjects(rep.Unverified),
		Verified: rep.Verified, Stopped: stopped, report: rep,
	}
	if e.flags.json {
		if perr := printJSON(e.stdout, doc); perr != nil && err == nil {
			err = perr
		}
	} else {
		printRekey(e, doc)
	}
	switch {
	case stopped:
		return err
	case errors.Is(err, seal.ErrNotRekeyed):
		n := len(rep.FailedKeys())
		var causes []error
		for _, k := range rep.FailedKeys() {
			if c, ok := rep.Failed[k]; ok {
				causes = append(causes, c)
			} else {
				causes = append(causes, rep.Unverified[k])
			}
		}
		return &reportError{
			msg:    fmt.Sprintf("%d %s of %d not under key %s alone (listed on stdout): run rekey again; keep the old keys until it verifies", n, plural(n, "object", "objects"), rep.Objects, kr.Primary()),
			causes: causes,
		}
	case err != nil:
		return err
	case !rep.Verified:
		return errors.New("rekey did not verify the store") // cannot happen without NoVerify; never exit 0 unverified
	}
	return nil
}

// printRekey prints rekey's report for a person.
func printRekey(e *env, doc rekeyJSON) {
	w := e.stdout
	rep := doc.report
	if doc.Stopped {
		done := rep.Resealed + rep.Current + len(rep.Failed)
		fmt.Fprintf(w, "stopped after %d of %d objects (%d resealed, %d already under key %s): run cairn rekey again to finish\n",
			done, rep.Objects, rep.Resealed, rep.Current, doc.Primary)
		return
	}
	fmt.Fprintf(w, "rekeyed %d %s to key %s: %d resealed, %d already current, %d failed\n",
		rep.Objects, plural(rep.Objects, "object", "objects"), doc.Primary, rep.Resealed, rep.Current, len(rep.Failed))
	for _, o := range doc.Failed {
		fmt.Fprintf(w, "failed      %s: %s\n", o.Key, o.Detail)
	}
	for _, o := range doc.Unverified {
		if _, failed := rep.Failed[o.Key]; !failed { // said already
			fmt.Fprintf(w, "unverified  %s: %s\n", o.Key, o.Detail)
		}
	}
	if doc.Verified {
		fmt.Fprintf(w, "verified: every object opens with key %s alone; older keys may now be retired (cairn keyring retire)\n", doc.Primary)
	} else {
		fmt.Fprintf(w, "not verified: keep every key of the keyring, and run cairn rekey again\n")
	}
}
