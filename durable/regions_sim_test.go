package durable_test

// Seeded property tests of the regions guarantees (see "Regions" in
// package durable and in package index) on internal/regionsim: two sites
// replicating one versioned bucket, region "a" on site 0 and "b" on site
// 1, with delivery reordered, duplicated and dropped as the seed says and
// the sites' clocks skewed.
//
// Each seed plays one scenario: a steady state (a writes, b reads as
// replication trickles in), a partition (a's stale lease holders go on
// writing; b claims and resumes runs, deletes some; both regions save a
// few runs without a claim, a split brain), and the heal (compactions and
// Reconcile in both regions until quiet, GC). A model of every write a
// store acknowledged, decided by the index's rules, says what each
// region must list and load.
//
// After the heal the stale holders try again (their Saves and Renews
// fail), the newest holders go on (nobody else claims their runs), and a
// Reindex in either region, before GC or at the end, changes nothing.
//
// The scenario's choices come from the script seed; the delivery order
// and faults from the sim seed (the same one in TestRegionsSim). Both
// stores and the sites read one manual clock, moved by the scenario
// only, and the test waits for the stores' background work after every
// step, so a seed replays the same calls, and the sim delivers in the
// same order, except where a compaction writes its pages (in the order
// of a map). CAIRN_REGION_SEEDS=n runs seeds 1 to n (default 40);
// CAIRN_REGION_SEED=s runs seed s alone.
//
// The probe runs as usual: a site judges conditional writes against its
// own state, as a one-region server does, so it passes (each region
// probes its own site once, or reads the verdict replicated from the
// other).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/regionsim"
	"github.com/google/uuid"
)

// rsRegions are the regions' names, by site.
var rsRegions = [2]string{"a", "b"}

// rsRunning selects the unfinished runs.
var rsRunning = map[string]string{"status": "running"}

func TestRegionsSim(t *testing.T) {
	seeds := rsSeeds(t)
	seen := map[string]int{}
	for _, seed := range seeds {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			_, s := rsScenario(t, seed, seed, nil)
			for k, n := range s {
				seen[k] += n
			}
		})
	}
	t.Logf("seen in %d seeds: %v", len(seeds), seen)
	// The properties must have been checked on every case: a scenario
	// that never meets one cannot fail on it.
	if len(seeds) >= 20 && !t.Failed() {
		for _, c := range rsCases {
			if seen[c] == 0 {
				t.Errorf("no seed met %q: the scenario no longer tests it", c)
			}
		}
	}
}

// rsCases are what the seeds together must meet.
var rsCases = []string{
	"listed before its object arrived",
	"stale: a losing write kept by replication",
	"deleted run loadable until GC",
	"resumed by b",
	"deleted by b",
	"split brain",
	"split brain decided by region",
	"stale holder refused",
	"b's claim kept out by replication",
	"GC before Reconcile",
	"Reindex before GC",
	"Reindex in a",
	"Reindex in b",
}

// TestRegionsSimDeliveryOrder plays the same writes (one script seed)
// under different delivery orders and faults: the index decides the same
// way whatever order replication delivers in, so the final List and Loads
// are the same. It plays a tenth as many scripts as TestRegionsSim seeds
// (4 by default), each four times.
func TestRegionsSimDeliveryOrder(t *testing.T) {
	faults := []*regionsim.Options{
		{},
		{Reorder: 1},
		{Reorder: 0.5, Duplicate: 0.3, Drop: 0.2},
		{Reorder: 0.2, Duplicate: 0.5, Drop: 0.5},
	}
	for _, seed := range rsSeeds(t)[:max(1, len(rsSeeds(t))/10)] {
		script := 1000 + seed
		t.Run(strconv.FormatInt(script, 10), func(t *testing.T) {
			var first string
			for i, f := range faults {
				// A scenario that fails its own checks still ends in a
				// state to compare.
				got, _ := rsScenario(t, script, script*100+int64(i), f)
				if i == 0 {
					first = got
				} else if got != first {
					t.Fatalf("delivery %d (%+v) ends in another state than in-order delivery:\n%s", i, *f, rsDiff(first, got))
				}
			}
		})
	}
}

// rsSeeds returns the seeds to play: CAIRN_REGION_SEED alone, or 1 to
// CAIRN_REGION_SEEDS (default 40).
func rsSeeds(t *testing.T) []int64 {
	if s := os.Getenv("CAIRN_REGION_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CAIRN_REGION_SEED=%q: %v", s, err)
		}
		return []int64{seed}
	}
	n := 40
	if s := os.Getenv("CAIRN_REGION_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("CAIRN_REGION_SEEDS=%q: want a positive number", s)
		}
	}
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = int64(i + 1)
	}
	return seeds
}

// rsClock is the manual clock of the sites and the stores: the scenario
// moves it; reading it never does. Site i runs skew[i] ahead.
type rsClock struct {
	mu   sync.Mutex
	t    time.Time
	skew [2]time.Duration
}

func (c *rsClock) base(int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *rsClock) at(site int) time.Time { return c.base(site).Add(c.skew[site]) }

func (c *rsClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rsOp is a write a store acknowledged, as the index sees it: one region's
// last op of a run.
type rsOp struct {
	region string
	epoch  uint64
	del    bool
	ts     time.Time
	fp     string        // rsFingerprint of the state written; "" for a delete
	sum    cairn.Summary // what List shows of it (Size left out)
}

// rsOutranks is the index's rule (see "Regions" in package index): the
// higher epoch, then the later time (a save's checkpoint timestamp, a
// delete's time of deletion), then a delete, then the greater region
// name.
func rsOutranks(x, y rsOp) bool {
	switch {
	case x.epoch != y.epoch:
		return x.epoch > y.epoch
	case !x.ts.Equal(y.ts):
		return x.ts.After(y.ts)
	case x.del != y.del:
		return x.del
	}
	return x.region > y.region
}

// rsModel is every run's last acknowledged op in each region, and every
// state ever acknowledged (to tell a stale read from a phantom one).
type rsModel struct {
	last  map[uuid.UUID]map[string]rsOp
	acked map[string]bool // fingerprints
}

func (m *rsModel) ack(run uuid.UUID, op rsOp) {
	if m.last[run] == nil {
		m.last[run] = map[string]rsOp{}
	}
	m.last[run][op.region] = op
	if !op.del {
		m.acked[op.fp] = true
	}
}

// winner returns the op of run that wins, checking that the model's rule
// and index.Winner agree.
func (m *rsModel) winner(t *testing.T, run uuid.UUID) rsOp {
	var w rsOp
	var ops []index.Op
	for _, r := range rsRegions {
		op, ok := m.last[run][r]
		if !ok {
			continue
		}
		if len(ops) == 0 || rsOutranks(op, w) {
			w = op
		}
		ops = append(ops, index.Op{Entry: index.Entry{RunID: run, Timestamp: op.ts, Epoch: op.epoch, Region: op.region}, Delete: op.del})
	}
	if iw := index.Winner(ops); iw.Entry.Region != w.region {
		t.Fatalf("run %v: index.Winner picks region %q's op, the model %q's (ops %+v)", run, iw.Entry.Region, w.region, ops)
	}
	return w
}

// splitBrain reports whether more than one region wrote run's highest
// epoch (index.SplitBrain).
func (m *rsModel) splitBrain(run uuid.UUID) bool {
	var top uint64
	for _, op := range m.last[run] {
		top = max(top, op.epoch)
	}
	n := 0
	for _, op := range m.last[run] {
		if op.epoch == top {
			n++
		}
	}
	return n > 1
}

// listing returns what List must show: the runs whose winner is a save,
// in List order, described by rsDescribe.
func (m *rsModel) listing(t *testing.T, labels map[string]string) []string {
	var sums []cairn.Summary
	for run := range m.last {
		w := m.winner(t, run)
		if w.del || !rsMatches(w.sum.Labels, labels) {
			continue
		}
		sums = append(sums, w.sum)
	}
	slices.SortFunc(sums, func(a, b cairn.Summary) int {
		return cairn.Key{Timestamp: a.Timestamp, RunID: a.RunID}.Compare(cairn.Key{Timestamp: b.Timestamp, RunID: b.RunID})
	})
	return rsDescribe(sums)
}

// rsSorted returns runs sorted by their bytes.
func rsSorted(runs iter.Seq[uuid.UUID]) []uuid.UUID {
	return slices.SortedFunc(runs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

func rsSubset(sub, of []uuid.UUID) bool {
	for _, x := range sub {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

func rsMatches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func rsDescribe(sums []cairn.Summary) []string {
	out := make([]string, len(sums))
	for i, s := range sums {
		out[i] = fmt.Sprintf("%v %s %s %v", s.RunID, s.Timestamp.UTC().Format(time.RFC3339Nano), s.WorkflowName, s.Labels)
	}
	return out
}

// rsFingerprint names a state: its run, write, step, time, labels and the
// epoch of its lease stamp.
func rsFingerprint(c *cairn.Checkpoint) string {
	labels, _ := c.Labels()
	return fmt.Sprintf("%v w=%v step=%v ts=%s labels=%v epoch=%d", c.RunID, c.State["w"], c.State["step"],
		c.Timestamp.UTC().Format(time.RFC3339Nano), labels, cairn.LeaseEpoch(c.Metadata))
}

// rsWorker is a's worker of one run: the state it last saved, and its
// lease if it claimed the run.
type rsWorker struct {
	run      uuid.UUID
	steps    int // planned in the steady state
	last     *cairn.Checkpoint
	leased   bool
	lease    *cairn.Lease
	finished bool
}

// rsWorld is one scenario.
type rsWorld struct {
	t       *testing.T
	ctx     context.Context
	script  *rand.Rand // the scenario's choices
	sim     *regionsim.Sim
	clock   *rsClock
	st      [2]*durable.Store
	m       rsModel
	inOrder bool // delivery keeps the order of the writes, drops nothing
	writes  int
	// seen counts what the scenario met along the way (what the
	// guarantees allow and a reader may notice, and the cases the
	// properties were checked on), for the log and for TestRegionsSim's
	// check that the seeds cover every case.
	seen map[string]int
	// listFailures are the Lists that failed while replication was under
	// way (a gap it will fill must not fail a List).
	listFailures []string
	// reindexed: the region ran Reindex. forgotten are the split brains
	// Verify in the region no longer reported after it.
	reindexed [2]bool
	forgotten [2]map[uuid.UUID]bool
}

// rsScenario plays the scenario of script with delivery by simSeed and
// faults (nil: drawn from simSeed), checks every property, and returns
// the final state (List and Loads in region a) and what it met along the
// way.
func rsScenario(t *testing.T, script, simSeed int64, faults *regionsim.Options) (string, map[string]int) {
	t.Helper()
	w := rsNewWorld(t, script, simSeed, faults)
	defer w.close()
	workers := w.steady()
	p := w.partition(workers)
	return w.heal(workers, p), w.seen
}

func rsNewWorld(t *testing.T, script, simSeed int64, faults *regionsim.Options) *rsWorld {
	rng := rand.New(rand.NewPCG(uint64(script), 0x6e6f6e6365))
	clock := &rsClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	for i := range clock.skew {
		clock.skew[i] = time.Duration(rng.IntN(4001)-2000) * time.Millisecond
	}
	var o regionsim.Options
	if faults != nil {
		o = *faults
	} else {
		f := rand.New(rand.NewPCG(uint64(simSeed), 0x6661756c7473))
		if f.IntN(4) > 0 { // a quarter of the seeds deliver in order, without faults
			o = regionsim.Options{Reorder: f.Float64(), Duplicate: f.Float64() / 2, Drop: f.Float64() / 2}
		}
	}
	o.Clock, o.Skew = clock.base, clock.skew[:]
	w := &rsWorld{
		t: t, ctx: t.Context(), script: rng, clock: clock,
		sim:       regionsim.New(simSeed, 2, &o),
		m:         rsModel{last: map[uuid.UUID]map[string]rsOp{}, acked: map[string]bool{}},
		inOrder:   o.Reorder == 0 && o.Drop == 0,
		seen:      map[string]int{},
		forgotten: [2]map[uuid.UUID]bool{{}, {}},
	}
	for i, r := range rsRegions {
		st, err := durable.New(w.sim.Site(i), &durable.Options{
			Region: r, Index: &index.Options{CompactAfter: 4},
			Now:         func() time.Time { return clock.at(i) },
			Concurrency: 1, // one request at a time: the sim sees the same sequence every time
		})
		if err != nil {
			t.Fatal(err)
		}
		w.st[i] = st
	}
	t.Logf("script %d, sim %d: reorder %.2f, duplicate %.2f, drop %.2f, skew %v", script, simSeed, o.Reorder, o.Duplicate, o.Drop, clock.skew)
	return w
}

func (w *rsWorld) close() {
	for _, st := range w.st {
		if err := st.Close(context.Background()); err != nil {
			w.t.Errorf("Close: %v", err)
		}
	}
	w.t.Logf("seen: %v", w.seen)
	for i, runs := range w.forgotten {
		if len(runs) > 0 {
			w.t.Errorf("after Reindex in %s, Verify there no longer reports %d split brains (%v): the rebuilt index kept only the winner's op of each run",
				rsRegions[i], len(runs), rsSorted(maps.Keys(runs)))
		}
	}
	if n := len(w.listFailures); n > 0 {
		w.t.Errorf("%d Lists failed while replication was under way; the first: %s", n, w.listFailures[0])
	}
}

// wait waits for both stores' background work.
func (w *rsWorld) wait() {
	for _, st := range w.st {
		durable.WaitBackground(st)
	}
}

// tick moves the clock on a little: every write happens at a time of its
// own.
func (w *rsWorld) tick() { w.clock.advance(time.Duration(1+w.script.IntN(50)) * time.Millisecond) }

func (w *rsWorld) newRun() uuid.UUID {
	var id uuid.UUID
	for i := range id {
		id[i] = byte(w.script.Uint32())
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// checkpoint returns a new state of run: step, written by who, at ts.
func (w *rsWorld) checkpoint(run uuid.UUID, step int64, who string, ts time.Time, status string) *cairn.Checkpoint {
	w.writes++
	c := &cairn.Checkpoint{WorkflowName: "sim", RunID: run, Timestamp: ts,
		State:         map[string]any{"w": fmt.Sprintf("%s#%d", who, w.writes), "step": step},
		PendingEvents: []cairn.Event{}, Metadata: map[string]any{}}
	c.SetLabel("status", status)
	return c
}

func rsStep(c *cairn.Checkpoint) int64 {
	n, _ := c.State["step"].(int64)
	return n
}

// op returns the op that writing c (stamped as stored) in region i makes.
func rsOpOf(i int, c *cairn.Checkpoint) rsOp {
	labels, _ := c.Labels()
	return rsOp{region: rsRegions[i], epoch: cairn.LeaseEpoch(c.Metadata), ts: c.Timestamp, fp: rsFingerprint(c),
		sum: cairn.Summary{RunID: c.RunID, WorkflowName: c.WorkflowName, Timestamp: c.Timestamp.UTC(), Labels: labels}}
}

// save saves c in region i plainly, and records it.
func (w *rsWorld) save(i int, c *cairn.Checkpoint) {
	w.t.Helper()
	if err := w.st[i].Save(w.ctx, c); err != nil {
		w.t.Fatalf("%s: Save %s: %v", rsRegions[i], rsFingerprint(c), err)
	}
	w.m.ack(c.RunID, rsOpOf(i, cairn.Unleased(c)))
}

// saveLeased saves c under l in region i, and records it.
func (w *rsWorld) saveLeased(i int, l *cairn.Lease, c *cairn.Checkpoint) {
	w.t.Helper()
	if err := w.st[i].SaveLeased(w.ctx, l, c); err != nil {
		w.t.Fatalf("%s: SaveLeased (epoch %d) %s: %v", rsRegions[i], l.Epoch, rsFingerprint(c), err)
	}
	w.m.ack(c.RunID, rsOpOf(i, l.Stamped(c)))
}

// claim claims run in region i, and records the claim's rewrite.
func (w *rsWorld) claim(i int, run uuid.UUID, lease time.Duration) *cairn.Lease {
	w.t.Helper()
	l, err := w.st[i].Claim(w.ctx, run, &cairn.ClaimOptions{Owner: rsRegions[i] + "-worker", Lease: lease})
	if err != nil {
		w.t.Fatalf("%s: Claim %v: %v", rsRegions[i], run, err)
	}
	w.m.ack(run, rsOpOf(i, l.Checkpoint))
	return l
}

// list lists region i's runs with labels, limit a page, to the end.
func (w *rsWorld) list(i int, labels map[string]string, limit int, claimable bool) ([]cairn.Summary, error) {
	var out []cairn.Summary
	o := &cairn.ListOptions{Labels: labels, Limit: limit, Claimable: claimable}
	for range 10000 {
		p, err := w.st[i].List(w.ctx, o)
		if err != nil {
			return out, err
		}
		out = append(out, p.Runs...)
		if p.Next == "" {
			return out, nil
		}
		o.Cursor = p.Next
	}
	return out, errors.New("List never ends")
}

// mustList is list, failing the test on an error.
func (w *rsWorld) mustList(when string, i int, labels map[string]string) []string {
	w.t.Helper()
	sums, err := w.list(i, labels, 1+w.script.IntN(4), false)
	if err != nil {
		w.t.Fatalf("%s: List in %s (labels %v): %v", when, rsRegions[i], labels, err)
	}
	return rsDescribe(sums)
}

// checkReader lists region i's unfinished runs while replication is under
// way, as a resumer would, and loads each: List must not fail, list only
// states some store acknowledged, with the label asked for, and every run
// listed must load there, as that state or a later one (with in-order
// delivery the object arrives before its index entry; out of order a
// listed run may not have arrived yet: Load says ErrNotFound).
func (w *rsWorld) checkReader(when string, i int) {
	w.t.Helper()
	defer w.wait() // a List may start a compaction
	sums, err := w.list(i, rsRunning, 1+w.script.IntN(4), false)
	if err != nil {
		msg := fmt.Sprintf("%s: List in %s: %v", when, rsRegions[i], err)
		if errors.Is(err, index.ErrDamaged) && strings.Contains(err.Error(), "page @") {
			// Another region's snapshot read before its pages arrived.
			msg += " (the defect TestReviewForeignManifestBeforePages in package index shows)"
		}
		w.listFailures = append(w.listFailures, msg)
		return
	}
	for _, s := range sums {
		if s.Labels["status"] != "running" {
			w.t.Errorf("%s: List in %s with %v lists %v labelled %v", when, rsRegions[i], rsRunning, s.RunID, s.Labels)
		}
		c, err := w.st[i].Load(w.ctx, s.RunID)
		switch {
		case errors.Is(err, cairn.ErrNotFound) && !w.inOrder:
			w.seen["listed before its object arrived"]++
			continue
		case err != nil:
			w.t.Errorf("%s: %s lists %v (%s) but Load fails: %v", when, rsRegions[i], s.RunID, s.Timestamp, err)
			continue
		}
		fp := rsFingerprint(c)
		switch {
		case !w.m.acked[fp]:
			w.t.Errorf("%s: %s loads %s, which no store acknowledged", when, rsRegions[i], fp)
		case c.Timestamp.Before(s.Timestamp):
			if w.inOrder {
				w.t.Errorf("%s: %s lists %v at %s but loads the older %s (in-order delivery)", when, rsRegions[i], s.RunID, s.Timestamp, fp)
			}
			w.seen["listed before its object arrived"]++
		}
	}
}

// steady is the steady state: a saves runs step by step, some under
// claims, while b reads.
func (w *rsWorld) steady() []*rsWorker {
	t := w.t
	n := 6 + w.script.IntN(5)
	workers := make([]*rsWorker, n)
	for i := range workers {
		workers[i] = &rsWorker{run: w.newRun(), steps: 2 + w.script.IntN(3), leased: w.script.IntN(2) == 0}
	}
	for step := 0; ; step++ {
		var open []*rsWorker
		for _, k := range workers {
			if rsStepsDone(k) < k.steps {
				open = append(open, k)
			}
		}
		if len(open) == 0 {
			break
		}
		k := open[w.script.IntN(len(open))]
		w.tick()
		next := int64(rsStepsDone(k) + 1)
		status := "running"
		if int(next) == k.steps && w.script.IntN(4) == 0 {
			status, k.finished = "done", true
		}
		c := w.checkpoint(k.run, next, "a", w.clock.at(0), status)
		switch {
		case next == 1 || !k.leased:
			w.save(0, c)
		default:
			if k.lease == nil {
				k.lease = w.claim(0, k.run, 10*time.Second)
			}
			w.saveLeased(0, k.lease, c)
		}
		k.last = c
		w.wait()
		w.sim.Pump(w.script.IntN(12))
		w.checkReader(fmt.Sprintf("steady state, step %d", step), 1)
	}
	w.sim.Settle()
	w.wait()
	w.sim.Settle()
	for _, labels := range []map[string]string{nil, rsRunning} {
		want := w.m.listing(t, labels)
		for i := range w.st {
			rsSame(t, fmt.Sprintf("after the steady state, List in %s (labels %v)", rsRegions[i], labels), w.mustList("steady", i, labels), want)
		}
	}
	for _, k := range workers {
		ca, erra := w.st[0].Load(w.ctx, k.run)
		cb, errb := w.st[1].Load(w.ctx, k.run)
		if erra != nil || errb != nil || !reflect.DeepEqual(ca, cb) || rsFingerprint(ca) != w.m.winner(t, k.run).fp {
			t.Errorf("after the steady state, run %v loads in a as %v (%v), in b as %v (%v); want %s", k.run, rsFP(ca), erra, rsFP(cb), errb, w.m.winner(t, k.run).fp)
		}
	}
	w.wait()
	w.sim.Settle()
	return workers
}

func rsStepsDone(k *rsWorker) int {
	if k.last == nil {
		return 0
	}
	return int(rsStep(k.last))
}

func rsFP(c *cairn.Checkpoint) string {
	if c == nil {
		return "nothing"
	}
	return rsFingerprint(c)
}

// rsRole is what the partition does with one of a's unfinished runs.
type rsRole int

const (
	rsUntouched rsRole = iota // a goes on with it; b leaves it alone
	rsResumed                 // b claims and resumes it; a's stale worker goes on
	rsDeleted                 // b claims it, maybe saves, and deletes it; a's stale worker goes on
	rsSplit                   // both save it without a claim
	rsTakenBack               // b's, then claimed in a while b's lease ran (a defect): b no longer wins
)

// rsPartition is what the partition did, for the heal's checks.
type rsPartition struct {
	role    map[uuid.UUID]rsRole
	bLeases map[uuid.UUID]*cairn.Lease // b's claims of runs it resumed, and of runs it created
	deleted []uuid.UUID
}

// partition cuts the link: a's workers go on under their old leases, b
// takes over some of the unfinished runs and deletes a few, and both save
// some runs without a claim.
func (w *rsWorld) partition(workers []*rsWorker) *rsPartition {
	t := w.t
	w.sim.Cut()
	w.clock.advance(time.Minute) // a's leases (10 s) have ended, by every clock
	p := &rsPartition{role: map[uuid.UUID]rsRole{}, bLeases: map[uuid.UUID]*cairn.Lease{}}

	// b looks for runs to resume: every unfinished run, as none is held.
	sums, err := w.list(1, rsRunning, 3, true)
	if err != nil {
		t.Fatalf("partition: b's List of claimable runs: %v", err)
	}
	var running []*rsWorker
	for _, k := range workers {
		if !k.finished {
			running = append(running, k)
		}
	}
	if got, want := len(sums), len(running); got != want {
		t.Errorf("partition: b lists %d claimable unfinished runs, want %d: %v", got, want, rsDescribe(sums))
	}
	w.script.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
	splits := 0
	for n, k := range running {
		switch {
		case n%5 == 0 || n%5 == 2:
			p.role[k.run] = rsResumed
			if w.script.IntN(3) == 0 {
				p.role[k.run] = rsDeleted
			}
		case !k.leased && splits < 2 && n%5 != 4:
			p.role[k.run] = rsSplit
			splits++
		default:
			p.role[k.run] = rsUntouched
		}
	}

	// Each actor is a sequence of steps; the steps of all actors
	// interleave at random.
	var actors [][]func()
	for _, k := range running {
		k := k
		switch p.role[k.run] {
		case rsResumed, rsDeleted:
			actors = append(actors, w.resumeInB(p, k), w.staleInA(k, 1+w.script.IntN(3)))
		case rsSplit:
			a, b := w.splitBrain(k)
			actors = append(actors, a, b)
		case rsUntouched:
			actors = append(actors, w.staleInA(k, w.script.IntN(3)))
		}
	}
	actors = append(actors, w.createIn(1, p), w.createIn(0, p))
	for {
		var live []int
		for i, a := range actors {
			if len(a) > 0 {
				live = append(live, i)
			}
		}
		if len(live) == 0 {
			break
		}
		i := live[w.script.IntN(len(live))]
		w.tick()
		actors[i][0]()
		actors[i] = actors[i][1:]
		w.wait()
		if w.sim.Pump(5) != 0 {
			t.Fatal("the sim delivered during a Cut")
		}
	}
	// Each region reads its own writes during the partition.
	for i := range w.st {
		w.checkReader("partition", i)
	}
	for run, role := range p.role {
		switch role {
		case rsDeleted:
			p.deleted = append(p.deleted, run)
			w.seen["deleted by b"]++
		case rsResumed:
			w.seen["resumed by b"]++
		}
	}
	return p
}

// resumeInB returns b's steps for k: claim it, save a step or two under
// the claim, and delete it if its role says so.
func (w *rsWorld) resumeInB(p *rsPartition, k *rsWorker) []func() {
	var l *cairn.Lease
	steps := []func(){func() {
		l = w.claim(1, k.run, time.Hour)
		p.bLeases[k.run] = l
	}}
	for range w.script.IntN(3) {
		steps = append(steps, func() {
			c := w.checkpoint(k.run, rsStep(l.Checkpoint)+1, "b", w.clock.at(1), "running")
			w.saveLeased(1, l, c)
			l.Checkpoint = c
		})
	}
	if p.role[k.run] == rsDeleted {
		steps = append(steps, func() {
			own := w.m.last[k.run]["b"]
			if err := w.st[1].Delete(w.ctx, k.run); err != nil {
				w.t.Fatalf("b: Delete %v: %v", k.run, err)
			}
			// The tombstone carries the epoch of the object it deletes,
			// b's own last write.
			w.m.ack(k.run, rsOp{region: "b", epoch: own.epoch, del: true, ts: w.clock.at(1)})
			delete(p.bLeases, k.run)
		})
	}
	return steps
}

// staleInA returns n steps of a's worker of k: saves under its old lease
// (or plain ones for a run it never claimed), and now and then a renewal,
// which a's own copy of the bucket accepts.
func (w *rsWorld) staleInA(k *rsWorker, n int) []func() {
	var steps []func()
	for range n {
		steps = append(steps, func() {
			c := w.checkpoint(k.run, rsStep(k.last)+1, "a", w.clock.at(0), "running")
			if k.lease != nil {
				if w.script.IntN(3) == 0 {
					if err := w.st[0].Renew(w.ctx, k.lease); err != nil {
						w.t.Fatalf("a: Renew of the lease of %v (epoch %d) during the partition: %v", k.run, k.lease.Epoch, err)
					}
				}
				w.saveLeased(0, k.lease, c)
			} else {
				w.save(0, c)
			}
			k.last = c
		})
	}
	return steps
}

// splitBrain returns a's and b's plain saves of k: one or two each, the
// last ones now and then at the same timestamp (the region name decides).
func (w *rsWorld) splitBrain(k *rsWorker) (a, b []func()) {
	tie := w.script.IntN(3) == 0
	tieAt := w.clock.base(0).Add(10 * time.Second)
	for i, n := range []int{1 + w.script.IntN(2), 1 + w.script.IntN(2)} {
		var steps []func()
		base := rsStep(k.last)
		for j := range n {
			steps = append(steps, func() {
				ts := w.clock.at(i)
				if tie && j == n-1 {
					ts = tieAt
				}
				w.save(i, w.checkpoint(k.run, base+int64(j)+1, rsRegions[i], ts, "running"))
			})
		}
		if i == 0 {
			a = steps
		} else {
			b = steps
		}
	}
	return a, b
}

// createIn returns the steps of a new run in region i: created, then,
// in b, claimed and saved again under the claim.
func (w *rsWorld) createIn(i int, p *rsPartition) []func() {
	run := w.newRun()
	var l *cairn.Lease
	steps := []func(){func() {
		w.save(i, w.checkpoint(run, 1, rsRegions[i], w.clock.at(i), "running"))
	}}
	if i == 1 && w.script.IntN(2) == 0 {
		steps = append(steps, func() {
			l = w.claim(1, run, time.Hour)
			p.bLeases[run] = l
		}, func() {
			c := w.checkpoint(run, 2, "b", w.clock.at(1), "running")
			w.saveLeased(1, l, c)
			l.Checkpoint = c
		})
	}
	return steps
}

// heal ends the partition, compacts and reconciles both regions until
// they are quiet, checks every property, runs GC and checks again, lets
// the stale lease holders try again, and returns the final state.
func (w *rsWorld) heal(workers []*rsWorker, p *rsPartition) string {
	t := w.t
	w.sim.Heal()
	w.sim.Settle()
	w.wait()
	// Replication may also have kept a's older claim of a run b claimed
	// (a's holder renewed it later by the clocks): the checks below that
	// b's holders keep their leases meet that case.
	for run, l := range p.bLeases {
		obj, err := w.sim.Site(0).Get(w.ctx, "claims/"+run.String(), nil)
		if err != nil {
			t.Fatalf("after the heal: b's claim of %v: %v", run, err)
		}
		var d struct{ Epoch uint64 }
		if err := json.Unmarshal(obj.Body, &d); err != nil {
			t.Fatalf("after the heal: b's claim of %v: %v", run, err)
		}
		if d.Epoch < l.Epoch {
			w.seen["b's claim kept out by replication"]++
		}
	}
	// Replication kept, for some runs, the write of the losing region (by
	// the clocks); Verify says which, and only runs both regions wrote.
	for i, st := range w.st {
		rep, err := st.Verify(w.ctx)
		if err != nil {
			t.Fatalf("after the heal: Verify in %s: %v", rsRegions[i], err)
		}
		for _, run := range rep.Stale {
			if len(w.m.last[run]) < 2 {
				t.Errorf("after the heal: Verify in %s reports %v stale, which only %v wrote", rsRegions[i], run, w.m.last[run])
			}
		}
		w.seen["stale: a losing write kept by replication"] += len(rep.Stale)
	}
	if w.script.IntN(2) == 0 {
		// GC before anything reconciled: the versions Reconcile needs stay.
		w.seen["GC before Reconcile"]++
		w.gc(true)
	}
	w.settle("the heal")
	w.check("after the heal", p, false)
	if w.script.IntN(3) == 0 {
		// A Reindex while a deleted run's object may still be a losing
		// region's write (GC has not run): the objects are the truth once
		// reconciled, and a rebuilt index decides as the old one did.
		i, n := w.script.IntN(2), 1+w.script.IntN(2)
		w.seen["Reindex before GC"]++
		for range n {
			w.reindex(i)
		}
		w.check(fmt.Sprintf("after %d Reindex in %s before GC", n, rsRegions[i]), p, false)
	}
	w.gc(w.script.IntN(2) == 0)
	w.check("after GC", p, true)

	// a's stale lease holders try again: their runs were taken over, and
	// the winner is reconciled (or, for a deleted run, its object gone).
	for _, k := range workers {
		role := p.role[k.run]
		if k.lease == nil || (role != rsResumed && role != rsDeleted) {
			continue
		}
		w.tick()
		renewFirst := w.script.IntN(2) == 0
		if renewFirst {
			w.staleRenew(k, role)
		}
		c := w.checkpoint(k.run, rsStep(k.last)+1, "a-stale", w.clock.at(0), "running")
		err := w.st[0].SaveLeased(w.ctx, k.lease, c)
		if !errors.Is(err, cairn.ErrConflict) && !errors.Is(err, cairn.ErrClaimed) {
			t.Errorf("a's stale holder of %v (epoch %d, b %s) saves after the heal: %v; want ErrConflict", k.run, k.lease.Epoch, rsRoleName(role), err)
			if err == nil {
				w.m.ack(k.run, rsOpOf(0, k.lease.Stamped(c)))
			}
		} else {
			w.seen["stale holder refused"]++
		}
		w.wait()
		if !renewFirst {
			w.staleRenew(k, role)
		}
	}
	// The holders of the newest claims go on: b's, and a's of the runs b
	// left alone.
	for _, run := range rsSorted(maps.Keys(p.bLeases)) {
		l := p.bLeases[run]
		w.tick()
		// b's lease is live (an hour) and the newest: nobody claims the
		// run before it ends.
		if al, err := w.st[0].Claim(w.ctx, run, &cairn.ClaimOptions{Owner: "a-worker", Lease: time.Minute}); !errors.Is(err, cairn.ErrClaimed) {
			t.Errorf("a claims %v, which b holds (epoch %d) until %s, after the heal: %v; want ErrClaimed", run, l.Epoch, l.Expires, err)
			if err == nil {
				w.m.ack(run, rsOpOf(0, al.Checkpoint))
				p.role[run] = rsTakenBack
				continue
			}
		}
		w.wait()
		if err := w.st[1].Renew(w.ctx, l); err != nil {
			t.Errorf("b's holder of %v (epoch %d) cannot renew after the heal: %v", run, l.Epoch, err)
			continue
		}
		c := w.checkpoint(run, rsStep(l.Checkpoint)+1, "b", w.clock.at(1), "running")
		if err := w.st[1].SaveLeased(w.ctx, l, c); err != nil {
			t.Errorf("b's holder of %v (epoch %d) cannot save after the heal: %v", run, l.Epoch, err)
			continue
		}
		w.m.ack(run, rsOpOf(1, l.Stamped(c)))
		w.wait()
	}
	for _, k := range workers {
		if k.lease == nil || p.role[k.run] != rsUntouched {
			continue
		}
		w.tick()
		c := w.checkpoint(k.run, rsStep(k.last)+1, "a", w.clock.at(0), "running")
		if err := w.st[0].SaveLeased(w.ctx, k.lease, c); err != nil {
			t.Errorf("a's holder of %v (epoch %d), which b never claimed, cannot save after the heal: %v", k.run, k.lease.Epoch, err)
			continue
		}
		w.m.ack(k.run, rsOpOf(0, k.lease.Stamped(c)))
		k.last = c
		w.wait()
	}
	w.settle("the last saves")
	w.check("at the end", p, true)
	if w.script.IntN(2) == 0 {
		// The objects are the truth: a Reindex in either region changes
		// nothing.
		i := w.script.IntN(2)
		w.seen["Reindex in "+rsRegions[i]]++
		w.reindex(i)
		w.check("after Reindex in "+rsRegions[i], p, true)
	}
	return w.final()
}

// reindex rebuilds region i's index from the run objects, and settles.
func (w *rsWorld) reindex(i int) {
	w.reindexed[i] = true
	if _, err := w.st[i].Reindex(w.ctx, &durable.ReindexOptions{Full: w.script.IntN(2) == 0}); err != nil {
		w.t.Fatalf("Reindex in %s: %v", rsRegions[i], err)
	}
	w.wait()
	w.settle("Reindex in " + rsRegions[i])
}

// gc moves the clock past GC's grace and runs GC in both regions, twice,
// delivering in between.
func (w *rsWorld) gc(versions bool) {
	w.clock.advance(2 * time.Minute)
	for range 2 {
		for i, st := range w.st {
			if _, err := st.GC(w.ctx, &durable.GCOptions{Grace: time.Minute, Versions: versions}); err != nil {
				w.t.Fatalf("GC (versions %v) in %s: %v", versions, rsRegions[i], err)
			}
			w.wait()
		}
		w.sim.Settle()
		w.wait()
	}
}

// staleRenew renews the lease of a's stale holder of k, which b took
// over: ErrConflict.
func (w *rsWorld) staleRenew(k *rsWorker, role rsRole) {
	if err := w.st[0].Renew(w.ctx, k.lease); !errors.Is(err, cairn.ErrConflict) {
		w.t.Errorf("a's stale holder of %v (epoch %d, b %s) renews after the heal: %v; want ErrConflict", k.run, k.lease.Epoch, rsRoleName(role), err)
	}
	w.wait()
}

func rsRoleName(r rsRole) string {
	return [...]string{"none", "resumed it", "deleted it", "none (split brain)", "claimed it, then a did"}[r]
}

// settle delivers everything, then compacts and reconciles in both
// regions, delivering again, until a round restores nothing.
func (w *rsWorld) settle(after string) {
	t := w.t
	for round := 0; ; round++ {
		if round == 6 {
			t.Errorf("after %s: Reconcile still restores runs after %d rounds", after, round)
			return
		}
		w.sim.Settle()
		w.wait()
		for i, st := range w.st {
			if err := st.Compact(w.ctx); err != nil {
				t.Fatalf("after %s: Compact in %s: %v", after, rsRegions[i], err)
			}
			w.wait()
		}
		w.sim.Settle()
		// Reconciling happens after the heal, later than the stale
		// writes by more than the clocks' skew (4 s at most here): a
		// region restores the states it won, and its restore is then the
		// latest version by every clock.
		w.clock.advance(5 * time.Second)
		restored := 0
		for i, st := range w.st {
			rep, err := st.Reconcile(w.ctx, nil)
			if err != nil {
				t.Fatalf("after %s: Reconcile in %s: %v", after, rsRegions[i], err)
			}
			// A restore where the clock is behind the losing write's
			// site does not become current: the other region's does. What
			// stays stale, check's Verify reports.
			w.seen["unrestorable here"] += len(rep.Unrestorable)
			restored += len(rep.Restored) + len(rep.Claims)
			w.wait()
		}
		w.sim.Settle()
		w.wait()
		if restored == 0 && round > 0 {
			return
		}
	}
}

// check checks, in both regions, that List shows the winners of the
// model, that every run loads as its winner (a deleted run, once GC ran,
// not at all), and what Verify reports.
func (w *rsWorld) check(when string, p *rsPartition, collected bool) {
	t := w.t
	w.t.Helper()
	for _, labels := range []map[string]string{nil, rsRunning} {
		want := w.m.listing(t, labels)
		for i := range w.st {
			rsSame(t, fmt.Sprintf("%s: List in %s (labels %v)", when, rsRegions[i], labels), w.mustList(when, i, labels), want)
		}
	}
	w.wait()
	runs := rsSorted(maps.Keys(w.m.last))
	var split []uuid.UUID
	for _, run := range runs {
		win := w.m.winner(t, run)
		// The scenario's expectations, as the brief of each role says
		// them: b's claim (a higher epoch) wins over a's stale writes,
		// later by every clock, and so does b's delete.
		switch p.role[run] {
		case rsResumed:
			if win.region != "b" || win.del {
				t.Fatalf("the model lets %s's op (delete %v) win over b's claim of %v: %v", win.region, win.del, run, w.m.last[run])
			}
		case rsDeleted:
			if win.region != "b" || !win.del {
				t.Fatalf("the model lets %s's op (delete %v) win over b's delete of %v: %v", win.region, win.del, run, w.m.last[run])
			}
		}
		if len(w.m.last[run]) > 1 && w.m.splitBrain(run) {
			split = append(split, run)
			if when == "at the end" {
				w.seen["split brain"]++
				if a, b := w.m.last[run]["a"], w.m.last[run]["b"]; a.epoch == b.epoch && a.ts.Equal(b.ts) && !a.del && !b.del {
					w.seen["split brain decided by region"]++
				}
			}
		}
		for i, st := range w.st {
			c, err := st.Load(w.ctx, run)
			switch {
			case win.del && errors.Is(err, cairn.ErrNotFound):
			case win.del && collected:
				t.Errorf("%s: run %v, deleted in %s, loads in %s after GC: %s, %v", when, run, win.region, rsRegions[i], rsFP(c), err)
			case win.del:
				w.seen["deleted run loadable until GC"]++
			case err != nil:
				t.Errorf("%s: run %v does not load in %s: %v; want %s (region %s, epoch %d)", when, run, rsRegions[i], err, win.fp, win.region, win.epoch)
			case rsFingerprint(c) != win.fp:
				t.Errorf("%s: run %v loads in %s as\n\t%s\nwant (region %s's)\n\t%s\nops: %v", when, run, rsRegions[i], rsFingerprint(c), win.region, win.fp, w.m.last[run])
			}
		}
	}
	for i, st := range w.st {
		rep, err := st.Verify(w.ctx)
		if err != nil {
			t.Fatalf("%s: Verify in %s: %v", when, rsRegions[i], err)
		}
		switch {
		case slices.Equal(rep.SplitBrain, split):
		case w.reindexed[i] && rsSubset(rep.SplitBrain, split):
			// Reported once, at the end: see close.
			for _, run := range split {
				if !slices.Contains(rep.SplitBrain, run) {
					w.forgotten[i][run] = true
				}
			}
		default:
			t.Errorf("%s: Verify in %s: split brains %v, want %v", when, rsRegions[i], rep.SplitBrain, split)
		}
		dead := rep.Dead
		if !collected {
			dead = slices.DeleteFunc(slices.Clone(dead), func(run uuid.UUID) bool { return slices.Contains(p.deleted, run) })
		}
		if rep.Index != nil || len(rep.Stale)+len(rep.Missing)+len(rep.Unindexed)+len(dead)+len(rep.Mismatched)+len(rep.Corrupt)+len(rep.Strays) > 0 {
			t.Errorf("%s: Verify in %s: index %v, stale %v, missing %v, unindexed %v, dead %v, mismatched %v, corrupt %v, strays %v", when, rsRegions[i],
				rep.Index, rep.Stale, rep.Missing, rep.Unindexed, rep.Dead, rep.Mismatched, rep.Corrupt, rep.Strays)
		}
	}
	w.wait()
}

// final describes what region a lists and loads; b must be the same.
func (w *rsWorld) final() string {
	var out []string
	for i := range w.st {
		lines := w.mustList("final", i, nil)
		sums, _ := w.list(i, nil, 0, false)
		for _, s := range sums {
			c, err := w.st[i].Load(w.ctx, s.RunID)
			lines = append(lines, rsFP(c)+" "+fmt.Sprint(err))
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	if out[0] != out[1] {
		w.t.Errorf("at the end, a and b differ (missing: only in a; extra: only in b):\n%s", rsDiff(out[0], out[1]))
	}
	w.wait()
	return out[0]
}

// rsSame compares two listings.
func rsSame(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n%s", what, rsDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
	}
}

// rsDiff shows the lines of want that got lacks and those got has more,
// or, when both hold the same lines, both in order.
func rsDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			fmt.Fprintf(&b, "  missing %s\n", l)
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			fmt.Fprintf(&b, "  extra   %s\n", l)
		}
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "  the same lines in another order; want\n\t%s\ngot\n\t%s\n", strings.Join(wl, "\n\t"), strings.Join(gl, "\n\t"))
	}
	return b.String()
}

// TestRegionsSimClaimAfterHeal: a's worker claims a run; during a
// partition b claims it (its lease ended by every clock), and a's worker
// renews its lease in a, later by the clocks. Replication keeps a's claim
// object, the older claim, at both sites. Once that is reconciled (by
// Reconcile, by the next Claim, or by GC before it removes the old
// versions that hold b's claim), b's holder renews and saves, a's stale
// holder's renewal fails, and a's Claim finds the run held.
func TestRegionsSimClaimAfterHeal(t *testing.T) {
	for _, how := range []string{"Reconcile", "Claim", "GC"} {
		t.Run(how, func(t *testing.T) {
			w := rsNewWorld(t, 7, 7, &regionsim.Options{})
			defer w.close()
			run := w.newRun()
			w.save(0, w.checkpoint(run, 1, "a", w.clock.at(0), "running"))
			stale := w.claim(0, run, 10*time.Second)
			w.wait()
			w.sim.Settle()
			w.sim.Cut()
			w.clock.advance(time.Minute)
			l := w.claim(1, run, time.Hour)
			w.wait()
			w.clock.advance(5 * time.Second) // more than the clocks' skew apart
			if err := w.st[0].Renew(w.ctx, stale); err != nil {
				t.Fatalf("a's renewal during the partition: %v", err)
			}
			w.wait()
			w.sim.Heal()
			w.sim.Settle()
			w.wait()
			for i := range 2 {
				obj, err := w.sim.Site(i).Get(w.ctx, "claims/"+run.String(), nil)
				var d struct{ Epoch uint64 }
				if err != nil || json.Unmarshal(obj.Body, &d) != nil || d.Epoch != stale.Epoch {
					t.Fatalf("site %d holds claim %+v (%v); the test needs replication to keep a's (epoch %d)", i, d, err, stale.Epoch)
				}
			}
			switch how {
			case "Reconcile":
				w.settle("the heal")
			case "GC":
				w.clock.advance(20 * time.Minute)
				for i, st := range w.st {
					if _, err := st.GC(w.ctx, &durable.GCOptions{Grace: time.Minute, Versions: true}); err != nil {
						t.Fatalf("GC in %s: %v", rsRegions[i], err)
					}
					w.wait()
					w.sim.Settle()
				}
			}
			if _, err := w.st[0].Claim(w.ctx, run, &cairn.ClaimOptions{Owner: "a-worker", Lease: time.Minute}); !errors.Is(err, cairn.ErrClaimed) {
				t.Errorf("a claims the run b holds (epoch %d) for another hour: %v; want ErrClaimed", l.Epoch, err)
			}
			w.wait()
			w.sim.Settle()
			if err := w.st[0].Renew(w.ctx, stale); !errors.Is(err, cairn.ErrConflict) {
				t.Errorf("a's stale holder (epoch %d) renews: %v; want ErrConflict", stale.Epoch, err)
			}
			w.sim.Settle()
			if err := w.st[1].Renew(w.ctx, l); err != nil {
				t.Errorf("b's holder (epoch %d) renews: %v", l.Epoch, err)
			}
			if err := w.st[1].SaveLeased(w.ctx, l, w.checkpoint(run, 2, "b", w.clock.at(1), "running")); err != nil {
				t.Errorf("b's holder (epoch %d) saves: %v", l.Epoch, err)
			}
		})
	}
}

// TestRegionsSimObjectsBeforeIndex: replication keeps no order between
// keys, so a run object can reach the other region before any object of
// the index that lists it. There, List shows nothing of it yet and the
// first write creates that region's index, rather than both failing with
// ErrIndexLost (which advises a Reindex); once the rest arrives, both
// regions list both runs. A region whose own run objects have no index
// still finds its index lost.
func TestRegionsSimObjectsBeforeIndex(t *testing.T) {
	for seed := int64(1); seed <= 100; seed++ {
		w := rsNewWorld(t, seed, seed, &regionsim.Options{Reorder: 1})
		run := w.newRun()
		w.save(0, w.checkpoint(run, 1, "a", w.clock.at(0), "running"))
		w.wait()
		for w.sim.Step() {
			runs, _, err := w.sim.Site(1).List(w.ctx, "runs/", "", 1)
			if err != nil {
				t.Fatal(err)
			}
			ix, _, err := w.sim.Site(1).List(w.ctx, "index/", "", 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) == 0 || len(ix) > 0 {
				continue
			}
			t.Logf("seed %d: a's run object reached b before its index", seed)
			if sums, err := w.list(1, nil, 0, false); err != nil || len(sums) != 0 {
				t.Errorf("List in b: %v, %v; want nothing yet", rsDescribe(sums), err)
			}
			w.save(1, w.checkpoint(w.newRun(), 1, "b", w.clock.at(1), "running"))
			w.wait()
			w.sim.Settle()
			w.wait()
			w.sim.Settle()
			want := w.m.listing(t, nil)
			for i := range w.st {
				rsSame(t, "List in "+rsRegions[i], w.mustList("the end", i, nil), want)
			}
			// a's copy loses its index: a's own runs are the evidence.
			w.sim.Cut()
			keys, _, err := w.sim.Site(0).List(w.ctx, "index/", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if err := w.sim.Site(0).Delete(w.ctx, k.Key); err != nil {
					t.Fatal(err)
				}
			}
			fresh, err := durable.New(w.sim.Site(0), &durable.Options{Region: "a", Now: func() time.Time { return w.clock.at(0) }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fresh.List(w.ctx, nil); !errors.Is(err, durable.ErrIndexLost) {
				t.Errorf("List in a over a lost index: %v; want ErrIndexLost", err)
			}
			w.close()
			return
		}
		w.close()
	}
	t.Fatal("no seed delivered a run object before the index")
}
