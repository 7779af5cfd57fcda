// Package miniofixture gives tests an S3 server: a MinIO container started with
// testcontainers-go, or an existing endpoint named in the environment.
//
// The machines this project targets have a Docker engine but cannot pull images, so the MinIO
// image is built locally (see EnsureImage). Start picks its target in this order:
//
//  1. CAIRN_S3_ENDPOINT set: that endpoint, with CAIRN_S3_ACCESS_KEY, CAIRN_S3_SECRET_KEY and
//     CAIRN_S3_REGION. No container is started.
//  2. A Docker engine answers: a fresh MinIO container from EnsureImage (or CAIRN_MINIO_IMAGE).
//  3. Neither: the test is skipped with a message saying how to enable it, or fails when
//     CAIRN_REQUIRE_S3=1 (CI sets it, so a green CI always means MinIO ran).
//
// StartSites starts two MinIO containers that replicate a bucket to each other, for tests of
// cross-region replication; see Sites.
//
// MinIO is a separate program built with `go install`; it is never a dependency in go.mod.
package miniofixture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Credentials of the MinIO containers Start runs.
const (
	containerAccessKey = "cairnadmin"
	containerSecretKey = "cairn-minio-secret"
	containerRegion    = "us-east-1"
)

const (
	minioPort  = "9000/tcp"
	healthPath = "/minio/health/cluster"
)

// ErrExternal is returned by the Server methods that control a container when the server is
// an external endpoint (CAIRN_S3_ENDPOINT). A test that needs to stop the server should check
// Managed first and skip.
var ErrExternal = errors.New("miniofixture: the S3 server is an external endpoint, not a container this test controls")

// Server is an S3 endpoint for one test. Its fields are read-only.
type Server struct {
	Endpoint  string // base URL, http://host:port
	AccessKey string
	SecretKey string
	Region    string
	Image     string // the container's image; empty for an external endpoint

	ctr testcontainers.Container // nil for an external endpoint
}

// Start returns an S3 server for t: an external endpoint from the environment, else a new MinIO
// container that is terminated when t ends, else it skips t (fails it when CAIRN_REQUIRE_S3=1).
// See the package documentation for the order. Each call starts its own container (about a
// second once the image exists), so tests that stop or pause the server cannot disturb others.
// Building the image, needed once per machine, takes a few minutes.
func Start(ctx context.Context, t testing.TB) *Server {
	t.Helper()
	disableReaper()

	if s := external(); s != nil {
		t.Logf("miniofixture: using external S3 endpoint %s (%s), region %s", s.Endpoint, EnvEndpoint, s.Region)
		return s
	}

	cli, err := connectDocker(ctx)
	if err != nil {
		msg := noServerMessage(err)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s\n\t%s=1 is set, so this is a failure, not a skip.", msg, EnvRequire)
		}
		t.Skipf("%s\n\tSKIPPING. Set %s=1 to make this a failure.", msg, EnvRequire)
	}
	cli.Close()

	s, err := startContainer(ctx, t.Logf, containerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.ctr.Terminate(context.Background()); err != nil {
			t.Logf("miniofixture: terminate container: %v", err)
		}
	})
	return s
}

// LaunchOptions configure Launch. Nil means defaults.
type LaunchOptions struct {
	// Tmpfs puts the container's /data on a tmpfs, in memory: the data are lost when the
	// container stops, but writes no longer go through the container's storage driver, which
	// (fuse-overlayfs on some machines) can cost more CPU than MinIO itself.
	Tmpfs bool
	// Env adds environment variables to the container's (MINIO_KMS_SECRET_KEY, say, for a
	// server with a KMS). An external endpoint is used as it is.
	Env map[string]string
}

// Launch is Start for a program that is not a test (a benchmark command, say): the external
// endpoint from the environment, else a new MinIO container. The caller must call stop, which
// terminates the container (and does nothing for an external endpoint). Without an endpoint or
// a Docker engine it returns an error saying how to provide one; CAIRN_REQUIRE_S3 plays no part.
func Launch(ctx context.Context, logf func(format string, args ...any), opts *LaunchOptions) (s *Server, stop func(context.Context) error, err error) {
	disableReaper()
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if s := external(); s != nil {
		logf("miniofixture: using external S3 endpoint %s (%s), region %s", s.Endpoint, EnvEndpoint, s.Region)
		return s, func(context.Context) error { return nil }, nil
	}
	cli, err := connectDocker(ctx)
	if err != nil {
		return nil, nil, errors.New(noServerMessage(err))
	}
	cli.Close()
	var o LaunchOptions
	if opts != nil {
		o = *opts
	}
	if s, err = startContainer(ctx, logf, containerOptions{tmpfs: o.Tmpfs, env: o.Env}); err != nil {
		return nil, nil, err
	}
	return s, func(ctx context.Context) error { return s.ctr.Terminate(ctx) }, nil
}

// external returns the server named by EnvEndpoint, or nil when it is not set.
func external() *Server {
	ep := os.Getenv(EnvEndpoint)
	if ep == "" {
		return nil
	}
	return &Server{
		Endpoint:  strings.TrimRight(ep, "/"),
		AccessKey: envOr(EnvAccessKey, "minioadmin"),
		SecretKey: envOr(EnvSecretKey, "minioadmin"),
		Region:    envOr(EnvRegion, "us-east-1"),
	}
}

func noServerMessage(err error) string {
	return fmt.Sprintf("miniofixture: NO S3 SERVER: %v.\n"+
		"\tThe MinIO tests need a Docker engine (the MinIO image is built locally, no registry needed)\n"+
		"\tor an existing endpoint: %s=http://host:9000 with %s, %s, %s.",
		err, EnvEndpoint, EnvAccessKey, EnvSecretKey, EnvRegion)
}

// containerOptions vary the container startContainer runs. The zero value is Start's container.
type containerOptions struct {
	tmpfs   bool              // /data on a tmpfs
	region  string            // MINIO_SITE_REGION; empty means containerRegion
	network string            // a user-defined network to attach at creation; empty means Docker's default
	env     map[string]string // more environment variables for MinIO
}

// startContainer runs a new MinIO container as opts say and waits until it is ready. On
// failure nothing is left running.
func startContainer(ctx context.Context, logf func(string, ...any), opts containerOptions) (*Server, error) {
	image, err := EnsureImage(ctx, logf)
	if err != nil {
		return nil, fmt.Errorf("miniofixture: %w\n\t(set %s to a MinIO image you can pull to skip the build)", err, EnvImage)
	}

	s := &Server{
		AccessKey: containerAccessKey,
		SecretKey: containerSecretKey,
		Region:    containerRegion,
		Image:     image,
	}
	if opts.region != "" {
		s.Region = opts.region
	}
	env := map[string]string{
		"MINIO_ROOT_USER":     s.AccessKey,
		"MINIO_ROOT_PASSWORD": s.SecretKey,
		"MINIO_SITE_REGION":   s.Region,
		"MINIO_BROWSER":       "off",
	}
	maps.Copy(env, opts.env)
	ready := &readyWait{timeout: 90 * time.Second}
	// The host port is fixed rather than left to Docker so that the endpoint survives Stop and
	// Start: Docker picks a new ephemeral port each time a container starts.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("miniofixture: %w", err)
		}
		runOpts := []testcontainers.ContainerCustomizer{
			testcontainers.WithExposedPorts(minioPort),
			testcontainers.WithCmd("server", "/data", "--address", ":9000"),
			testcontainers.WithEnv(env),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.PortBindings = network.PortMap{
					network.MustParsePort(minioPort): {{HostPort: strconv.Itoa(port)}},
				}
				if opts.tmpfs {
					hc.Tmpfs = map[string]string{"/data": "rw"}
				}
			}),
			testcontainers.WithWaitStrategyAndDeadline(2*ready.timeout, ready),
		}
		if opts.network != "" {
			runOpts = append(runOpts, tcnetwork.WithNetworkName(nil, opts.network))
		}
		ctr, err := testcontainers.Run(ctx, image, runOpts...)
		if err != nil {
			if ctr != nil {
				ctr.Terminate(context.Background())
			}
			if attempt < 5 && isPortConflict(err) {
				continue // another process took the port between freePort and docker run
			}
			return nil, fmt.Errorf("miniofixture: start MinIO container from %s: %w", image, err)
		}
		s.ctr = ctr
		break
	}
	s.Endpoint = ready.endpoint
	logf("miniofixture: started MinIO container %.12s (image %s) at %s", s.ctr.GetContainerID(), image, s.Endpoint)
	return s, nil
}

// readyWait is the container's wait strategy: it polls GET /minio/health/cluster until MinIO
// answers 200, and remembers the address that answered.
//
// Not /minio/health/live: MinIO answers that with 200 as soon as its HTTP listener is up,
// before the object layer, bucket metadata and IAM are initialized; requests sent then fail
// with 503 XMinioServerNotInitialized (seen after a restart). /minio/health/cluster answers
// 503 until all three are ready and the drives have write quorum.
//
// It does not trust testcontainers' Host alone. When the tests run inside a container
// (/.dockerenv exists) against a Unix socket, testcontainers assumes the engine is on another
// host and answers the bridge gateway or, failing that, this container's default gateway,
// which is wrong when the engine runs inside the same container or VM as the tests (the case
// on this project's CI machines): the published port is then on 127.0.0.1. So both are
// tried. TESTCONTAINERS_HOST_OVERRIDE, when set, is the only
// candidate. After a restart only the address found first is polled, so Endpoint stays valid.
type readyWait struct {
	timeout  time.Duration
	endpoint string // set by the first successful wait
}

var _ wait.Strategy = (*readyWait)(nil)

func (w *readyWait) Timeout() *time.Duration { return &w.timeout }

func (w *readyWait) String() string { return "HTTP GET " + healthPath + " answering 200" }

func (w *readyWait) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()

	candidates := []string{w.endpoint}
	if w.endpoint == "" {
		host, err := target.Host(ctx)
		if err != nil {
			return fmt.Errorf("container host: %w", err)
		}
		port, err := target.MappedPort(ctx, minioPort)
		if err != nil {
			return fmt.Errorf("container port: %w", err)
		}
		p := strconv.Itoa(int(port.Num()))
		candidates = []string{"http://" + net.JoinHostPort(host, p)}
		if _, override := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); !override && host != "127.0.0.1" {
			// Loopback first: where it is wrong it fails at once (connection refused), while
			// a wrong gateway address costs a dial timeout per poll.
			candidates = append([]string{"http://" + net.JoinHostPort("127.0.0.1", p)}, candidates...)
		}
	}

	hc := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   time.Second,
	}
	var lastErr error
	for {
		for _, ep := range candidates {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+healthPath, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				lastErr = err
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w.endpoint = ep
				return nil
			}
			lastErr = fmt.Errorf("GET %s: %s", req.URL, resp.Status)
		}
		state, err := target.State(ctx)
		if err == nil && !state.Running {
			return fmt.Errorf("MinIO container is not running (status %s, exit code %d)", state.Status, state.ExitCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("MinIO not ready at %v after %s: %w (last error: %v)", candidates, w.timeout, ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// connectDocker is dockerClient; tests replace it to simulate a machine without Docker.
var connectDocker = dockerClient

// Managed reports whether s is a container this test controls (Stop, Start, Pause, Unpause),
// rather than an external endpoint.
func (s *Server) Managed() bool { return s.ctr != nil }

// Container returns the testcontainers handle, or nil for an external endpoint.
func (s *Server) Container() testcontainers.Container { return s.ctr }

// Stop stops the container (SIGTERM, then SIGKILL after timeout); connections are then refused.
// The data stay in the container, and Start brings the server back at the same Endpoint.
func (s *Server) Stop(ctx context.Context, timeout time.Duration) error {
	if s.ctr == nil {
		return ErrExternal
	}
	return s.ctr.Stop(ctx, &timeout)
}

// Start starts a stopped container again and waits until MinIO is ready, at the same Endpoint
// and with the same data.
func (s *Server) Start(ctx context.Context) error {
	if s.ctr == nil {
		return ErrExternal
	}
	return s.ctr.Start(ctx)
}

// Pause freezes the container's processes: connections are accepted by Docker's proxy but
// requests get no answer, as with a hung server. Unpause resumes it.
func (s *Server) Pause(ctx context.Context) error {
	return s.dockerDo(ctx, func(cli *testcontainers.DockerClient, id string) error {
		_, err := cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
		return err
	})
}

// Unpause resumes a paused container.
func (s *Server) Unpause(ctx context.Context) error {
	return s.dockerDo(ctx, func(cli *testcontainers.DockerClient, id string) error {
		_, err := cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		return err
	})
}

func (s *Server) dockerDo(ctx context.Context, f func(*testcontainers.DockerClient, string) error) error {
	if s.ctr == nil {
		return ErrExternal
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	return f(cli, s.ctr.GetContainerID())
}

// Credentials returns the server's static credentials for an AWS SDK
// client.
func (s *Server) Credentials() aws.CredentialsProvider {
	return aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""))
}

// NewClient returns an S3 client for s: path-style addressing, static credentials, and checksums
// only where S3 requires them. optFns are applied last and may change any of that.
func (s *Server) NewClient(t testing.TB, optFns ...func(*s3.Options)) *s3.Client {
	t.Helper()
	return s.newClient(optFns...)
}

func (s *Server) newClient(optFns ...func(*s3.Options)) *s3.Client {
	cfg := aws.Config{
		Region:      s.Region,
		Credentials: s.Credentials(),
	}
	fns := append([]func(*s3.Options){func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
		// The SDK's defaults (WhenSupported) add CRC32 trailers to every upload and validate
		// checksums on downloads; S3-compatible servers other than current MinIO and AWS
		// reject or mishandle them, and CAIRN_S3_ENDPOINT may name any of those.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}}, optFns...)
	return s3.NewFromConfig(cfg, fns...)
}

// NewBucket creates a bucket with a fresh name derived from t.Name() and returns the name.
// On an external endpoint the bucket and its objects are deleted when t ends; a container's
// buckets go with the container.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := s.newBucket(t)
	if !s.Managed() {
		t.Cleanup(func() { deleteBucket(t, s.NewClient(t), name) })
	}
	return name
}

// newBucket creates a bucket with a fresh name derived from t.Name().
func (s *Server) newBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.createBucket(ctx, s.NewClient(t), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// createBucket creates bucket name in s's region with c, a client for s.
func (s *Server) createBucket(ctx context.Context, c *s3.Client, name string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if s.Region != "" && s.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{
			LocationConstraint: s3types.BucketLocationConstraint(s.Region),
		}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("miniofixture: create bucket %s at %s: %w", name, s.Endpoint, err)
	}
	return nil
}

// NewVersionedBucket is NewBucket with versioning enabled on the new
// bucket. On an external endpoint every version is deleted when t ends,
// then the bucket.
func (s *Server) NewVersionedBucket(t testing.TB) string {
	t.Helper()
	name := s.newBucket(t)
	c := s.NewClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.enableVersioning(ctx, c, name); err != nil {
		t.Fatal(err)
	}
	if !s.Managed() {
		t.Cleanup(func() { deleteVersionedBucket(t, c, name) })
	}
	return name
}

// enableVersioning turns versioning on for bucket name with c, a client for s.
func (s *Server) enableVersioning(ctx context.Context, c *s3.Client, name string) error {
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(name),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("miniofixture: enable versioning on bucket %s at %s: %w", name, s.Endpoint, err)
	}
	return nil
}

// deleteVersionedBucket deletes every version and delete marker in bucket,
// then the bucket.
func deleteVersionedBucket(t testing.TB, c *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("miniofixture: cleanup: list versions of %s: %v", bucket, err)
			return
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			t.Logf("miniofixture: cleanup: delete versions in %s: %v", bucket, err)
			return
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Logf("miniofixture: cleanup: delete bucket %s: %v", bucket, err)
	}
}

func deleteBucket(t testing.TB, c *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("miniofixture: cleanup: list %s: %v", bucket, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			t.Logf("miniofixture: cleanup: delete objects in %s: %v", bucket, err)
			return
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Logf("miniofixture: cleanup: delete bucket %s: %v", bucket, err)
	}
}

var nonBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// bucketName turns a test name into a valid, unique bucket name: 3-63 characters of [a-z0-9-],
// starting and ending with a letter or digit.
func bucketName(testName string) string {
	var b [6]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	base := strings.Trim(nonBucketChars.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	const max = 63 - len("cairn--") - 12
	if len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	if base == "" {
		return "cairn-" + suffix
	}
	return "cairn-" + base + "-" + suffix
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// freePort returns a TCP port that is free on this host right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func isPortConflict(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}
