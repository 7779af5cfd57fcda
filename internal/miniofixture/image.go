package miniofixture

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Version is the MinIO module version built into the local image: a February 2026 build, after
// MinIO's If-Match fixes. It is installed with `go install`, never added to go.mod (MinIO is AGPL).
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// Module is the Go module path of the MinIO server.
const Module = "github.com/minio/minio"

// DefaultImage is the tag EnsureImage builds: a FROM scratch image holding only the static
// MinIO binary and empty /data and /tmp directories.
const DefaultImage = "cairn-minio:20260212201848-7aac2a2c5b7c"

// Environment variables read by this package.
const (
	// EnvImage names an image to use instead of building DefaultImage, for example an
	// official MinIO release from 2025-09 or later. Nothing is built when it is set.
	EnvImage = "CAIRN_MINIO_IMAGE"
	// EnvEndpoint points Start at an existing S3 or MinIO; no container is started.
	EnvEndpoint = "CAIRN_S3_ENDPOINT"
	// EnvAccessKey, EnvSecretKey and EnvRegion are the credentials and region for EnvEndpoint.
	EnvAccessKey = "CAIRN_S3_ACCESS_KEY"
	EnvSecretKey = "CAIRN_S3_SECRET_KEY"
	EnvRegion    = "CAIRN_S3_REGION"
	// EnvRequire, when "1", turns Start's skip (no endpoint, no Docker) into a failure. CI sets it.
	EnvRequire = "CAIRN_REQUIRE_S3"
)

// EnsureImage returns the MinIO image to run. If EnvImage is set it is returned as is.
// Otherwise DefaultImage is returned when the Docker engine already has it, and built first
// when it does not: `go install` of Module@Version into a temporary directory, then a
// FROM scratch image. A build takes a few minutes on a fresh machine; an existing image is
// never rebuilt. Concurrent callers, in this process or others (parallel `go test` packages),
// are serialized by a lock file so that only one builds. logf, if not nil, receives progress.
func EnsureImage(ctx context.Context, logf func(format string, args ...any)) (image string, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	disableReaper()
	if img := os.Getenv(EnvImage); img != "" {
		return img, nil
	}

	cli, err := dockerClient(ctx)
	if err != nil {
		return "", err
	}
	defer cli.Close()

	ok, err := imageExists(ctx, cli, DefaultImage)
	if err != nil {
		return "", err
	}
	if ok {
		return DefaultImage, nil
	}

	unlock, err := lockBuild(ctx, logf)
	if err != nil {
		return "", err
	}
	defer unlock()

	// Another process may have built the image while we waited for the lock.
	ok, err = imageExists(ctx, cli, DefaultImage)
	if err != nil {
		return "", err
	}
	if ok {
		return DefaultImage, nil
	}

	start := time.Now()
	if err := buildImage(ctx, cli, logf); err != nil {
		return "", fmt.Errorf("miniofixture: build %s: %w", DefaultImage, err)
	}
	logf("miniofixture: built image %s in %s", DefaultImage, time.Since(start).Round(time.Second))
	return DefaultImage, nil
}

// disableReaper turns off testcontainers' reaper (Ryuk), whose image cannot be pulled here;
// the tests terminate their containers themselves. testcontainers reads its configuration once
// per process, so this must run before its first use.
func disableReaper() {
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// dockerClient returns a client for the engine testcontainers would use (DOCKER_HOST, docker
// contexts, ~/.testcontainers.properties), after checking that the engine answers.
func dockerClient(ctx context.Context) (cli *testcontainers.DockerClient, err error) {
	// testcontainers panics when it finds no Docker host at all.
	defer func() {
		if r := recover(); r != nil {
			cli, err = nil, fmt.Errorf("miniofixture: no Docker engine: %v", r)
		}
	}()
	cli, err = testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("miniofixture: no Docker engine: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("miniofixture: Docker engine does not answer: %w", err)
	}
	return cli, nil
}

func imageExists(ctx context.Context, cli *testcontainers.DockerClient, image string) (bool, error) {
	_, err := cli.ImageInspect(ctx, image)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("miniofixture: inspect image %s: %w", image, err)
	}
}

func buildImage(ctx context.Context, cli *testcontainers.DockerClient, logf func(string, ...any)) error {
	sv, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Errorf("docker version: %w", err)
	}
	if sv.Os != "linux" {
		return fmt.Errorf("the Docker engine runs %s containers; a Linux engine is needed", sv.Os)
	}

	dir, err := os.MkdirTemp("", "cairn-minio-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin, err := installMinIO(ctx, dir, sv.Arch, logf)
	if err != nil {
		return err
	}

	logf("miniofixture: building image %s from %s", DefaultImage, bin)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeBuildContext(pw, bin)) }()
	defer pr.Close()

	res, err := cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{DefaultImage},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Labels: map[string]string{
			"org.cairnstore.minio.module":  Module,
			"org.cairnstore.minio.version": Version,
		},
	})
	if err != nil {
		return fmt.Errorf("docker build: %w", err)
	}
	defer res.Body.Close()

	var out strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("docker build: reading output: %w", err)
		}
		if m.Error != nil {
			return fmt.Errorf("docker build: %s\n%s", m.Error.Message, out.String())
		}
		out.WriteString(m.Stream)
	}
	if ok, err := imageExists(ctx, cli, DefaultImage); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("docker build finished but %s is missing:\n%s", DefaultImage, out.String())
	}
	return nil
}

// installMinIO runs `go install Module@Version` for linux/arch with cgo off (a static binary
// for the scratch image) and returns the binary's path under dir.
func installMinIO(ctx context.Context, dir, arch string, logf func(string, ...any)) (string, error) {
	goTool, err := findGo()
	if err != nil {
		return "", err
	}

	env := cleanGoEnv(os.Environ())
	env = append(env,
		"CGO_ENABLED=0",
		"GOOS=linux",
		"GOARCH="+arch,
		// A non-empty GOFLAGS also overrides flags set with `go env -w` (-race, -tags, ...)
		// that would break or alter the build. -buildvcs=false changes nothing in a
		// module@version build, so earlier builds' cache entries still apply.
		"GOFLAGS=-buildvcs=false",
	)
	bin := filepath.Join(dir, "bin", "minio")
	if runtime.GOOS == "linux" && runtime.GOARCH == arch {
		env = append(env, "GOBIN="+filepath.Join(dir, "bin"))
	} else {
		// go install refuses GOBIN for cross-compiled binaries; it puts them in
		// $GOPATH/bin/GOOS_GOARCH instead. Keep the module cache where it is.
		modcache, err := exec.CommandContext(ctx, goTool, "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOMODCACHE: %w", err)
		}
		env = append(env, "GOPATH="+dir, "GOMODCACHE="+strings.TrimSpace(string(modcache)))
		bin = filepath.Join(dir, "bin", "linux_"+arch, "minio")
	}

	logf("miniofixture: image %s is missing; running `go install %s@%s` (a few minutes on a fresh machine)",
		DefaultImage, Module, Version)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "install", Module+"@"+Version)
	cmd.Env = env
	cmd.Dir = dir // outside any module, so the caller's go.mod and go.work play no part
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", Module, Version, err, out.String())
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("go install %s@%s succeeded but %s is missing: %w", Module, Version, bin, err)
	}
	logf("miniofixture: go install took %s", time.Since(start).Round(time.Second))
	return bin, nil
}

// findGo returns the go command: the one on PATH, else the one of the toolchain that built
// this program (the go test binary).
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("miniofixture: no go command on PATH or in GOROOT; it is needed to build MinIO")
	}
	return p, nil
}

// cleanGoEnv drops the variables that installMinIO sets or that would change what a
// `go install pkg@version` builds.
func cleanGoEnv(env []string) []string {
	drop := map[string]bool{
		"CGO_ENABLED": true, "GOOS": true, "GOARCH": true, "GOBIN": true, "GOFLAGS": true,
		"GOWORK": true, "GOEXPERIMENT": true, "GOAMD64": true, "GOARM64": true, "GOARM": true,
	}
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return out
}

// dockerfile runs MinIO from a scratch image. Running as root, MinIO creates /data itself;
// the image still carries an empty /data, a sticky /tmp and $HOME so that it also runs under a
// non-root --user and anything that wants a temporary directory finds one. The web console
// is off: its listener would take a random port for nothing.
const dockerfile = `FROM scratch
COPY rootfs/ /
ENV HOME=/root MINIO_BROWSER=off
EXPOSE 9000
ENTRYPOINT ["/minio"]
CMD ["server", "/data", "--address", ":9000"]
`

// writeBuildContext streams the build context tar: the Dockerfile, the binary and the empty
// directories of the image's root file system.
func writeBuildContext(w io.Writer, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}

	now := time.Now()
	tw := tar.NewWriter(w)
	hdrs := []*tar.Header{
		{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg},
		{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir},
		{Name: "rootfs/data/", Mode: 0o777, Typeflag: tar.TypeDir},
		{Name: "rootfs/root/", Mode: 0o700, Typeflag: tar.TypeDir},
		{Name: "rootfs/tmp/", Mode: 0o1777, Typeflag: tar.TypeDir},
	}
	for _, h := range hdrs {
		h.ModTime = now
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Name == "Dockerfile" {
			if _, err := io.WriteString(tw, dockerfile); err != nil {
				return err
			}
		}
	}
	if err := tw.WriteHeader(&tar.Header{
		Name: "rootfs/minio", Mode: 0o755, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: now,
	}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}
