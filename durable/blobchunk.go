package durable

// Content-defined chunking of offloaded values: a gear hash in the manner
// of FastCDC (Xia et al., 2016), with normalized chunking around the
// average. A cut depends only on the 64 bytes before it, so an insertion
// or an append changes the chunks around it and leaves the others, and
// their names, as they were. The table and masks are fixed: every
// process, now and later, must cut the same bytes at the same places for
// unchanged chunks to keep their names.
const (
	chunkMin = 8 << 10  // no cut before
	chunkAvg = 16 << 10 // the stricter mask applies before, the looser after
	chunkMax = 64 << 10 // always a cut here: a blob is never larger
)

// Masks of the gear hash's top bits (the bits that depend on the most
// bytes): 15 bits before the average (cuts rarer), 13 after (more often).
const (
	chunkMaskS = uint64(1<<15-1) << (64 - 15)
	chunkMaskL = uint64(1<<13-1) << (64 - 13)
)

// gear is the gear hash's table: 256 pseudo-random words from splitmix64
// with a fixed seed (deterministic, so never to be changed).
var gear = func() (t [256]uint64) {
	x := uint64(0x63616972_6e626c6f) // "cairnblo"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return t
}()

// chunkCut returns the length of the first chunk of data: all of it when
// it is no longer than chunkMin, else between chunkMin and chunkMax.
func chunkCut(data []byte) int {
	n := len(data)
	if n <= chunkMin {
		return n
	}
	n = min(n, chunkMax)
	normal := min(n, chunkAvg)
	var fp uint64
	i := chunkMin
	for ; i < normal; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&chunkMaskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&chunkMaskL == 0 {
			return i + 1
		}
	}
	return n
}

// chunks splits data into content-defined chunks, which alias it.
func chunks(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := chunkCut(data)
		out = append(out, data[:n:n])
		data = data[n:]
	}
	return out
}
