// Package bench compares Cairn, in one run and on the same checkpoints,
// with what a user would otherwise use and with the physical limit:
//
//  1. raw PutObject/GetObject of Cairn's stored bytes (the limit);
//  2. the hand-written store: one JSON object per run, List by
//     ListObjectsV2 plus a GET per object, sorted by timestamp;
//  3. one index object rewritten on every Save with If-Match, retried on
//     412 (the design Cairn avoids);
//  4. Cairn write-through and 5. Cairn write-back (tiered.Store);
//  6. Cairn write-back again, saving and loading the state as a Go struct
//     through cairn.Typed (the same bytes as 5).
//
// Every contender's requests go through one counting http.RoundTripper,
// optionally behind an injected per-request latency (s3store/faults), so
// that a loopback MinIO can stand in for S3 Standard or S3 Express. Run
// measures; Report.WriteMarkdown and Report.WritePlot write the results.
// The command is tools/cairnbench.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// Config is what Run measures, and where. Start from Default or Quick.
type Config struct {
	// Endpoint, Region, AccessKey and SecretKey name the S3 server.
	Endpoint, Region, AccessKey, SecretKey string
	// Server describes it in the report (a MinIO image, "external endpoint").
	Server string
	// Bucket is used if set (and must exist); else Run creates one.
	Bucket string
	// Cleanup empties and deletes the bucket Run created, at the end. A
	// container's buckets go with it; an external endpoint's should not stay.
	Cleanup bool
	// Latency is added before every request of the contenders (not of the
	// uncounted set-up requests that pre-populate the List datasets).
	Latency time.Duration
	// Concurrency is the number of callers of every contender, and Cairn's
	// FlushConcurrency is its default 16: keep them equal for the flush
	// target of DESIGN.md §8.
	Concurrency int

	// Sizes are the target MessagePack record sizes of the checkpoints.
	Sizes []int
	// Saves per size and contender, capped so that one phase writes at most
	// PhaseBytes of records.
	Saves      int
	PhaseBytes int
	// PhaseBudget stops a Save or Load phase early (the number done is
	// reported): the single-index contender can take minutes otherwise.
	PhaseBudget time.Duration

	// Scales are the numbers of runs List is measured at.
	Scales []int
	// BurstSaves of 1 KB checkpoints are made at each scale, within BurstBudget.
	BurstSaves  int
	BurstBudget time.Duration
	// ListRepeats: each List is timed this often and the median reported.
	ListRepeats int
	// ListBudget: the hand-written full List (a GET per run) is measured at
	// a scale only when the previous scale's time, scaled linearly, fits in
	// it; otherwise it is extrapolated and the report says so.
	ListBudget time.Duration
	// HitMissLoads single-caller Loads measure Cairn's cache hit and miss.
	HitMissLoads int

	// Logf reports progress; nil means silence.
	Logf func(format string, args ...any)
}

// Default is the full run behind BENCHMARKS.md: 1, 10 and 100 KB, List at
// 1k, 10k and 100k runs.
func Default() Config {
	return Config{
		Concurrency: 16,
		Sizes:       []int{1 << 10, 10 << 10, 100 << 10},
		Saves:       2000, PhaseBytes: 64 << 20, PhaseBudget: 20 * time.Second,
		Scales:     []int{1_000, 10_000, 100_000},
		BurstSaves: 500, BurstBudget: 10 * time.Second,
		ListRepeats: 3, ListBudget: 150 * time.Second,
		HitMissLoads: 300,
	}
}

// Quick is a run of a few seconds for tests: every contender and table,
// tiny counts.
func Quick() Config {
	return Config{
		Concurrency: 8,
		Sizes:       []int{1 << 10, 10 << 10, 100 << 10},
		Saves:       40, PhaseBytes: 4 << 20, PhaseBudget: 5 * time.Second,
		Scales:     []int{100, 1_000},
		BurstSaves: 30, BurstBudget: 3 * time.Second,
		ListRepeats: 1, ListBudget: 10 * time.Second,
		HitMissLoads: 30,
	}
}

// Throughput is one contender at one checkpoint size.
type Throughput struct {
	Contender   string
	Size        int     // target record size
	RecordBytes float64 // mean MessagePack record of the samples
	BlobBytes   float64 // mean zstd-compressed record (Cairn's object body)

	Saves, Loads             int
	SaveElapsed, LoadElapsed time.Duration // write-back's SaveElapsed includes the final Flush
	SaveLat, LoadLat         Latency       // per call, in the caller
	SaveReq, LoadReq         Requests      // whole phase
	BytesStored              int64         // under the contender's prefix after the Saves
}

// SavesPerSec and LoadsPerSec are the phase's throughput.
func (t Throughput) SavesPerSec() float64 { return rate(t.Saves, t.SaveElapsed) }
func (t Throughput) LoadsPerSec() float64 { return rate(t.Loads, t.LoadElapsed) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Cairn is the List contender name for both Cairn modes: they share the index.
const Cairn = "Cairn (either mode)"

// ListPoint is one contender's List at one number of runs, and its Saves
// made there.
type ListPoint struct {
	Contender string
	Runs      int
	// First is the newest 100 runs, All every run (summaries only; the
	// hand-written store has to GET every body either way).
	FirstLat, AllLat time.Duration // median
	FirstReq, AllReq Requests      // per List
	// WarmLat and WarmReq: the first page again from the same process
	// (Cairn caches immutable index objects; the others have nothing to reuse).
	WarmLat      time.Duration
	WarmReq      Requests
	Extrapolated bool // AllLat/FirstLat scaled from the previous scale; requests are exact

	BurstSaves   int
	BurstElapsed time.Duration
	BurstReq     Requests
}

// HitMiss is Cairn's Load from one caller: a cache hit, a miss (a fresh
// process), and the raw GET of the same object.
type HitMiss struct {
	Size                int
	RawGet, Hit, Miss   Latency
	SaveBack, SaveThrou Latency // one caller's Save, write-back and write-through
	// TypedHit and TypedSaveBack are Hit and SaveBack through cairn.Typed.
	TypedHit, TypedSaveBack Latency
}

// Report is the outcome of Run.
type Report struct {
	Config     Config
	Machine    Machine
	Started    time.Time
	Took       time.Duration
	LoadBefore string // /proc/loadavg when Run started: other work on the machine
	LoadAfter  string
	Throughput []Throughput
	Lists      []ListPoint
	HitMiss    HitMiss
}

// Run measures every contender as cfg says.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	r := &Report{Config: cfg, Machine: ReadMachine(), Started: time.Now(), LoadBefore: loadavg()}
	r.Config.Logf = nil

	ctr := newTransport(cfg.Latency, cfg.Concurrency)
	client, err := cfg.client(ctx, ctr)
	if err != nil {
		return nil, err
	}
	admin, err := cfg.client(ctx, newTransport(0, 64))
	if err != nil {
		return nil, err
	}
	bucket := cfg.Bucket
	if bucket == "" {
		bucket = fmt.Sprintf("cairnbench-%d", time.Now().UnixNano())
		if err := createBucket(ctx, admin, bucket, cfg.Region); err != nil {
			return nil, err
		}
		defer func() {
			if !cfg.Cleanup {
				return
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
			defer cancel()
			if err := deleteBucket(dctx, admin, bucket); err != nil {
				logf("bench: delete bucket %s: %v", bucket, err)
			}
		}()
	}
	b := &runner{cfg: cfg, logf: logf, ctr: ctr, admin: admin,
		e: &env{client: client, bucket: bucket, codec: cairn.DefaultCodec(), conc: cfg.Concurrency}}

	for _, size := range cfg.Sizes {
		rows, err := b.throughput(ctx, size)
		if err != nil {
			return nil, err
		}
		r.Throughput = append(r.Throughput, rows...)
	}
	if r.HitMiss, err = b.hitMiss(ctx, cfg.Sizes[len(cfg.Sizes)/2]); err != nil {
		return nil, err
	}
	if r.Lists, err = b.scales(ctx); err != nil {
		return nil, err
	}
	r.Took = time.Since(r.Started)
	r.LoadAfter = loadavg()
	return r, nil
}

func (c *Config) validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("no Endpoint"))
	}
	if c.Concurrency < 1 || c.Saves < 1 || c.BurstSaves < 1 || c.ListRepeats < 1 || c.HitMissLoads < 1 {
		errs = append(errs, errors.New("Concurrency, Saves, BurstSaves, ListRepeats and HitMissLoads must be positive"))
	}
	if len(c.Sizes) == 0 || len(c.Scales) == 0 {
		errs = append(errs, errors.New("no Sizes or no Scales"))
	}
	if c.Latency < 0 {
		errs = append(errs, errors.New("negative Latency"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) client(ctx context.Context, tr *counter) (*s3.Client, error) {
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	return s3store.NewS3Client(ctx, &s3store.S3Options{
		Endpoint: c.Endpoint, Region: region, PathStyle: true, Transport: tr,
		Credentials:          aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")),
		ChecksumWhenRequired: true,
	})
}

func createBucket(ctx context.Context, c *s3.Client, name, region string) error {
	in := &s3.CreateBucketInput{Bucket: &name}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
	}
	_, err := c.CreateBucket(ctx, in)
	return err
}

func deleteBucket(ctx context.Context, c *s3.Client, name string) error {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &name})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]s3types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = s3types.ObjectIdentifier{Key: o.Key}
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &name, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return err
		}
	}
	_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name})
	return err
}

type runner struct {
	cfg   Config
	logf  func(string, ...any)
	ctr   *counter
	admin *s3.Client // uncounted, no latency: set-up and bytes-stored listings
	e     *env
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return strconv.Itoa(n/1024) + "KB"
	}
	return strconv.Itoa(n) + "B"
}

// slugs name the contenders' prefixes in the bucket.
var slugs = map[string]string{Raw: "raw", HandWritten: "json", SingleIndex: "single", WriteThrough: "cairn-wt", WriteBack: "cairn-wb",
	WriteBackTyped: "cairn-wbt"}

// timedSaves saves samples through c on the configured callers and, for
// write-back, flushes inside the timed window.
func (b *runner) timedSaves(ctx context.Context, c contender, samples []sample, budget time.Duration) (driveResult, Requests, error) {
	before := b.ctr.snapshot()
	res, err := drive(ctx, b.cfg.Concurrency, len(samples), budget, func(ctx context.Context, i int) error {
		return c.save(ctx, &samples[i])
	})
	if err != nil {
		return res, Requests{}, err
	}
	start := time.Now()
	if err := c.flush(ctx); err != nil {
		return res, Requests{}, err
	}
	res.Elapsed += time.Since(start)
	c.settle()
	return res, b.ctr.snapshot().Sub(before), nil
}

func (b *runner) throughput(ctx context.Context, size int) ([]Throughput, error) {
	n := max(1, min(b.cfg.Saves, b.cfg.PhaseBytes/size))
	samples, err := newGenerator(uint64(size), b.e.codec).samples(n, size)
	if err != nil {
		return nil, err
	}
	var rec, blob float64
	for _, s := range samples {
		r, _ := b.e.codec.EncodeRecord(nil, s.cp)
		rec += float64(len(r))
		blob += float64(len(s.blob))
	}
	rec, blob = rec/float64(n), blob/float64(n)

	var rows []Throughput
	for _, name := range Contenders {
		prefix := "tp-" + sizeName(size) + "/" + slugs[name] + "/"
		t := Throughput{Contender: name, Size: size, RecordBytes: rec, BlobBytes: blob}
		c, err := newContender(b.e, name, prefix)
		if err != nil {
			return nil, err
		}
		res, req, err := b.timedSaves(ctx, c, samples, b.cfg.PhaseBudget)
		if err != nil {
			return nil, fmt.Errorf("%s, %s saves: %w", name, sizeName(size), err)
		}
		if err := c.close(ctx); err != nil {
			return nil, err
		}
		t.Saves, t.SaveElapsed, t.SaveLat, t.SaveReq = res.Done, res.Elapsed, res.Lat, req
		if t.BytesStored, err = b.bytesUnder(ctx, prefix); err != nil {
			return nil, err
		}

		// Loads from a fresh instance: Cairn's cache is cold, so these are
		// misses (hits are measured in HitMiss).
		c, err = newContender(b.e, name, prefix)
		if err != nil {
			return nil, err
		}
		ids := make([]uuid.UUID, t.Saves)
		for i := range ids {
			ids[i] = samples[i].cp.RunID
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		before := b.ctr.snapshot()
		res, err = drive(ctx, b.cfg.Concurrency, len(ids), b.cfg.PhaseBudget, func(ctx context.Context, i int) error {
			return c.load(ctx, ids[i])
		})
		if err != nil {
			return nil, fmt.Errorf("%s, %s loads: %w", name, sizeName(size), err)
		}
		t.Loads, t.LoadElapsed, t.LoadLat, t.LoadReq = res.Done, res.Elapsed, res.Lat, b.ctr.snapshot().Sub(before)
		if err := c.close(ctx); err != nil {
			return nil, err
		}
		b.logf("%-6s %-38s %6.0f saves/s (%d)  %6.0f loads/s  %.2f req/save", sizeName(size), name,
			t.SavesPerSec(), t.Saves, t.LoadsPerSec(), float64(t.SaveReq.Total())/float64(max(1, t.Saves)))
		rows = append(rows, t)
	}
	return rows, nil
}

// bytesUnder sums the sizes of the objects under prefix.
func (b *runner) bytesUnder(ctx context.Context, prefix string) (int64, error) {
	var n int64
	p := s3.NewListObjectsV2Paginator(b.admin, &s3.ListObjectsV2Input{Bucket: &b.e.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, o := range page.Contents {
			n += aws.ToInt64(o.Size)
		}
	}
	return n, nil
}

// hitMiss measures one caller's Cairn Save and Load against a raw GET.
func (b *runner) hitMiss(ctx context.Context, size int) (HitMiss, error) {
	hm := HitMiss{Size: size}
	samples, err := newGenerator(99, b.e.codec).samples(b.cfg.HitMissLoads, size)
	if err != nil {
		return hm, err
	}
	one := func(n int, op func(ctx context.Context, i int) error) (Latency, error) {
		res, err := drive(ctx, 1, n, 0, op)
		return res.Lat, err
	}
	wb, err := openCairn(b.e, "hm-wb", tiered.WriteBack)
	if err != nil {
		return hm, err
	}
	if hm.SaveBack, err = one(len(samples), func(ctx context.Context, i int) error { return wb.Save(ctx, samples[i].cp) }); err != nil {
		return hm, err
	}
	if err := wb.Close(ctx); err != nil {
		return hm, err
	}
	wbt, err := openCairn(b.e, "hm-wbt", tiered.WriteBack)
	if err != nil {
		return hm, err
	}
	typedBack := newTyped(wbt)
	if hm.TypedSaveBack, err = one(len(samples), func(ctx context.Context, i int) error { return typedBack.Save(ctx, samples[i].typed) }); err != nil {
		return hm, err
	}
	if err := wbt.Close(ctx); err != nil {
		return hm, err
	}
	wt, err := openCairn(b.e, "hm", tiered.WriteThrough)
	if err != nil {
		return hm, err
	}
	defer wt.Close(ctx)
	if hm.SaveThrou, err = one(len(samples), func(ctx context.Context, i int) error { return wt.Save(ctx, samples[i].cp) }); err != nil {
		return hm, err
	}
	if hm.Hit, err = one(len(samples), func(ctx context.Context, i int) error {
		_, err := wt.Load(ctx, samples[i].cp.RunID)
		return err
	}); err != nil {
		return hm, err
	}
	typedHit := newTyped(wt)
	if hm.TypedHit, err = one(len(samples), func(ctx context.Context, i int) error {
		_, err := typedHit.Load(ctx, samples[i].cp.RunID)
		return err
	}); err != nil {
		return hm, err
	}
	cold, err := openCairn(b.e, "hm", tiered.WriteThrough)
	if err != nil {
		return hm, err
	}
	defer cold.Close(ctx)
	if hm.Miss, err = one(len(samples), func(ctx context.Context, i int) error {
		_, err := cold.Load(ctx, samples[i].cp.RunID)
		return err
	}); err != nil {
		return hm, err
	}
	r := &raw{e: b.e, prefix: "hm/runs/"}
	hm.RawGet, err = one(len(samples), func(ctx context.Context, i int) error { return r.load(ctx, samples[i].cp.RunID) })
	b.logf("one caller, %s: Cairn hit %v (typed %v), miss %v, raw GET %v; save write-back %v (typed %v), write-through %v",
		sizeName(size), hm.Hit.P50, hm.TypedHit.P50, hm.Miss.P50, hm.RawGet.P50, hm.SaveBack.P50, hm.TypedSaveBack.P50, hm.SaveThrou.P50)
	return hm, err
}

// scales measures List, and Saves, at each number of runs. The datasets
// are written by the uncounted client without latency, as fast as the
// server takes them: the hand-written store's JSON objects (which the raw
// contender's key listing reuses) are topped up scale after scale; Cairn's
// index is built directly (index.Rebuild) and the single index object
// written in one PUT, since their Lists read nothing else.
func (b *runner) scales(ctx context.Context) ([]ListPoint, error) {
	gen := newGenerator(3, b.e.codec)
	msgs, err := gen.messagesFor(1 << 10)
	if err != nil {
		return nil, err
	}
	const jsonPrefix = "scale/json/"
	have := 0 // JSON objects under jsonPrefix
	var points []ListPoint
	var prevJSON *ListPoint // the hand-written List at the previous scale
	for _, n := range b.cfg.Scales {
		start := time.Now()
		if err := b.populateJSON(ctx, gen, msgs, jsonPrefix, n-have); err != nil {
			return nil, err
		}
		have = max(have, n)
		set := scaleSet{n: n, json: jsonPrefix, cairn: fmt.Sprintf("scale-%d/cairn", n), single: fmt.Sprintf("scale-%d/single/", n)}
		if err := b.populateIndexes(ctx, gen, n, set.cairn, set.single); err != nil {
			return nil, err
		}
		b.logf("scale %d: datasets ready in %v", n, time.Since(start).Round(time.Millisecond))

		pts, err := b.listsAt(ctx, set, prevJSON)
		if err != nil {
			return nil, err
		}
		saved, err := b.burstsAt(ctx, gen, set, &pts)
		if err != nil {
			return nil, err
		}
		have += saved
		b.logf("scale %d: List first page: raw %v, hand-written %v%s, single index %v, Cairn %v (warm %v); saves/s: %.0f %.0f %.0f %.0f %.0f %.0f",
			n, pts.raw.FirstLat, pts.json.FirstLat, map[bool]string{true: " (extrapolated)"}[pts.json.Extrapolated],
			pts.single.FirstLat, pts.cairn.FirstLat, pts.cairn.WarmLat,
			rate(pts.raw.BurstSaves, pts.raw.BurstElapsed), rate(pts.json.BurstSaves, pts.json.BurstElapsed),
			rate(pts.single.BurstSaves, pts.single.BurstElapsed), rate(pts.wt.BurstSaves, pts.wt.BurstElapsed), rate(pts.wb.BurstSaves, pts.wb.BurstElapsed),
			rate(pts.wbt.BurstSaves, pts.wbt.BurstElapsed))
		points = append(points, pts.raw, pts.json, pts.single, pts.cairn, pts.wt, pts.wb, pts.wbt)
		prevJSON = &pts.json
	}
	return points, nil
}

// scaleSet names the datasets of one scale: n runs under each prefix (the
// hand-written store's JSON objects, which the raw key listing reads too;
// Cairn's index, without its trailing slash; the single index object).
type scaleSet struct {
	n                   int
	json, cairn, single string
}

// scalePoints are the contenders' List points at one scale.
type scalePoints struct {
	raw, json, single, cairn, wt, wb, wbt ListPoint
}

// listsAt times every contender's List at one scale. prevJSON is the
// hand-written List at the previous scale, or nil.
func (b *runner) listsAt(ctx context.Context, set scaleSet, prevJSON *ListPoint) (scalePoints, error) {
	n := set.n
	pts := scalePoints{wb: ListPoint{Contender: WriteBack, Runs: n}, wt: ListPoint{Contender: WriteThrough, Runs: n},
		wbt: ListPoint{Contender: WriteBackTyped, Runs: n}}
	var err error
	if pts.raw, err = b.listPoint(ctx, Raw, n, func() (contender, error) { return &raw{e: b.e, prefix: set.json}, nil }); err != nil {
		return pts, err
	}
	if pts.json, err = b.handWrittenList(ctx, set, prevJSON); err != nil {
		return pts, err
	}
	if pts.single, err = b.listPoint(ctx, SingleIndex, n, func() (contender, error) { return &singleIndex{e: b.e, prefix: set.single}, nil }); err != nil {
		return pts, err
	}
	if pts.cairn, err = b.listPoint(ctx, Cairn, n, func() (contender, error) { return newCairn(b.e, set.cairn+"/", tiered.WriteThrough) }); err != nil {
		return pts, err
	}
	return pts, nil
}

// handWrittenList times the hand-written store's List, one operation for
// it (list, GET all, sort) whatever the page, or extrapolates it from prev
// when that would take longer than ListBudget.
func (b *runner) handWrittenList(ctx context.Context, set scaleSet, prev *ListPoint) (ListPoint, error) {
	n := set.n
	pt := ListPoint{Contender: HandWritten, Runs: n}
	if prev != nil && time.Duration(float64(prev.AllLat)*float64(n)/float64(prev.Runs)) > b.cfg.ListBudget {
		pt.AllLat = time.Duration(float64(prev.AllLat) * float64(n) / float64(prev.Runs))
		pt.FirstLat, pt.WarmLat = pt.AllLat, pt.AllLat
		pt.AllReq = Requests{GET: int64(n), LIST: int64((n + 999) / 1000)}
		pt.FirstReq, pt.WarmReq = pt.AllReq, pt.AllReq
		pt.Extrapolated = true
		return pt, nil
	}
	hw := &handWritten{e: b.e, prefix: set.json}
	before := b.ctr.snapshot()
	t := time.Now()
	got, err := hw.list(ctx, 0)
	if err != nil {
		return pt, err
	}
	if got != n {
		return pt, fmt.Errorf("hand-written list at %d runs returned %d", n, got)
	}
	pt.AllLat, pt.AllReq = time.Since(t), b.ctr.snapshot().Sub(before)
	pt.FirstLat, pt.FirstReq = pt.AllLat, pt.AllReq
	pt.WarmLat, pt.WarmReq = pt.AllLat, pt.AllReq
	return pt, nil
}

// burstsAt makes BurstSaves Saves of 1 KB checkpoints with every contender
// into its dataset at one scale, recording them in pts. It returns how many
// JSON objects the hand-written store added.
func (b *runner) burstsAt(ctx context.Context, gen *generator, set scaleSet, pts *scalePoints) (int, error) {
	burst, err := gen.samples(b.cfg.BurstSaves*len(Contenders), 1<<10)
	if err != nil {
		return 0, err
	}
	byName := map[string]*ListPoint{Raw: &pts.raw, HandWritten: &pts.json, SingleIndex: &pts.single,
		WriteBack: &pts.wb, WriteThrough: &pts.wt, WriteBackTyped: &pts.wbt}
	prefixes := map[string]string{Raw: "scale/raw/", HandWritten: set.json, SingleIndex: set.single,
		WriteThrough: set.cairn + "/", WriteBack: set.cairn + "/", WriteBackTyped: set.cairn + "/"}
	added := 0
	for i, name := range Contenders {
		c, err := newContender(b.e, name, prefixes[name])
		if err != nil {
			return added, err
		}
		res, req, err := b.timedSaves(ctx, c, burst[i*b.cfg.BurstSaves:(i+1)*b.cfg.BurstSaves], b.cfg.BurstBudget)
		if err != nil {
			return added, fmt.Errorf("%s, saves at %d runs: %w", name, set.n, err)
		}
		if err := c.close(ctx); err != nil {
			return added, err
		}
		p := byName[name]
		p.BurstSaves, p.BurstElapsed, p.BurstReq = res.Done, res.Elapsed, req
		if name == HandWritten {
			added += res.Done
		}
	}
	return added, nil
}

// listPoint times the first page (100) and the full List, each the median
// of ListRepeats Lists from a fresh instance, then the first page again from
// the same instance (warm).
func (b *runner) listPoint(ctx context.Context, name string, n int, open func() (contender, error)) (ListPoint, error) {
	p := ListPoint{Contender: name, Runs: n}
	var last contender
	measure := func(limit int) (time.Duration, Requests, error) {
		var lats []time.Duration
		var req Requests
		for range b.cfg.ListRepeats {
			if last != nil {
				last.close(ctx)
			}
			c, err := open()
			if err != nil {
				return 0, req, err
			}
			last = c
			before := b.ctr.snapshot()
			t := time.Now()
			got, err := c.list(ctx, limit)
			if err != nil {
				return 0, req, fmt.Errorf("%s list at %d runs: %w", name, n, err)
			}
			lats = append(lats, time.Since(t))
			req = b.ctr.snapshot().Sub(before)
			if want := min(n, limit); limit > 0 && got != want || limit == 0 && got != n {
				return 0, req, fmt.Errorf("%s list(%d) at %d runs returned %d", name, limit, n, got)
			}
		}
		return median(lats), req, nil
	}
	var err error
	if p.AllLat, p.AllReq, err = measure(0); err != nil {
		return p, err
	}
	if p.FirstLat, p.FirstReq, err = measure(100); err != nil {
		return p, err
	}
	before := b.ctr.snapshot()
	t := time.Now()
	if _, err := last.list(ctx, 100); err != nil {
		return p, err
	}
	p.WarmLat, p.WarmReq = time.Since(t), b.ctr.snapshot().Sub(before)
	return p, last.close(ctx)
}

func median(d []time.Duration) time.Duration {
	s := summarize(d)
	return s.P50
}

// populateJSON writes n more hand-written JSON objects of about 1 KB records.
func (b *runner) populateJSON(ctx context.Context, gen *generator, msgs int, prefix string, n int) error {
	if n <= 0 {
		return nil
	}
	setup := &env{client: b.admin, bucket: b.e.bucket, codec: b.e.codec}
	hw := &handWritten{e: setup, prefix: prefix}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for range n {
		if gctx.Err() != nil {
			break
		}
		cp, err := gen.checkpoint(msgs)
		if err != nil {
			return errors.Join(err, g.Wait())
		}
		s := sample{cp: cp}
		g.Go(func() error { return hw.save(gctx, &s) })
	}
	return g.Wait()
}

// populateIndexes builds Cairn's index of n runs under cairnPrefix and the
// single index object of n runs under singlePrefix.
func (b *runner) populateIndexes(ctx context.Context, gen *generator, n int, cairnPrefix, singlePrefix string) error {
	entries := make([]index.Entry, n)
	single := make([]indexEntry, n)
	for i := range entries {
		cp := gen.typed(0)
		size := 1000 + gen.rng.IntN(200)
		entries[i] = index.Entry{RunID: cp.RunID, Timestamp: cp.Timestamp, Workflow: cp.WorkflowName, Size: int64(size)}
		single[i] = indexEntry{Run: cp.RunID, TS: cp.Timestamp, Workflow: cp.WorkflowName, Size: size}
	}
	ix, err := index.New(s3store.NewS3(b.admin, b.e.bucket), &index.Options{Prefix: cairnPrefix, Codec: b.e.codec})
	if err != nil {
		return err
	}
	defer ix.Wait()
	seq, err := ix.Barrier(ctx)
	if err != nil {
		return err
	}
	if err := ix.Rebuild(ctx, seq, entries, nil); err != nil {
		return err
	}
	setup := &singleIndex{e: &env{client: b.admin, bucket: b.e.bucket, codec: b.e.codec}, prefix: singlePrefix}
	body, err := json.Marshal(single)
	if err != nil {
		return err
	}
	return setup.e.put(ctx, setup.indexKey(), body)
}

// Machine describes the computer the run was made on.
type Machine struct {
	CPU       string
	Cores     int
	MemoryGiB float64
	OS, Arch  string
	GoVersion string
}

// ReadMachine reads /proc/cpuinfo and /proc/meminfo where they exist.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version(), CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = math.Round(kb/(1<<20)*10) / 10
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
