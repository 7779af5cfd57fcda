package miniofixture

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"golang.org/x/sync/errgroup"
)

// siteRegions are the regions of the two sites: different, as in a real cross-region setup,
// so that code which signs a request for one site with the other's region fails here too.
var siteRegions = [2]string{"us-east-1", "eu-west-1"}

// siteNames name the sites in logs, Docker networks and the aliases on the link network.
var siteNames = [2]string{"a", "b"}

// Sites are two MinIO deployments, each in its own container, that replicate one bucket to each
// other (active-active bucket replication, as MinIO's cross-region replication does): a write
// or delete on either site reaches the other, asynchronously, usually within 100 ms on one
// machine (p50 40–90 ms, maximum about 250 ms when measured).
//
// The sites talk over a Docker network of their own, the link, which Cut and Heal take away and
// give back; the host reaches each site on a published port that does not go through the link,
// so both sites keep answering the host while the link is cut. Writes made during a cut are
// replicated about a second after Heal: the containers run with MINIO_SCANNER_SPEED=fastest,
// without which MinIO retries failed replication only after several minutes.
//
// A site answers a GET or HEAD of a key it lacks with 404, as S3 does. (MinIO would forward such
// a read to the other site; the fixture turns that off because it hides replication lag, and
// because during a cut the forwarded read hangs for about two minutes and then fails with 500.)
//
// While the link is cut each site accepts writes alone: a conditional write (If-None-Match: *,
// If-Match) is checked against the local site only, so both sites can accept conflicting
// writes to one key; after Heal the version with the later modification time becomes the
// latest on both sites (see TestSitesConditionalWriteDuringCut).
//
// The fields are read-only. Cut, Heal, Converged and WaitConverged may be called from several
// goroutines; Cut and Heal are serialized.
type Sites struct {
	// Site holds the two sites as the host sees them: endpoint, credentials and region
	// (us-east-1 for Site[0], eu-west-1 for Site[1]).
	Site [2]*Server
	// Bucket is the replicated bucket: it exists on both sites, with versioning on, as
	// replication requires. Other buckets a test creates are not replicated.
	Bucket string

	cli  *testcontainers.DockerClient
	link string // the link network's name

	mu struct {
		sync.Mutex
		cut bool
	}
}

// StartSites starts two MinIO containers whose Bucket replicates both ways, and removes them
// when t ends. Like Start it skips t when there is no Docker engine, and fails it instead when
// CAIRN_REQUIRE_S3=1. An external endpoint (CAIRN_S3_ENDPOINT) cannot give two sites that
// replicate: StartSites then skips t, saying so, or fails it when CAIRN_REQUIRE_S3=1.
//
// It takes a few seconds once the image exists and the replication tool (tools/miniosites, run
// with `go run`) is in the build cache; the tool's first build can take a minute.
func StartSites(ctx context.Context, t testing.TB) *Sites {
	t.Helper()
	disableReaper()
	require := os.Getenv(EnvRequire) == "1"
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		msg := fmt.Sprintf("miniofixture: StartSites needs two MinIO containers that replicate to each other; "+
			"%s=%s names one external endpoint, which cannot give them.", EnvEndpoint, ep)
		if require {
			t.Fatalf("%s\n\t%s=1 is set, so this is a failure, not a skip.", msg, EnvRequire)
		}
		t.Skipf("%s\n\tSKIPPING. Unset %s to run this test on local containers.", msg, EnvEndpoint)
	}
	cli, err := connectDocker(ctx)
	if err != nil {
		msg := noServerMessage(err)
		if require {
			t.Fatalf("%s\n\t%s=1 is set, so this is a failure, not a skip.", msg, EnvRequire)
		}
		t.Skipf("%s\n\tSKIPPING. Set %s=1 to make this a failure.", msg, EnvRequire)
	}
	t.Cleanup(func() { cli.Close() })

	s, err := startSites(ctx, t, cli)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSites(ctx context.Context, t testing.TB, cli *testcontainers.DockerClient) (*Sites, error) {
	start := time.Now()
	// Docker publishes a container's ports through the network whose name sorts first, so the
	// publish networks must sort before the link: were the link first, Cut would take the
	// host's port away with it.
	var id [4]byte
	rand.Read(id[:])
	prefix := "cairn-" + hex.EncodeToString(id[:]) + "-"
	pub := [2]string{prefix + "a-pub", prefix + "b-pub"}
	s := &Sites{cli: cli, link: prefix + "z-link", Bucket: bucketName(t.Name())}
	for _, name := range []string{pub[0], pub[1], s.link} {
		if err := createNetwork(ctx, t, cli, name); err != nil {
			return nil, err
		}
	}

	// Each site's own network keeps the sites apart: on a shared one they would reach each
	// other without the link.
	g, gctx := errgroup.WithContext(ctx)
	for i := range s.Site {
		g.Go(func() error {
			srv, err := startContainer(gctx, t.Logf, containerOptions{
				region:  siteRegions[i],
				network: pub[i],
				env:     map[string]string{"MINIO_SCANNER_SPEED": "fastest"},
			})
			if err != nil {
				return fmt.Errorf("site %s: %w", siteNames[i], err)
			}
			s.Site[i] = srv
			return nil
		})
	}
	err := g.Wait()
	for i, srv := range s.Site {
		if srv != nil {
			t.Cleanup(func() {
				if err := srv.ctr.Terminate(context.Background()); err != nil {
					t.Logf("miniofixture: terminate site %s: %v", siteNames[i], err)
				}
			})
		}
	}
	if err != nil {
		return nil, err
	}
	containers := time.Since(start)

	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	for _, srv := range s.Site {
		if err := prepareBucket(ctx, t, srv, s.Bucket); err != nil {
			return nil, err
		}
	}
	toolStart := time.Now()
	out, err := s.setUpReplication(ctx)
	if err != nil {
		return nil, err
	}
	t.Logf("miniofixture: sites a %s (%s) and b %s (%s) replicate bucket %s; up in %s (containers %s, replication setup %s)\n%s",
		s.Site[0].Endpoint, s.Site[0].Region, s.Site[1].Endpoint, s.Site[1].Region, s.Bucket,
		time.Since(start).Round(time.Millisecond), containers.Round(time.Millisecond),
		time.Since(toolStart).Round(time.Millisecond), strings.TrimSpace(out))
	return s, nil
}

// createNetwork creates a bridge network and removes it when t ends, after the containers
// (t.Cleanup runs last-registered first, and the containers are registered later).
func createNetwork(ctx context.Context, t testing.TB, cli *testcontainers.DockerClient, name string) error {
	if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{"org.cairnstore.miniofixture": "sites"},
	}); err != nil {
		return fmt.Errorf("miniofixture: create network %s: %w", name, err)
	}
	t.Cleanup(func() {
		if _, err := cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("miniofixture: remove network %s: %v", name, err)
		}
	})
	return nil
}

// prepareBucket creates bucket on srv with versioning on.
func prepareBucket(ctx context.Context, t testing.TB, srv *Server, bucket string) error {
	c := srv.NewClient(t)
	if err := srv.createBucket(ctx, c, bucket); err != nil {
		return err
	}
	return srv.enableVersioning(ctx, c, bucket)
}

// alias is the name by which the other site reaches site i on the link network.
func alias(i int) string { return "site-" + siteNames[i] }

// Cut disconnects both sites from the link network: nothing replicates either way until Heal,
// and each site keeps serving the host. Writes made meanwhile stay on their site. Cutting a
// cut link does nothing.
func (s *Sites) Cut(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cut {
		return nil
	}
	for i, srv := range s.Site {
		if _, err := s.cli.NetworkDisconnect(ctx, s.link, client.NetworkDisconnectOptions{
			Container: srv.ctr.GetContainerID(), Force: true,
		}); err != nil {
			return fmt.Errorf("miniofixture: cut site %s from %s: %w", siteNames[i], s.link, err)
		}
	}
	s.mu.cut = true
	return nil
}

// Heal reconnects both sites to the link network, under the same names. Replication resumes,
// and writes made during the cut reach the other site, usually within a few seconds. Healing a
// link that is not cut does nothing.
func (s *Sites) Heal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mu.cut {
		return nil
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	s.mu.cut = false
	return nil
}

// connect attaches both sites to the link network. The sites are started on their own networks
// and connected afterwards, the same way Heal does it, because Docker engines before API 1.44
// attach a new container to one network only.
func (s *Sites) connect(ctx context.Context) error {
	for i, srv := range s.Site {
		if _, err := s.cli.NetworkConnect(ctx, s.link, client.NetworkConnectOptions{
			Container:      srv.ctr.GetContainerID(),
			EndpointConfig: &network.EndpointSettings{Aliases: []string{alias(i)}},
		}); err != nil {
			return fmt.Errorf("miniofixture: connect site %s to %s: %w", siteNames[i], s.link, err)
		}
	}
	return nil
}

// setUpReplication runs tools/miniosites, which makes each site replicate Bucket to the other,
// and returns its output. The remote-target call lives in MinIO's admin client, madmin-go,
// which is AGPL-3.0 and so must stay out of this module's go.mod: the tool is a module of its
// own, run here with `go -C <dir> run .`, its dependencies pinned by its own go.sum. The go
// command caches the executable, so later runs cost about a second.
func (s *Sites) setUpReplication(ctx context.Context) (string, error) {
	dir, err := toolDir()
	if err != nil {
		return "", err
	}
	goTool, err := findGo()
	if err != nil {
		return "", err
	}
	a, b := s.Site[0], s.Site[1]
	cmd := exec.CommandContext(ctx, goTool, "-C", dir, "run", ".",
		"-bucket", s.Bucket,
		"-a", a.Endpoint, "-a-peer", alias(0)+":9000", "-a-region", a.Region,
		"-b", b.Endpoint, "-b-peer", alias(1)+":9000", "-b-region", b.Region,
	)
	cmd.Env = append(cleanGoEnv(os.Environ()),
		// The tool's go.mod and go.sum alone decide what is built: no go.work, and a GOFLAGS
		// that overrides flags set with `go env -w` (-race, -tags, -mod=mod, ...).
		"GOWORK=off",
		"GOFLAGS=-mod=readonly -buildvcs=false",
		"CGO_ENABLED=0",
		"MINIOSITES_ACCESS_KEY="+a.AccessKey,
		"MINIOSITES_SECRET_KEY="+a.SecretKey,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("miniofixture: set up replication with %s: %w\n%s", dir, err, out.String())
	}
	return out.String(), nil
}

// toolDir returns the directory of the tools/miniosites module, found from this source file's
// path: the test binary is built from this checkout, so the tool is beside it.
func toolDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("miniofixture: runtime.Caller failed; cannot find tools/miniosites")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "tools", "miniosites")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("miniofixture: the replication tool's module is missing (tests built with -trimpath cannot find it): %w", err)
	}
	return dir, nil
}

// listed is one key of a listing with the ETag of its latest version.
type listed struct{ key, etag string }

// Converged reports whether both sites list the same keys under prefix with the same ETags
// (latest versions; a key whose latest version is a delete marker is not listed). When they
// differ, diff describes the first difference in key order. It lists each site once; a listing
// error is returned as err.
func (s *Sites) Converged(ctx context.Context, prefix string) (ok bool, diff string, err error) {
	var lists [2][]listed
	g, gctx := errgroup.WithContext(ctx)
	for i, srv := range s.Site {
		g.Go(func() (err error) {
			lists[i], err = list(gctx, srv, s.Bucket, prefix)
			if err != nil {
				return fmt.Errorf("miniofixture: list %s on site %s: %w", s.Bucket, siteNames[i], err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return false, "", err
	}
	diff = firstDifference(lists[0], lists[1])
	return diff == "", diff, nil
}

// WaitConverged polls Converged until the sites agree under prefix, and fails with the last
// difference seen when they still differ after timeout or when ctx ends (the error then wraps
// ctx.Err()). Agreement is a snapshot: writes after
// it are not waited for.
func (s *Sites) WaitConverged(ctx context.Context, prefix string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last string
	for {
		ok, diff, err := s.Converged(ctx, prefix)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = diff
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("miniofixture: sites not converged under %q after %s: %s: %w",
				prefix, time.Since(start).Round(time.Millisecond), last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// list returns the keys under prefix with their ETags, in key order. The client makes one
// attempt per request, so that a site that does not answer fails the listing at once.
func list(ctx context.Context, srv *Server, bucket, prefix string) ([]listed, error) {
	c := srv.newClient(func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	var out []listed
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, listed{aws.ToString(o.Key), aws.ToString(o.ETag)})
		}
	}
	return out, nil
}

// firstDifference compares two listings in key order and describes the first difference, or
// returns "" when they are equal.
func firstDifference(a, b []listed) string {
	byKey := func(x, y listed) int { return cmp.Compare(x.key, y.key) }
	a, b = slices.SortedFunc(slices.Values(a), byKey), slices.SortedFunc(slices.Values(b), byKey)
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].key < b[0].key:
			return fmt.Sprintf("%q (ETag %s) is on site a only", a[0].key, a[0].etag)
		case len(a) == 0 || b[0].key < a[0].key:
			return fmt.Sprintf("%q (ETag %s) is on site b only", b[0].key, b[0].etag)
		case a[0].etag != b[0].etag:
			return fmt.Sprintf("%q has ETag %s on site a, %s on site b", a[0].key, a[0].etag, b[0].etag)
		}
		a, b = a[1:], b[1:]
	}
	return ""
}
