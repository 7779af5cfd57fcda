// Package s3store is Cairn's S3 driver: a bucket.Bucket (S3) over one
// bucket of Amazon S3 or an S3-compatible server (MinIO and others),
// through aws-sdk-go-v2, with the client options Cairn needs (NewS3Client:
// endpoint checks, path style, checksums, bounded calls and attempts,
// encryption, storage class and tags of the objects written). Every SDK
// error is classified here, once, into the sentinels of package bucket.
//
// Importing the package registers the s3 scheme of store URLs with
// package bucket, so that tiered.Open and the CLI open s3://bucket/prefix
// URLs (see Store URLs below); a program that never imports it links no
// AWS package. The durable store on top is package durable:
//
//	store, err := durable.New(s3store.NewS3(client, "checkpoints"), &durable.Options{Prefix: "prod"})
//
// Package s3store/faults is a fault-injecting http.RoundTripper for the
// client, to test what the driver and the stores above it do when the
// network or the server misbehaves.
//
// # Store URLs
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1
//
// The credentials come from the AWS default chain (environment, shared
// files, instance roles); a URL holding user info, in itself or in its
// endpoint, is refused. Each query parameter sets the S3Options field
// named beside it, which documents it:
//
//	endpoint         Endpoint: base URL of an S3-compatible server,
//	                 http(s)://host[:port] and nothing more; omit it for AWS
//	region           Region: the signing region; default AWS_REGION or the
//	                 shared config file
//	path_style       PathStyle, true or false: address the bucket as
//	                 endpoint/bucket rather than bucket.endpoint; default
//	                 true when an endpoint is given (MinIO and most
//	                 S3-compatible servers need it), false for AWS
//	checksum         ChecksumWhenRequired: when_required (for servers that
//	                 reject the SDK's default checksums) or default
//	timeout          Timeout: bound of each S3 call, retries included (Go
//	                 duration); default 2m; a store opened from the URL also
//	                 bounds each background flush by it
//	attempt_timeout  RequestTimeout: bound of each attempt of a call;
//	                 default 30s
//	max_attempts     MaxAttempts: attempts per call, the first included (a
//	                 positive integer; 1 disables retries); default the
//	                 SDK's (3, or AWS_MAX_ATTEMPTS)
//	max_backoff      MaxBackoff: bound of the delay before each retry (Go
//	                 duration); default the SDK's 20s
//	sse              SSE: encryption of the objects written, AES256 (SSE-S3),
//	                 aws:kms (SSE-KMS) or aws:kms:dsse; default none sent
//	                 (the bucket's default encryption applies)
//	sse_kms_key_id   SSEKMSKeyID: the KMS key of aws:kms or aws:kms:dsse, a
//	                 key ID, key ARN, alias/name or alias ARN (on MinIO, a
//	                 key name); default the bucket's key, else aws/s3
//	sse_bucket_key   SSEBucketKey, true or false: an S3 Bucket Key for aws:kms
//	storage_class    StorageClass of the objects written, such as STANDARD_IA
//	                 (GLACIER and DEEP_ARCHIVE are refused); default none
//	                 sent (STANDARD)
//	tags             Tags of the objects written: key:value pairs separated
//	                 by commas, tags=team:ml,env:prod (S3 tags never hold a
//	                 comma); a key ends at its first ':', so a key holding
//	                 one must be set through S3Options.Tags; percent-encode
//	                 a space (%20) and a '+' (%2B), as in any query
//
// An unknown parameter, one given twice, an empty value and a value its
// check refuses are errors that name the parameter and never repeat the
// value; so are the combinations NewS3Client refuses (sse_kms_key_id
// without sse=aws:kms or aws:kms:dsse, sse_bucket_key=true without
// sse=aws:kms). bucket.RedactURL shows a value only when it is valid: a
// KMS key ID or ARN is shown, as S3 shows it to every reader of the object.
//
// The Logger and Debug of the bucket.OpenOptions given to OpenURL become
// S3Options.Logger and Debug: with Debug, the client's requests,
// responses and retries are logged, secrets redacted.
//
// # Encryption, storage class and tags
//
// S3Options.SSE, SSEKMSKeyID, SSEBucketKey, StorageClass and Tags go on
// every PutObject the client sends: every object Cairn writes carries them
// (run objects, index logs, pages, snapshots and head, claims, the probe's
// objects), conditional writes included. Cairn writes with PutObject
// alone: no CopyObject, no multipart upload. Reads need no option: S3
// decrypts SSE-S3 and SSE-KMS objects for a caller that may use the key.
// SSE-C (a key sent with every request) is not supported. docs/s3.md has
// the IAM policy these need (s3:PutObjectTagging for tags, kms:GenerateDataKey
// and kms:Decrypt for SSE-KMS) and what storage classes cost objects that
// are rewritten at every step.
//
// # Retries
//
// The SDK's standard retryer repeats a failed attempt (5xx, throttling,
// connection errors) up to S3Options.MaxAttempts attempts, waiting a
// jittered exponential backoff of at most S3Options.MaxBackoff between
// them, all within S3Options.Timeout; S3 documents which errors are
// retried and what a call that runs out of attempts returns.
package s3store
