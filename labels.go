package cairn

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Labels are a few small caller-chosen key=value strings attached to a
// checkpoint, such as status=running or tenant=acme. Stores keep them in
// their index, return them in every Summary, and filter List by them
// (ListOptions.Labels) without reading run bodies.
//
// A checkpoint keeps its labels inside its record, in Metadata under the
// reserved key [LabelsKey], as a map of strings: a Blazen engine reads the
// record as a valid checkpoint with one more metadata entry, and export and
// import carry the labels with the record. Use [Checkpoint.SetLabel] and
// [Checkpoint.Labels] rather than that entry.
//
// The rules, checked by [ValidateLabels] and by every Save (ErrInvalid):
//   - at most [MaxLabels] labels;
//   - a key is 1 to [MaxLabelKey] bytes of ASCII letters, digits, '.', '_',
//     '-' and '/', beginning and ending with a letter or digit; keys
//     beginning with "cairn." are reserved;
//   - a value is 1 to [MaxLabelValue] bytes of valid UTF-8 without control
//     characters;
//   - all of them together, as stored in object metadata ([EncodeLabels]),
//     take at most [MaxLabelsSize] bytes.
type Labels = map[string]string

// LabelsKey is the Metadata key under which a checkpoint keeps its labels.
// Metadata keys beginning with "cairn." are reserved for Cairn.
const LabelsKey = "cairn.labels"

// The bounds of a checkpoint's labels (see [Labels]).
const (
	MaxLabels     = 16
	MaxLabelKey   = 63
	MaxLabelValue = 255
	MaxLabelsSize = 1024
)

// reservedLabelPrefix starts the label keys that Cairn keeps for itself.
const reservedLabelPrefix = "cairn."

// ValidateLabels returns an error wrapping ErrInvalid that names the first
// label (in key order) breaking the rules of [Labels], or nil.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%w: %d labels, at most %d allowed", ErrInvalid, len(labels), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := checkLabelKey(k); err != nil {
			return err
		}
		if err := checkLabelValue(k, labels[k]); err != nil {
			return err
		}
	}
	if n := len(EncodeLabels(labels)); n > MaxLabelsSize {
		return fmt.Errorf("%w: labels take %d bytes as stored, at most %d allowed", ErrInvalid, n, MaxLabelsSize)
	}
	return nil
}

func checkLabelKey(k string) error {
	if k == "" || len(k) > MaxLabelKey {
		return fmt.Errorf("%w: label key %q: %d bytes, 1 to %d allowed", ErrInvalid, truncate(k), len(k), MaxLabelKey)
	}
	if strings.HasPrefix(k, reservedLabelPrefix) {
		return fmt.Errorf("%w: label key %q: keys beginning with %q are reserved", ErrInvalid, k, reservedLabelPrefix)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(k)-1 || (c != '.' && c != '_' && c != '-' && c != '/')) {
			return fmt.Errorf("%w: label key %q: byte %d (%q) not allowed (letters, digits, '.', '_', '-', '/'; a letter or digit first and last)", ErrInvalid, k, i, c)
		}
	}
	return nil
}

func checkLabelValue(k, v string) error {
	if v == "" || len(v) > MaxLabelValue {
		return fmt.Errorf("%w: label %q: value of %d bytes, 1 to %d allowed", ErrInvalid, k, len(v), MaxLabelValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: label %q: value is not valid UTF-8", ErrInvalid, k)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: label %q: value holds control character %U", ErrInvalid, k, r)
		}
	}
	return nil
}

// EncodeLabels returns the canonical stored form of labels: key=value
// pairs in key order, joined by '&', with keys and values percent-encoded
// (the form object metadata keeps, ASCII only). Empty for no labels.
func EncodeLabels(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(labels[k]))
	}
	return b.String()
}

// ParseLabels reads the form EncodeLabels writes and validates the labels.
// The empty string is no labels (nil). Anything else malformed is
// ErrInvalid.
func ParseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxLabelsSize {
		return nil, fmt.Errorf("%w: labels of %d bytes, at most %d allowed", ErrInvalid, len(s), MaxLabelsSize)
	}
	labels := map[string]string{}
	for _, pair := range strings.Split(s, "&") {
		ek, ev, ok := strings.Cut(pair, "=")
		k, kerr := url.QueryUnescape(ek)
		v, verr := url.QueryUnescape(ev)
		if !ok || kerr != nil || verr != nil {
			return nil, fmt.Errorf("%w: malformed labels %q", ErrInvalid, truncate(s))
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("%w: label %q twice", ErrInvalid, k)
		}
		labels[k] = v
	}
	if err := ValidateLabels(labels); err != nil {
		return nil, err
	}
	return labels, nil
}

// LabelsOf returns the labels kept in a checkpoint's Metadata (nil when
// there are none): the entry under [LabelsKey], a map whose values are all
// strings. An entry of another shape, or labels breaking the rules of
// [Labels], is ErrInvalid.
func LabelsOf(metadata map[string]any) (map[string]string, error) {
	raw, ok := metadata[LabelsKey]
	if !ok || raw == nil {
		return nil, nil
	}
	var labels map[string]string
	switch m := raw.(type) {
	case map[string]any:
		labels = make(map[string]string, len(m))
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%w: metadata[%q][%q] is %T, not a string", ErrInvalid, LabelsKey, truncate(k), v)
			}
			labels[k] = s
		}
	case map[string]string:
		labels = maps.Clone(m)
	default:
		return nil, fmt.Errorf("%w: metadata[%q] is %T, not a map of strings", ErrInvalid, LabelsKey, raw)
	}
	if len(labels) == 0 {
		return nil, nil
	}
	if err := ValidateLabels(labels); err != nil {
		return nil, err
	}
	return labels, nil
}

// Labels returns c's labels (nil when it has none), as [LabelsOf] reads
// them from c.Metadata. The map is a copy the caller owns.
func (c *Checkpoint) Labels() (map[string]string, error) { return LabelsOf(c.Metadata) }

// SetLabel sets one label of c, creating Metadata and its labels entry as
// needed. It does not validate: Save does (ErrInvalid). SetLabel replaces
// a labels entry that is not a map of strings.
func (c *Checkpoint) SetLabel(key, value string) {
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	m, ok := c.Metadata[LabelsKey].(map[string]any)
	if !ok {
		m = map[string]any{}
		if old, ok := c.Metadata[LabelsKey].(map[string]string); ok {
			for k, v := range old {
				m[k] = v
			}
		}
		c.Metadata[LabelsKey] = m
	}
	m[key] = value
}

// DeleteLabel removes one label of c; the labels entry goes when it is
// left empty.
func (c *Checkpoint) DeleteLabel(key string) {
	switch m := c.Metadata[LabelsKey].(type) {
	case map[string]any:
		delete(m, key)
		if len(m) == 0 {
			delete(c.Metadata, LabelsKey)
		}
	case map[string]string:
		delete(m, key)
		if len(m) == 0 {
			delete(c.Metadata, LabelsKey)
		}
	}
}

// MatchLabels reports whether labels hold every key=value pair of
// selector (an empty selector matches everything).
func MatchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// LabelMatcher matches labels in their stored form (EncodeLabels) against
// a selector without parsing them: for stores whose index keeps that form.
// The zero LabelMatcher matches everything.
type LabelMatcher []string

// NewLabelMatcher returns the matcher of selector (every pair required).
func NewLabelMatcher(selector map[string]string) LabelMatcher {
	if len(selector) == 0 {
		return nil
	}
	m := make(LabelMatcher, 0, len(selector))
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		m = append(m, url.QueryEscape(k)+"="+url.QueryEscape(selector[k]))
	}
	return m
}

// Match reports whether encoded, labels as EncodeLabels writes them, holds
// every pair of m.
func (m LabelMatcher) Match(encoded string) bool {
	for _, pair := range m {
		if !hasPair(encoded, pair) {
			return false
		}
	}
	return true
}

// hasPair reports whether pair is one of the '&'-separated pairs of s.
func hasPair(s, pair string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], pair)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(pair)
		if (i == 0 || s[i-1] == '&') && (end == len(s) || s[end] == '&') {
			return true
		}
		off = i + 1
	}
}
