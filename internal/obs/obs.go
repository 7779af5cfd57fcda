// Package obs is the observability plumbing the stores share: a
// *slog.Logger, OpenTelemetry spans and the instruments every operation
// records. It depends on the OpenTelemetry API only; the application
// chooses the SDK and the exporters.
//
// Everything is off unless configured: with no TracerProvider no span is
// started and with no MeterProvider nothing is measured, at the cost of a
// nil check per operation and no allocation, so the hot paths (a Save or a
// Load served by the cache) do not pay for what nobody reads.
//
// What a span, a metric or a log record may carry: run IDs, counts, sizes,
// durations, server and key names. Never a credential, never checkpoint
// content (state, events, metadata, labels), never a workflow name (free
// text the application chooses), and on spans and metrics never an
// error's message (a validation error may quote a value of the state):
// only its class (Outcome).
package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of Cairn's tracers and meters.
const ScopeName = "github.com/cairnstore/cairn"

// Options are the observability fields of a store's options. Nil fields
// switch that signal off.
type Options struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Inherit fills o's nil fields from parent's: a tier passes its own to the
// tier below unless that one was given its own.
func (o *Options) Inherit(parent Options) {
	if o.Logger == nil {
		o.Logger = parent.Logger
	}
	if o.TracerProvider == nil {
		o.TracerProvider = parent.TracerProvider
	}
	if o.MeterProvider == nil {
		o.MeterProvider = parent.MeterProvider
	}
}

// Op is an operation that gets a span and the operation metrics.
type Op uint8

// The operations. Their names are the values of AttrOperation; the span
// of each is "cairn." and the name capitalised (SpanName).
const (
	Save Op = iota
	Load
	List
	Delete
	Flush
	Commit // one index commit
	numOps
)

var opNames = [numOps]string{"save", "load", "list", "delete", "flush", "commit"}
var spanNames = [numOps]string{"cairn.Save", "cairn.Load", "cairn.List", "cairn.Delete", "cairn.Flush", "cairn.Commit"}

func (op Op) String() string { return opNames[op] }

// SpanName is the name of op's span.
func (op Op) SpanName() string { return spanNames[op] }

// Attribute keys.
const (
	AttrOperation = attribute.Key("cairn.operation")
	AttrTier      = attribute.Key("cairn.tier")    // "tiered" or "durable"
	AttrOutcome   = attribute.Key("cairn.outcome") // an Outcome
	AttrRunID     = attribute.Key("cairn.run_id")
	AttrErrorType = attribute.Key("error.type") // OpenTelemetry's: the Outcome of a failure
)

// Outcome is the class of an operation's result: a small, fixed set, so
// that it can label metrics.
type Outcome uint8

// The outcomes, matched with errors.Is in this order.
const (
	OK       Outcome = iota
	NotFound         // cairn.ErrNotFound
	Conflict         // cairn.ErrConflict, cairn.ErrClaimed
	Invalid          // cairn.ErrInvalid
	TooLarge         // cairn.ErrTooLarge
	Corrupt          // cairn.ErrCorrupt
	Closed           // cairn.ErrClosed
	Canceled         // context.Canceled
	Timeout          // context.DeadlineExceeded
	Failed           // anything else: the server, the network
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "not_found", "conflict", "invalid", "too_large", "corrupt", "closed",
	"canceled", "timeout", "error"}

func (o Outcome) String() string { return outcomeNames[o] }

// OutcomeOf classifies err.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, cairn.ErrNotFound):
		return NotFound
	case errors.Is(err, cairn.ErrConflict), errors.Is(err, cairn.ErrClaimed):
		return Conflict
	case errors.Is(err, cairn.ErrInvalid):
		return Invalid
	case errors.Is(err, cairn.ErrTooLarge):
		return TooLarge
	case errors.Is(err, cairn.ErrCorrupt):
		return Corrupt
	case errors.Is(err, cairn.ErrClosed):
		return Closed
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	return Failed
}

// DurationBuckets are the bounds, in seconds, of the operation duration
// histogram: from a cache hit (microseconds) to a slow S3 call (seconds).
var DurationBuckets = []float64{0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// T is the telemetry of one store. Its methods are safe for concurrent
// use. The zero T, and a nil *T, record nothing.
type T struct {
	// Log is the store's logger: never nil (one that discards when none
	// was given). Log only off the hot paths: a call's arguments cost
	// even when discarded.
	Log *slog.Logger
	// Meter is nil when no MeterProvider was given.
	Meter metric.Meter

	tracer trace.Tracer // nil when no TracerProvider was given
	tier   attribute.KeyValue
	ops    metric.Int64Counter
	dur    metric.Float64Histogram
	// Measurement options by operation and outcome, built once so that
	// recording allocates nothing.
	addOpts    [numOps][numOutcomes][]metric.AddOption
	recordOpts [numOps][numOutcomes][]metric.RecordOption
	observed   []*observedSum // what ObserveInt64 registered this store in
}

// New returns the telemetry of a store of tier ("tiered", "durable")
// configured by o. It fails only when the MeterProvider refuses an
// instrument.
func New(tier string, o Options) (*T, error) {
	t := &T{Log: o.Logger, tier: AttrTier.String(tier)}
	if t.Log == nil {
		t.Log = slog.New(slog.DiscardHandler)
	}
	if o.TracerProvider != nil {
		t.tracer = o.TracerProvider.Tracer(ScopeName)
	}
	if o.MeterProvider == nil {
		return t, nil
	}
	t.Meter = o.MeterProvider.Meter(ScopeName)
	var err error
	if t.ops, err = t.Meter.Int64Counter("cairn.operations", metric.WithUnit("{operation}"),
		metric.WithDescription("Operations completed, by operation, tier and outcome.")); err != nil {
		return nil, fmt.Errorf("obs: %w", err)
	}
	if t.dur, err = t.Meter.Float64Histogram("cairn.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of operations, by operation, tier and outcome."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...)); err != nil {
		return nil, fmt.Errorf("obs: %w", err)
	}
	for op := range numOps {
		for out := range numOutcomes {
			set := metric.WithAttributeSet(attribute.NewSet(AttrOperation.String(op.String()), t.tier,
				AttrOutcome.String(out.String())))
			t.addOpts[op][out] = []metric.AddOption{set}
			t.recordOpts[op][out] = []metric.RecordOption{set}
		}
	}
	return t, nil
}

// Tracing reports whether spans are recorded.
func (t *T) Tracing() bool { return t != nil && t.tracer != nil }

// Observed is an instrument whose value is read when a collection asks:
// from a counter the store keeps anyway, so that the hot paths pay
// nothing for it.
type Observed struct {
	Name, Unit, Description string
	// UpDown makes it an up-down counter (a level, such as bytes held),
	// else a counter (a total). Both add up across the stores of one
	// MeterProvider.
	UpDown bool
	Read   func() int64
}

// An observedSum is one observable instrument of one Meter: what it
// reports is the sum of the live stores' Reads plus, for a counter, the
// final values of the stores closed since (retired), so that a counter
// never goes down when a store closes (a monitor would read a reset).
// One callback per instrument, registered when the first store creates
// it and kept for the process, reports the sum under mu, so a collection
// never sees a store both live and retired.
type observedSum struct {
	inst    metric.Int64Observable
	counter bool
	mu      sync.Mutex
	live    map[*T]func() int64
	retired int64
}

// sums are the observedSums of every Meter, by Meter and instrument name.
var sums = struct {
	sync.Mutex
	m map[sumKey]*observedSum
}{m: map[sumKey]*observedSum{}}

type sumKey struct {
	meter metric.Meter
	name  string
}

// sumOf returns the observedSum of in on meter, creating the instrument
// and its callback the first time.
func sumOf(meter metric.Meter, in Observed) (*observedSum, error) {
	sums.Lock()
	defer sums.Unlock()
	k := sumKey{meter, in.Name}
	if o, ok := sums.m[k]; ok {
		return o, nil
	}
	unit, desc := metric.WithUnit(in.Unit), metric.WithDescription(in.Description)
	o := &observedSum{counter: !in.UpDown, live: map[*T]func() int64{}}
	var err error
	if in.UpDown {
		o.inst, err = meter.Int64ObservableUpDownCounter(in.Name, unit, desc)
	} else {
		o.inst, err = meter.Int64ObservableCounter(in.Name, unit, desc)
	}
	if err != nil {
		return nil, fmt.Errorf("obs: %w", err)
	}
	if _, err := meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		o.mu.Lock()
		defer o.mu.Unlock()
		v := o.retired
		for _, read := range o.live {
			v += read()
		}
		obs.ObserveInt64(o.inst, v)
		return nil
	}, o.inst); err != nil {
		return nil, fmt.Errorf("obs: %w", err)
	}
	sums.m[k] = o
	return o, nil
}

// ObserveInt64 reports each instrument's Read at every collection, added
// to the other stores' of the same MeterProvider, until Close. It does
// nothing without a MeterProvider.
func (t *T) ObserveInt64(ins ...Observed) error {
	if t == nil || t.Meter == nil {
		return nil
	}
	for _, in := range ins {
		o, err := sumOf(t.Meter, in)
		if err != nil {
			return err
		}
		o.mu.Lock()
		o.live[t] = in.Read
		o.mu.Unlock()
		t.observed = append(t.observed, o)
	}
	return nil
}

// Close ends the store's part in ObserveInt64's instruments: a level
// (UpDown) stops counting it, a counter keeps its final value, so a
// closed store no longer moves the numbers and no total goes down. Call
// it once, from the store's Close, once the store does no more work.
func (t *T) Close() {
	if t == nil {
		return
	}
	for _, o := range t.observed {
		o.mu.Lock()
		if read, ok := o.live[t]; ok {
			if o.counter {
				o.retired += read()
			}
			delete(o.live, t)
		}
		o.mu.Unlock()
	}
	t.observed = nil
}

// Span is an operation in flight, as Start returned it. The zero Span
// records nothing.
type Span struct {
	t     *T
	ctx   context.Context
	span  trace.Span // nil when not tracing
	op    Op
	start time.Time // zero when not measuring
}

// Start begins op, on run unless it is uuid.Nil, and returns the context
// to pass down (holding the span, when tracing) and the Span to End.
func (t *T) Start(ctx context.Context, op Op, run uuid.UUID) (context.Context, Span) {
	if t == nil || (t.tracer == nil && t.Meter == nil) {
		return ctx, Span{}
	}
	s := Span{t: t, ctx: ctx, op: op}
	if t.Meter != nil {
		s.start = time.Now()
	}
	if t.tracer != nil {
		var sp trace.Span
		if run != uuid.Nil {
			ctx, sp = t.tracer.Start(ctx, op.SpanName(), trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(t.tier, AttrRunID.String(run.String())))
		} else {
			ctx, sp = t.tracer.Start(ctx, op.SpanName(), trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(t.tier))
		}
		s.span, s.ctx = sp, ctx
	}
	return ctx, s
}

// Recording reports whether attributes set on s are kept: check it
// before building attributes, which costs.
func (s Span) Recording() bool { return s.span != nil && s.span.IsRecording() }

// SetAttributes adds kv to the span, if any.
func (s Span) SetAttributes(kv ...attribute.KeyValue) {
	if s.span != nil {
		s.span.SetAttributes(kv...)
	}
}

// End ends the operation with its result: the span's status and the
// operation metrics.
func (s Span) End(err error) {
	if s.t == nil {
		return
	}
	out := OutcomeOf(err)
	if s.span != nil {
		s.span.SetAttributes(AttrOutcome.String(out.String()))
		if err != nil {
			// The class, never the message: see the package doc.
			s.span.SetAttributes(AttrErrorType.String(out.String()))
			s.span.SetStatus(codes.Error, out.String())
		}
		s.span.End()
	}
	if s.t.Meter != nil {
		s.t.ops.Add(s.ctx, 1, s.t.addOpts[s.op][out]...)
		s.t.dur.Record(s.ctx, time.Since(s.start).Seconds(), s.t.recordOpts[s.op][out]...)
	}
}

// Annotate adds kv to the span ctx holds, if it is recording. Guard the
// call with Tracing on hot paths: building kv costs.
func Annotate(ctx context.Context, kv ...attribute.KeyValue) {
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(kv...)
	}
}
