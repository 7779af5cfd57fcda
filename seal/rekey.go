package seal

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cairnstore/cairn/bucket"
	"golang.org/x/sync/errgroup"
)

// RekeyOptions configure Rekey. Nil means defaults.
type RekeyOptions struct {
	// Concurrency bounds the objects resealed at once. Default 8.
	Concurrency int
	// Progress, if set, is called after each object with the number of
	// objects done (resealed, already under the primary, or failed) and
	// the number listed, from one goroutine at a time.
	Progress func(done, total int)
	// NoVerify skips the verification at the end.
	NoVerify bool
	// MaxObjectSize bounds what Rekey and its verification read of one
	// object: a larger one is Failed (bucket.ErrTooLarge), never read
	// whole. Default MaxHeadFallback (64 MiB), far above Cairn's objects.
	MaxObjectSize int64
}

// RekeyReport says what Rekey did.
type RekeyReport struct {
	Objects  int // objects listed under the prefix
	Resealed int // objects whose data key Rekey resealed under the primary
	Current  int // objects already sealed under the primary
	// Failed maps keys Rekey could not reseal to why: sealed with a key
	// the keyring lacks, not sealed, damaged, or rewritten under it three
	// times in a row. Sorted by key in Keys.
	Failed map[string]error
	// Verified reports that the verification ran and every object opened
	// with the primary key alone (and Failed is empty).
	Verified bool
	// Unverified maps the keys that did not open with the primary key
	// alone at verification to why.
	Unverified map[string]error
}

// FailedKeys returns the keys of Failed and Unverified, sorted.
func (r *RekeyReport) FailedKeys() []string {
	var keys []string
	for k := range r.Failed {
		keys = append(keys, k)
	}
	for k := range r.Unverified {
		if _, ok := r.Failed[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// ErrNotRekeyed: Rekey ended with objects that do not open with the
// primary key alone (RekeyReport.Failed, Unverified). Run it again; an
// object it cannot open needs the key that sealed it in the keyring.
var ErrNotRekeyed = errors.New("seal: objects remain that the primary key alone does not open")

// Rekey reseals every object under prefix of the raw (unwrapped) bucket b
// with kr's primary key, then verifies that each opens with the primary
// alone. An object's body is rewritten unchanged (its data key stays;
// only the data key's seal changes), conditional on the ETag read, so a
// writer's write in between wins and is left as it is (it sealed it with
// its own primary, which verification checks). On servers whose ETag is
// the body's MD5 the object keeps its ETag (see the package doc).
//
// It is safe alongside writers that use kr (or any keyring with the same
// primary) and resumable: objects already under the primary cost one
// HEAD and are skipped, so a Rekey cut short is finished by running it
// again. It reads and rewrites each other object once. Prefix "" means
// the whole bucket; otherwise it is a store's prefix, and keys under
// prefix+"/" are rekeyed.
//
// The error is ErrNotRekeyed when objects remain (see the report), or
// the first listing error or ctx's.
func Rekey(ctx context.Context, b bucket.Bucket, kr *Keyring, prefix string, opts *RekeyOptions) (*RekeyReport, error) {
	var o RekeyOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxObjectSize <= 0 {
		o.MaxObjectSize = MaxHeadFallback
	}
	if prefix != "" {
		prefix += "/"
	}
	keys, err := listAll(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	rep := &RekeyReport{Objects: len(keys), Failed: map[string]error{}, Unverified: map[string]error{}}
	var mu sync.Mutex
	var done atomic.Int64
	progress := func() {
		n := int(done.Add(1))
		if o.Progress != nil {
			mu.Lock()
			o.Progress(n, len(keys))
			mu.Unlock()
		}
	}
	s := &sealed{b: b, kr: kr, headLimit: o.MaxObjectSize}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, key := range keys {
		g.Go(func() error {
			resealed, err := s.reseal(gctx, key)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			switch {
			case errors.Is(err, bucket.ErrNotFound):
				// Deleted meanwhile: nothing to reseal.
			case err != nil:
				rep.Failed[key] = err
			case resealed:
				rep.Resealed++
			default:
				rep.Current++
			}
			mu.Unlock()
			progress()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	if !o.NoVerify {
		bad, err := verify(ctx, b, kr.PrimaryOnly(), keys, o.Concurrency, o.MaxObjectSize)
		if err != nil {
			return rep, err
		}
		rep.Unverified = bad
		rep.Verified = len(bad) == 0 && len(rep.Failed) == 0
	}
	if len(rep.Failed) > 0 || len(rep.Unverified) > 0 {
		return rep, fmt.Errorf("%w: %d of %d objects", ErrNotRekeyed, len(rep.FailedKeys()), len(keys))
	}
	return rep, nil
}

// Verify checks that every object under prefix (as Rekey takes it) of
// the raw bucket b opens, body and metadata, with kr's primary key alone,
// and returns those that do not, with why. Objects deleted meanwhile are
// left out; objects larger than MaxHeadFallback are not read, and fail.
func Verify(ctx context.Context, b bucket.Bucket, kr *Keyring, prefix string, concurrency int) (map[string]error, error) {
	if prefix != "" {
		prefix += "/"
	}
	if concurrency <= 0 {
		concurrency = 8
	}
	keys, err := listAll(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	return verify(ctx, b, kr.PrimaryOnly(), keys, concurrency, MaxHeadFallback)
}

func verify(ctx context.Context, b bucket.Bucket, only *Keyring, keys []string, concurrency int, maxSize int64) (map[string]error, error) {
	s := &sealed{b: b, kr: only, headLimit: maxSize}
	bad := map[string]error{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, key := range keys {
		g.Go(func() error {
			// The seal's key ID first: an object sealed with another key
			// fails without its body being read.
			info, err := b.Head(gctx, key)
			if err == nil {
				var id string
				if id, _, err = keyID(info.Metadata); err != nil {
					err = failed("verify", key, err)
				} else if id != only.primary {
					err = failed("verify", key, fmt.Errorf("%w: key %q", ErrUnknownKey, id))
				}
			}
			if err == nil {
				_, err = s.Get(gctx, key, &bucket.GetOptions{MaxSize: maxSize})
			}
			if err == nil {
				_, err = s.Head(gctx, key)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, bucket.ErrNotFound) {
				mu.Lock()
				bad[key] = err
				mu.Unlock()
			}
			return nil
		})
	}
	return bad, g.Wait()
}

func listAll(ctx context.Context, b bucket.Bucket, prefix string) ([]string, error) {
	var keys []string
	after := ""
	for {
		infos, more, err := b.List(ctx, prefix, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			keys = append(keys, in.Key)
		}
		if !more || len(infos) == 0 {
			return keys, nil
		}
		after = infos[len(infos)-1].Key
	}
}

// reseal reseals the data key of the object at key under the primary,
// unless it already is, and reports whether it did. A write of the
// object in between makes it look again, three times at most.
func (s *sealed) reseal(ctx context.Context, key string) (bool, error) {
	primary := s.kr.key(s.kr.primary)
	for try := 0; try < 3; try++ {
		info, err := s.b.Head(ctx, key)
		if err != nil {
			return false, err
		}
		if id, _, err := keyID(info.Metadata); err != nil {
			return false, failed("rekey", key, err)
		} else if id == primary.ID {
			return false, nil
		} else if !s.kr.Has(id) {
			return false, failed("rekey", key, fmt.Errorf("%w: key %q", ErrUnknownKey, id))
		}
		obj, err := s.b.Get(ctx, key, &bucket.GetOptions{MaxSize: s.headLimit + int64(Overhead)})
		if err != nil {
			return false, err
		}
		dek, _, err := s.openDataKey(key, obj.Metadata)
		if err != nil {
			return false, failed("rekey", key, err)
		}
		// Open the whole object (a copy: the body is rewritten as it is):
		// what is resealed must be intact.
		if _, _, err := openBody(key, dek, append([]byte(nil), obj.Body...)); err != nil {
			return false, failed("rekey", key, err)
		}
		sk, err := sealDataKey(primary, key, dek)
		if err != nil {
			return false, err
		}
		meta := map[string]string{metaSeal: sk}
		if v, ok := obj.Metadata[metaSealedMeta]; ok {
			meta[metaSealedMeta] = v
		}
		_, err = s.b.Put(ctx, key, obj.Body, &bucket.PutOptions{IfMatch: obj.ETag, Metadata: meta})
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bucket.ErrPrecondition), errors.Is(err, bucket.ErrBusy):
			continue // written meanwhile: look again
		default:
			return false, err
		}
	}
	return false, &bucket.Error{Op: "rekey", Key: key, Err: errors.New("rewritten by others three times while resealing")}
}
