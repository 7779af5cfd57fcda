package s3store_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/cairnstore/cairn/durable"
	"github.com/cairnstore/cairn/s3store"
	"github.com/cairnstore/cairn/tiered"
)

// Open a store on S3 or MinIO from a store URL, the way the CLI does:
// credentials come from the AWS default chain (here the environment),
// never from the URL. Importing s3store registers the s3:// scheme.
//
// This example needs a server, so it is compiled but not run by go test;
// the MinIO suites run the same calls against a container.
func Example_url() {
	ctx := context.Background()
	os.Setenv("AWS_ACCESS_KEY_ID", "minioadmin")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "minioadmin")

	store, err := tiered.Open(ctx, "s3://checkpoints/dev?endpoint=http://127.0.0.1:9000&region=us-east-1",
		&tiered.Options{Mode: tiered.WriteBack})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Close flushes: a write-back failure surfaces here.
		if err := store.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	page, err := store.List(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(page.Runs), "runs")
}

// Build the client yourself (S3Options: endpoint, region, path style,
// bounds on each call and attempt) and put the durable store on one
// bucket, with every key under a prefix.
func ExampleNewS3Client() {
	ctx := context.Background()
	client, err := s3store.NewS3Client(ctx, &s3store.S3Options{Region: "eu-west-1"})
	if err != nil {
		log.Fatal(err)
	}
	store, err := durable.New(s3store.NewS3(client, "checkpoints"), &durable.Options{Prefix: "prod"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := store.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	page, err := store.List(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(page.Runs), "runs")
}
