package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/seal"
	"github.com/google/uuid"
)

// The tests of --keyring, cairn keyring and sealed stores, run in this
// process.

// cairnEnv runs a command line in this process with the environment vars
// (nothing else is set) and returns stdout, stderr and the exit code.
func cairnEnv(t *testing.T, vars map[string]string, args ...string) (string, string, int) {
	t.Helper()
	return cairnCtx(context.Background(), t, vars, nil, args...)
}

// cairnCtx is cairnEnv with the command's context ctx and, if set, the
// rekey progress hook.
func cairnCtx(ctx context.Context, t *testing.T, vars map[string]string, rekeyProgress func(done, total int), args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }, rekeyProgress: rekeyProgress}
	code := run(ctx, e, args)
	return stdout.String(), stderr.String(), code
}

// cairnOK runs a command line that must succeed with nothing on stderr,
// and returns stdout.
func cairnOK(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := cairnEnv(t, nil, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// newKeyringFile writes a new keyring of one key with id in a temporary
// directory (cairn keyring new) and returns its path.
func newKeyringFile(t *testing.T, id string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), id+".json")
	cairnOK(t, "keyring", "new", path, "--id", id)
	return path
}

// keyringSecrets returns the secrets of the keyring file at path, as the
// file spells them (base64) and as the standard and URL encodings of
// their bytes would.
func keyringSecrets(t *testing.T, path string) []string {
	t.Helper()
	var f struct {
		Keys []struct {
			Secret []byte `json:"secret"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(must(os.ReadFile(path)), &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range f.Keys {
		out = append(out, base64.StdEncoding.EncodeToString(k.Secret), base64.RawURLEncoding.EncodeToString(k.Secret), fmt.Sprintf("%x", k.Secret))
	}
	return out
}

// showKeyring returns keyring show --json of path.
func showKeyring(t *testing.T, path string) keyringJSON {
	t.Helper()
	out := cairnOK(t, "keyring", "show", "--json", path)
	for _, s := range keyringSecrets(t, path) {
		if strings.Contains(out, s) {
			t.Fatalf("keyring show printed a secret:\n%s", out)
		}
	}
	var doc keyringJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("keyring show --json: %v\n%s", err, out)
	}
	return doc
}

func keyIDs(doc keyringJSON) string {
	var ids []string
	for _, k := range doc.Keys {
		id := k.ID
		if k.Primary {
			id += "*"
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, " ")
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// keyring new writes a keyring of one key, mode 0600, with a dated ID by
// default, and never overwrites; rotate adds a primary and keeps the old
// keys; retire removes an old key and refuses the primary; show prints
// IDs, never secrets. The keyrings they write load (seal.LoadKeyring).
func TestKeyringCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "k.json")

	out := cairnOK(t, "keyring", "new", path)
	doc := showKeyring(t, path)
	if len(doc.Keys) != 1 || !doc.Keys[0].Primary || doc.Primary != doc.Keys[0].ID {
		t.Fatalf("new keyring: %+v", doc)
	}
	first := doc.Primary
	if !regexp.MustCompile(`^\d{8}-[0-9a-f]{4}$`).MatchString(first) || !strings.HasPrefix(first, time.Now().UTC().Format("2006")) {
		t.Errorf("default key ID %q: want the UTC date and a random suffix", first)
	}
	if out != "wrote keyring "+path+" with key "+first+" (primary)\n" {
		t.Errorf("keyring new printed %q", out)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("new keyring has mode %04o, want 0600", m)
	}
	before := must(os.ReadFile(path))
	_, stderr, code := cairnEnv(t, nil, "keyring", "new", path, "--id", "other")
	if code != exitFailure || !strings.Contains(stderr, path) || !strings.Contains(stderr, "exists already") {
		t.Errorf("keyring new over a file: exit %d, %q", code, stderr)
	}
	if !bytes.Equal(before, must(os.ReadFile(path))) {
		t.Error("keyring new changed an existing file")
	}
	for _, bad := range []string{"Upper", "has space", strings.Repeat("a", 33)} {
		p := filepath.Join(dir, "bad.json")
		if _, stderr, code := cairnEnv(t, nil, "keyring", "new", p, "--id", bad); code != exitUsage || !strings.Contains(stderr, "--id") {
			t.Errorf("keyring new --id %q: exit %d, %q; want a usage error", bad, code, stderr)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("keyring new --id %q wrote a file", bad)
		}
	}

	// Rotate over a file others may read: a warning, and the result is 0600.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cairnEnv(t, nil, "keyring", "rotate", path, "--id", "k2")
	if code != 0 || stdout != "rotated keyring "+path+": primary k2 (was "+first+")\n" {
		t.Fatalf("keyring rotate: exit %d, %q, %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "warning: keyring "+path+" has mode 0644") {
		t.Errorf("rotate of a 0644 keyring: stderr %q, want a warning", stderr)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("rotated keyring has mode %04o, want 0600", m)
	}
	if got := keyIDs(showKeyring(t, path)); got != "k2* "+first {
		t.Errorf("after rotate: keys %s", got)
	}
	if ents := must(os.ReadDir(dir)); len(ents) != 1 {
		t.Errorf("rotate left files behind: %v", ents)
	}
	if _, stderr, code := cairnEnv(t, nil, "keyring", "rotate", path, "--id", first); code != exitUsage || !strings.Contains(stderr, "holds a key "+first) {
		t.Errorf("rotate to an ID the keyring holds: exit %d, %q", code, stderr)
	}
	cairnOK(t, "keyring", "rotate", path, "--id", "k3")
	kr, err := seal.LoadKeyring(path)
	if err != nil || kr.Primary() != "k3" || strings.Join(kr.IDs(), " ") != "k3 k2 "+first {
		t.Fatalf("rotated keyring loads as %v, %v", kr, err)
	}

	// Retire.
	if _, stderr, code := cairnEnv(t, nil, "keyring", "retire", path, "k3"); code != exitUsage || !strings.Contains(stderr, "primary") {
		t.Errorf("retire the primary: exit %d, %q", code, stderr)
	}
	if _, stderr, code := cairnEnv(t, nil, "keyring", "retire", path, "nope"); code != exitUsage || !strings.Contains(stderr, "no key") {
		t.Errorf("retire a key not there: exit %d, %q", code, stderr)
	}
	if out := cairnOK(t, "keyring", "retire", path, first); out != "retired key "+first+" from keyring "+path+"\n" {
		t.Errorf("keyring retire printed %q", out)
	}
	if got := keyIDs(showKeyring(t, path)); got != "k3* k2" {
		t.Errorf("after retire: keys %s", got)
	}

	// Show as text: IDs and which is the primary, no secret.
	text := cairnOK(t, "keyring", "show", path)
	if !regexp.MustCompile(`(?m)^keyring .*: 2 keys\n\s+k3\s+primary: seals and opens\n\s+k2\s+opens only\n$`).MatchString(text) {
		t.Errorf("keyring show:\n%s", text)
	}
	for _, s := range keyringSecrets(t, path) {
		if strings.Contains(text, s) {
			t.Fatalf("keyring show printed a secret:\n%s", text)
		}
	}
}

// A keyring file that is missing, malformed or of a bad key fails every
// command that opens a store, with an error naming the file and no
// secret; one that group or others may read is used, with a warning.
func TestKeyringFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := "file://" + t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, stderr, code := cairnEnv(t, nil, "ls", "--store", store, "--keyring", missing); code != exitFailure || !strings.Contains(stderr, missing) {
		t.Errorf("a missing keyring: exit %d, %q", code, stderr)
	}
	short := filepath.Join(dir, "short.json")
	secret := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	if err := os.WriteFile(short, []byte(`{"primary":"a","keys":[{"id":"a","secret":"`+secret+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json "+secret), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{short, garbage} {
		for _, args := range [][]string{{"ls", "--store", store, "--keyring", path}, {"keyring", "show", path}, {"rekey", "--store", store, "--keyring", path}} {
			_, stderr, code := cairnEnv(t, nil, args...)
			if code != exitFailure || !strings.Contains(stderr, path) || !strings.Contains(stderr, "bad keyring") {
				t.Errorf("cairn %v: exit %d, %q; want a failure naming the file", args, code, stderr)
			}
			if strings.Contains(stderr, secret) || strings.Contains(stderr, "sixteen") {
				t.Errorf("cairn %v printed the secret: %q", args, stderr)
			}
		}
	}
	open := newKeyringFile(t, "open")
	if err := os.Chmod(open, 0o640); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cairnEnv(t, nil, "ls", "--store", store, "--keyring", open)
	if code != 0 || stderr != "cairn: warning: keyring "+open+" has mode 0640: group or others may read it (chmod 600 "+open+")\n" {
		t.Errorf("a keyring of mode 0640: exit %d, %q, %q; want it used, with one warning", code, stdout, stderr)
	}
}

// sealedRecords returns JSON lines of n runs of workflow "sealed-wf"
// whose state holds a marker string, and their IDs.
func sealedRecords(t *testing.T, n int) (string, []uuid.UUID) {
	t.Helper()
	var b strings.Builder
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte("sealed-"+fmt.Sprint(i)))
		rec, err := cairn.EncodeJSON(&cairn.Checkpoint{WorkflowName: "sealed-wf", RunID: ids[i],
			Timestamp:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
			State:         map[string]any{"note": "plaintext-marker-of-the-state", "i": int64(i)},
			PendingEvents: []cairn.Event{}, Metadata: map[string]any{"owner": "plaintext-marker-of-metadata"}})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(rec)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// rawContains reports which of words appear in any file under dir.
func rawContains(t *testing.T, dir string, words ...string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, w := range words {
			if bytes.Contains(data, []byte(w)) {
				found = append(found, w+" in "+path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

var plaintext = []string{"sealed-wf", "plaintext-marker-of-the-state", "plaintext-marker-of-metadata"}

// A store written with a keyring holds no plaintext of its runs, reads
// with the keyring (--keyring, or $CAIRN_KEYRING; the flag wins), and is
// refused without it or with another keyring, with a hint that names
// --keyring. An unsealed store opened with a keyring gets a hint too.
func TestSealedStoreNeedsItsKeyring(t *testing.T) {
	t.Parallel()
	records, ids := sealedRecords(t, 5)
	kr := newKeyringFile(t, "right")
	other := newKeyringFile(t, "other")
	dir := t.TempDir()
	store := "file://" + dir
	if out := cairnOK(t, "import", records, "--store", store, "--keyring", kr); out != "imported 5 runs\n" {
		t.Fatalf("import: %q", out)
	}
	if found := rawContains(t, dir, plaintext...); len(found) > 0 {
		t.Errorf("the sealed store holds plaintext: %v", found)
	}
	// The same records in a store without a keyring do show: the check
	// above can fail.
	plainDir := t.TempDir()
	cairnOK(t, "import", records, "--store", "file://"+plainDir)
	if found := rawContains(t, plainDir, plaintext...); len(found) == 0 {
		t.Fatal("an unsealed store shows none of the plaintext: the check proves nothing")
	}

	want := cairnOK(t, "show", ids[3].String(), "--store", "file://"+plainDir)
	if got := cairnOK(t, "show", ids[3].String(), "--store", store, "--keyring", kr); got != want {
		t.Errorf("show with the keyring:\n%s\nwant\n%s", got, want)
	}
	if got, stderr, code := cairnEnv(t, map[string]string{"CAIRN_KEYRING": kr}, "show", ids[3].String(), "--store", store); code != 0 || got != want {
		t.Errorf("show with $CAIRN_KEYRING: exit %d, %q", code, stderr)
	}
	if got, stderr, code := cairnEnv(t, map[string]string{"CAIRN_KEYRING": other}, "show", ids[3].String(), "--store", store, "--keyring", kr); code != 0 || got != want {
		t.Errorf("show with --keyring over a wrong $CAIRN_KEYRING: exit %d, %q", code, stderr)
	}

	sealedHint := regexp.QuoteMeta("hint: the store is sealed: give its keyring with --keyring FILE")
	lacksHint := regexp.QuoteMeta("hint: the store holds objects sealed with a key that the keyring lacks") + `.*--keyring`
	notSealedHint := regexp.QuoteMeta("hint: the store holds objects that are not sealed") + `.*--keyring`
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		hint string
	}{
		{"ls without a keyring", nil, []string{"ls", "--store", store}, sealedHint},
		{"show without a keyring", nil, []string{"show", ids[0].String(), "--store", store}, sealedHint},
		{"verify without a keyring", nil, []string{"verify", "--store", store}, sealedHint},
		{"export without a keyring", nil, []string{"export", "--store", store}, sealedHint},
		{"ls with another keyring", nil, []string{"ls", "--store", store, "--keyring", other}, lacksHint},
		{"show with another keyring", nil, []string{"show", ids[0].String(), "--store", store, "--keyring", other}, lacksHint},
		{"verify with another keyring", nil, []string{"verify", "--store", store, "--keyring", other}, lacksHint},
		{"ls with another $CAIRN_KEYRING", map[string]string{"CAIRN_KEYRING": other}, []string{"ls", "--store", store}, lacksHint},
		{"ls of an unsealed store with a keyring", nil, []string{"ls", "--store", "file://" + plainDir, "--keyring", kr}, notSealedHint},
		{"verify of an unsealed store with a keyring", nil, []string{"verify", "--store", "file://" + plainDir, "--keyring", kr}, notSealedHint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cairnEnv(t, tc.vars, tc.args...)
			if code != exitFailure {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if !regexp.MustCompile(`^cairn \w+: hint: `).MatchString(lines[len(lines)-1]) || !regexp.MustCompile(tc.hint).MatchString(lines[len(lines)-1]) {
				t.Errorf("stderr %q: want its last line to match %q", stderr, tc.hint)
			}
			for _, s := range append(keyringSecrets(t, kr), keyringSecrets(t, other)...) {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("a secret printed: %s%s", stdout, stderr)
				}
			}
		})
	}
	// A store that is damaged, not sealed, gets no keyring hint.
	if _, stderr, _ := cairnEnv(t, nil, "show", absentRun, "--store", "file://"+plainDir); strings.Contains(stderr, "hint") {
		t.Errorf("a run not found got a hint: %q", stderr)
	}
}

// With --keyring, export of a sealed store writes plain Blazen records,
// readable without any keyring, the same as the unsealed store's; import
// into a sealed store seals them.
func TestSealedExportImport(t *testing.T) {
	t.Parallel()
	records, ids := sealedRecords(t, 20)
	kr := newKeyringFile(t, "k1")
	plain := "file://" + t.TempDir()
	cairnOK(t, "import", records, "--store", plain)
	want := cairnOK(t, "export", "--store", plain)

	// Import into a sealed store: sealed on disk.
	dir := t.TempDir()
	sealedStore := "file://" + dir
	cairnOK(t, "import", records, "--store", sealedStore, "--keyring", kr)
	if found := rawContains(t, dir, plaintext...); len(found) > 0 {
		t.Errorf("import into a sealed store left plaintext: %v", found)
	}

	// Export of the sealed store: plain records, the same bytes.
	got := cairnOK(t, "export", "--store", sealedStore, "--keyring", kr)
	if got != want {
		t.Fatalf("export of the sealed store differs from the unsealed one's:\n%s\nwant\n%s", got, want)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != len(ids) {
		t.Fatalf("exported %d lines, want %d", len(lines), len(ids))
	}
	for _, l := range lines {
		cp, err := cairn.DefaultCodec().DecodeRecord([]byte(l))
		if err != nil || cp.WorkflowName != "sealed-wf" || cp.State["note"] != "plaintext-marker-of-the-state" {
			t.Fatalf("exported line does not read without a keyring: %v, %q", err, l)
		}
	}
	// Blazen MessagePack records too.
	out := t.TempDir()
	cairnOK(t, "export", "--format", "msgpack", "--out", out, "--store", sealedStore, "--keyring", kr)
	for _, id := range ids {
		rec, err := os.ReadFile(filepath.Join(out, id.String()+".msgpack"))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := cairn.DefaultCodec().DecodeRecord(rec)
		if err != nil || cp.RunID != id || cp.Metadata["owner"] != "plaintext-marker-of-metadata" {
			t.Fatalf("exported record of %s does not read without a keyring: %v", id, err)
		}
	}

	// The export imported into another sealed store, under another
	// keyring: sealed, and the same runs.
	exported := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(exported, []byte(got), 0o600); err != nil {
		t.Fatal(err)
	}
	kr2 := newKeyringFile(t, "k2")
	dir2 := t.TempDir()
	cairnOK(t, "import", exported, "--store", "file://"+dir2, "--keyring", kr2)
	if found := rawContains(t, dir2, plaintext...); len(found) > 0 {
		t.Errorf("import of an export into a sealed store left plaintext: %v", found)
	}
	if again := cairnOK(t, "export", "--store", "file://"+dir2, "--keyring", kr2); again != want {
		t.Errorf("export after the round trip differs:\n%s\nwant\n%s", again, want)
	}
}

// The demo on a sealed store: its worker processes seal with the same
// keyring (the flag reaches them), the demo verifies, and the directory
// holds no plain record.
func TestDemoSealed(t *testing.T) {
	t.Parallel()
	kr := newKeyringFile(t, "k1")
	dir := t.TempDir()
	stdout, stderr, code := runDemoBinary(t, nil, "demo", "--runs", "20", "--work", "2ms", "--store", "file://"+dir, "--keyring", kr, "--offload", "on")
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Verified: all 20 runs") {
		t.Fatalf("the demo did not verify:\n%s", stdout)
	}
	if found := rawContains(t, filepath.Join(dir, "runs"), "workflow_name", "demo-"); len(found) > 0 {
		t.Fatalf("plaintext in the sealed store: %v", found)
	}
	if bad := unverified(t, dir, kr); len(bad) != 0 {
		t.Fatalf("objects the keyring does not open: %v", bad)
	}
}
