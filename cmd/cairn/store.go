package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/term"
)

const defaultStoreHint = "file://$XDG_DATA_HOME/cairn, or file://~/.local/share/cairn"

// storeURL is the store a command works on: --store, else $CAIRN_STORE,
// else the embedded default, a directory under the user's data directory.
func storeURL(e *env) string {
	if e.flags.store != "" {
		return e.flags.store
	}
	if v := e.getenv("CAIRN_STORE"); v != "" {
		return v
	}
	if d := e.getenv("XDG_DATA_HOME"); d != "" {
		return "file://" + filepath.Join(d, "cairn")
	}
	if h := e.getenv("HOME"); h != "" {
		return "file://" + filepath.Join(h, ".local", "share", "cairn")
	}
	return "file://" + filepath.Join(os.TempDir(), "cairn")
}

// openStore opens the store at url for a command: every store the CLI
// opens, it opens here. A URL that cannot be parsed or names no store
// cairn knows (a *bucket.URLError) is a usage error; one that cannot be
// opened for a reason of the system (a directory without permission, a
// path through a file) is a failure. opts may be nil (write-through).
//
// readOnly is for the commands that only read: they create nothing, so a
// file:// store that does not exist is an error naming the directory,
// not a new empty store that lists nothing.
//
// $CAIRN_REGION names the region the command writes from, when several
// regions write one store through replication (durable.Options.Region).
// --debug logs the store's work on stderr. --keyring (or $CAIRN_KEYRING)
// names the keyring its objects are sealed with (storeKeyring).
func openStore(ctx context.Context, e *env, url string, readOnly bool, opts *tiered.Options) (*tiered.Store, error) {
	var o tiered.Options
	if opts != nil {
		o = *opts
	}
	if r := e.getenv("CAIRN_REGION"); r != "" {
		if err := index.CheckRegion(r); err != nil {
			return nil, usagef("CAIRN_REGION=%q: want 1 to 63 of [a-z0-9-], starting with a letter or digit", r)
		}
		o.Durable.Region = r
	}
	if readOnly {
		if err := checkStoreDir(url); err != nil {
			return nil, err
		}
	}
	kr, err := storeKeyring(e)
	if err != nil {
		return nil, err
	}
	o.Durable.Keyring = kr
	if o.Durable.Offload, err = storeOffload(e); err != nil {
		return nil, err
	}
	// A read command's store writes nothing, and a directory store takes
	// no lock and must exist.
	o.ReadOnly = readOnly
	if e.flags.debug {
		// The library's log, and the SDK's request log (secrets redacted).
		o.Logger, o.Debug = e.log, true
	}
	e.logger().Debug("open store", "url", bucket.RedactURL(url), "read_only", readOnly, "write_back", o.Mode == tiered.WriteBack)
	s, err := tiered.Open(ctx, url, &o)
	if err != nil {
		var ue *bucket.URLError
		if errors.As(err, &ue) && !errors.As(err, new(*fs.PathError)) && !errors.Is(err, fs.ErrPermission) {
			return nil, &usageError{ue.Error()}
		}
		return nil, err
	}
	return s, nil
}

// checkStoreDir returns an error naming the directory of a file:// store
// URL when it does not exist or is not a directory, for a command that
// only reads. Other URLs are left to tiered.Open.
func checkStoreDir(rawURL string) error {
	u, err := neturl.Parse(rawURL)
	if err != nil || u.Scheme != "file" || u.Host != "" || u.Path == "" {
		return nil // tiered.Open says what is wrong with it
	}
	fi, err := os.Stat(u.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("store directory %s does not exist (this command only reads, and creates nothing: check --store or $CAIRN_STORE)", u.Path)
	case err != nil:
		return err // a *fs.PathError naming it
	case !fi.IsDir():
		return fmt.Errorf("store directory %s is not a directory", u.Path)
	}
	return nil
}

// parseRunID parses a run ID given on the command line; a bad one is a
// usage error.
func parseRunID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, usagef("invalid run ID %q: want a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8", s)
	}
	return id, nil
}

// exitCode maps an error to the exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, cairn.ErrNotFound):
		return exitNotFound
	}
	return exitFailure
}

// describe turns an error into one line for a person: the operation and
// run it concerns, then what is wrong, with the common store failures (no
// bucket, refused or missing credentials, no endpoint) said plainly. The
// bucket driver classifies those (the bucket package's sentinels); this
// only words them. Credentials never appear in errors: the SDK does not
// put them there and URLs carry none.
func describe(err error) string {
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.msg
	}
	where := ""
	var ce *cairn.Error
	if errors.As(err, &ce) {
		where = ce.Op
		if ce.RunID != uuid.Nil {
			where += " " + ce.RunID.String()
		}
		where += ": "
		if ce.RunID != uuid.Nil && errors.Is(err, cairn.ErrNotFound) {
			return "run " + ce.RunID.String() + " not found"
		}
	}
	var te *s3store.TimeoutError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("%sno answer from the store within %s (the store URL's timeout= sets it)", where, te.Timeout)
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errNotDurable):
		return where + "no answer from the store in time (the store URL's attempt_timeout= and timeout= set the bounds)"
	case errors.Is(err, bucket.ErrNoBucket):
		return where + "the bucket does not exist (create it, or fix the bucket in the store URL)"
	case errors.Is(err, bucket.ErrAccessDenied):
		return where + "access denied" + errorCode(err) + ": check the AWS credentials and their permissions on the bucket"
	case errors.Is(err, bucket.ErrUnreachable):
		return where + "cannot reach the endpoint" + unreachable(err)
	case errors.Is(err, bucket.ErrNoCredentials):
		return where + "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// errorCode returns " (CODE)" for the server's error code in err's chain
// (S3's AccessDenied, SignatureDoesNotMatch...), or "". The SDK's errors
// name it with an ErrorCode method; the driver has classified the error
// already, this only quotes the code.
func errorCode(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && coded.ErrorCode() != "" {
		return " (" + coded.ErrorCode() + ")"
	}
	return ""
}

// unreachable says which host or address err, a bucket.ErrUnreachable,
// could not reach, and why: ": unknown host NAME", " ADDR: REASON", or ""
// when the chain does not say.
func unreachable(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return ": unknown host " + dns.Name
	}
	var op *net.OpError
	if errors.As(err, &op) {
		addr := ""
		if op.Addr != nil {
			addr = " " + op.Addr.String()
		}
		return addr + ": " + op.Err.Error()
	}
	return ""
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// closeStore closes s, flushing what the command saved (its Saves have
// returned), and keeps the first error. When the command was stopped (its
// context ended) with Saves not yet flushed, an error of the close wins,
// as it says that saved work may be lost; with nothing unflushed, nothing
// can be. The close outlives ctx by at most the stop grace (see
// finishContext).
func closeStore(ctx context.Context, s *tiered.Store, err *error) {
	fctx, cancel := finishContext(ctx)
	defer cancel()
	unflushed := s.Stats().BytesUnflushed > 0
	cerr := s.Close(fctx)
	switch {
	case cerr == nil:
	case errors.Is(*err, errNotDurable):
		// Already said, by the flush that failed first.
	case ctx.Err() != nil && unflushed:
		*err = fmt.Errorf("close: %w: %w", notDurable(fctx), cerr)
	case *err == nil:
		*err = fmt.Errorf("close: %w", cerr)
	}
}

// errNotDurable marks the failure of a stopped command's last flush: what
// it saved may be lost, which its message must say.
var errNotDurable = errors.New("what was saved may not be durable")

// notDurable is errNotDurable with the reason the finishing context
// fctx ended, if it did.
func notDurable(fctx context.Context) error {
	if cause := context.Cause(fctx); cause != nil {
		return fmt.Errorf("%w (%v)", errNotDurable, cause)
	}
	return errNotDurable
}

// graceKey is the context key of a command's *grace, which run puts
// there.
type graceKey struct{}

// grace is the time a stopped command has to flush what it saved: one
// deadline, stopGrace after the command's context ended, however many
// flushes it makes.
type grace struct {
	ctx context.Context // cancelled stopGrace after the command's context
}

// newGrace returns the grace of a command whose context is ctx.
func newGrace(ctx context.Context, d time.Duration) *grace {
	gctx, cancel := context.WithCancelCause(context.Background())
	context.AfterFunc(ctx, func() {
		time.AfterFunc(d, func() {
			cancel(fmt.Errorf("stopped, and the flush did not end within %s (CAIRN_STOP_GRACE): %w", d, context.DeadlineExceeded))
		})
	})
	return &grace{ctx: gctx}
}

// finishContext returns the context of a command's last writes (the flush
// of what it already saved): it is not cancelled with ctx, but ends with
// the command's grace, stopGrace after ctx ended, so that a stopped
// command still flushes for a bounded time.
func finishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	g, ok := ctx.Value(graceKey{}).(*grace)
	if !ok {
		g = newGrace(ctx, defaultStopGrace)
	}
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(g.ctx, func() { cancel(context.Cause(g.ctx)) })
	return fctx, func() {
		stop()
		cancel(nil)
	}
}
