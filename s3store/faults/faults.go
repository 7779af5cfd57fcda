// Package faults is an http.RoundTripper that injects failures into the
// requests it forwards, for testing S3 clients against a real server:
// latency, connections reset before or after the request reached the
// server, error statuses with S3-style XML bodies, and response bodies
// that are cut short or corrupted.
//
// A Transport holds rules. Each request is checked against them in the
// order they were added; every rule whose filter (method, key substring,
// or a custom predicate) matches counts the request, and the first one
// whose window (Nth, Times) includes that count acts on it. A request no
// rule acts on is forwarded unchanged.
//
//	tr := faults.New(nil)
//	tr.Add(faults.Rule{Method: "PUT", KeyContains: "runs/", Times: 2, Action: faults.Respond(503)})
//	// the first two PUTs of runs/... get 503 without reaching the server
//
// A Transport and its rules are safe for concurrent use.
package faults

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrInjected is in the chain of every error a Transport makes up, so a
// test can tell an injected failure from a real one.
var ErrInjected = errors.New("faults: injected")

// Transport forwards requests to a base RoundTripper, applying its rules.
// The zero value is not usable; call New.
type Transport struct {
	base http.RoundTripper

	mu    sync.Mutex
	rules []*Fault
	seen  map[string]int // per method, every request
	sent  map[string]int // per method, requests forwarded to base
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport without rules that forwards to base, or to a
// clone of http.DefaultTransport when base is nil.
func New(base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Transport{base: base, seen: map[string]int{}, sent: map[string]int{}}
}

// Rule selects requests and says what to do to them.
type Rule struct {
	// Method matches the request method ("GET", "PUT", "HEAD",
	// "DELETE", ...), case-insensitively. Empty matches any method.
	Method string
	// KeyContains matches requests whose URL path (unescaped) contains
	// it. With path-style addressing the path is /bucket/key. Listing
	// requests carry the prefix in the query, not the path. Empty
	// matches any path.
	KeyContains string
	// Match, if set, must also return true. It must not read the body.
	Match func(*http.Request) bool

	// Nth is the first matching request (counted from 1 since the rule
	// was added) the rule acts on; 0 means 1.
	Nth int
	// Times is how many requests, from the Nth on, the rule acts on;
	// 0 means every one.
	Times int

	Action Action
}

// Fault is a rule added to a Transport.
type Fault struct {
	t       *Transport
	rule    Rule
	matched int // requests the filter matched
	hits    int // requests acted on
}

// Add adds r after the existing rules and returns its handle.
func (t *Transport) Add(r Rule) *Fault {
	f := &Fault{t: t, rule: r}
	t.mu.Lock()
	t.rules = append(t.rules, f)
	t.mu.Unlock()
	return f
}

// Hits returns the number of requests f has acted on.
func (f *Fault) Hits() int {
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	return f.hits
}

// Remove removes f from its Transport; requests already being faulted
// finish as they started. Removing twice is harmless.
func (f *Fault) Remove() {
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	for i, g := range f.t.rules {
		if g == f {
			f.t.rules = append(f.t.rules[:i:i], f.t.rules[i+1:]...)
			return
		}
	}
}

// Clear removes every rule. Counters are kept.
func (t *Transport) Clear() {
	t.mu.Lock()
	t.rules = nil
	t.mu.Unlock()
}

// Seen returns the number of requests with method (case-insensitive)
// that reached the Transport, faulted or not; "" counts all methods.
func (t *Transport) Seen(method string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return count(t.seen, method)
}

// Sent returns the number of requests with method that were forwarded to
// the base transport, so that the server may have received them; ""
// counts all methods.
func (t *Transport) Sent(method string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return count(t.sent, method)
}

func count(m map[string]int, method string) int {
	if method != "" {
		return m[strings.ToUpper(method)]
	}
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// CloseIdleConnections closes the base transport's idle connections, if
// it has any, so http.Client.CloseIdleConnections reaches them.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// pick counts req against every rule and returns the action of the first
// one that acts on it.
func (t *Transport) pick(req *http.Request) (Action, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[req.Method]++
	var act Action
	found := false
	for _, f := range t.rules {
		r := &f.rule
		if r.Method != "" && !strings.EqualFold(r.Method, req.Method) {
			continue
		}
		if r.KeyContains != "" && !strings.Contains(req.URL.Path, r.KeyContains) {
			continue
		}
		if r.Match != nil && !r.Match(req) {
			continue
		}
		f.matched++
		first := max(r.Nth, 1)
		if found || f.matched < first || (r.Times > 0 && f.matched >= first+r.Times) {
			continue
		}
		f.hits++
		act, found = r.Action, true
	}
	return act, found
}

func (t *Transport) forward(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.sent[req.Method]++
	t.mu.Unlock()
	return t.base.RoundTrip(req)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	act, ok := t.pick(req)
	if !ok {
		return t.forward(req)
	}
	if act.delay > 0 {
		tm := time.NewTimer(act.delay)
		select {
		case <-tm.C:
		case <-req.Context().Done():
			tm.Stop()
			closeBody(req)
			return nil, req.Context().Err()
		}
	}
	switch act.kind {
	case kindResetBefore:
		closeBody(req)
		return nil, &ResetError{}
	case kindRespond:
		closeBody(req)
		return respond(req, act.status, act.code), nil
	}

	resp, err := t.forward(req)
	if err != nil {
		return nil, err
	}
	switch act.kind {
	case kindResetAfter:
		// Let the server finish the exchange, then lose its answer.
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &ResetError{AfterSend: true}
	case kindRespondAfter:
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return respond(req, act.status, act.code), nil
	case kindTruncate:
		resp.Body = &truncated{rc: resp.Body, left: act.n}
	case kindCorrupt:
		resp.Body = &corrupted{rc: resp.Body, at: act.n}
	}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

type kind int

const (
	kindPass kind = iota
	kindResetBefore
	kindResetAfter
	kindRespond
	kindRespondAfter
	kindTruncate
	kindCorrupt
)

// Action is what a rule does to a request. Make one with the functions
// below; the zero value forwards the request unchanged.
type Action struct {
	kind   kind
	delay  time.Duration
	status int
	code   string
	n      int64
}

// Latency forwards the request after d. If the request's context ends
// first, RoundTrip returns the context's error and nothing is sent.
func Latency(d time.Duration) Action { return Action{delay: d} }

// After returns a copy of a that first waits d, like Latency.
func (a Action) After(d time.Duration) Action { a.delay = d; return a }

// ResetBeforeSend fails the request with a *ResetError (a connection
// reset by peer) without sending it: the server never sees it.
func ResetBeforeSend() Action { return Action{kind: kindResetBefore} }

// ResetAfterSend forwards the request, reads the server's whole response
// and discards it, then fails the request with a *ResetError: the server
// applied the request but the client cannot know.
func ResetAfterSend() Action { return Action{kind: kindResetAfter} }

// Respond answers the request with status and an S3-style XML error body
// without sending it; the error code is the usual S3 one for the status
// (500 InternalError, 503 ServiceUnavailable, 409 ConditionalRequestConflict, 412
// PreconditionFailed, 404 NoSuchKey, 403 AccessDenied, else the status
// text without spaces). 304 and HEAD requests get no body. For S3's
// throttling answer, use RespondCode(503, "SlowDown"): the AWS SDK backs
// off longer from it.
func Respond(status int) Action { return Action{kind: kindRespond, status: status} }

// RespondCode is Respond with an explicit S3 error code.
func RespondCode(status int, code string) Action {
	return Action{kind: kindRespond, status: status, code: code}
}

// RespondAfterSend forwards the request, discards the server's answer and
// answers with status instead: the server applied the request, the client
// sees an error (a 500 after a write that succeeded, say).
func RespondAfterSend(status int) Action { return Action{kind: kindRespondAfter, status: status} }

// Truncate forwards the request and cuts the response body after n bytes
// with io.ErrUnexpectedEOF, as a connection lost mid-body would, while
// the Content-Length header still announces the whole body.
func Truncate(n int64) Action { return Action{kind: kindTruncate, n: n} }

// Corrupt forwards the request and inverts every bit of the response
// body's byte at offset (0-based), leaving its length and headers alone.
// A body of offset bytes or fewer is unchanged.
func Corrupt(offset int64) Action { return Action{kind: kindCorrupt, n: offset} }

// String describes a, for test logs.
func (a Action) String() string {
	var s string
	switch a.kind {
	case kindPass:
		s = "pass"
	case kindResetBefore:
		s = "reset before send"
	case kindResetAfter:
		s = "reset after send"
	case kindRespond:
		s = "respond " + strconv.Itoa(a.status)
	case kindRespondAfter:
		s = "respond " + strconv.Itoa(a.status) + " after send"
	case kindTruncate:
		s = fmt.Sprintf("truncate body after %d bytes", a.n)
	case kindCorrupt:
		s = fmt.Sprintf("corrupt body byte %d", a.n)
	}
	if a.delay > 0 {
		s = "after " + a.delay.String() + ", " + s
	}
	return s
}

// ResetError is the error RoundTrip returns for ResetBeforeSend and
// ResetAfterSend. It matches ErrInjected and syscall.ECONNRESET, and its
// message says "connection reset", which is how the AWS SDK recognises a
// retryable reset.
type ResetError struct {
	AfterSend bool // the server received the request
}

func (e *ResetError) Error() string {
	if e.AfterSend {
		return "faults: read tcp: connection reset by peer (injected after the request was sent)"
	}
	return "faults: write tcp: connection reset by peer (injected before the request was sent)"
}

// Unwrap returns ErrInjected and syscall.ECONNRESET.
func (e *ResetError) Unwrap() []error { return []error{ErrInjected, syscall.ECONNRESET} }

var s3Codes = map[int]string{
	http.StatusInternalServerError: "InternalError",
	http.StatusServiceUnavailable:  "ServiceUnavailable",
	http.StatusConflict:            "ConditionalRequestConflict",
	http.StatusPreconditionFailed:  "PreconditionFailed",
	http.StatusNotFound:            "NoSuchKey",
	http.StatusForbidden:           "AccessDenied",
}

// respond makes the response of a Respond action.
func respond(req *http.Request, status int, code string) *http.Response {
	if code == "" {
		code = s3Codes[status]
	}
	if code == "" {
		code = strings.ReplaceAll(http.StatusText(status), " ", "")
	}
	var body string
	if status != http.StatusNotModified && req.Method != http.MethodHead {
		body = xmlHeader + "<Error><Code>" + code + "</Code><Message>injected by faults</Message>" +
			"<Resource>" + xmlEscape(req.URL.Path) + "</Resource><RequestId>faults</RequestId></Error>"
	}
	h := http.Header{}
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Request-Id", "faults")
	var rc io.ReadCloser = http.NoBody // as net/http gives a 304 or a HEAD
	if body != "" {
		rc = io.NopCloser(strings.NewReader(body))
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          rc,
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// truncated passes left bytes through, then fails.
type truncated struct {
	rc   io.ReadCloser
	left int64
}

func (b *truncated) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: response body cut: %w", ErrInjected, io.ErrUnexpectedEOF)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *truncated) Close() error { return b.rc.Close() }

// corrupted flips the byte at offset at at.
type corrupted struct {
	rc  io.ReadCloser
	off int64
	at  int64
}

func (b *corrupted) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if i := b.at - b.off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	b.off += int64(n)
	return n, err
}

func (b *corrupted) Close() error { return b.rc.Close() }
