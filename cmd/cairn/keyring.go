package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/bucket"
	"github.com/cairnstore/cairn/seal"
	"github.com/spf13/cobra"
)

// keyringFile is the keyring file a command opens stores with: --keyring,
// else $CAIRN_KEYRING, else "" (no keyring: the store is not sealed).
func keyringFile(e *env) string {
	if e.flags.keyring != "" {
		return e.flags.keyring
	}
	return e.getenv("CAIRN_KEYRING")
}

// keyringOnce loads the keyring of a command once, however many stores it
// opens (the demo opens several, from several goroutines), so that the
// warning about its mode is printed once.
type keyringOnce struct {
	once sync.Once
	kr   *seal.Keyring
	err  error
}

// storeKeyring returns the keyring the command's stores are sealed with
// (keyringFile), or nil when none is given. Errors name the file and never
// hold a secret.
func storeKeyring(e *env) (*seal.Keyring, error) {
	path := keyringFile(e)
	if path == "" {
		return nil, nil
	}
	if e.keyring == nil { // an env made without newRoot, in tests
		return loadKeyring(e, path)
	}
	e.keyring.once.Do(func() { e.keyring.kr, e.keyring.err = loadKeyring(e, path) })
	return e.keyring.kr, e.keyring.err
}

// loadKeyring reads the keyring file at path (seal.LoadKeyring), warning
// on stderr when group or others may read or write it: it holds secrets.
func loadKeyring(e *env, path string) (*seal.Keyring, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err) // a *fs.PathError naming it
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("keyring %s is a directory, not a keyring file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		fmt.Fprintf(e.stderr, "cairn: warning: keyring %s has mode %04o: group or others may read it (chmod 600 %s)\n", path, perm, path)
	}
	kr, err := seal.LoadKeyring(path)
	if err != nil {
		if errors.As(err, new(*fs.PathError)) {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		return nil, err // "keyring PATH: seal: bad keyring: ..."
	}
	return kr, nil
}

// keyringHint returns a line that says what to do about err when a store
// refused to open an object for a reason of its keyring, or "": sealed
// with a key the keyring lacks, not sealed while a keyring is given,
// failing authentication, or (no keyring given) damaged in a store that
// turns out to be sealed. url is the store's.
func keyringHint(ctx context.Context, e *env, url string, err error) string {
	errs := []error{err}
	var re *reportError
	if errors.As(err, &re) {
		errs = append(errs, re.causes...)
	}
	has := func(target error) bool {
		return slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, target) })
	}
	switch {
	case err == nil:
		return ""
	case has(seal.ErrUnknownKey):
		return "the store holds objects sealed with a key that the keyring lacks (a retired key, or another keyring's): give the keyring that holds it with --keyring FILE or $CAIRN_KEYRING"
	case has(seal.ErrNotSealed):
		return "the store holds objects that are not sealed (written without a keyring): open an unsealed store without --keyring and $CAIRN_KEYRING"
	case has(seal.ErrAuth):
		return "an object fails authentication under the keyring: either it was damaged or moved, or the keyring is the wrong one (a key of the same ID with another secret): check --keyring"
	case keyringFile(e) == "" && (has(cairn.ErrCorrupt) || has(bucket.ErrUnreadable)) && storeSealed(ctx, url):
		return "the store is sealed: give its keyring with --keyring FILE or $CAIRN_KEYRING"
	}
	return ""
}

// storeSealed reports whether an object of the store at url, read without
// a keyring, turns out to be sealed: it opens the bucket read-only and
// tries one object with a keyring of a throwaway key, which any sealed
// object refuses with seal.ErrUnknownKey (and an unsealed one with
// seal.ErrNotSealed). Any failure to tell is false.
func storeSealed(ctx context.Context, url string) bool {
	ob, err := bucket.OpenURL(ctx, url, &bucket.OpenOptions{ReadOnly: true})
	if err != nil {
		return false
	}
	prefix := ob.Prefix
	if prefix != "" {
		prefix += "/"
	}
	infos, _, err := ob.Bucket.List(ctx, prefix, "", 1)
	if err != nil || len(infos) == 0 {
		return false
	}
	k, err := seal.GenerateKey("probe")
	if err != nil {
		return false
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		return false
	}
	_, err = seal.Wrap(ob.Bucket, kr).Head(ctx, infos[0].Key)
	return errors.Is(err, seal.ErrUnknownKey)
}

// reportError is a command's failure for problems it listed on stdout
// (verify's, rekey's): its message, and the problems' errors, which
// keyringHint reads and which are not in its chain, so that it maps to
// exit 1 and reads as its message alone whatever the problems were.
type reportError struct {
	msg    string
	causes []error
}

func (e *reportError) Error() string { return e.msg }

// newKeyID returns the ID of a new key: the UTC date and a random suffix,
// such as 20260213-9f3a, which sorts by date and is valid for seal.
func newKeyID() string {
	var b [2]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
}

func newKeyringCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "create, rotate and inspect the keyring files that seal a store",
		Long: "A keyring file (JSON, mode 0600) holds the keys that seal a store's objects on the client:\n" +
			"its primary key seals from now on, the older ones still open what they sealed. Give it to\n" +
			"every command with --keyring FILE or $CAIRN_KEYRING. Secrets are never printed.\n\n" +
			"To rotate: cairn keyring rotate FILE; give every writer the new file; cairn rekey; then\n" +
			"cairn keyring retire FILE OLD_ID (see cairn rekey --help).",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, "keyring command", args[0])
		},
	}
	var newID, rotateID string
	newCmd := &cobra.Command{
		Use:   "new FILE",
		Short: "write a new keyring of one generated key",
		Long: "Write a new keyring file of one key generated from the system's random source, with mode\n" +
			"0600. An existing file is never overwritten. --id names the key (1 to 32 of a-z, 0-9 and -;\n" +
			"default the UTC date and a random suffix, such as 20260213-9f3a).",
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runKeyringNew(e, args[0], newID) },
	}
	newCmd.Flags().StringVar(&newID, "id", "", "the new key's ID (default the UTC date and a random suffix)")
	rotateCmd := &cobra.Command{
		Use:   "rotate FILE",
		Short: "add a new primary key, keeping the old ones",
		Long: "Add a newly generated key to the keyring file as its primary, keeping the older keys so that\n" +
			"what they sealed still opens. The file is replaced at once (a new file renamed over it, mode\n" +
			"0600). Then give every writer the new file and run cairn rekey.",
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runKeyringRotate(e, args[0], rotateID) },
	}
	rotateCmd.Flags().StringVar(&rotateID, "id", "", "the new key's ID (default the UTC date and a random suffix)")
	retireCmd := &cobra.Command{
		Use:   "retire FILE ID",
		Short: "remove an old key from the keyring",
		Long: "Remove the key ID, which must not be the primary, from the keyring file (replaced at once,\n" +
			"mode 0600). Retire a key only once cairn rekey has verified the store: what it alone sealed\n" +
			"no longer opens. Keep a copy while noncurrent versions of a versioned bucket may be read.",
		Args: exactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error { return runKeyringRetire(e, args[0], args[1]) },
	}
	showCmd := &cobra.Command{
		Use:   "show FILE",
		Short: "print the IDs of a keyring's keys, never their secrets",
		Args:  exactArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return runKeyringShow(e, args[0]) },
	}
	for _, c := range []*cobra.Command{newCmd, retireCmd, rotateCmd} {
		c.Annotations = map[string]string{annotationNoJSON: "yes"}
	}
	cmd.AddCommand(newCmd, retireCmd, rotateCmd, showCmd)
	return cmd
}

// runKeyringNew writes a new keyring of one key to path, which must not
// exist.
func runKeyringNew(e *env, path, id string) error {
	if id == "" {
		id = newKeyID()
	}
	k, err := seal.GenerateKey(id)
	if err != nil {
		return usagef("--id: %v", err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		return err
	}
	data, err := kr.Export()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyring %s exists already: not overwritten (cairn keyring rotate adds a key to it)", path)
	}
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := writeSynced(f, data); err != nil {
		os.Remove(path)
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	fmt.Fprintf(e.stdout, "wrote keyring %s with key %s (primary)\n", path, id)
	return nil
}

// runKeyringRotate adds a new primary key to the keyring at path.
func runKeyringRotate(e *env, path, id string) error {
	kr, err := loadKeyring(e, path)
	if err != nil {
		return err
	}
	if id == "" {
		id = newKeyID()
	}
	k, err := seal.GenerateKey(id)
	if err != nil {
		return usagef("--id: %v", err)
	}
	if kr.Has(id) {
		return usagef("--id %s: the keyring %s holds a key %s already", id, path, id)
	}
	old := kr.Primary()
	next, err := kr.Rotate(k)
	if err != nil {
		return err
	}
	if err := replaceKeyring(path, next); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rotated keyring %s: primary %s (was %s)\n", path, id, old)
	return nil
}

// runKeyringRetire removes the key id from the keyring at path.
func runKeyringRetire(e *env, path, id string) error {
	kr, err := loadKeyring(e, path)
	if err != nil {
		return err
	}
	switch {
	case id == kr.Primary():
		return usagef("key %s is the primary of %s: rotate first, then rekey, then retire it", id, path)
	case !kr.Has(id):
		return usagef("keyring %s has no key %s (it has %v)", path, quoteShort(id), kr.IDs())
	}
	next, err := kr.Retire(id)
	if err != nil {
		return err
	}
	if err := replaceKeyring(path, next); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "retired key %s from keyring %s\n", id, path)
	return nil
}

// keyringJSON is what keyring show --json prints: the keys' IDs, the
// primary first, and which is the primary. Never a secret.
type keyringJSON struct {
	File    string           `json:"file"`
	Primary string           `json:"primary"`
	Keys    []keyringKeyJSON `json:"keys"`
}

type keyringKeyJSON struct {
	ID      string `json:"id"`
	Primary bool   `json:"primary"`
}

// runKeyringShow prints the IDs of the keys of the keyring at path.
func runKeyringShow(e *env, path string) error {
	kr, err := loadKeyring(e, path)
	if err != nil {
		return err
	}
	doc := keyringJSON{File: path, Primary: kr.Primary(), Keys: []keyringKeyJSON{}}
	for _, id := range kr.IDs() {
		doc.Keys = append(doc.Keys, keyringKeyJSON{ID: id, Primary: id == kr.Primary()})
	}
	if e.flags.json {
		return printJSON(e.stdout, doc)
	}
	fmt.Fprintf(e.stdout, "keyring %s: %d %s\n", path, len(doc.Keys), plural(len(doc.Keys), "key", "keys"))
	for _, k := range doc.Keys {
		role := "opens only"
		if k.Primary {
			role = "primary: seals and opens"
		}
		fmt.Fprintf(e.stdout, "  %-32s  %s\n", k.ID, role)
	}
	return nil
}

// replaceKeyring writes kr over the keyring file at path at once: a new
// file of mode 0600 beside it, synced, renamed over it. A failure leaves
// the old file as it was. A path through symbolic links replaces the file
// they lead to, in its own directory, so that whoever reads the file
// through another link sees the new keyring. Two rotations of one file at
// once are not serialized: run one at a time.
func replaceKeyring(path string, kr *seal.Keyring) error {
	data, err := kr.Export()
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	if err := writeSynced(f, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("keyring %s: %w", path, err)
	}
	return nil
}

// writeSynced writes data and a newline to f, syncs and closes it.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
