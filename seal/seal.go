// Package seal encrypts a bucket's objects on the client, before they
// leave the process, so that neither the storage provider nor anyone who
// can read the bucket can read the checkpoints in it, and binds each
// object to its key, so that an object copied over another key (another
// run, another index page, another store's prefix) fails to open.
//
// Wrap returns a bucket.Bucket that seals every object it writes and
// opens every object it reads; package durable uses it when
// durable.Options.Keyring is set (and so does package tiered, through its
// durable options, and the CLI's --keyring).
//
// # Format
//
// Each object has a data key of its own: 32 random bytes, fresh for every
// Put. The body is AES-256-GCM under the data key, over the object's
// user metadata (as JSON) followed by the body given, with the object's
// key as associated data. The data key itself is sealed (AES-256-GCM
// under a key derived with HKDF-SHA256 from the keyring key and a random
// salt) with the keyring key's ID and the object's key as associated
// data, and stored in the object's metadata (cairn-seal), with a second
// copy of the user metadata sealed under the data key (cairn-sealed-meta,
// or "-" when it would not fit in S3's 2 KB: Head then reads the body),
// so that Head, which Reindex and Exists use, reads metadata without the
// body.
//
// Compression happens before sealing (durable compresses records; sealed
// bytes do not compress). Nonces never repeat: each data key seals two
// messages with nonces 0 and 1, and each wrapping key (fresh per salt)
// one.
//
// # What is protected, and what is not
//
// Sealed: every body (checkpoints, index logs and snapshots, claims,
// blobs) and every metadata value Cairn writes (workflow names,
// timestamps, labels, sizes, epochs, expiry).
//
// Authenticated: the pairing of body, metadata and key. An object moved to
// another key, a body or metadata swapped between versions or objects, a
// bit flipped, a key ID altered: each is bucket.ErrUnreadable wrapping
// ErrAuth, which package durable reports as cairn.ErrCorrupt. What an
// object's Head returns is bound to that object version's data key.
//
// Not hidden from someone who can list or read the bucket: object keys
// (so run IDs, the index's key layout with its times, blob names, which
// are keyed HMACs and reveal nothing of content but equality), each
// object's size (about its compressed size plus 60 to 2,200 bytes),
// modification times, the number of objects and their pattern of access,
// and the ID of the key that sealed each object. Not protected: deletion
// and rollback of whole objects to an earlier sealed version of the same
// key (the bucket's access control and versioning protect those).
//
// # Rotation
//
// A Keyring has a primary key, which seals, and older keys, which only
// open. To rotate: give every process a keyring whose primary is the new
// key and which still holds the old one (Keyring.Rotate), then run Rekey
// (`cairn rekey`), which reseals each object's data key under the new
// primary without touching its body, so that on servers whose ETag is the
// body's MD5 (S3 without SSE-KMS, MinIO without KMS, the directory and
// memory buckets) every object keeps its ETag and a writer's conditional
// writes carry on. Rekey then verifies that every object opens with the
// primary key alone; after that the old key can be retired
// (Keyring.Retire). Noncurrent versions of a versioned bucket stay sealed
// with the key that wrote them: keep the old key while they may be read.
// Rotation is not the remedy for a leaked key: whoever holds the old key
// and an object's metadata from before the rekey still opens its body.
// Copy the store under a new keyring instead (every object then gets a
// fresh data key).
//
// # Server-side encryption
//
// Sealing and S3's server-side encryption (s3store's SSE options) stack:
// the server encrypts the sealed bytes again at rest under its own key.
// SSE protects against lost disks; sealing also against whoever holds the
// bucket's read permission or the provider's keys. With SSE-KMS the
// server's ETag is not the body's MD5, so a rekeyed object gets a new
// ETag: a fenced writer in another process then sees one write conflict
// (ErrConflict), as if the run were written by another.
package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/cairnstore/cairn/bucket"
)

// Errors of opening sealed objects. Both reach callers inside a
// *bucket.Error that also wraps bucket.ErrUnreadable: reading again will
// not help.
var (
	// ErrAuth: the object fails authentication: damaged, moved or copied
	// from another key, its body and metadata from different writes, or
	// sealed under a different secret with the same key ID.
	ErrAuth = errors.New("seal: object fails authentication")
	// ErrUnknownKey: the object was sealed with a key the keyring does not
	// hold (a retired key, or another keyring's).
	ErrUnknownKey = errors.New("seal: sealed with a key not in the keyring")
	// ErrNotSealed: the object is not sealed (written without a keyring,
	// or its metadata was stripped). It is refused: a reader that took it
	// would let anyone who can write to the bucket plant objects.
	ErrNotSealed = errors.New("seal: object is not sealed")
	// ErrNeedsKeyring: a store opened without a keyring read a sealed
	// object (package durable reports it, inside cairn.ErrCorrupt). Open
	// the store with its keyring.
	ErrNeedsKeyring = errors.New("seal: the object is sealed: open the store with its keyring")
)

// WrongKeyring reports whether err says that an object did not open for
// want of the right keyring (ErrUnknownKey, ErrNotSealed,
// ErrNeedsKeyring), rather than because it is damaged.
func WrongKeyring(err error) bool {
	return errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrNotSealed) || errors.Is(err, ErrNeedsKeyring)
}

const (
	metaSeal       = "cairn-seal"        // "v1.<key ID>.<base64url(salt || sealed data key)>"
	metaSealedMeta = "cairn-sealed-meta" // base64url(metadata sealed under the data key), or "-"
	sealVersion    = "v1."
	bodyMagic      = "CSB1"
	saltSize       = 16
	tagSize        = 16
	sealedKeySize  = KeySize + tagSize
	// maxMetaJSON bounds the metadata JSON inside a body: 2 KiB of
	// printable ASCII (bucket.CheckPut), each byte escaped to at most two
	// (HTML escaping is off), with quotes and separators, fits four times.
	maxMetaJSON = 16 << 10
	// Overhead bounds what sealing adds to a body.
	Overhead = len(bodyMagic) + binary.MaxVarintLen64 + maxMetaJSON + tagSize
)

var (
	nonceBody = make([]byte, 12)
	nonceMeta = append(make([]byte, 11), 1)
)

// Wrap returns b with every object sealed under kr: Put seals, Get and
// Head open, and an object that does not open is refused (ErrAuth,
// ErrUnknownKey, ErrNotSealed inside bucket.ErrUnreadable). Delete and List
// pass through. Get's and Head's Size is the opened body's; List's and
// ListVersions' Sizes are the sealed objects' (about Overhead more). If b is a bucket.Versioned, so is the result, and
// GetVersion opens like Get. b's errors and guarantees (conditional
// writes, ETags) are unchanged otherwise; ETags are the sealed objects'.
func Wrap(b bucket.Bucket, kr *Keyring) bucket.Bucket { return WrapWith(b, kr, nil) }

// Options refine Wrap. Nil means defaults.
type Options struct {
	// HeadReadLimit bounds the body Head reads when an object's metadata
	// did not fit beside its seal (about 1.5 KB of metadata or more, or a
	// seal tampered with to say so): a larger object fails Head with
	// bucket.ErrTooLarge. Default MaxHeadFallback. Set it to the largest
	// object the caller reads (package durable: its Codec's bound).
	HeadReadLimit int64
}

// WrapWith is Wrap with opts.
func WrapWith(b bucket.Bucket, kr *Keyring, opts *Options) bucket.Bucket {
	s := &sealed{b: b, kr: kr, headLimit: MaxHeadFallback}
	if opts != nil && opts.HeadReadLimit > 0 {
		s.headLimit = opts.HeadReadLimit
	}
	if v, ok := b.(bucket.Versioned); ok {
		return &sealedVersioned{sealed: s, v: v}
	}
	return s
}

type sealed struct {
	b         bucket.Bucket
	kr        *Keyring
	headLimit int64 // Options.HeadReadLimit
}

type sealedVersioned struct {
	*sealed
	v bucket.Versioned
}

// String names the wrapped bucket as it names itself (a fmt.Stringer),
// else by its type.
func (s *sealed) String() string {
	if n, ok := s.b.(fmt.Stringer); ok {
		return "sealed " + n.String()
	}
	return fmt.Sprintf("sealed bucket %T", s.b)
}

func failed(op, key string, err error) error {
	return &bucket.Error{Op: op, Key: key, Err: fmt.Errorf("%w: %w", bucket.ErrUnreadable, err)}
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always KeySize here
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

// wrapKey derives the key that seals a data key from a keyring key and a
// salt.
func wrapKey(secret, salt []byte) cipher.AEAD {
	k, err := hkdf.Key(sha256.New, secret, salt, "cairn seal v1 data key", KeySize)
	if err != nil {
		panic(err)
	}
	return gcm(k)
}

func dataKeyAD(id, key string) []byte {
	return []byte("cairn seal v1 data key\x00" + id + "\x00" + key)
}
func bodyAD(key string) []byte { return []byte(bodyMagic + "\x00" + key) }
func metaAD(key string) []byte { return []byte("cairn seal v1 metadata\x00" + key) }

// sealDataKey returns the cairn-seal value of dek for the object key,
// under the keyring key k.
func sealDataKey(k Key, key string, dek []byte) (string, error) {
	buf := make([]byte, saltSize, saltSize+sealedKeySize)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	buf = wrapKey(k.Secret, buf[:saltSize]).Seal(buf, nonceBody, dek, dataKeyAD(k.ID, key))
	return sealVersion + k.ID + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// keyID returns the ID of the key that sealed the object whose metadata
// is meta.
func keyID(meta map[string]string) (id, rest string, err error) {
	v, ok := meta[metaSeal]
	if !ok {
		return "", "", ErrNotSealed
	}
	v, ok = strings.CutPrefix(v, sealVersion)
	if !ok {
		return "", "", fmt.Errorf("%w: unknown seal format", ErrAuth)
	}
	id, rest, ok = strings.Cut(v, ".")
	if !ok || checkID(id) != nil {
		return "", "", fmt.Errorf("%w: malformed seal", ErrAuth)
	}
	return id, rest, nil
}

// openDataKey returns the data key of the object key whose metadata is
// meta, and the ID of the key that sealed it.
func (s *sealed) openDataKey(key string, meta map[string]string) (dek []byte, id string, err error) {
	id, rest, err := keyID(meta)
	if err != nil {
		return nil, "", err
	}
	if !s.kr.Has(id) {
		return nil, id, fmt.Errorf("%w: key %q", ErrUnknownKey, id)
	}
	if base64.RawURLEncoding.DecodedLen(len(rest)) != saltSize+sealedKeySize {
		return nil, id, fmt.Errorf("%w: malformed seal", ErrAuth)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) != saltSize+sealedKeySize {
		return nil, id, fmt.Errorf("%w: malformed seal", ErrAuth)
	}
	dek, err = wrapKey(s.kr.keys[id], raw[:saltSize]).Open(nil, nonceBody, raw[saltSize:], dataKeyAD(id, key))
	if err != nil {
		return nil, id, fmt.Errorf("%w: data key (key %q)", ErrAuth, id)
	}
	return dek, id, nil
}

func metaJSON(meta map[string]string) ([]byte, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(meta); err != nil { // keys sorted: the same metadata, the same bytes
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > maxMetaJSON {
		return nil, fmt.Errorf("%w: %d bytes of metadata as JSON, over %d", bucket.ErrInvalid, len(b), maxMetaJSON)
	}
	return b, nil
}

func parseMeta(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrAuth, err)
	}
	return m, nil
}

// Put seals body and opts.Metadata and stores them at key, with opts'
// conditions. Invalid options are refused as the bucket would.
func (s *sealed) Put(ctx context.Context, key string, body []byte, opts *bucket.PutOptions) (string, error) {
	if err := bucket.CheckKey(key); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	if err := bucket.CheckPut(opts); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	var po bucket.PutOptions
	if opts != nil {
		po = *opts
	}
	mj, err := metaJSON(po.Metadata)
	if err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	aead := gcm(dek)
	plain := make([]byte, 0, binary.MaxVarintLen64+len(mj)+len(body))
	plain = binary.AppendUvarint(plain, uint64(len(mj)))
	plain = append(append(plain, mj...), body...)
	out := make([]byte, len(bodyMagic), len(bodyMagic)+len(plain)+tagSize)
	copy(out, bodyMagic)
	out = aead.Seal(out, nonceBody, plain, bodyAD(key))
	sk, err := sealDataKey(s.kr.key(s.kr.primary), key, dek)
	if err != nil {
		return "", &bucket.Error{Op: "put", Key: key, Err: err}
	}
	po.Metadata = map[string]string{metaSeal: sk, metaSealedMeta: "-"}
	head := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(mj)+tagSize), uint64(len(body)))
	copyMeta := base64.RawURLEncoding.EncodeToString(aead.Seal(nil, nonceMeta, append(head, mj...), metaAD(key)))
	if size(po.Metadata)-1+len(copyMeta) <= bucket.MaxMetadataSize {
		po.Metadata[metaSealedMeta] = copyMeta
	}
	return s.b.Put(ctx, key, out, &po)
}

// size is what meta counts against bucket.MaxMetadataSize.
func size(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(bucket.MetadataHeaderPrefix) + len(k) + len(v)
	}
	return n
}

// open opens a sealed body in place and returns the metadata and body it
// holds.
func (s *sealed) open(key string, meta map[string]string, body []byte) (map[string]string, []byte, error) {
	dek, _, err := s.openDataKey(key, meta)
	if err != nil {
		return nil, nil, err
	}
	return openBody(key, dek, body)
}

// openBody opens, in place, the sealed body of the object key under its
// data key dek, and returns the metadata and body it holds.
func openBody(key string, dek, body []byte) (map[string]string, []byte, error) {
	if len(body) < len(bodyMagic)+tagSize || string(body[:len(bodyMagic)]) != bodyMagic {
		return nil, nil, fmt.Errorf("%w: not a sealed body", ErrAuth)
	}
	plain, err := gcm(dek).Open(body[len(bodyMagic):len(bodyMagic)], nonceBody, body[len(bodyMagic):], bodyAD(key))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: body", ErrAuth)
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || n > maxMetaJSON || n > uint64(len(plain)-w) {
		return nil, nil, fmt.Errorf("%w: metadata length", ErrAuth)
	}
	m, err := parseMeta(plain[w : w+int(n)])
	if err != nil {
		return nil, nil, err
	}
	return m, plain[w+int(n):], nil
}

// Get reads and opens the object at key. opts.MaxSize bounds the opened
// body; the sealed one may be up to Overhead larger.
func (s *sealed) Get(ctx context.Context, key string, opts *bucket.GetOptions) (*bucket.Object, error) {
	return s.get(ctx, "get", key, opts, func(o *bucket.GetOptions) (*bucket.Object, error) { return s.b.Get(ctx, key, o) })
}

func (s *sealed) get(ctx context.Context, op, key string, opts *bucket.GetOptions, get func(*bucket.GetOptions) (*bucket.Object, error)) (*bucket.Object, error) {
	var o bucket.GetOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxSize > 0 {
		o.MaxSize += int64(Overhead)
	}
	obj, err := get(&o)
	if err != nil {
		return nil, err
	}
	meta, body, err := s.open(key, obj.Metadata, obj.Body)
	if err != nil {
		return nil, failed(op, key, err)
	}
	if opts != nil && opts.MaxSize > 0 && int64(len(body)) > opts.MaxSize {
		return nil, &bucket.Error{Op: op, Key: key, Err: fmt.Errorf("%w: %d bytes, over %d", bucket.ErrTooLarge, len(body), opts.MaxSize)}
	}
	obj.Metadata, obj.Body, obj.Size = meta, body, int64(len(body))
	return obj, nil
}

// MaxHeadFallback is the default of Options.HeadReadLimit.
const MaxHeadFallback = 64 << 20

// Head returns the object's info with its opened metadata.
func (s *sealed) Head(ctx context.Context, key string) (*bucket.Info, error) {
	info, err := s.b.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	dek, _, err := s.openDataKey(key, info.Metadata)
	if err != nil {
		return nil, failed("head", key, err)
	}
	v := info.Metadata[metaSealedMeta]
	if v == "-" {
		obj, err := s.Get(ctx, key, &bucket.GetOptions{MaxSize: s.headLimit})
		if err != nil {
			return nil, err
		}
		return &obj.Info, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, failed("head", key, fmt.Errorf("%w: sealed metadata", ErrAuth))
	}
	plain, err := gcm(dek).Open(raw[:0], nonceMeta, raw, metaAD(key))
	if err != nil {
		return nil, failed("head", key, fmt.Errorf("%w: metadata", ErrAuth))
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || n > math.MaxInt64 {
		return nil, failed("head", key, fmt.Errorf("%w: metadata", ErrAuth))
	}
	if info.Metadata, err = parseMeta(plain[w:]); err != nil {
		return nil, failed("head", key, err)
	}
	info.Size = int64(n)
	return info, nil
}

// Delete deletes the object at key.
func (s *sealed) Delete(ctx context.Context, key string) error { return s.b.Delete(ctx, key) }

// List lists keys as the bucket does; Sizes are the sealed objects'.
func (s *sealed) List(ctx context.Context, prefix, startAfter string, limit int) ([]bucket.Info, bool, error) {
	return s.b.List(ctx, prefix, startAfter, limit)
}

// Versioning is the bucket's.
func (v *sealedVersioned) Versioning(ctx context.Context) (bool, error) { return v.v.Versioning(ctx) }

// ListVersions is the bucket's.
func (v *sealedVersioned) ListVersions(ctx context.Context, prefix, keyMarker, versionMarker string, limit int) ([]bucket.Version, string, string, bool, error) {
	return v.v.ListVersions(ctx, prefix, keyMarker, versionMarker, limit)
}

// GetVersion reads and opens one version, as Get does.
func (v *sealedVersioned) GetVersion(ctx context.Context, key, versionID string, opts *bucket.GetOptions) (*bucket.Object, error) {
	return v.get(ctx, "getversion", key, opts, func(o *bucket.GetOptions) (*bucket.Object, error) {
		return v.v.GetVersion(ctx, key, versionID, o)
	})
}

// DeleteVersion is the bucket's.
func (v *sealedVersioned) DeleteVersion(ctx context.Context, key, versionID string) error {
	return v.v.DeleteVersion(ctx, key, versionID)
}

var (
	_ bucket.Bucket    = (*sealed)(nil)
	_ bucket.Versioned = (*sealedVersioned)(nil)
)
