// Command miniosites makes two MinIO sites active-active replicas of one bucket: on each site a
// remote target pointing at the other and a bucket replication rule that replicates new
// objects, existing objects, deletes and delete markers. The bucket must already exist on both
// sites with versioning on. internal/miniofixture (StartSites) runs it; people seldom need to.
//
//	MINIOSITES_ACCESS_KEY=… MINIOSITES_SECRET_KEY=… go run . -bucket b \
//	    -a http://127.0.0.1:32768 -a-peer site-a:9000 -a-region us-east-1 \
//	    -b http://127.0.0.1:32769 -b-peer site-b:9000 -b-region eu-west-1
//
// Reads are not proxied: a site answers a GET or HEAD of a key it lacks with 404, as S3 does,
// instead of asking the other site.
//
// -a and -b are where this program reaches each site; -a-peer and -b-peer are host:port where
// the other site reaches it. Both sites take the same credentials, read from the environment so
// that they stay out of the process list.
//
// This is its own module because the remote-target call exists only in MinIO's admin client,
// github.com/minio/madmin-go, which is AGPL-3.0: it must never enter the go.mod of
// github.com/cairnstore/cairn. Cairn's tests run this program as a separate process, the way
// they run the MinIO server itself; it is a test tool and is not distributed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/replication"
)

// site is one MinIO deployment as this program and the other site see it.
type site struct {
	name     string
	endpoint string // URL this program uses
	peer     string // host:port the other site uses
	region   string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("miniosites: ")
	var a, b site
	a.name, b.name = "a", "b"
	bucket := flag.String("bucket", "", "the bucket to replicate, on both sites")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	for _, s := range []*site{&a, &b} {
		flag.StringVar(&s.endpoint, s.name, "", "URL of site "+s.name+" for this program, http://host:port")
		flag.StringVar(&s.peer, s.name+"-peer", "", "host:port of site "+s.name+" for the other site")
		flag.StringVar(&s.region, s.name+"-region", "us-east-1", "region of site "+s.name)
	}
	flag.Parse()
	accessKey, secretKey := os.Getenv("MINIOSITES_ACCESS_KEY"), os.Getenv("MINIOSITES_SECRET_KEY")

	var problems []error
	if *bucket == "" {
		problems = append(problems, errors.New("-bucket is required"))
	}
	for _, s := range []*site{&a, &b} {
		if s.endpoint == "" || s.peer == "" {
			problems = append(problems, fmt.Errorf("-%s and -%s-peer are required", s.name, s.name))
		}
	}
	if accessKey == "" || secretKey == "" {
		problems = append(problems, errors.New("MINIOSITES_ACCESS_KEY and MINIOSITES_SECRET_KEY must be set"))
	}
	if err := errors.Join(problems...); err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	creds := &madmin.Credentials{AccessKey: accessKey, SecretKey: secretKey}
	for _, d := range [][2]*site{{&a, &b}, {&b, &a}} {
		start := time.Now()
		arn, err := replicate(ctx, *bucket, d[0], d[1], creds)
		if err != nil {
			log.Fatalf("%s -> %s: %v", d[0].name, d[1].name, err)
		}
		fmt.Printf("%s -> %s: %s (%s)\n", d[0].name, d[1].name, arn, time.Since(start).Round(time.Millisecond))
	}
}

// replicate makes src replicate bucket to dst and returns the remote target's ARN.
func replicate(ctx context.Context, bucket string, src, dst *site, creds *madmin.Credentials) (string, error) {
	u, err := url.Parse(src.endpoint)
	if err != nil {
		return "", fmt.Errorf("-%s: %w", src.name, err)
	}
	secure := u.Scheme == "https"
	adm, err := madmin.New(u.Host, creds.AccessKey, creds.SecretKey, secure)
	if err != nil {
		return "", err
	}
	arn, err := adm.SetRemoteTarget(ctx, bucket, &madmin.BucketTarget{
		SourceBucket: bucket,
		Endpoint:     dst.peer,
		Credentials:  creds,
		TargetBucket: bucket,
		Type:         madmin.ReplicationService,
		Region:       dst.region,
		// MinIO would otherwise forward a GET or HEAD of a key it lacks to the other site.
		// That hides replication lag (S3's cross-region replication does not do it), and
		// while the link is cut such a request hangs for minutes and ends in a 500.
		DisableProxy: true,
	})
	if err != nil {
		return "", fmt.Errorf("set remote target: %w", err)
	}

	s3, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, ""),
		Secure: secure,
		Region: src.region,
	})
	if err != nil {
		return "", err
	}
	enabled := replication.Enabled
	cfg := replication.Config{Rules: []replication.Rule{{
		ID:                        "cairn-to-" + dst.name,
		Status:                    enabled,
		Priority:                  1,
		DeleteMarkerReplication:   replication.DeleteMarkerReplication{Status: enabled},
		DeleteReplication:         replication.DeleteReplication{Status: enabled},
		ExistingObjectReplication: replication.ExistingObjectReplication{Status: enabled},
		// Metadata changes made to a replica go back too, as active-active needs.
		SourceSelectionCriteria: replication.SourceSelectionCriteria{
			ReplicaModifications: replication.ReplicaModifications{Status: enabled},
		},
		Destination: replication.Destination{Bucket: arn},
	}}}
	if err := s3.SetBucketReplication(ctx, bucket, cfg); err != nil {
		return "", fmt.Errorf("set bucket replication: %w", err)
	}
	return arn, nil
}
