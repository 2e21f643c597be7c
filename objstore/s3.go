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
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("objstore: get %s: %w", s.url(key), err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(join(s.prefix, key)),
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: get %s: %w", s.url(key), describe(err))
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > MaxObjectBytes {
		return nil, fmt.Errorf("objstore: get %s: %w: %d bytes, limit %d", s.url(key), ErrTooLarge, n, MaxObjectBytes)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("objstore: get %s: reading the body: %w", s.url(key), err)
	}
	if len(data) > MaxObjectBytes {
		return nil, fmt.Errorf("objstore: get %s: %w: more than the limit of %d bytes", s.url(key), ErrTooLarge, MaxObjectBytes)
	}
	if out.ContentLength != nil && int64(len(data)) != *out.ContentLength {
		return nil, fmt.Errorf("objstore: get %s: body is %d bytes, announced %d", s.url(key), len(data), *out.ContentLength)
	}
	return data, nil
}

// Put stores data at key, replacing any object there. It sends the data's
// MD5 (Content-MD5, which every S3-compatible server checks) besides the
// SigV4 payload hash, so bytes damaged on the way are refused rather than
// stored, whatever the transport and signing mode.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: put %s: %w", s.url(key), err)
	}
	if len(data) > MaxObjectBytes {
		return fmt.Errorf("objstore: put %s: %w: %d bytes, limit %d", s.url(key), ErrTooLarge, len(data), MaxObjectBytes)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(join(s.prefix, key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    aws.String(contentMD5(data)),
	})
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", s.url(key), describe(err))
	}
	return nil
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
