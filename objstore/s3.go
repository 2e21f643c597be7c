package objstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config says which bucket prefix an S3 store holds and how to reach it.
type S3Config struct {
	// Bucket and Prefix, as ParseURL returns them from "s3://BUCKET/PREFIX".
	Bucket, Prefix string
	// Endpoint is the base URL of an S3-compatible server ("http://127.0.0.1:7070");
	// requests to it are path-style (http://host/BUCKET/KEY), which every
	// S3-compatible server understands without DNS names per bucket. Empty
	// means AWS S3 itself, found from Region.
	Endpoint string
	// Region signs the requests; empty means the AWS_REGION environment
	// variable, else "us-east-1", which S3-compatible servers accept by
	// default.
	Region string
	// AccessKeyID and SecretAccessKey are the credentials. Both empty means
	// the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables
	// (ReadCredentialsFile reads a file of the same two lines).
	AccessKeyID, SecretAccessKey string
	// HTTPClient sends the requests; nil means the SDK's default client.
	HTTPClient *http.Client
}

// S3 is a Store over one prefix of an S3 bucket.
//
// The credentials need s3:GetObject, s3:PutObject and s3:ListBucket on the
// prefix: without ListBucket, S3 answers a missing key with 403 instead of
// 404, and Get could not tell "not there yet" from "denied".
type S3 struct {
	client         *s3.Client
	bucket, prefix string
}

// NewS3 checks cfg, then lists at most one key under the prefix so that wrong
// credentials, a missing bucket or an unreachable endpoint are reported when
// the store is opened (serve refuses to start) rather than at the first append.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := checkBucket(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	if cfg.Prefix != "" {
		if err := checkPath(cfg.Prefix, maxPrefixBytes); err != nil {
			return nil, fmt.Errorf("objstore: prefix: %w", err)
		}
	}
	creds := aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, Source: "warrant S3Config"}
	if creds.AccessKeyID == "" && creds.SecretAccessKey == "" {
		creds = aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Source: "environment"}
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return nil, errors.New("objstore: no S3 credentials: both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (in the environment or a credentials file)")
	}
	region := cmp.Or(cfg.Region, os.Getenv("AWS_REGION"), "us-east-1")
	opts := s3.Options{
		Region: region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("objstore: S3 endpoint %q: want http(s)://HOST[:PORT][/PATH]", cfg.Endpoint)
		}
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
		opts.UsePathStyle = true
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	s := &S3{client: s3.New(opts), bucket: cfg.Bucket, prefix: cfg.Prefix}
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(join(s.prefix, "")),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", s.url(""), describe(err))
	}
	return s, nil
}

// url names an object in errors and logs.
func (s *S3) url(key string) string {
	return "s3://" + s.bucket + "/" + join(s.prefix, key)
}

// Get returns the object at key. It refuses, without reading it, an object
// whose announced length is over MaxObjectBytes, and stops reading one that
// turns out longer than announced.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := s.GetWithETag(ctx, key)
	return data, err
}

// GetWithETag is Get, with the object's ETag as the server sent it (quoted)
// for a later Replace.
func (s *S3) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", fmt.Errorf("objstore: get %s: %w", s.url(key), err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(join(s.prefix, key)),
	})
	if err != nil {
		return nil, "", fmt.Errorf("objstore: get %s: %w", s.url(key), describe(err))
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > MaxObjectBytes {
		return nil, "", fmt.Errorf("objstore: get %s: %w: %d bytes, limit %d", s.url(key), ErrTooLarge, n, MaxObjectBytes)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxObjectBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("objstore: get %s: reading the body: %w", s.url(key), err)
	}
	if len(data) > MaxObjectBytes {
		return nil, "", fmt.Errorf("objstore: get %s: %w: more than the limit of %d bytes", s.url(key), ErrTooLarge, MaxObjectBytes)
	}
	if out.ContentLength != nil && int64(len(data)) != *out.ContentLength {
		return nil, "", fmt.Errorf("objstore: get %s: body is %d bytes, announced %d", s.url(key), len(data), *out.ContentLength)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return nil, "", fmt.Errorf("objstore: get %s: the server sent no ETag, so the object cannot be replaced conditionally", s.url(key))
	}
	return data, etag, nil
}

// Put stores data at key, replacing any object there. It sends the data's
// MD5 (Content-MD5, which every S3-compatible server checks) besides the
// SigV4 payload hash, so bytes damaged on the way are refused rather than
// stored, whatever the transport and signing mode.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "put", key, data, nil)
}

// Create is Put with If-None-Match: *: the server stores data only if key
// holds no object, and answers 412 Precondition Failed (ErrExists)
// otherwise. A 409 ConditionalRequestConflict (AWS: another conditional
// write of the key is in progress) is reported as ErrExists too: the key
// is being written, and the caller reads it to see by whom.
func (s *S3) Create(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, "create", key, data, func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
}

// Replace is Put with If-Match: etag: the server stores data only if key
// holds the object tagged etag, and answers 412 Precondition Failed (or
// 404 if key holds nothing, or 409 for a conflicting conditional write in
// progress) otherwise, all ErrChanged.
func (s *S3) Replace(ctx context.Context, key string, data []byte, etag string) error {
	if etag == "" {
		return fmt.Errorf("objstore: replace %s: empty ETag", s.url(key))
	}
	return s.put(ctx, "replace", key, data, func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) })
}

// put sends one PutObject, with the conditions cond sets.
func (s *S3) put(ctx context.Context, op, key string, data []byte, cond func(*s3.PutObjectInput)) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: %s %s: %w", op, s.url(key), err)
	}
	if len(data) > MaxObjectBytes {
		return fmt.Errorf("objstore: %s %s: %w: %d bytes, limit %d", op, s.url(key), ErrTooLarge, len(data), MaxObjectBytes)
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(join(s.prefix, key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    aws.String(contentMD5(data)),
	}
	if cond != nil {
		cond(in)
	}
	_, err := s.client.PutObject(ctx, in)
	if err == nil {
		return nil
	}
	if cond != nil && preconditionFailed(op, err) {
		if op == "create" {
			return fmt.Errorf("objstore: %s %s: %w (%w)", op, s.url(key), ErrExists, err)
		}
		return fmt.Errorf("objstore: %s %s: %w (%w)", op, s.url(key), ErrChanged, err)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, s.url(key), describe(err))
}

// preconditionFailed reports whether a conditional PutObject was refused
// for its condition: 412 PreconditionFailed, 409 ConditionalRequestConflict,
// or for If-Match on a missing key 404 NoSuchKey (not NoSuchBucket).
func preconditionFailed(op string, err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		case "NoSuchKey":
			return op == "replace"
		}
	}
	var resp *awshttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusPreconditionFailed
}

// contentMD5 is the Content-MD5 header's value: an integrity check against
// damage in transit, not a security one (the signature covers that).
func contentMD5(data []byte) string {
	sum := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// describe turns the SDK's error into one that says what happened: a missing
// key wraps ErrNotFound, refused credentials wrap ErrDenied with the server's
// code and message, anything else keeps the SDK's error (which names the
// operation, the HTTP status and the request ID).
func describe(err error) error {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return ErrNotFound
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch api.ErrorCode() {
	case "NoSuchKey", "NotFound":
		return ErrNotFound
	case "NoSuchBucket":
		return fmt.Errorf("bucket does not exist: %w", err)
	// versitygw answers an unknown access key with XAdminUserNotFound (and
	// a 404), where AWS says InvalidAccessKeyId (and 403).
	case "InvalidAccessKeyId", "XAdminUserNotFound", "SignatureDoesNotMatch", "AccessDenied",
		"InvalidToken", "ExpiredToken", "RequestTimeTooSkewed":
		return fmt.Errorf("%w: %s: %s", ErrDenied, api.ErrorCode(), api.ErrorMessage())
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusForbidden {
		return fmt.Errorf("%w: %s: %s", ErrDenied, api.ErrorCode(), api.ErrorMessage())
	}
	return err
}
