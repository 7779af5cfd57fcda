package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/seal"
)

// ErrIndexLost means the bucket holds run objects but no index: it was
// deleted or never committed. It is never read as "no runs": List and the
// writes fail with it until Reindex rebuilds the index from the objects
// (`cairn reindex`). It wraps index.ErrDamaged, and so cairn.ErrCorrupt.
var ErrIndexLost error = indexLost{}

type indexLost struct{}

func (indexLost) Error() string {
	return "index lost: the run objects have no index; rebuild it from them with Reindex (cairn reindex)"
}

func (indexLost) Is(target error) bool {
	return target == index.ErrDamaged || target == cairn.ErrCorrupt
}

// writable runs the checks every write of run objects or tombstones
// needs first: the server's (CheckServer) and the index's (ensureIndex).
func (s *Store) writable(ctx context.Context) error {
	if err := s.CheckServer(ctx); err != nil {
		return err
	}
	return s.ensureIndex(ctx)
}

// ensureIndex makes sure, once per Store and before its first write, that
// the bucket has an index: it creates one in a bucket with no runs, and
// fails with ErrIndexLost in one whose runs have none. A damaged index is
// no obstacle to writes (commits go on; List waits for a Reindex).
//
// Every writer passes here before it writes a run object, so an object in
// the bucket means its writer saw or made the head first: a bucket listed
// with runs and read again without a head has lost its index, whatever
// other writers are starting at the same time.
func (s *Store) ensureIndex(ctx context.Context) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexOK {
		return nil
	}
	if err := s.checkKeyring(ctx); err != nil {
		return err
	}
	err := s.ix.Present(ctx)
	if errors.Is(err, index.ErrNoIndex) {
		switch err = s.noIndex(ctx); {
		case err == nil:
			err = s.ix.Create(ctx)
		case errors.Is(err, errIndexCreated):
			err = nil
		}
	}
	if err != nil {
		return err
	}
	s.indexOK = true
	return nil
}

// checkKeyring makes sure that this store's keyring (or its lack of one)
// opens the index before it writes: it HEADs the index's head (this
// region's, else the default region's), else a region's marker, objects
// only the index writes. Index objects sealed with another keyring (or
// none) would make the index unreadable to every process that has the
// store's keyring. A head that does not open for want of the right
// keyring (seal.WrongKeyring) makes it fail; other errors are left to the
// writes, and a store without an index has nothing to check (a store
// whose index is lost refuses writes anyway, ErrIndexLost). It costs a
// HEAD or two, and a LIST when no head of these regions exists, once.
func (s *Store) checkKeyring(ctx context.Context) error {
	heads, markers := s.ix.Landmarks()
	if infos, _, err := s.b.List(ctx, markers, "", 1); err == nil && len(infos) > 0 {
		heads = append(heads, infos[0].Key)
	}
	for _, key := range heads {
		info, err := s.b.Head(ctx, key)
		if errors.Is(err, bucket.ErrNotFound) {
			continue
		}
		if err == nil {
			err = s.sealedWithoutKeyring(key, info.Metadata)
		}
		if seal.WrongKeyring(err) {
			return fmt.Errorf("this store's keyring does not open the store's index, so it writes nothing (its writes would be unreadable to the processes that have the right keyring): %w", err)
		}
		return nil
	}
	return nil
}

// errIndexCreated: the index that was absent exists now.
var errIndexCreated = errors.New("durable: index created meanwhile")

// noIndex is called when the index is absent. It returns nil when the
// bucket has no run objects either (a new store), errIndexCreated when it
// has and an index appeared meanwhile (a first writer created it before
// writing the runs listed: read it again), and ErrIndexLost when it has,
// still no index, and one of the first objects (lostEvidence) was written
// by this store's region, or by another more than foreignEvidenceAge ago.
// Younger objects another region wrote are no evidence: their writer made
// its region's index before them, but in its own copy of the bucket, and
// replication may deliver the objects here before that index. Until it
// does, this region lists nothing of them, and its first write creates
// its own index, as in a new store. (So an index lost in every region
// within that time of the last writes is read as empty here until the
// objects are older.)
func (s *Store) noIndex(ctx context.Context) error {
	infos, _, err := s.b.List(ctx, s.runs, "", lostEvidence)
	if err != nil || len(infos) == 0 {
		return err
	}
	switch err := s.ix.Present(ctx); {
	case err == nil:
		return errIndexCreated
	case !errors.Is(err, index.ErrNoIndex):
		return err
	}
	for _, in := range infos {
		info, err := s.b.Head(ctx, in.Key)
		if errors.Is(err, bucket.ErrNotFound) {
			continue // deleted meanwhile
		}
		// Written here, or written elsewhere long enough ago that its
		// index would have arrived with it: evidence of a lost index.
		if err != nil || info.Metadata[metaRegion] == s.o.Region || info.LastModified.Before(s.o.Now().Add(-foreignEvidenceAge)) {
			return ErrIndexLost
		}
	}
	return nil
}

// lostEvidence bounds the run objects noIndex looks at for one this
// region wrote.
const lostEvidence = 16

// foreignEvidenceAge is how old an object another region wrote must be
// to count as evidence of a lost index: replication delivers the index
// objects written beside it well within that.
const foreignEvidenceAge = 15 * time.Minute
