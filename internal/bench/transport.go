package bench

import (
	"net/http"
	"sync"
	"time"

	"github.com/cairnstore/cairn/s3store/faults"
)

// Requests counts S3 requests by the class S3 bills them in, plus the bytes
// of request and response bodies.
type Requests struct {
	PUT    int64 // PutObject (and any other PUT)
	GET    int64 // GetObject
	LIST   int64 // ListObjectsV2 (a GET on the bucket), billed with PUTs
	HEAD   int64 // HeadObject, billed with GETs
	DELETE int64 // free
	Other  int64 // POST and anything else, billed with PUTs

	BytesUp   int64 // request bodies sent
	BytesDown int64 // response bodies announced (Content-Length)
}

// Sub returns r - o, field by field.
func (r Requests) Sub(o Requests) Requests {
	return Requests{
		PUT: r.PUT - o.PUT, GET: r.GET - o.GET, LIST: r.LIST - o.LIST, HEAD: r.HEAD - o.HEAD,
		DELETE: r.DELETE - o.DELETE, Other: r.Other - o.Other,
		BytesUp: r.BytesUp - o.BytesUp, BytesDown: r.BytesDown - o.BytesDown,
	}
}

// Total is the number of requests of every class.
func (r Requests) Total() int64 { return r.PUT + r.GET + r.LIST + r.HEAD + r.DELETE + r.Other }

// PutClass is the number of requests S3 bills at the PUT price (PUT, COPY,
// POST, LIST).
func (r Requests) PutClass() int64 { return r.PUT + r.LIST + r.Other }

// GetClass is the number of requests S3 bills at the GET price (GET, HEAD
// and the rest of the reads).
func (r Requests) GetClass() int64 { return r.GET + r.HEAD }

// counter is an http.RoundTripper that counts requests by class, in front
// of an optional injected latency.
type counter struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    Requests
}

// newTransport returns the counted transport every contender's requests go
// through: counting first, then the latency (faults.Latency, before the
// request is sent) so that loopback MinIO stands in for a remote S3, then a
// connection pool large enough that no contender waits for a connection.
func newTransport(latency time.Duration, conns int) *counter {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = 4 * conns
	base.MaxIdleConnsPerHost = 4 * conns
	var rt http.RoundTripper = base
	if latency > 0 {
		f := faults.New(base)
		f.Add(faults.Rule{Action: faults.Latency(latency)})
		rt = f
	}
	return &counter{base: rt}
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	up := max(req.ContentLength, 0)
	resp, err := c.base.RoundTrip(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch req.Method {
	case http.MethodPut:
		c.n.PUT++
	case http.MethodGet:
		if isList(req) {
			c.n.LIST++
		} else {
			c.n.GET++
		}
	case http.MethodHead:
		c.n.HEAD++
	case http.MethodDelete:
		c.n.DELETE++
	default:
		c.n.Other++
	}
	c.n.BytesUp += up
	if err == nil {
		c.n.BytesDown += max(resp.ContentLength, 0)
	}
	return resp, err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (c *counter) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// isList reports whether a GET is a ListObjectsV2 (the SDK always sends
// list-type=2); a GET of an object has no such parameter.
func isList(req *http.Request) bool { return req.URL.Query().Has("list-type") }

func (c *counter) snapshot() Requests {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
