package wire

import (
	"reflect"
	"testing"
)

// Values decoded by one Reader share slabs, but a caller changing one of
// them (appending to an array, writing an element or a map entry) changes
// no other, in the same decode or another.
func TestDecodedValuesIndependent(t *testing.T) {
	in := map[string]any{
		"a": []any{int64(1), "x"}, "b": []any{int64(2), "y"}, "c": []any{[]any{"z"}, map[string]any{"k": 1.5}},
		"d": []any{}, "long": make([]any, maxSlabArray+1),
	}
	b, err := AppendValueMap(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	read := func() map[string]any {
		r := NewReader(b)
		m, err := r.ReadValueMap()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m, other := read(), read()
	want := read()
	for k, v := range m {
		a := v.([]any)
		if len(a) != cap(a) {
			t.Errorf("%s: len %d, cap %d: an append would write into a neighbour", k, len(a), cap(a))
		}
		if len(a) > 0 {
			a[0] = "changed"
		}
		m[k] = append(a, "appended")
	}
	m["c"].([]any)[1] = nil
	m["new"] = true
	if !reflect.DeepEqual(other, want) {
		t.Errorf("another decode changed: %#v", other)
	}
	for _, k := range []string{"a", "b", "c", "d", "long"} {
		got := m[k].([]any)
		if n := len(want[k].([]any)); len(got) != n+1 || got[n] != "appended" || n > 0 && got[0] != "changed" {
			t.Errorf("%s = %#v", k, got)
		}
	}
	// The nested array and map that m["c"] held before it changed.
	if !reflect.DeepEqual(want["c"], []any{[]any{"z"}, map[string]any{"k": 1.5}}) {
		t.Errorf("c = %#v", want["c"])
	}
}
