// Package s3store is Cairn's S3 driver: a bucket.Bucket (S3) over one
// bucket of Amazon S3 or an S3-compatible server (MinIO and others),
// through aws-sdk-go-v2, with the client options Cairn needs (NewS3Client:
// endpoint checks, path style, checksums, bounded calls and attempts).
// Every SDK error is classified here, once, into the sentinels of package
// bucket.
//
// Importing the package registers the s3 scheme of store URLs with
// package bucket, so that tiered.Open and the CLI open s3://bucket/prefix
// URLs (see the parameters below); a program that never imports it links
// no AWS package. The durable store on top is package durable:
//
//	store, err := durable.New(s3store.NewS3(client, "checkpoints"), &durable.Options{Prefix: "prod"})
//
// Package s3store/faults is a fault-injecting http.RoundTripper for the
// client, to test what the driver and the stores above it do when the
// network or the server misbehaves.
package s3store
