package regiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/claimtest"
	"github.com/cairnstore/cairn/internal/miniofixture"
	_ "github.com/cairnstore/cairn/s3store" // s3:// store URLs
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

// envWorker, when set, makes the test binary a worker process (Create):
// its value is the workerSpec, in JSON.
const envWorker = "CAIRN_REGIONTEST_WORKER"

// workerSpec is what a worker process is told.
type workerSpec struct {
	Config
	Store     string // URL
	WriteBack bool
	Events    string        // the Recorder's file
	Timeout   time.Duration // of the whole process
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envWorker); spec != "" {
		if err := workerMain(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// workerMain is a worker process: Create on its store until it is killed
// (or its timeout ends).
func workerMain(spec string) (err error) {
	var ws workerSpec
	if err := json.Unmarshal([]byte(spec), &ws); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ws.Timeout)
	defer cancel()
	s, err := openStore(ctx, ws.Store, ws.Region, ws.WriteBack)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	rec, err := claimtest.NewRecorder(ws.Events, ws.Name)
	if err != nil {
		return err
	}
	err = Create(ctx, s, rec, ws.Config)
	if ctx.Err() != nil {
		err = nil // its time is up
	}
	return errors.Join(err, rec.Close())
}

// Sites A and B: site A (miniofixture's Site[0]) is region "a", site B region "b".
const (
	siteA = 0
	siteB = 1
)

var regionOf = [2]string{"a", "b"}

// rig is a pair of sites and the URLs of stores on them.
type rig struct {
	sites *miniofixture.Sites
	env   []string // the credentials, for worker processes
}

// newRig starts the sites and puts their credentials (the same on both)
// in the environment, where the s3:// URLs find them.
func newRig(ctx context.Context, t testing.TB) *rig {
	sites := miniofixture.StartSites(ctx, t)
	a := sites.Site[siteA]
	r := &rig{sites: sites, env: []string{"AWS_ACCESS_KEY_ID=" + a.AccessKey, "AWS_SECRET_ACCESS_KEY=" + a.SecretKey}}
	for _, kv := range r.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return r
}

// url returns the URL of the store at prefix on site i.
func (r *rig) url(i int, prefix string) string {
	srv := r.sites.Site[i]
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&checksum=when_required",
		r.sites.Bucket, prefix, url.QueryEscape(srv.Endpoint), srv.Region)
}

// openStore opens the store at rawURL as region.
func openStore(ctx context.Context, rawURL, region string, writeBack bool) (*tiered.Store, error) {
	o := &tiered.Options{Durable: durable.Options{Region: region}}
	if writeBack {
		o.Mode = tiered.WriteBack
	}
	return tiered.Open(ctx, rawURL, o)
}

// open opens a write-through store of site i's region at prefix, closed
// when t ends.
func (r *rig) open(t testing.TB, i int, prefix string) *tiered.Store {
	t.Helper()
	s, err := openStore(context.Background(), r.url(i, prefix), regionOf[i], false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// index opens, beside the store of site i at prefix, the index for
// reading each region's ops of a run (index.RunOps).
func (r *rig) index(t testing.TB, i int, prefix string) *index.Index {
	t.Helper()
	ob, err := bucket.OpenURL(context.Background(), r.url(i, prefix), nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.New(ob.Bucket, &index.Options{Prefix: ob.Prefix, Region: regionOf[i]})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// startWorker starts a worker process on site A, recording to dir/name.
func (r *rig) startWorker(t *testing.T, prefix, dir string, cfg Config, writeBack bool) *exec.Cmd {
	t.Helper()
	spec, err := json.Marshal(workerSpec{Config: cfg, Store: r.url(siteA, prefix), WriteBack: writeBack,
		Events: filepath.Join(dir, cfg.Name), Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), r.env...), envWorker+"="+string(spec))
	cmd.Stderr = &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func signal(t testing.TB, procs []*exec.Cmd, sig syscall.Signal) {
	t.Helper()
	for _, p := range procs {
		if err := p.Process.Signal(sig); err != nil {
			werr := p.Wait()
			t.Fatalf("%v to worker %d: %v; it exited: %v\n%s", sig, p.Process.Pid, err, werr, p.Stderr)
		}
	}
}

// readEvents reads the events of the recorders at paths, in one list.
func readEvents(t testing.TB, paths ...string) []claimtest.Event {
	t.Helper()
	var all []claimtest.Event
	for _, p := range paths {
		events, err := claimtest.ReadEvents(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, events...)
	}
	return all
}

// listAll lists the runs of opts (every page, Limit a page) in region
// store s, their checkpoints left out.
func listAll(ctx context.Context, s cairn.Store, opts cairn.ListOptions) ([]cairn.Summary, error) {
	var out []cairn.Summary
	for sum, err := range cairn.All(ctx, s, &opts) {
		if err != nil {
			return out, err
		}
		sum.Checkpoint = nil
		out = append(out, sum)
	}
	return out, nil
}

// pagedList lists the runs of opts a page of limit at a time, following
// the cursors, and checks the pages are in List order.
func pagedList(ctx context.Context, s cairn.Store, opts cairn.ListOptions, limit int) ([]cairn.Summary, error) {
	opts.Limit = limit
	var out []cairn.Summary
	for pages := 0; ; pages++ {
		page, err := s.List(ctx, &opts)
		if err != nil {
			return out, err
		}
		if len(page.Runs) > limit {
			return out, fmt.Errorf("page of %d runs, limit %d", len(page.Runs), limit)
		}
		out = append(out, page.Runs...)
		if page.Next == "" {
			break
		}
		if pages > 10000 {
			return out, errors.New("more than 10,000 pages")
		}
		opts.Cursor = page.Next
	}
	for i := 1; i < len(out); i++ {
		if out[i-1].Key().Compare(out[i].Key()) >= 0 {
			return out, fmt.Errorf("runs %d and %d out of List order", i-1, i)
		}
	}
	return out, nil
}

// sameListing returns "" when the listings name the same runs in the
// same order with the same time and labels, else the first difference.
func sameListing(a, b []cairn.Summary) string {
	for i := range max(len(a), len(b)) {
		switch {
		case i >= len(a):
			return fmt.Sprintf("run %d, %v, in b only", i, b[i].RunID)
		case i >= len(b):
			return fmt.Sprintf("run %d, %v, in a only", i, a[i].RunID)
		case a[i].RunID != b[i].RunID || !a[i].Timestamp.Equal(b[i].Timestamp) || !reflect.DeepEqual(a[i].Labels, b[i].Labels):
			return fmt.Sprintf("run %d: a lists %v (%s, %v), b %v (%s, %v)", i, a[i].RunID, a[i].Timestamp.Format(time.RFC3339Nano), a[i].Labels,
				b[i].RunID, b[i].Timestamp.Format(time.RFC3339Nano), b[i].Labels)
		}
	}
	return ""
}

// loadState is a run as one GET of its object shows it.
type loadState struct {
	found bool
	step  int
	epoch uint64
	by    string
	cp    *cairn.Checkpoint
}

func (l loadState) String() string {
	if !l.found {
		return "not found"
	}
	return fmt.Sprintf("step %d epoch %d by %s", l.step, l.epoch, l.by)
}

// load reads run from the bucket (never a cache).
func load(ctx context.Context, d *durable.Store, run uuid.UUID) (loadState, error) {
	c, err := d.Load(ctx, run)
	if errors.Is(err, cairn.ErrNotFound) {
		return loadState{step: -1}, nil
	}
	if err != nil {
		return loadState{}, err
	}
	by, _ := c.Metadata["by"].(string)
	return loadState{found: true, step: StepOf(c), epoch: cairn.LeaseEpoch(c.Metadata), by: by, cp: c}, nil
}

// runsOf returns the runs events name, sorted.
func runsOf(events []claimtest.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range events {
		if e.Run != uuid.Nil && !slices.Contains(out, e.Run) {
			out = append(out, e.Run)
		}
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// percentile returns the p-th percentile (0..1) of ds, sorting them.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}
