package bucket_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cairnstore/cairn/bucket"
)

// A parameter name that may be a secret is never repeated, whatever the
// scheme; one that looks like a parameter name is, to say what is wrong.
func TestOpenURLNeverRepeatsSecretNames(t *testing.T) {
	ctx := context.Background()
	const canary = "wJalrXUtnFEMI_K7MDENG"
	bucket.Register("zzsecret", bucket.Scheme{Open: func(context.Context, *url.URL, *bucket.OpenOptions) (*bucket.Opened, error) {
		return &bucket.Opened{Bucket: bucket.NewMem()}, nil
	}})
	for _, u := range []string{
		"file://" + t.TempDir() + "?" + canary + "=1",
		"mem://?" + canary + "=1",
		"zzsecret://h/p?" + canary + "=1",
	} {
		_, err := bucket.OpenURL(ctx, u, nil)
		if !errors.Is(err, bucket.ErrInvalid) {
			t.Fatalf("OpenURL(%s): %v; want ErrInvalid", bucket.RedactURL(u), err)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("the error repeats a parameter name that may be a secret: %v", err)
		}
		if !strings.Contains(err.Error(), "take no parameters") {
			t.Errorf("the error does not say what is wrong: %v", err)
		}
	}
	_, err := bucket.OpenURL(ctx, "mem://?region=x", nil)
	if err == nil || !strings.Contains(err.Error(), "(got region)") {
		t.Errorf("a harmless parameter name: %v; want it named", err)
	}
}

// OpenURL opens what a registered scheme opens, and says which schemes
// exist when given another; an s3 URL without the S3 driver says how to
// get it.
func TestOpenURLRegistry(t *testing.T) {
	ctx := context.Background()
	var got *url.URL
	bucket.Register("zztest", bucket.Scheme{
		Params: map[string]func(string) error{"depth": func(v string) error {
			if v != "1" && v != "2" {
				return errors.New("want 1 or 2")
			}
			return nil
		}},
		Open: func(_ context.Context, u *url.URL, _ *bucket.OpenOptions) (*bucket.Opened, error) {
			got = u
			return &bucket.Opened{Bucket: bucket.NewMem(), Prefix: strings.Trim(u.Path, "/")}, nil
		},
	})
	o, err := bucket.OpenURL(ctx, "zztest://h/a/b?depth=2", nil)
	if err != nil || o.Prefix != "a/b" || got.Query().Get("depth") != "2" {
		t.Fatalf("OpenURL: %+v, %v", o, err)
	}
	if _, err := bucket.OpenURL(ctx, "zztest://h/a?depth=3", nil); err == nil || !strings.Contains(err.Error(), "parameter depth: want 1 or 2") {
		t.Errorf("a value its check refuses: %v", err)
	}
	_, err = bucket.OpenURL(ctx, "ftp://h/x", nil)
	if !errors.Is(err, bucket.ErrScheme) || !strings.Contains(err.Error(), "file, mem") {
		t.Errorf("unknown scheme: %v", err)
	}
	_, err = bucket.OpenURL(ctx, "s3://b/p", nil)
	if !errors.Is(err, bucket.ErrScheme) || !strings.Contains(err.Error(), "import github.com/cairnstore/cairn/s3store") {
		t.Errorf("s3 without its driver: %v", err)
	}
	var ue *bucket.URLError
	if !errors.As(err, &ue) || ue.URL != "s3://b/p" {
		t.Errorf("not a *URLError naming the URL: %#v", err)
	}
}

// Register refuses, by panicking at start, a scheme that can never match,
// a second registration, and a Scheme without Open.
func TestRegisterRefusesMistakes(t *testing.T) {
	open := func(context.Context, *url.URL, *bucket.OpenOptions) (*bucket.Opened, error) { return nil, nil }
	for name, f := range map[string]func(){
		"empty":      func() { bucket.Register("", bucket.Scheme{Open: open}) },
		"upper case": func() { bucket.Register("ZZUP", bucket.Scheme{Open: open}) },
		"space":      func() { bucket.Register("a b", bucket.Scheme{Open: open}) },
		"twice":      func() { bucket.Register("file", bucket.Scheme{Open: open}) },
		"no Open":    func() { bucket.Register("zznoopen", bucket.Scheme{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			f()
		}()
	}
}
