package durable

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// A Record is one run's checkpoint for Write: its MessagePack record, as
// the store's codec encodes it, and the summary the index keeps of it.
type Record struct {
	RunID     uuid.UUID
	Workflow  string
	Timestamp time.Time
	// Labels are the checkpoint's labels (cairn.Checkpoint.Labels), kept
	// in the index entry and the object's metadata. Nil for none.
	Labels map[string]string
	// Lease, if not zero, is the epoch of this store's lease (Claim) the
	// record is written under: the write is conditional on the lease's
	// last write (overriding WriteOptions.Fence), and fails with
	// ErrConflict once the lease was taken over or released.
	Lease uint64
	// Epoch is the lease epoch the record is stamped with
	// (cairn.LeaseEpoch of its metadata; Lease when that is higher), kept
	// in the index entry and the object's metadata: between two regions'
	// writes of a run, the higher epoch wins.
	Epoch uint64
	// Data is the uncompressed record. Write compresses it and does not
	// keep it.
	Data []byte
}

// Condition is the precondition of a run object's write (fencing). The
// zero Condition means none.
type Condition struct {
	// IfMatch: write only over the object with this ETag.
	IfMatch string
	// IfAbsent: write only if the run has no object yet.
	IfAbsent bool
}

// Fence makes the writes of a Write conditional and learns their
// outcome. Its methods are called with the record's run locked against
// this store's other Writes and Deletes of it, so Condition sees the
// outcome of every earlier write of the run made through this store.
// They must not call into this Store.
// Which ETag a write is conditional on is the caller's knowledge (the
// version its copy of the run is based on); Write applies it.
type Fence interface {
	// Condition returns the precondition of the next write of run.
	Condition(run uuid.UUID) Condition
	// Written reports a write of run that the bucket took, with the
	// object's new ETag (whether or not the index commit that follows
	// succeeds: the object is there either way).
	Written(run uuid.UUID, etag string)
}

// WriteOptions configure a Write. Nil means defaults.
type WriteOptions struct {
	// Concurrency bounds the parallel PUTs. 0 means Options.Concurrency.
	Concurrency int
	// Fence, if set, makes each write conditional (see Fence). A write
	// whose condition fails is that record's ErrConflict.
	Fence Fence
	// Committed, if set, is called for each record the index commit
	// listed, with its index (in the records given) and ETag, after the
	// commit and with the run still locked against this store's Deletes
	// of it: a cache updated there cannot be overtaken by a Delete. It
	// must not call into this Store.
	Committed func(i int, etag string)
}

// WriteResult is the outcome of one record of a Write.
type WriteResult struct {
	// ETag is the ETag of the object written, or "" if none was.
	ETag string
	// Err is why the object was not written: ErrConflict when its
	// condition failed, else the bucket's error.
	Err error
}

// Write makes records durable with the store's one write protocol: the
// run objects as parallel PUTs, then one index commit listing those
// written. It returns a result per record, in order, and the commit's
// error. The runs of the records are locked, in this store, for the whole
// Write (so a Delete of one of them waits, and never interleaves with its
// write and commit); waiting for those locks ends with ctx. Records of one
// run in one Write, a nil run, an empty record or one over the codec's
// MaxSize are refused (ErrInvalid, ErrTooLarge) before anything is
// written; an empty Write writes nothing.
//
// Data must be what the store's codec encodes (Codec.EncodeRecord) of a
// checkpoint with that RunID, Workflow, Timestamp and Labels (labels
// breaking the rules of cairn.Labels are ErrInvalid): Write does not
// decode it (that would cost a flush a decode per run), so a record that
// disagrees with its summary is stored as given, and Load and Verify
// report it as corrupt.
//
// A record whose object was written is durable once the returned error
// is nil. When the commit fails, the objects written stay (Load finds
// them; the index does not list them until a later Write of the run, or
// Reindex) and no Committed call is made. A failed PUT fails its record
// alone. With a TTL every entry expires TTL after the Write. The hooks of
// opts run with the runs locked: they must not call into this Store.
func (s *Store) Write(ctx context.Context, recs []Record, opts *WriteOptions) ([]WriteResult, error) {
	var o WriteOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = s.o.Concurrency
	}
	if err := s.checkWrite(ctx, recs); err != nil || len(recs) == 0 {
		return nil, err
	}
	unlock, err := s.lockRuns(ctx, recs)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res, entries := s.putAll(ctx, recs, &o)
	var ops []index.Op
	for i := range recs {
		if res[i].Err == nil {
			entries[i].ETag = res[i].ETag
			ops = append(ops, index.Op{Entry: entries[i]})
		}
	}
	if len(ops) > 0 {
		if err := s.commit(ctx, ops...); err != nil {
			return res, err
		}
	}
	if o.Committed != nil {
		for i := range recs {
			if res[i].Err == nil {
				o.Committed(i, res[i].ETag)
			}
		}
	}
	return res, nil
}

// checkWrite refuses a Write the store cannot take: closed, ended, a nil
// or repeated run, an empty or oversized record, invalid labels, or a
// server or index unsafe to write.
func (s *Store) checkWrite(ctx context.Context, recs []Record) error {
	if err := s.checkWritable(ctx); err != nil {
		return err
	}
	seen := make(map[uuid.UUID]bool, len(recs))
	for _, r := range recs {
		if err := cairn.CheckRunID("write", r.RunID); err != nil {
			return err
		}
		switch {
		case seen[r.RunID]:
			return fmt.Errorf("%w: run %v twice in one Write", cairn.ErrInvalid, r.RunID)
		case len(r.Data) == 0:
			return fmt.Errorf("%w: run %v: an empty record", cairn.ErrInvalid, r.RunID)
		case len(r.Data) > s.codec.MaxSize():
			return fmt.Errorf("%w: run %v: record of %d bytes over the limit of %d", cairn.ErrTooLarge, r.RunID, len(r.Data), s.codec.MaxSize())
		}
		if err := cairn.ValidateLabels(r.Labels); err != nil {
			return fmt.Errorf("run %v: %w", r.RunID, err)
		}
		seen[r.RunID] = true
	}
	if len(recs) == 0 {
		return nil
	}
	return s.writable(ctx)
}

// putAll writes the objects of recs in parallel and returns each one's
// outcome and index entry. The caller holds the runs' locks.
func (s *Store) putAll(ctx context.Context, recs []Record, o *WriteOptions) ([]WriteResult, []index.Entry) {
	res := make([]WriteResult, len(recs))
	entries := make([]index.Entry, len(recs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for i, r := range recs {
		entries[i] = s.entry(r)
		var cond Condition
		switch {
		case r.Lease != 0:
			if cond, res[i].Err = s.leaseCondition(r.RunID, r.Lease); res[i].Err != nil {
				continue
			}
		case o.Fence != nil:
			cond = o.Fence.Condition(r.RunID)
		}
		g.Go(func() error {
			// Large values go to blobs first; a failed blob PUT fails the
			// record, with nothing of it committed.
			stored, err := s.offload(gctx, r.Data)
			switch {
			case err != nil:
				res[i].Err = err
			case r.Lease != 0:
				res[i].ETag, res[i].Err = s.putLeased(gctx, entries[i], stored, cond, r.Lease)
				s.leaseWritten(r.RunID, r.Lease, res[i].ETag, res[i].Err)
			default:
				res[i].ETag, res[i].Err = s.putObject(gctx, entries[i], stored, cond)
			}
			if res[i].Err == nil && o.Fence != nil {
				o.Fence.Written(r.RunID, res[i].ETag)
			}
			return nil
		})
	}
	_ = g.Wait()
	return res, entries
}

// entry returns the index entry of r saved now: with its labels in their
// stored form, and its expiry when the store has a TTL.
func (s *Store) entry(r Record) index.Entry {
	e := index.Entry{RunID: r.RunID, Timestamp: r.Timestamp.UTC(), Workflow: r.Workflow, Size: int64(len(r.Data)),
		Labels: cairn.EncodeLabels(r.Labels), Epoch: max(r.Epoch, r.Lease), Region: s.o.Region}
	if s.o.TTL > 0 {
		e.Expires = s.o.Now().Add(s.o.TTL).UTC()
	}
	return e
}

// lockRuns takes the run locks of recs' runs (see lockStripes).
func (s *Store) lockRuns(ctx context.Context, recs []Record) (unlock func(), err error) {
	stripes := make([]int, 0, min(len(recs), len(s.runLocks)))
	for _, r := range recs {
		stripes = append(stripes, stripe(r.RunID))
	}
	slices.Sort(stripes)
	return s.lockStripes(ctx, slices.Compact(stripes))
}

// Metadata keys of a run object: its summary, so that Reindex can rebuild
// the index from a listing and HEADs.
const (
	metaWorkflow  = "cairn-workflow" // percent-encoded; absent when too long
	metaTimestamp = "cairn-timestamp"
	metaSize      = "cairn-size"
	metaCodec     = "cairn-codec"
	metaExpires   = "cairn-expires"
	metaLabels    = "cairn-labels" // cairn.EncodeLabels' form; absent for none
	metaEpochKey  = "cairn-epoch"  // the record's lease epoch; absent for 0
	metaRegion    = "cairn-region" // the region that wrote it; absent for the default one
)

// metaEpoch returns the epoch a run object's metadata records, 0 when it
// records none or one malformed.
func metaEpoch(meta map[string]string) uint64 {
	n, err := strconv.ParseUint(meta[metaEpochKey], 10, 64)
	if err != nil || n > cairn.MaxEpoch {
		return 0
	}
	return n
}

// maxMetaWorkflow bounds the encoded workflow name in metadata. A longer
// name is left out, and so is one that would take the metadata past S3's
// 2 KB (bucket.MaxMetadataSize) beside the labels (at most
// cairn.MaxLabelsSize, and always kept): Reindex then reads the object's
// body for the summary.
const maxMetaWorkflow = 1024

// objectMetadata returns the metadata of the object of e, whose record is
// size bytes and references blobs distinct blobs: the summary Reindex
// reads back (see entryFromMetadata).
func (s *Store) objectMetadata(e index.Entry, size, blobs int) (map[string]string, error) {
	ts, err := cairn.FormatTimestamp(e.Timestamp)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{metaTimestamp: ts, metaSize: strconv.Itoa(size), metaCodec: "zstd+msgpack"}
	if blobs > 0 {
		meta[metaBlobs] = strconv.Itoa(blobs)
	}
	if !s.codec.Compressed() {
		meta[metaCodec] = "msgpack"
	}
	if !e.Expires.IsZero() {
		meta[metaExpires], _ = cairn.FormatTimestamp(e.Expires)
	}
	if e.Labels != "" {
		meta[metaLabels] = e.Labels
	}
	if e.Epoch > 0 {
		meta[metaEpochKey] = strconv.FormatUint(e.Epoch, 10)
	}
	if e.Region != "" {
		meta[metaRegion] = e.Region
	}
	enc := url.PathEscape(e.Workflow)
	if len(enc) <= maxMetaWorkflow && metadataSize(meta)+metadataSize(map[string]string{metaWorkflow: enc}) <= bucket.MaxMetadataSize {
		meta[metaWorkflow] = enc
	}
	return meta, nil
}

// metadataSize is what meta counts against bucket.MaxMetadataSize.
func metadataSize(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(bucket.MetadataHeaderPrefix) + len(k) + len(v)
	}
	return n
}

// putObject writes the object of a run from its stored record (see
// offload), with the summary e in its metadata, and returns its new ETag.
// A failed condition is ErrConflict. It does not touch the index.
func (s *Store) putObject(ctx context.Context, e index.Entry, rec offloaded, cond Condition) (string, error) {
	meta, err := s.objectMetadata(e, int(e.Size), rec.blobs)
	if err != nil {
		return "", err
	}
	body := s.codec.Compress(nil, rec.rec)
	po := &bucket.PutOptions{Metadata: meta, IfMatch: cond.IfMatch}
	if cond.IfAbsent {
		po.IfNoneMatch = "*"
	}
	etag, err := s.b.Put(ctx, s.runKey(e.RunID), body, po)
	if err == nil {
		s.bytesStored.Add(int64(len(body)))
	}
	return etag, classify(err)
}
