package s3store_test

// Review (review1) of what the S3 driver's reads keep in memory: these
// properties held.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
	"github.com/google/uuid"
)

// r1Serve returns a bucket whose every GET answers body, with its
// Content-Length, as S3 does.
func r1Serve(t *testing.T, body []byte) *s3store.S3 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"e1"`)
		if r.Header.Get("X-Amz-Checksum-Mode") == "ENABLED" {
			var crc [4]byte
			binary.BigEndian.PutUint32(crc[:], crc32.ChecksumIEEE(body))
			w.Header().Set("X-Amz-Checksum-Crc32", base64.StdEncoding.EncodeToString(crc[:]))
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{Endpoint: srv.URL, Region: "us-east-1",
		PathStyle: true, Credentials: s3Static, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return s3store.NewS3(c, "b")
}

// S3.Get reads the body with bytes.Buffer.ReadFrom into a buffer grown to
// the Content-Length. ReadFrom asks for 512 more bytes of room before
// each read, so a buffer filled exactly would be copied into one twice
// its size if EOF came in a read of its own. It does not over net/http,
// which returns EOF with the last bytes of a body of known length, and
// with the SDK's checksum validation in between (this test): Body is the
// object's size. (A Transport that returns EOF in a read of its own, as
// io.Reader allows, would get twice the size; see the report.)
//
// The Body matters: durable.Read returns it as the record when the
// object is a bare MessagePack record (written by an Uncompressed codec,
// or by Blazen, which every codec reads), and the tiered cache keeps that
// record counting its length.
func TestR1S3GetBodyOfItsSize(t *testing.T) {
	for _, n := range []int{64 << 10, 1 << 20, 4 << 20} {
		body := bytes.Repeat([]byte{'x'}, n)
		b := r1Serve(t, body)
		obj, err := b.Get(context.Background(), "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj.Body, body) {
			t.Fatalf("%d bytes: Body differs", n)
		}
		if c := cap(obj.Body); c > n+n/8+512 {
			t.Errorf("Get of %d bytes: Body has a capacity of %d (%.2fx)", n, c, float64(c)/float64(n))
		}
	}
}

// The same through durable.Read, whose doc says the record is the
// caller's to keep, in a cache: a bare record read from S3 is its size.
func TestR1DurableReadOfBareRecordOfItsSize(t *testing.T) {
	bare, err := cairn.NewCodec(&cairn.CodecOptions{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	rec, err := bare.Marshal(&cairn.Checkpoint{WorkflowName: "wf", RunID: id, Timestamp: time.Unix(1e9, 0).UTC(),
		State: map[string]any{"s": string(bytes.Repeat([]byte{'x'}, 1<<20))}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := durable.New(r1Serve(t, rec), &durable.Options{UnsafeSkipProbe: true, Codec: bare})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	got, _, err := s.Read(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, rec) {
		t.Fatal("Read returned other bytes")
	}
	if c, n := cap(got), len(got); c > n+n/8+512 {
		t.Errorf("Read of a %d-byte record returned a slice of capacity %d (%.2fx), which a cache keeps", n, c, float64(c)/float64(n))
	}
}
