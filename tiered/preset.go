package tiered

// The defaults of Options' memory bounds.
const (
	defaultCacheBytes       = 64 << 20
	defaultMaxDirtyBytes    = 64 << 20
	defaultFlushConcurrency = 16
)

// MemoryPreset returns Options sized for a process whose memory is limit
// bytes, such as a serverless function's memory setting: the cache and the
// unflushed bytes each get an eighth of it (at most the defaults; the
// durable store's cache of blobs, for offloaded records read, half as much
// as the cache unless Durable.BlobCacheBytes is set), and a
// flush writes with fewer parallel PUTs (each holds a record and its
// request buffers). Set the other fields on the result as usual; Mode is
// left as the caller sets it.
//
// The defaults (64 MiB of cache, 64 MiB of unflushed bytes, 16 parallel
// PUTs) suit a service with a few hundred MiB or more to spare. Measured
// peaks of the Go heap for each preset are in the README's Memory section
// (BenchmarkMemory);
// with GOMEMLIMIT set to about 75% of limit, the Go runtime keeps the rest
// of the heap within it. A single checkpoint may still be as large as the
// codec allows (16 MiB by default): lower Durable.Codec's MaxSize too if
// the function's state is smaller.
//
// A limit of zero or less (no limit known) gives the defaults.
func MemoryPreset(limit int64) Options {
	if limit <= 0 {
		return Options{CacheBytes: defaultCacheBytes, MaxDirtyBytes: defaultMaxDirtyBytes, FlushConcurrency: defaultFlushConcurrency}
	}
	share := limit / 8
	cache := min(share, defaultCacheBytes)
	dirty := min(share, defaultMaxDirtyBytes)
	conc := int(min(limit/(32<<20), int64(defaultFlushConcurrency)))
	return Options{
		CacheBytes:       max(cache, 1<<20),
		MaxDirtyBytes:    max(dirty, 1<<20),
		FlushConcurrency: max(conc, 2),
	}
}
