// Command cairnbench compares Cairn with raw S3 requests, a hand-written
// JSON store and a single index object, in one run, and writes
// BENCHMARKS.md and BENCHMARKS.png (see package bench).
//
//	go run ./tools/cairnbench                  # MinIO in a container, no added latency
//	go run ./tools/cairnbench -latency 50ms    # S3 Standard-like request latency
//	go run ./tools/cairnbench -quick           # a few seconds, tiny counts
//	go run ./tools/cairnbench -endpoint http://127.0.0.1:9000 -access-key … -secret-key …
//
// Without -endpoint it uses CAIRN_S3_ENDPOINT (with CAIRN_S3_ACCESS_KEY,
// CAIRN_S3_SECRET_KEY, CAIRN_S3_REGION) or starts MinIO with testcontainers,
// as the tests do (TESTCONTAINERS_RYUK_DISABLED=true where the reaper image
// cannot be pulled).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"

	"github.com/cairnstore/cairn/internal/bench"
	"github.com/cairnstore/cairn/internal/miniofixture"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("cairnbench: ")
	var (
		endpoint  = flag.String("endpoint", "", "S3 endpoint (default: "+miniofixture.EnvEndpoint+", else a MinIO container)")
		region    = flag.String("region", os.Getenv(miniofixture.EnvRegion), "region of -endpoint")
		accessKey = flag.String("access-key", os.Getenv(miniofixture.EnvAccessKey), "access key of -endpoint")
		secretKey = flag.String("secret-key", os.Getenv(miniofixture.EnvSecretKey), "secret key of -endpoint")
		bucket    = flag.String("bucket", "", "existing bucket to use (default: create one, delete it at the end)")
		latency   = flag.Duration("latency", 0, "latency added before every request (5ms ~ S3 Express, 50ms ~ S3 Standard)")
		quick     = flag.Bool("quick", false, "tiny counts, 100 and 1,000 runs: a few seconds")
		conc      = flag.Int("concurrency", 0, "concurrent callers per contender (default 16, quick 8)")
		out       = flag.String("out", "BENCHMARKS.md", "report to write")
		png       = flag.String("plot", "BENCHMARKS.png", "plot to write")
	)
	flag.Parse()

	cfg := bench.Default()
	if *quick {
		cfg = bench.Quick()
	}
	if *conc > 0 {
		cfg.Concurrency = *conc
	}
	cfg.Latency, cfg.Bucket, cfg.Logf = *latency, *bucket, log.Printf

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopSignals()
	if err := run(ctx, cfg, *endpoint, *region, *accessKey, *secretKey, *out, *png); err != nil {
		log.Fatal(err)
	}
}

// run is main without os.Exit, so that the container is stopped whatever happens.
func run(ctx context.Context, cfg bench.Config, endpoint, region, accessKey, secretKey, out, png string) error {
	if endpoint != "" {
		cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey = endpoint, region, accessKey, secretKey
		cfg.Server = "external endpoint " + endpoint
		cfg.Cleanup = true
	} else {
		// /data on a tmpfs: on machines whose Docker storage driver is fuse-overlayfs, the
		// driver otherwise spends more CPU than MinIO, and the run measures it.
		srv, stop, err := miniofixture.Launch(ctx, log.Printf, &miniofixture.LaunchOptions{Tmpfs: true})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := stop(sctx); err != nil {
				log.Printf("stop MinIO: %v", err)
			}
		}()
		cfg.Endpoint, cfg.Region, cfg.AccessKey, cfg.SecretKey = srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey
		cfg.Server = "external endpoint (" + miniofixture.EnvEndpoint + ")"
		if srv.Managed() {
			cfg.Server = "MinIO " + miniofixture.Version + " in a container (image " + srv.Image + ", /data on a tmpfs), on this machine over loopback"
		} else {
			cfg.Cleanup = true
		}
	}

	r, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var md, img bytes.Buffer
	if err := r.WriteMarkdown(&md, commit()); err != nil {
		return err
	}
	if err := r.WritePlot(&img); err != nil {
		return err
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(png, img.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s and %s in %s", out, png, r.Took.Round(time.Second))
	return nil
}

// commit names the code measured: the HEAD commit, marked when the tree has
// uncommitted changes.
func commit() string {
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	c := strings.TrimSpace(string(head))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += fmt.Sprintf(" with uncommitted changes (%d files)", len(bytes.Split(bytes.TrimSpace(st), []byte("\n"))))
	}
	return c
}
