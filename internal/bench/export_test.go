package bench

import "github.com/cairnstore/cairn"

// Samples returns n checkpoints of about size bytes from the workload: as
// the typed contender saves them, and as the map contenders do.
func Samples(n, size int) ([]*cairn.TypedCheckpoint[AgentState], []*cairn.Checkpoint, error) {
	s, err := newGenerator(uint64(size), cairn.DefaultCodec()).samples(n, size)
	if err != nil {
		return nil, nil, err
	}
	typed, plain := make([]*cairn.TypedCheckpoint[AgentState], n), make([]*cairn.Checkpoint, n)
	for i := range s {
		typed[i], plain[i] = s[i].typed, s[i].cp
	}
	return typed, plain, nil
}

// NewTyped is the typed contender's cairn.Typed over s.
var NewTyped = newTyped
