package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/smithy-go"
	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
	"golang.org/x/term"
)

const defaultStoreHint = "file://$XDG_DATA_HOME/cairn, or file://~/.local/share/cairn"

// storeURL is the store a command works on: its --store flag, else
// $CAIRN_STORE, else the embedded default, a directory under the user's
// data directory.
func storeURL(e *env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := e.getenv("CAIRN_STORE"); v != "" {
		return v
	}
	if d := e.getenv("XDG_DATA_HOME"); d != "" {
		return "file://" + filepath.Join(d, "cairn")
	}
	if h := e.getenv("HOME"); h != "" {
		return "file://" + filepath.Join(h, ".local", "share", "cairn")
	}
	return "file://" + filepath.Join(os.TempDir(), "cairn")
}

// openStore opens the store a command works on. A URL that cannot be
// opened is a usage error. opts may be nil (write-through).
func openStore(ctx context.Context, e *env, flagValue string, opts *tiered.Options) (*tiered.Store, string, error) {
	u := storeURL(e, flagValue)
	s, err := tiered.Open(ctx, u, nil, opts)
	if err != nil {
		if errors.Is(err, cairn.ErrInvalid) {
			return nil, u, &usageError{strings.TrimPrefix(err.Error(), cairn.ErrInvalid.Error()+": ")}
		}
		return nil, u, err
	}
	return s, u, nil
}

// parseRunID parses a run ID given on the command line; a bad one is a
// usage error.
func parseRunID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, usagef("invalid run ID %q: want a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8", s)
	}
	return id, nil
}

// exitCode maps an error to the exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, cairn.ErrNotFound):
		return exitNotFound
	}
	return exitFailure
}

// describe turns an error into one line for a person: the operation and
// run it concerns, then what is wrong, with the common S3 failures (no
// bucket, refused credentials, no endpoint) said plainly. Credentials never
// appear in errors: the SDK does not put them there and URLs carry none.
func describe(err error) string {
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.msg
	}
	where := ""
	var ce *cairn.Error
	if errors.As(err, &ce) {
		where = ce.Op
		if ce.RunID != uuid.Nil {
			where += " " + ce.RunID.String()
		}
		where += ": "
		if ce.RunID != uuid.Nil && errors.Is(err, cairn.ErrNotFound) {
			return "run " + ce.RunID.String() + " not found"
		}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return where + "the bucket does not exist (create it, or fix the bucket in the store URL)"
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken", "Forbidden":
			return where + "access denied (" + api.ErrorCode() + "): check the AWS credentials and their permissions on the bucket"
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return where + "cannot reach the endpoint: unknown host " + dns.Name
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		addr := ""
		if op.Addr != nil {
			addr = " " + op.Addr.String()
		}
		return where + "cannot reach the endpoint" + addr + ": " + op.Err.Error()
	}
	msg := err.Error()
	if strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found") {
		return where + "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
	}
	return strings.Join(strings.Fields(msg), " ")
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// closeStore closes s, keeping the first error.
func closeStore(ctx context.Context, s *tiered.Store, err *error) {
	if cerr := s.Close(ctx); cerr != nil && *err == nil {
		*err = fmt.Errorf("close: %w", cerr)
	}
}
