package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// The contenders, in the order of the report.
const (
	Raw            = "raw PutObject/GetObject (the limit)"
	HandWritten    = "hand-written JSON store"
	SingleIndex    = "single index object (If-Match)"
	WriteThrough   = "Cairn write-through"
	WriteBack      = "Cairn write-back"
	WriteBackTyped = "Cairn write-back, typed"
)

// Contenders lists the contenders' names in report order.
var Contenders = []string{Raw, HandWritten, SingleIndex, WriteThrough, WriteBack, WriteBackTyped}

// contender is one way of storing checkpoints in a bucket under a prefix.
type contender interface {
	// save stores s. The raw contender stores s.blob, the typed one encodes
	// s.typed, the others s.cp.
	save(ctx context.Context, s *sample) error
	// load reads run id back, decoded (the raw contender reads the bytes).
	load(ctx context.Context, id uuid.UUID) error
	// list returns the newest limit runs (all when limit is 0), newest first,
	// and how many it returned. The raw contender lists keys, unordered: the
	// cheapest listing S3 offers.
	list(ctx context.Context, limit int) (int, error)
	// flush makes every save durable (write-back); a no-op for the others.
	flush(ctx context.Context) error
	// settle waits for background work (Cairn's index compaction), outside the
	// timed window, so that its requests are counted in the phase that caused it.
	settle()
	close(ctx context.Context) error
}

// env is what the contenders share: one bucket, one counted client.
type env struct {
	client *s3.Client // counted, with the injected latency
	bucket string
	codec  *cairn.Codec
	conc   int
}

func newContender(e *env, name, prefix string) (contender, error) {
	switch name {
	case Raw:
		return &raw{e: e, prefix: prefix}, nil
	case HandWritten:
		return &handWritten{e: e, prefix: prefix}, nil
	case SingleIndex:
		return &singleIndex{e: e, prefix: prefix}, nil
	case WriteThrough:
		return newCairn(e, prefix, tiered.WriteThrough)
	case WriteBack:
		return newCairn(e, prefix, tiered.WriteBack)
	case WriteBackTyped:
		c, err := newCairn(e, prefix, tiered.WriteBack)
		if err != nil {
			return nil, err
		}
		return &cairnTyped{cairnStore: c, t: newTyped(c.s)}, nil
	}
	return nil, fmt.Errorf("bench: unknown contender %q", name)
}

func (e *env) put(ctx context.Context, key string, body []byte) error {
	_, err := e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: bytes.NewReader(body)})
	return err
}

func (e *env) get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := e.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: &key})
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return b, aws.ToString(out.ETag), err
}

// keys lists every key under prefix, or the first limit when limit > 0.
func (e *env) keys(ctx context.Context, prefix string, limit int) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: &prefix}
	if limit > 0 {
		in.MaxKeys = aws.Int32(int32(min(limit, 1000)))
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		if limit > 0 && len(keys) >= limit {
			break
		}
	}
	return keys, nil
}

type noFlush struct{}

func (noFlush) flush(context.Context) error { return nil }
func (noFlush) settle()                     {}
func (noFlush) close(context.Context) error { return nil }

// raw is the physical limit: Cairn's stored bytes, precomputed, one PUT per
// save and one GET per load, nothing else.
type raw struct {
	noFlush
	e      *env
	prefix string
}

func (r *raw) save(ctx context.Context, s *sample) error {
	return r.e.put(ctx, r.prefix+s.cp.RunID.String(), s.blob)
}

func (r *raw) load(ctx context.Context, id uuid.UUID) error {
	_, _, err := r.e.get(ctx, r.prefix+id.String())
	return err
}

func (r *raw) list(ctx context.Context, limit int) (int, error) {
	keys, err := r.e.keys(ctx, r.prefix, limit)
	return len(keys), err
}

// handWritten is the store a user writes in an afternoon: one JSON object
// per run; List lists the keys, GETs every object (in parallel) and sorts
// them by timestamp, because nothing else knows the order.
type handWritten struct {
	noFlush
	e      *env
	prefix string
}

func (h *handWritten) save(ctx context.Context, s *sample) error {
	b, err := json.Marshal(s.cp)
	if err != nil {
		return err
	}
	return h.e.put(ctx, h.prefix+s.cp.RunID.String()+".json", b)
}

func (h *handWritten) read(ctx context.Context, key string) (*cairn.Checkpoint, error) {
	b, _, err := h.e.get(ctx, key)
	if err != nil {
		return nil, err
	}
	var cp cairn.Checkpoint
	return &cp, json.Unmarshal(b, &cp)
}

func (h *handWritten) load(ctx context.Context, id uuid.UUID) error {
	_, err := h.read(ctx, h.prefix+id.String()+".json")
	return err
}

func (h *handWritten) list(ctx context.Context, limit int) (int, error) {
	keys, err := h.e.keys(ctx, h.prefix, 0)
	if err != nil {
		return 0, err
	}
	cps := make([]*cairn.Checkpoint, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.e.conc)
	for i, k := range keys {
		g.Go(func() (err error) {
			cps[i], err = h.read(gctx, k)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	slices.SortFunc(cps, func(a, b *cairn.Checkpoint) int {
		return cairn.Key{Timestamp: a.Timestamp, RunID: a.RunID}.Compare(cairn.Key{Timestamp: b.Timestamp, RunID: b.RunID})
	})
	if limit > 0 && len(cps) > limit {
		cps = cps[:limit]
	}
	return len(cps), nil
}

// singleIndex is the design Cairn avoids: the run's object (Cairn's bytes),
// then a read-modify-write of one JSON index object holding every run's
// summary, conditional on its ETag, retried with jittered backoff on 412.
// Its cost per Save grows with the number of runs, and concurrent Saves
// serialize on the one object.
type singleIndex struct {
	noFlush
	e      *env
	prefix string
}

type indexEntry struct {
	Run      uuid.UUID `json:"run"`
	TS       time.Time `json:"ts"`
	Workflow string    `json:"wf"`
	Size     int       `json:"size"`
}

func (x *singleIndex) indexKey() string { return x.prefix + "index.json" }

func (x *singleIndex) save(ctx context.Context, s *sample) error {
	blob, err := x.e.codec.Marshal(s.cp)
	if err != nil {
		return err
	}
	if err := x.e.put(ctx, x.prefix+"runs/"+s.cp.RunID.String(), blob); err != nil {
		return err
	}
	e := indexEntry{Run: s.cp.RunID, TS: s.cp.Timestamp, Workflow: s.cp.WorkflowName, Size: len(blob)}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for attempt := 0; ; attempt++ {
		entries, etag, err := x.read(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(entries, func(o indexEntry) bool { return o.Run == e.Run })
		if i >= 0 {
			entries[i] = e
		} else {
			entries = append(entries, e)
		}
		body, err := json.Marshal(entries)
		if err != nil {
			return err
		}
		in := &s3.PutObjectInput{Bucket: &x.e.bucket, Key: aws.String(x.indexKey()), Body: bytes.NewReader(body)}
		if etag == "" {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(etag)
		}
		_, err = x.e.client.PutObject(ctx, in)
		if err == nil {
			return nil
		}
		if !isStatus(err, 412, 409) && !isConnection(err) {
			return err
		}
		// Someone else's write won: back off (jittered, growing to 50 ms) and re-read.
		// A connection error counts too: MinIO answers a failed If-Match as soon as
		// it has the headers and closes the connection, so a large index body being
		// sent meets a broken pipe instead of the 412.
		d := time.Duration(rand.Int64N(int64(min(50*time.Millisecond, time.Millisecond<<min(attempt, 6))) + 1))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return fmt.Errorf("single index: gave up after %d conflicts: %w", attempt+1, ctx.Err())
		}
	}
}

// read returns the index's entries and ETag; an absent index is empty with no ETag.
func (x *singleIndex) read(ctx context.Context) ([]indexEntry, string, error) {
	b, etag, err := x.e.get(ctx, x.indexKey())
	if isStatus(err, 404) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var entries []indexEntry
	return entries, etag, json.Unmarshal(b, &entries)
}

func (x *singleIndex) load(ctx context.Context, id uuid.UUID) error {
	b, _, err := x.e.get(ctx, x.prefix+"runs/"+id.String())
	if err != nil {
		return err
	}
	_, err = x.e.codec.Unmarshal(b)
	return err
}

func (x *singleIndex) list(ctx context.Context, limit int) (int, error) {
	entries, _, err := x.read(ctx)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(entries, func(a, b indexEntry) int {
		return cairn.Key{Timestamp: a.TS, RunID: a.Run}.Compare(cairn.Key{Timestamp: b.TS, RunID: b.Run})
	})
	if limit > 0 && len(entries) > limit {
		entries = entries[:limit]
	}
	return len(entries), nil
}

// isStatus reports whether err is an HTTP answer with one of the statuses.
func isStatus(err error, statuses ...int) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && slices.Contains(statuses, re.HTTPStatusCode())
}

// isConnection reports whether err is a failure without an HTTP answer.
func isConnection(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return !errors.As(err, &re) || re.HTTPStatusCode() == 0
}

// cairnStore is Cairn itself: the tiered store over S3, default options
// but the mode.
type cairnStore struct {
	s *tiered.Store
}

func openCairn(e *env, prefix string, mode tiered.Mode) (*tiered.Store, error) {
	return tiered.New(s3store.NewS3(e.client, e.bucket), &tiered.Options{Mode: mode, Durable: durable.Options{Prefix: prefix}})
}

func newCairn(e *env, prefix string, mode tiered.Mode) (*cairnStore, error) {
	s, err := openCairn(e, trimSlash(prefix), mode)
	return &cairnStore{s: s}, err
}

func trimSlash(p string) string { return p[:len(p)-1] }

func (c *cairnStore) save(ctx context.Context, s *sample) error { return c.s.Save(ctx, s.cp) }

func (c *cairnStore) load(ctx context.Context, id uuid.UUID) error {
	_, err := c.s.Load(ctx, id)
	return err
}

func (c *cairnStore) list(ctx context.Context, limit int) (int, error) {
	page, err := c.s.List(ctx, &cairn.ListOptions{Limit: limit})
	if err != nil {
		return 0, err
	}
	return len(page.Runs), nil
}

func (c *cairnStore) flush(ctx context.Context) error { return c.s.Flush(ctx) }
func (c *cairnStore) settle()                         { _ = c.s.Durable().Compact(context.Background()) }
func (c *cairnStore) close(ctx context.Context) error { return c.s.Close(ctx) }

// cairnTyped is Cairn write-back with the typed state: Save and Load go
// through cairn.Typed, straight between AgentState and the record, which
// holds the bytes cairnStore's Save writes for the same checkpoint.
type cairnTyped struct {
	*cairnStore
	t *cairn.Typed[AgentState, *AgentState]
}

func newTyped(s cairn.Store) *cairn.Typed[AgentState, *AgentState] {
	return cairn.NewTyped[AgentState](s, &cairn.TypedOptions{Events: events})
}

func (c *cairnTyped) save(ctx context.Context, s *sample) error { return c.t.Save(ctx, s.typed) }

func (c *cairnTyped) load(ctx context.Context, id uuid.UUID) error {
	_, err := c.t.Load(ctx, id)
	return err
}
