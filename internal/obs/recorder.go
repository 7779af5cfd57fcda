package obs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Recorder is a slog.Handler that keeps every record, for the tests of the
// packages that log: they check levels, messages and attributes. It is
// enabled at every level. Safe for concurrent use.
type Recorder struct {
	mu      *sync.Mutex
	records *[]Record
	attrs   []slog.Attr // from WithAttrs
	group   string      // from WithGroup, with a trailing '.'
}

// Record is one record a Recorder kept: its attributes flattened to
// "group.key" and formatted with %v.
type Record struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

// String is the record as one line, for failure messages and for
// searching for what must not be there.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", r.Level, r.Message)
	for k, v := range r.Attrs {
		fmt.Fprintf(&b, " %s=%q", k, v)
	}
	return b.String()
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{mu: new(sync.Mutex), records: new([]Record)}
}

// Records returns a copy of the records kept so far, in order.
func (h *Recorder) Records() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Record(nil), *h.records...)
}

// Find returns the first record whose message contains msg.
func (h *Recorder) Find(msg string) (Record, bool) {
	for _, r := range h.Records() {
		if strings.Contains(r.Message, msg) {
			return r, true
		}
	}
	return Record{}, false
}

// Containing returns the records that show text anywhere, in their
// message or an attribute: what a test looks for to prove a secret was
// never logged.
func (h *Recorder) Containing(text string) []Record {
	var out []Record
	for _, r := range h.Records() {
		if strings.Contains(r.String(), text) {
			out = append(out, r)
		}
	}
	return out
}

// Enabled implements slog.Handler: every level.
func (h *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (h *Recorder) Handle(_ context.Context, r slog.Record) error {
	rec := Record{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		flatten(rec.Attrs, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		flatten(rec.Attrs, h.group, a)
		return true
	})
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup implements slog.Handler.
func (h *Recorder) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "."
	return &c
}

func flatten(m map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			flatten(m, prefix+a.Key+".", g)
		}
		return
	}
	m[prefix+a.Key] = fmt.Sprint(v.Any())
}
