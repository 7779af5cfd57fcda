package durable_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/seal"
)

// review4Keys lists every key of b, sorted.
func review4Keys(t *testing.T, b bucket.Bucket) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		infos, more, err := b.List(context.Background(), "", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			keys = append(keys, in.Key)
		}
		if !more || len(infos) == 0 {
			return keys
		}
		after = infos[len(infos)-1].Key
	}
}

// review4Plant puts body at key in raw, with meta, as anyone with write
// access to the bucket can.
func review4Plant(t *testing.T, raw bucket.Bucket, key string, body []byte, meta map[string]string) {
	t.Helper()
	if _, err := raw.Put(context.Background(), key, body, &bucket.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

// One object planted under index/ by anyone with write access, at a key
// that sorts before index/head and that the index never reads, stops
// every new writer of a sealed store (its first Save refuses, blaming the
// keyring), and Reindex, the recovery the docs point to, refuses too: the
// store takes no writes from a new process until someone finds and
// deletes that object by hand. docs/encryption.md lists what write access
// still allows (deleting objects, rolling one run back); this is neither,
// and the message sends the operator looking for a keyring problem that
// does not exist. The same holds for an unsealed store and an object
// carrying a cairn-seal metadata entry.
//
// checkKeyring HEADs the first object listed under index/, whatever it
// is. It should look at an object the index itself wrote (the head, a
// log or a marker, by name), or ignore keys the index does not use.
func TestReview4DefectPlantedIndexObjectStopsEveryWriter(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	for _, tc := range []struct {
		name string
		kr   *seal.Keyring
		meta map[string]string
	}{
		{"sealed store, plaintext object", kr, nil},
		{"unsealed store, object with seal metadata", nil, map[string]string{"cairn-seal": "v1.x.y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := bucket.NewMem()
			first := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: tc.kr})
			if err := first.Save(ctx, cp(1, t0)); err != nil {
				t.Fatal(err)
			}
			review4Plant(t, raw, "p/index/0-planted", []byte("hello"), tc.meta)

			// A new process, with the store's own keyring (or lack of one).
			next := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: tc.kr})
			if err := next.Save(ctx, cp(2, t0)); err != nil {
				t.Errorf("Save by a process with the right keyring, after one object was planted under index/: %v", err)
			}
			if _, err := next.Reindex(ctx, nil); err != nil {
				t.Errorf("Reindex by a process with the right keyring: %v", err)
			}
		})
	}
}

// A run object that does not open for a reason no keyring can fix (a
// plaintext object planted in a sealed store, or a sealed object whose
// metadata was lost, both seal.ErrNotSealed) makes Reindex refuse the
// whole store, telling the operator to "reindex with the keyring they are
// sealed with". There is no such keyring. Reindex is the one way back from
// a lost index (every write fails with ErrIndexLost until it runs), so one
// such object keeps the whole store unwritable. Before wrongKeyring it was
// reported in Corrupt and left out, as every damaged object is.
//
// Once checkKeyring has found the store's objects open with this keyring,
// ErrNotSealed on a single run object is damage, not a wrong keyring:
// wrongKeyring should count ErrUnknownKey and ErrNeedsKeyring only.
func TestReview4DefectOneUnsealedRunObjectBlocksReindex(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, raw bucket.Bucket, key string)
	}{
		{"planted plaintext", func(t *testing.T, raw bucket.Bucket, key string) {
			// A plain run object, as an unsealed store writes it.
			other := bucket.NewMem()
			o := newStore(t, other, &durable.Options{Prefix: "p", Index: smallIndex})
			c := cp(9, t0)
			if err := o.Save(ctx, c); err != nil {
				t.Fatal(err)
			}
			obj, err := other.Get(ctx, "p/runs/"+c.RunID.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			review4Plant(t, raw, key, obj.Body, obj.Metadata)
		}},
		{"sealed, metadata lost", func(t *testing.T, raw bucket.Bucket, key string) {
			obj, err := raw.Get(ctx, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			review4Plant(t, raw, key, obj.Body, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := bucket.NewMem()
			s := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr})
			for i := 1; i <= 3; i++ {
				if err := s.Save(ctx, cp(i, t0)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			bad := cp(3, t0).RunID
			tc.plant(t, raw, "p/runs/"+bad.String())
			// The index is lost: writes wait for a Reindex.
			for _, k := range review4Keys(t, raw) {
				if strings.HasPrefix(k, "p/index/") {
					if err := raw.Delete(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr})
			if err := r.Save(ctx, cp(4, t0)); !errors.Is(err, durable.ErrIndexLost) {
				t.Fatalf("Save with the index lost: %v, want ErrIndexLost", err)
			}
			rep, err := r.Reindex(ctx, nil)
			if err != nil {
				t.Fatalf("Reindex with the store's keyring refused over one damaged run object: %v", err)
			}
			if _, ok := rep.Corrupt[bad]; !ok || rep.Indexed != 2 {
				t.Errorf("Reindex: %d indexed, corrupt %v; want 2 and %v corrupt", rep.Indexed, rep.Corrupt, bad)
			}
			if err := r.Save(ctx, cp(4, t0)); err != nil {
				t.Errorf("Save after Reindex: %v", err)
			}
		})
	}
}

// A store written only from a named region: its first index object is
// the region's marker (index/log/~regions/<region>), sealed like the rest.
// A process of another region with the wrong keyring, or none, writes
// nothing; one with the right keyring writes.
func TestReview4RegionMarkerFirstKeyringChecked(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	raw := bucket.NewMem()
	eu := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr, Region: "eu"})
	if err := eu.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
	infos, _, err := raw.List(ctx, "p/index/", "", 1)
	if err != nil || len(infos) != 1 || !strings.Contains(infos[0].Key, "~regions/") {
		t.Fatalf("first index object: %v, %v; want the region marker", infos, err)
	}
	before := review4Keys(t, raw)
	for _, wrong := range []*seal.Keyring{nil, sealRing(t, sealKey(t, "k2"))} {
		us := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: wrong, Region: "us"})
		if err := us.Save(ctx, cp(2, t0)); !seal.WrongKeyring(err) {
			t.Errorf("Save from region us with keyring %v: %v, want a keyring error", wrong != nil, err)
		}
		if _, err := us.Claim(ctx, cp(3, t0).RunID, &cairn.ClaimOptions{Owner: "w"}); !seal.WrongKeyring(err) {
			t.Errorf("Claim from region us with keyring %v: %v, want a keyring error", wrong != nil, err)
		}
	}
	if after := review4Keys(t, raw); !slices.Equal(before, after) {
		t.Errorf("objects written by wrong-keyring processes:\nbefore %v\nafter  %v", before, after)
	}
	us := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr, Region: "us"})
	if err := us.Save(ctx, cp(2, t0)); err != nil {
		t.Errorf("Save from region us with the right keyring: %v", err)
	}
}

// Claim (a claim object and a run object) and Delete by a process with
// the wrong keyring, or none, on a run that does not exist yet: nothing is
// written, not even the claim.
func TestReview4ClaimWithWrongKeyringWritesNothing(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	raw := bucket.NewMem()
	good := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: kr})
	if err := good.Save(ctx, cp(1, t0)); err != nil {
		t.Fatal(err)
	}
	before := review4Keys(t, raw)
	for _, wrong := range []*seal.Keyring{nil, sealRing(t, sealKey(t, "k2"))} {
		bad := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: wrong})
		if _, err := bad.Claim(ctx, cp(5, t0).RunID, &cairn.ClaimOptions{Owner: "w"}); !seal.WrongKeyring(err) {
			t.Errorf("Claim of a new run with keyring %v: %v, want a keyring error", wrong != nil, err)
		}
		if err := bad.Delete(ctx, cp(5, t0).RunID); !seal.WrongKeyring(err) {
			t.Errorf("Delete with keyring %v: %v, want a keyring error", wrong != nil, err)
		}
	}
	if after := review4Keys(t, raw); !slices.Equal(before, after) {
		t.Errorf("objects written:\nbefore %v\nafter  %v", before, after)
	}
}

// Compact writes index objects (a manifest, pages, the head) but does not
// pass the keyring check: a process with the wrong keyring, or none, that
// runs Compact (`cairn compact`, or a compaction after a commit) must
// still write nothing.
func TestReview4CompactWithWrongKeyringWritesNothing(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	lazy := &index.Options{PageSize: 4, CompactAfter: 1000}
	for _, tc := range []struct {
		name  string
		wrong *seal.Keyring
	}{{"no keyring", nil}, {"another keyring", sealRing(t, sealKey(t, "k2"))}} {
		t.Run(tc.name, func(t *testing.T) {
			raw := bucket.NewMem()
			good := newStore(t, raw, &durable.Options{Prefix: "p", Index: lazy, Keyring: kr})
			for i := 1; i <= 6; i++ {
				if err := good.Save(ctx, cp(i, t0)); err != nil {
					t.Fatal(err)
				}
			}
			before := review4Keys(t, raw)
			bad := newStore(t, raw, &durable.Options{Prefix: "p", Index: lazy, Keyring: tc.wrong})
			err := bad.Compact(ctx)
			if after := review4Keys(t, raw); !slices.Equal(before, after) {
				t.Errorf("Compact (%v) wrote:\nbefore %v\nafter  %v", err, before, after)
			}
			page, err := good.List(ctx, nil)
			if err != nil || len(page.Runs) != 6 {
				t.Errorf("List by the right keyring: %v, %v", page, err)
			}
		})
	}
}

// After a rotation whose rekey did not finish, an operator retires the old
// key too early. The new-key-only process either refuses to write or
// writes objects the full keyring opens; a plain Reindex with the new key
// alone may rebuild from the index entries it trusts (it reads no run
// object whose entry names it as it is), and a full one, which must read
// the runs still sealed with the retired key, refuses and writes nothing.
// Either way the processes that hold both keys still list and load every
// run.
func TestReview4RetiredKeyAfterIncompleteRekey(t *testing.T) {
	ctx := context.Background()
	k1, k2 := sealKey(t, "k1"), sealKey(t, "k2")
	raw := bucket.NewMem()
	old := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: sealRing(t, k1)})
	for i := 1; i <= 4; i++ {
		if err := old.Save(ctx, cp(i, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}
	both := sealRing(t, k2, k1)
	rot := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: both})
	// Part of the rekey: two runs rewritten under k2 (and the index
	// objects their commits and compactions wrote).
	for i := 1; i <= 2; i++ {
		if err := rot.Save(ctx, cp(i, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rot.Close(ctx); err != nil {
		t.Fatal(err)
	}
	only2 := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: sealRing(t, k2)})
	saveErr := only2.Save(ctx, cp(5, t0))
	_, plainErr := only2.Reindex(ctx, nil)
	before := review4Keys(t, raw)

	if _, err := only2.Reindex(ctx, &durable.ReindexOptions{Full: true}); !seal.WrongKeyring(err) {
		t.Errorf("full Reindex with the new key alone: %v, want a keyring error", err)
	}
	// "reindex refused, nothing written" is not quite so: the barrier
	// Reindex commits before it lists the runs is an index log, sealed
	// with this keyring. It must be the only object written, and the
	// processes with both keys must read it (List below).
	for _, k := range review4Keys(t, raw) {
		if !slices.Contains(before, k) {
			t.Logf("full Reindex refused, but wrote %s", k)
			if !strings.HasPrefix(k, "p/index/log/") {
				t.Errorf("full Reindex with the new key alone wrote %s", k)
			}
		}
	}
	full := newStore(t, raw, &durable.Options{Prefix: "p", Index: smallIndex, Keyring: both})
	want := 4
	if saveErr == nil {
		want = 5
	}
	ids := listIDs(t, full)
	if len(ids) != want {
		t.Errorf("List with both keys: %d runs, want %d (new-key-only Save: %v, Reindex: %v)", len(ids), want, saveErr, plainErr)
	}
	for _, id := range ids {
		if _, err := full.Load(ctx, id); err != nil {
			t.Errorf("Load %v with both keys: %v", id, err)
		}
	}
	t.Logf("new-key-only Save: %v; plain Reindex: %v", saveErr, plainErr)
}

// The keyring check's cost: a process's first write in an existing store
// pays one LIST and one HEAD more than its later writes need, once; a new
// store one LIST per directory (index/, runs/). Measured here so that a
// change to it shows.
func TestReview4KeyringCheckCostsOnce(t *testing.T) {
	ctx := context.Background()
	kr := sealRing(t, sealKey(t, "k1"))
	for _, tc := range []struct {
		name string
		kr   *seal.Keyring
	}{{"sealed", kr}, {"unsealed", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			raw := bucket.NewMem()
			c := newCounting(raw)
			lazy := &index.Options{PageSize: 4, CompactAfter: 1000}
			s := newStore(t, c, &durable.Options{Prefix: "p", Index: lazy, Keyring: tc.kr})
			if err := s.Save(ctx, cp(1, t0)); err != nil {
				t.Fatal(err)
			}
			newStoreFirst := c.take()
			if err := s.Save(ctx, cp(2, t0)); err != nil {
				t.Fatal(err)
			}
			steady := c.take()
			s2 := newStore(t, c, &durable.Options{Prefix: "p", Index: lazy, Keyring: tc.kr})
			if err := s2.Save(ctx, cp(3, t0)); err != nil {
				t.Fatal(err)
			}
			existingFirst := c.take()
			if err := s2.Save(ctx, cp(4, t0)); err != nil {
				t.Fatal(err)
			}
			if again := c.take(); again["LIST"] > steady["LIST"] || again["HEAD"] > steady["HEAD"] {
				t.Errorf("a later Save: %v, more than the steady %v", again, steady)
			}
			t.Logf("first Save in a new store %v; first Save of a new process in an existing store %v; later Saves %v", newStoreFirst, existingFirst, steady)
			if extra := existingFirst["LIST"] + existingFirst["HEAD"] - steady["LIST"] - steady["HEAD"]; extra > 3 {
				t.Errorf("first Save of a new process costs %d LIST/HEAD more than a later one (%v vs %v)", extra, existingFirst, steady)
			}
		})
	}
}
