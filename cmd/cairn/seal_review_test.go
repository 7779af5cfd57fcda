package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Review (holds): no command prints a secret of any keyring it was given,
// on stdout or stderr, with --debug and --json, through success and the
// failures of a wrong or stale keyring; and rekey with a keyring that
// lacks the key that sealed the store exits 1, leaving the store readable
// with the right keyring.
func TestReviewSecretsNeverPrinted(t *testing.T) {
	records, _ := sealedRecords(t, 4)
	kr := newKeyringFile(t, "first")
	before := copyFile(t, kr) // the keyring before rotation
	stranger := newKeyringFile(t, "stranger")
	store := "file://" + t.TempDir()
	type step struct {
		args []string
		code int // -1: any
	}
	steps := []step{
		{[]string{"import", records, "--store", store, "--keyring", kr, "--debug"}, 0},
		{[]string{"keyring", "rotate", kr, "--id", "second", "--debug"}, 0},
		{[]string{"keyring", "show", kr, "--json", "--debug"}, 0},
		{[]string{"keyring", "show", kr}, 0},
		{[]string{"ls", "--store", store, "--keyring", kr, "--json", "--debug"}, 0},
		{[]string{"rekey", "--store", store, "--keyring", stranger, "--json", "--debug"}, 1},
		{[]string{"rekey", "--store", store, "--keyring", stranger}, 1},
		{[]string{"ls", "--store", store, "--keyring", stranger, "--debug"}, -1},
		{[]string{"verify", "--store", store, "--keyring", stranger, "--json"}, -1},
		{[]string{"rekey", "--store", store, "--keyring", kr, "--json", "--debug"}, 0},
		{[]string{"keyring", "retire", kr, "first", "--debug"}, 0},
		{[]string{"ls", "--store", store, "--keyring", before, "--debug"}, -1},
		{[]string{"verify", "--store", store, "--keyring", kr, "--json", "--debug"}, 0},
		{[]string{"export", "--store", store, "--keyring", kr, "--out", filepath.Join(t.TempDir(), "out.jsonl"), "--debug"}, 0},
	}
	var secrets []string
	for _, f := range []string{before, stranger} {
		secrets = append(secrets, keyringSecrets(t, f)...)
	}
	for _, s := range steps {
		stdout, stderr, code := cairnEnv(t, nil, s.args...)
		if s.code >= 0 && code != s.code {
			t.Errorf("cairn %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), code, s.code, stdout, stderr)
		}
		cur := append(append([]string(nil), secrets...), keyringSecrets(t, kr)...)
		for _, sec := range cur {
			if strings.Contains(stdout, sec) || strings.Contains(stderr, sec) {
				t.Errorf("cairn %s printed a secret", strings.Join(s.args, " "))
			}
		}
	}
	if got := keyIDs(showKeyring(t, kr)); got != "second*" {
		t.Errorf("keyring after rotate and retire: %s, want second* alone", got)
	}
}

// Review: `cairn keyring rotate` through a symbolic link (a keyring kept
// in a secrets directory and linked from a config path, as secret
// mounts do) replaces the link with a regular file: the file the link
// pointed to, which other processes read, never gets the new key, and
// nothing says so.
func TestReviewRotateThroughSymlink(t *testing.T) {
	target := newKeyringFile(t, "first")
	link := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symlinks here:", err)
	}
	stdout, stderr, code := cairnEnv(t, nil, "keyring", "rotate", link, "--id", "second")
	if code != 0 {
		return // refusing is fine: nothing is split
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	viaTarget := keyIDs(showKeyring(t, target))
	if fi.Mode()&os.ModeSymlink == 0 || !strings.Contains(viaTarget, "second") {
		t.Errorf("rotate through a symlink (stdout %q, stderr %q): link is now mode %v, and the file it pointed to has keys %s, without the new primary", stdout, stderr, fi.Mode(), viaTarget)
	}
}
