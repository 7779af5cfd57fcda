package tiered_test

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/index"
	"github.com/cairnstore/cairn/internal/miniofixture"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/storetest"
	"github.com/cairnstore/cairn/tiered"
	"github.com/google/uuid"
)

func startMinIO(t *testing.T) *miniofixture.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a first run builds the image
	defer cancel()
	return miniofixture.Start(ctx, t)
}

func minioStore(t testing.TB, srv *miniofixture.Server, bucketName string, o *tiered.Options) *tiered.Store {
	t.Helper()
	client, err := s3store.NewS3Client(context.Background(), &s3store.S3Options{
		Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: srv.Credentials(),
		MaxAttempts: 2, RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var to tiered.Options
	if o != nil {
		to = *o
	}
	to.Durable = durable.Options{Prefix: "t", Index: &index.Options{RetryFor: 5 * time.Second}}
	s, err := tiered.New(s3store.NewS3(client, bucketName), &to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMinIOConformance(t *testing.T) {
	srv := startMinIO(t)
	for _, mode := range []struct {
		name string
		o    *tiered.Options
	}{{"WriteThrough", nil}, {"WriteBack", &tiered.Options{Mode: tiered.WriteBack, FlushWindow: 5 * time.Millisecond}}} {
		t.Run(mode.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) cairn.Store { return minioStore(t, srv, srv.NewBucket(t), mode.o) })
		})
	}
}

// The writer process of TestMinIOKilledAfterFlush: it saves runs in
// write-back mode, flushes, reports the runs on stdout, saves more that it
// never flushes, and waits to be killed.
func TestMain(m *testing.M) {
	if u := os.Getenv("CAIRN_TIERED_WRITER"); u != "" {
		os.Exit(writer(u))
	}
	os.Exit(m.Run())
}

func writer(storeURL string) int {
	ctx := context.Background()
	s, err := tiered.Open(ctx, storeURL, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var ids []string
	for i := range 40 {
		id := uuid.New()
		for step := range 3 {
			if err := s.Save(ctx, cp(id, step+i)); err != nil {
				fmt.Println("error:", err)
				return 1
			}
		}
		ids = append(ids, id.String())
	}
	if err := s.Flush(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("flushed", strings.Join(ids, ","))
	for i := 0; ; i++ { // unflushed work, lost with the process
		_ = s.Save(ctx, cp(uuid.New(), i))
		time.Sleep(time.Millisecond)
	}
}

// A writer saves in write-back mode, calls Flush and is killed with
// SIGKILL; a fresh process finds every run saved before Flush returned,
// at its last step.
func TestMinIOKilledAfterFlush(t *testing.T) {
	srv := startMinIO(t)
	name := srv.NewBucket(t)
	os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Cleanup(func() { os.Unsetenv("AWS_ACCESS_KEY_ID"); os.Unsetenv("AWS_SECRET_ACCESS_KEY") })
	storeURL := fmt.Sprintf("s3://%s/t?endpoint=%s&region=%s&path_style=true", name, url.QueryEscape(srv.Endpoint), srv.Region)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CAIRN_TIERED_WRITER="+storeURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "flushed ") {
		_ = cmd.Process.Kill()
		t.Fatalf("writer said %q, %v", line, err)
	}
	time.Sleep(50 * time.Millisecond) // let it save some more, unflushed
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	fresh, err := tiered.Open(context.Background(), storeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "flushed ")), ",")
	for i, s := range ids {
		id := uuid.MustParse(s)
		got, err := fresh.Load(context.Background(), id)
		if err != nil {
			t.Fatalf("run %d, saved before Flush returned: %v", i, err)
		}
		if got.State["step"] != int64(2+i) {
			t.Fatalf("run %d at step %v, want its last step %d", i, got.State["step"], 2+i)
		}
	}
	listed := map[uuid.UUID]bool{}
	for sum, err := range cairn.All(context.Background(), fresh, nil) {
		if err != nil {
			t.Fatal(err)
		}
		listed[sum.RunID] = true
	}
	for _, s := range ids {
		if !listed[uuid.MustParse(s)] {
			t.Fatalf("run %s is not listed", s)
		}
	}
	t.Logf("%d flushed runs survived SIGKILL; %d runs listed in all", len(ids), len(listed))
}

// With MinIO stopped in the middle of a flush, Flush returns an error, not nil; once it
// is back, Flush succeeds and nothing acknowledged is lost.
func TestMinIOStoppedDuringFlush(t *testing.T) {
	srv := startMinIO(t)
	if !srv.Managed() {
		t.Skip("needs a MinIO container this test can stop (CAIRN_S3_ENDPOINT is set)")
	}
	name := srv.NewBucket(t)
	s := minioStore(t, srv, name, &tiered.Options{Mode: tiered.WriteBack, FlushWindow: time.Hour})
	ctx := context.Background()
	var ids []uuid.UUID
	for i := range 300 { // several hundred PUTs: the flush takes a while

		id := uuid.New()
		if err := s.Save(ctx, cp(id, i)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(fctx) }()
	time.Sleep(30 * time.Millisecond) // mid-flush
	if err := srv.Stop(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	err := <-flushed
	if err == nil {
		t.Fatal("Flush with MinIO stopped under it returned nil")
	}
	t.Logf("Flush with MinIO stopped: %v", err)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ferr error
	for attempt := 0; attempt < 10; attempt++ { // MinIO may need a moment after the restart
		if ferr = s.Flush(ctx); ferr == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if ferr != nil {
		t.Fatalf("Flush with MinIO back: %v", ferr)
	}
	fresh := minioStore(t, srv, name, nil)
	for i, id := range ids {
		got, err := fresh.Load(ctx, id)
		if err != nil || got.State["step"] != int64(i) {
			t.Fatalf("run %d after recovery: %v, %v", i, got, err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
