package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnstore/cairn/bucket"
	"github.com/google/uuid"
)

// ProbeVersion is the version of the probe. A recorded verdict of an
// older version is probed again.
const ProbeVersion = 1

// ProbeMaxAge is how long a recorded verdict is trusted; an older one is
// probed again (the server may have been replaced or reconfigured).
const ProbeMaxAge = 30 * 24 * time.Hour

// ErrUnsafeServer is in the chain of the error every write of a Store
// returns when its server fails the probe: the server does not honour
// conditional writes, or keeps old user metadata on overwrite, so
// concurrent writers would lose runs silently. Use a server that honours
// them (AWS S3, a recent MinIO); or, if exactly one process ever writes to
// the prefix, set Options.UnsafeSkipProbe. Retrying will not help. The
// error is a *ProbeError, which names the failing checks.
var ErrUnsafeServer = errors.New("durable: the server fails the conditional-write probe")

// ProbeCheck names one check of the probe.
type ProbeCheck string

// The checks of the probe, in the order they run.
const (
	// ProbeIfNoneMatch: a PUT with If-None-Match: * over an existing
	// object fails with 412 (bucket.ErrPrecondition).
	ProbeIfNoneMatch ProbeCheck = "if-none-match"
	// ProbeIfMatchWrong: a PUT with If-Match and an ETag the object does
	// not have fails with 412.
	ProbeIfMatchWrong ProbeCheck = "if-match-wrong-etag"
	// ProbeIfMatchMissing: a PUT with If-Match on a missing key fails
	// with 412 or 404.
	ProbeIfMatchMissing ProbeCheck = "if-match-missing-key"
	// ProbeIfMatchRight: a PUT with If-Match and the object's current
	// ETag succeeds.
	ProbeIfMatchRight ProbeCheck = "if-match-right-etag"
	// ProbeMetadataReplaced: an overwrite replaces the user metadata
	// (keys the new PUT does not send are gone).
	ProbeMetadataReplaced ProbeCheck = "metadata-replaced"
)

// ProbeFailure is one failed check and what the server did instead.
type ProbeFailure struct {
	Check ProbeCheck
	Got   string
}

// ProbeError is the error of a server that failed the probe. It unwraps
// to ErrUnsafeServer.
type ProbeError struct {
	Server   string         // the server as the bucket knows it
	Failures []ProbeFailure // in the order the checks ran; never empty
}

// Failed reports whether check is among the failures.
func (e *ProbeError) Failed(check ProbeCheck) bool {
	for _, f := range e.Failures {
		if f.Check == check {
			return true
		}
	}
	return false
}

func (e *ProbeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s", ErrUnsafeServer, e.Server)
	conditions := false
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "; check %s: %s", f.Check, f.Got)
		conditions = conditions || f.Check != ProbeMetadataReplaced
	}
	if conditions {
		b.WriteString("; so concurrent writers would lose each other's runs, Deletes would come back and fencing would never fire")
	}
	if e.Failed(ProbeMetadataReplaced) {
		b.WriteString("; so a run re-saved without a TTL would keep its old expiry")
	}
	b.WriteString(": use a server that honours conditional writes and replaces metadata on overwrite" +
		" (AWS S3, a recent MinIO), or, only if exactly one process ever writes to this prefix," +
		" set durable.Options.UnsafeSkipProbe")
	return b.String()
}

func (e *ProbeError) Unwrap() error { return ErrUnsafeServer }

// probeState is a Store's probe: run once, successfully, before the first
// write. Its zero value is ready.
type probeState struct {
	init sync.Once
	sem  chan struct{} // one slot: one probe at a time, waiting honours contexts
	ok   atomic.Bool
	// refused is the last *ProbeError and when it came (guarded by sem):
	// returned again for probeRetryAfter instead of probing on every
	// write (a write-back store's flusher would probe every window).
	refused   error
	refusedAt time.Time
}

// probeRetryAfter is how long a server the probe refused is refused
// without probing again. Failures to reach it are not remembered.
const probeRetryAfter = time.Minute

// CheckServer makes sure the server is safe to write to, reading the
// recorded verdict or probing it.
//
// Everything Cairn guarantees across processes rests on two things the
// server must do: honour conditional writes (a PUT with If-None-Match: *
// or If-Match that does not hold fails with 412, so index commits and
// fencing detect a concurrent writer instead of overwriting it), and
// replace the user metadata on overwrite (so a run re-saved without a
// TTL loses its old expiry). A server that accepts the headers and
// ignores them loses runs silently when two processes write, and Deletes
// come back.
//
// The probe runs the checks listed with ProbeCheck, in that order, with
// real requests on temporary objects under <prefix>/cairn-probe/tmp/,
// which it deletes (best effort: a leftover harms nothing). A server that passes all of them has its verdict
// written to <prefix>/cairn-probe/verdict (the probe version, the date,
// and the server as far as the bucket knows it: its type and, for S3,
// the bucket and endpoint host), so that later Stores on the prefix pay
// one GET. The probe runs again when the verdict is missing, unreadable,
// older than ProbeMaxAge, from an older probe version, or about another
// server. A failure is not recorded: every Store probes again, and is
// refused until the server passes.
//
// Cost: the first Store on a prefix sends 9 requests, one after another,
// before its first write (1 GET, 6 PUTs, 1 HEAD, 1 DELETE; about 70 ms on
// a local MinIO); every later Store sends 1 GET; a Store that passed
// sends nothing more.
//
// Every write (Save, Write, Delete, Reindex, GC unless DryRun) calls
// it first; reads (Load, List, Exists, Verify) never do, so read-only
// credentials suffice to read. Call it yourself to fail fast at startup.
// A server that failed the probe is refused for a minute without probing
// again (probeRetryAfter); a request that failed is not remembered: the
// next write checks again. It returns a
// *ProbeError (ErrUnsafeServer) when the server fails, and the bucket's
// error when a request fails. With Options.UnsafeSkipProbe it does
// nothing; a read-only store (Options.ReadOnly) refuses it with
// cairn.ErrReadOnly, as every write. Safe for concurrent use: concurrent callers share one probe;
// one waiting for another's probe gives up when its ctx ends.
func (s *Store) CheckServer(ctx context.Context) error {
	if s.o.ReadOnly {
		return errReadOnly // the probe writes
	}
	p := &s.probe
	if s.o.UnsafeSkipProbe || p.ok.Load() {
		return nil
	}
	p.init.Do(func() { p.sem = make(chan struct{}, 1) })
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	if p.ok.Load() {
		return nil
	}
	if p.refused != nil && s.o.Now().Sub(p.refusedAt) < probeRetryAfter {
		return p.refused
	}
	if err := s.checkServer(ctx); err != nil {
		s.probed(ctx, serverIdentity(s.b), false, err)
		if errors.Is(err, ErrUnsafeServer) {
			p.refused, p.refusedAt = err, s.o.Now()
		}
		return err
	}
	p.ok.Store(true)
	return nil
}

// verdict is the recorded outcome of a probe that passed.
type verdict struct {
	Version  int       `json:"probe_version"`
	Server   string    `json:"server"`
	ProbedAt time.Time `json:"probed_at"`
	Passed   []string  `json:"passed"`
}

func (s *Store) probeKey(name string) string {
	if s.o.Prefix == "" {
		return "cairn-probe/" + name
	}
	return s.o.Prefix + "/cairn-probe/" + name
}

func (s *Store) checkServer(ctx context.Context) error {
	server := serverIdentity(s.b)
	key := s.probeKey("verdict")
	obj, err := s.b.Get(ctx, key, &bucket.GetOptions{MaxSize: 64 << 10})
	switch {
	case err == nil:
		var v verdict
		if json.Unmarshal(obj.Body, &v) == nil && v.Version >= ProbeVersion && v.Server == server {
			if age := s.o.Now().Sub(v.ProbedAt); age <= ProbeMaxAge && age >= -time.Hour { // a verdict from the future: at most clock skew
				s.probed(ctx, server, true, nil)
				return nil
			}
		}
	case errors.Is(err, bucket.ErrNotFound), errors.Is(err, bucket.ErrTooLarge), errors.Is(err, bucket.ErrUnreadable):
	default:
		return fmt.Errorf("durable: read the probe verdict: %w", err)
	}
	if err := probe(ctx, s.b, s.probeKey("tmp/"+uuid.NewString()), s.probeKey("tmp/"+uuid.NewString()), server); err != nil {
		return err
	}
	v := verdict{Version: ProbeVersion, Server: server, ProbedAt: s.o.Now().UTC()}
	for _, c := range []ProbeCheck{ProbeIfNoneMatch, ProbeIfMatchWrong, ProbeIfMatchMissing, ProbeIfMatchRight, ProbeMetadataReplaced} {
		v.Passed = append(v.Passed, string(c))
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.b.Put(ctx, key, body, nil); err != nil {
		return fmt.Errorf("durable: record the probe verdict: %w", err)
	}
	s.probed(ctx, server, false, nil)
	return nil
}

// probe runs every check on the temporary keys k (created, then deleted)
// and missing (never meant to exist) and returns a *ProbeError listing
// those that fail, or the error of a request that failed otherwise.
func probe(ctx context.Context, b bucket.Bucket, k, missing, server string) error {
	p := &prober{b: b, k: k, missing: missing, pe: &ProbeError{Server: server}}
	var err error
	p.etag, err = b.Put(ctx, k, []byte("1"), &bucket.PutOptions{IfNoneMatch: "*", Metadata: map[string]string{probeMetaA: "1"}})
	if err != nil {
		return fmt.Errorf("durable: probe: create %s: %w", k, err)
	}
	p.cleanup = []string{k}
	defer p.removeTemporaries(ctx)
	if err := p.refusals(ctx); err != nil {
		return err
	}
	if err := p.ifMatchRight(ctx); err != nil {
		return err
	}
	if err := p.metadataReplaced(ctx); err != nil {
		return err
	}
	if len(p.pe.Failures) > 0 {
		return p.pe
	}
	return nil
}

// The metadata keys of the probe's object: the first PUT's, and the last.
const probeMetaA, probeMetaB = "cairn-probe-a", "cairn-probe-b"

// prober is one run of the probe on the temporary object k.
type prober struct {
	b          bucket.Bucket
	k, missing string
	etag       string      // k's current ETag, as the probe knows it
	pe         *ProbeError // the failures so far
	changed    bool        // a check's PUT overwrote k
	cleanup    []string    // temporary objects to delete
}

// removeTemporaries deletes the temporary objects whatever happened, even
// when ctx ended. A failed delete is ignored: a leftover under
// cairn-probe/tmp/ harms nothing, and a server that refuses deletes can
// still be safe for Saves.
func (p *prober) removeTemporaries(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, key := range p.cleanup {
		_ = p.b.Delete(dctx, key)
	}
}

// refusals runs the three conditional PUTs the server must refuse.
func (p *prober) refusals(ctx context.Context) error {
	if err := p.expect412(ctx, ProbeIfNoneMatch, p.k, &bucket.PutOptions{IfNoneMatch: "*"}, false); err != nil {
		return err
	}
	if err := p.expect412(ctx, ProbeIfMatchWrong, p.k, &bucket.PutOptions{IfMatch: wrongETag(p.etag)}, false); err != nil {
		return err
	}
	return p.expect412(ctx, ProbeIfMatchMissing, p.missing, &bucket.PutOptions{IfMatch: wrongETag(p.etag)}, true)
}

// expect412 runs a conditional PUT that must fail with 412 (or, when
// notFoundOK, 404), and records a PUT the server applied.
func (p *prober) expect412(ctx context.Context, check ProbeCheck, key string, opts *bucket.PutOptions, notFoundOK bool) error {
	_, err := p.b.Put(ctx, key, []byte("2"), opts)
	switch {
	case err == nil:
		if key == p.k {
			p.pe.Failures = append(p.pe.Failures, ProbeFailure{check, "the PUT succeeded and overwrote the object; want 412 Precondition Failed"})
			p.changed = true
		} else {
			p.pe.Failures = append(p.pe.Failures, ProbeFailure{check, "the PUT succeeded and created the object; want 412 Precondition Failed or 404"})
			p.cleanup = append(p.cleanup, key)
		}
	case errors.Is(err, bucket.ErrPrecondition), notFoundOK && errors.Is(err, bucket.ErrNotFound):
	default:
		return fmt.Errorf("durable: probe %s: %w", check, err)
	}
	return nil
}

// ifMatchRight runs the conditional PUT the server must take: If-Match
// on k's current ETag, with new metadata. If it is refused, k is
// overwritten unconditionally for the metadata check.
func (p *prober) ifMatchRight(ctx context.Context) error {
	if p.changed { // a check above overwrote k: its ETag is another now
		info, err := p.b.Head(ctx, p.k)
		if err != nil {
			return fmt.Errorf("durable: probe: %w", err)
		}
		p.etag = info.ETag
	}
	meta := map[string]string{probeMetaB: "2"}
	_, err := p.b.Put(ctx, p.k, []byte("3"), &bucket.PutOptions{IfMatch: p.etag, Metadata: meta})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bucket.ErrPrecondition), errors.Is(err, bucket.ErrNotFound):
		p.pe.Failures = append(p.pe.Failures, ProbeFailure{ProbeIfMatchRight, fmt.Sprintf("the PUT was refused: %v; want success", err)})
	default:
		return fmt.Errorf("durable: probe %s: %w", ProbeIfMatchRight, err)
	}
	if _, err := p.b.Put(ctx, p.k, []byte("3"), &bucket.PutOptions{Metadata: meta}); err != nil {
		return fmt.Errorf("durable: probe %s: %w", ProbeMetadataReplaced, err)
	}
	return nil
}

// metadataReplaced checks that the last PUT's metadata replaced the
// first's rather than joined it.
func (p *prober) metadataReplaced(ctx context.Context) error {
	info, err := p.b.Head(ctx, p.k)
	if err != nil {
		return fmt.Errorf("durable: probe %s: %w", ProbeMetadataReplaced, err)
	}
	_, hasA := info.Metadata[probeMetaA]
	if hasA || info.Metadata[probeMetaB] != "2" {
		p.pe.Failures = append(p.pe.Failures, ProbeFailure{ProbeMetadataReplaced,
			fmt.Sprintf("after PUTs with metadata {a} then {b}, HEAD shows %s; want only b (the new PUT's)", metaKeys(info.Metadata))})
	}
	return nil
}

// wrongETag returns an ETag of the usual form that differs from etag.
func wrongETag(etag string) string {
	w := `"00000000000000000000000000000000"`
	if etag == w {
		w = `"11111111111111111111111111111111"`
	}
	return w
}

func metaKeys(m map[string]string) string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, "cairn-probe-") {
			keys = append(keys, strings.TrimPrefix(k, "cairn-probe-"))
		}
	}
	if len(keys) == 0 {
		return "neither"
	}
	if len(keys) == 2 {
		return "both a and b (the old metadata was kept)"
	}
	return "only " + keys[0]
}

// serverIdentity names the server behind b as far as the bucket tells
// (a bucket that is a fmt.Stringer names itself; the S3 one says its
// endpoint host and bucket, never user info), else its type.
func serverIdentity(b bucket.Bucket) string {
	if s, ok := b.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("bucket %T", b)
}
