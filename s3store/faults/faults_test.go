package faults_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn/s3store/faults"
)

// server is an HTTP server that answers every request with body and counts
// the requests it received.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t *testing.T, body string) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.hits.Add(1)
		w.Header().Set("ETag", `"abc"`)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func client(tr *faults.Transport) *http.Client { return &http.Client{Transport: tr} }

// do sends method to url+path and returns the status and body, or the error.
func do(t *testing.T, c *http.Client, method, url string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return doCtx(ctx, c, method, url)
}

func doCtx(ctx context.Context, c *http.Client, method, url string) (int, string, error) {
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestPassThroughAndCounters(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	c := client(tr)
	for _, m := range []string{"GET", "GET", "PUT", "HEAD"} {
		status, body, err := do(t, c, m, srv.URL+"/b/k")
		if err != nil || status != 200 {
			t.Fatalf("%s: status %d err %v", m, status, err)
		}
		if m == "GET" && body != "hello" {
			t.Fatalf("GET body %q", body)
		}
	}
	if got := tr.Seen("GET"); got != 2 {
		t.Errorf("Seen(GET) = %d, want 2", got)
	}
	if got := tr.Seen("get"); got != 2 {
		t.Errorf("Seen(get) = %d, want 2 (case-insensitive)", got)
	}
	if got, want := tr.Seen(""), 4; got != want {
		t.Errorf("Seen(\"\") = %d, want %d", got, want)
	}
	if got, want := tr.Sent(""), 4; got != want {
		t.Errorf("Sent(\"\") = %d, want %d", got, want)
	}
	if srv.hits.Load() != 4 {
		t.Errorf("server saw %d requests, want 4", srv.hits.Load())
	}
}

func TestRespondWithS3Error(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	c := client(tr)
	for _, tc := range []struct {
		action faults.Action
		status int
		code   string
	}{
		{faults.Respond(500), 500, "<Code>InternalError</Code>"},
		{faults.Respond(503), 503, "<Code>ServiceUnavailable</Code>"},
		{faults.Respond(409), 409, "<Code>ConditionalRequestConflict</Code>"},
		{faults.Respond(412), 412, "<Code>PreconditionFailed</Code>"},
		{faults.RespondCode(503, "SlowDown"), 503, "<Code>SlowDown</Code>"},
		{faults.Respond(418), 418, "<Code>I'mateapot</Code>"},
	} {
		f := tr.Add(faults.Rule{Method: "PUT", Action: tc.action})
		status, body, err := do(t, c, "PUT", srv.URL+"/b/k")
		f.Remove()
		if err != nil {
			t.Fatalf("%v: %v", tc.action, err)
		}
		if status != tc.status || !strings.Contains(body, tc.code) || !strings.HasPrefix(body, "<?xml") {
			t.Errorf("%v: status %d body %q; want %d with %s", tc.action, status, body, tc.status, tc.code)
		}
		if f.Hits() != 1 {
			t.Errorf("%v: Hits = %d, want 1", tc.action, f.Hits())
		}
	}
	if srv.hits.Load() != 0 {
		t.Errorf("server saw %d requests; Respond must not send them", srv.hits.Load())
	}
	if tr.Sent("") != 0 || tr.Seen("PUT") != 6 {
		t.Errorf("Sent %d Seen(PUT) %d; want 0 and 6", tr.Sent(""), tr.Seen("PUT"))
	}
}

func TestRespondAfterSend(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	tr.Add(faults.Rule{Action: faults.RespondAfterSend(500)})
	status, _, err := do(t, client(tr), "PUT", srv.URL+"/b/k")
	if err != nil || status != 500 {
		t.Fatalf("status %d err %v; want 500", status, err)
	}
	if srv.hits.Load() != 1 || tr.Sent("PUT") != 1 {
		t.Fatalf("server saw %d, Sent %d; want the request sent once", srv.hits.Load(), tr.Sent("PUT"))
	}
}

func TestFilterAndWindow(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	c := client(tr)
	// Acts on the 2nd and 3rd GET of a path containing "runs/".
	f := tr.Add(faults.Rule{Method: "GET", KeyContains: "runs/", Nth: 2, Times: 2, Action: faults.Respond(503)})
	var got []int
	for _, path := range []string{"/b/runs/1", "/b/other", "/b/runs/2", "/b/runs/3", "/b/runs/4"} {
		status, _, err := do(t, c, "GET", srv.URL+path)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, status)
	}
	if _, _, err := do(t, c, "PUT", srv.URL+"/b/runs/5"); err != nil {
		t.Fatal(err)
	}
	want := []int{200, 200, 503, 503, 200}
	if !equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if f.Hits() != 2 {
		t.Errorf("Hits = %d, want 2", f.Hits())
	}

	// The first rule in the window acts; a later matching rule only counts.
	tr.Clear()
	a := tr.Add(faults.Rule{Times: 1, Action: faults.Respond(500)})
	b := tr.Add(faults.Rule{Action: faults.Respond(412)})
	s1, _, _ := do(t, c, "GET", srv.URL+"/x")
	s2, _, _ := do(t, c, "GET", srv.URL+"/x")
	if s1 != 500 || s2 != 412 || a.Hits() != 1 || b.Hits() != 1 {
		t.Errorf("statuses %d %d hits %d %d; want 500 412 1 1", s1, s2, a.Hits(), b.Hits())
	}

	// Match narrows further.
	tr.Clear()
	tr.Add(faults.Rule{Match: func(r *http.Request) bool { return r.URL.Query().Has("list-type") }, Action: faults.Respond(500)})
	s1, _, _ = do(t, c, "GET", srv.URL+"/b?list-type=2")
	s2, _, _ = do(t, c, "GET", srv.URL+"/b/k")
	if s1 != 500 || s2 != 200 {
		t.Errorf("Match: statuses %d %d; want 500 200", s1, s2)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResetBeforeSend(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	tr.Add(faults.Rule{Action: faults.ResetBeforeSend()})
	_, _, err := do(t, client(tr), "PUT", srv.URL+"/b/k")
	var re *faults.ResetError
	if !errors.As(err, &re) || re.AfterSend {
		t.Fatalf("err %v; want a *ResetError before send", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, faults.ErrInjected) {
		t.Errorf("err %v does not match ECONNRESET and ErrInjected", err)
	}
	if !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("err %q does not say \"connection reset\" (the SDK retries on that text)", err)
	}
	if srv.hits.Load() != 0 || tr.Sent("") != 0 {
		t.Errorf("server saw %d requests, Sent %d; want none", srv.hits.Load(), tr.Sent(""))
	}
}

func TestResetAfterSend(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	tr.Add(faults.Rule{Action: faults.ResetAfterSend()})
	_, _, err := do(t, client(tr), "PUT", srv.URL+"/b/k")
	var re *faults.ResetError
	if !errors.As(err, &re) || !re.AfterSend {
		t.Fatalf("err %v; want a *ResetError after send", err)
	}
	if srv.hits.Load() != 1 || tr.Sent("PUT") != 1 {
		t.Errorf("server saw %d requests, Sent %d; want 1", srv.hits.Load(), tr.Sent("PUT"))
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	f := tr.Add(faults.Rule{Times: 1, Action: faults.Latency(time.Hour)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := doCtx(ctx, client(tr), "GET", srv.URL+"/b/k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the delayed request took %s after its context ended", d)
	}
	if srv.hits.Load() != 0 || f.Hits() != 1 {
		t.Errorf("server saw %d requests, hits %d; want 0 and 1", srv.hits.Load(), f.Hits())
	}

	// A short delay, then the request goes through.
	tr.Add(faults.Rule{Action: faults.Latency(10 * time.Millisecond)})
	start = time.Now()
	status, body, err := do(t, client(tr), "GET", srv.URL+"/b/k")
	if err != nil || status != 200 || body != "hello" {
		t.Fatalf("status %d body %q err %v", status, body, err)
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("request took %s, less than its latency", d)
	}

	// After combines a delay with another action.
	tr.Clear()
	tr.Add(faults.Rule{Action: faults.Respond(503).After(5 * time.Millisecond)})
	if status, _, _ := do(t, client(tr), "GET", srv.URL+"/b/k"); status != 503 {
		t.Errorf("delayed Respond: status %d, want 503", status)
	}
}

func TestTruncate(t *testing.T) {
	payload := strings.Repeat("0123456789", 100)
	srv := newServer(t, payload)
	tr := faults.New(nil)
	tr.Add(faults.Rule{Action: faults.Truncate(123)})
	req, _ := http.NewRequest("GET", srv.URL+"/b/k", nil)
	resp, err := client(tr).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != int64(len(payload)) {
		t.Errorf("ContentLength %d, want %d (the announced length stays)", resp.ContentLength, len(payload))
	}
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, faults.ErrInjected) {
		t.Errorf("read error %v; want io.ErrUnexpectedEOF and ErrInjected", err)
	}
	if string(b) != payload[:123] {
		t.Errorf("read %d bytes before the cut, want the first 123", len(b))
	}
}

func TestCorrupt(t *testing.T) {
	payload := strings.Repeat("0123456789", 100)
	srv := newServer(t, payload)
	tr := faults.New(nil)
	tr.Add(faults.Rule{Action: faults.Corrupt(500)})
	_, body, err := do(t, client(tr), "GET", srv.URL+"/b/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != len(payload) {
		t.Fatalf("body of %d bytes, want %d", len(body), len(payload))
	}
	var diff []int
	for i := range body {
		if body[i] != payload[i] {
			diff = append(diff, i)
		}
	}
	if len(diff) != 1 || diff[0] != 500 || body[500] != payload[500]^0xff {
		t.Errorf("bytes differing at %v; want exactly byte 500, inverted", diff)
	}
}

// Rules hit exactly Times requests however many goroutines race for them.
func TestConcurrent(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	f := tr.Add(faults.Rule{Method: "GET", Times: 5, Action: faults.Respond(503)})
	c := client(tr)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 40 {
		wg.Go(func() {
			status, _, err := do(t, c, "GET", srv.URL+"/b/k")
			if err != nil {
				t.Error(err)
			}
			if status == 503 {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if f.Hits() != 5 || failed.Load() != 5 {
		t.Errorf("hits %d, 503s %d; want 5 and 5", f.Hits(), failed.Load())
	}
	if tr.Seen("GET") != 40 || tr.Sent("GET") != 35 {
		t.Errorf("Seen %d Sent %d; want 40 and 35", tr.Seen("GET"), tr.Sent("GET"))
	}
}

func TestRemove(t *testing.T) {
	srv := newServer(t, "hello")
	tr := faults.New(nil)
	f := tr.Add(faults.Rule{Action: faults.Respond(500)})
	if s, _, _ := do(t, client(tr), "GET", srv.URL); s != 500 {
		t.Fatalf("status %d, want 500", s)
	}
	f.Remove()
	f.Remove()
	if s, _, _ := do(t, client(tr), "GET", srv.URL); s != 200 {
		t.Fatalf("after Remove: status %d, want 200", s)
	}
}

func TestActionString(t *testing.T) {
	for _, tc := range []struct {
		a    faults.Action
		want string
	}{
		{faults.Action{}, "pass"},
		{faults.Latency(time.Second), "after 1s, pass"},
		{faults.ResetBeforeSend(), "reset before send"},
		{faults.ResetAfterSend(), "reset after send"},
		{faults.Respond(503), "respond 503"},
		{faults.RespondAfterSend(500), "respond 500 after send"},
		{faults.Truncate(10), "truncate body after 10 bytes"},
		{faults.Corrupt(3).After(time.Millisecond), "after 1ms, corrupt body byte 3"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
