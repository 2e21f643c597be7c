package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/warrantlog/warrant/internal/s3test"
	"github.com/warrantlog/warrant/objstore"
)

// These tests run against versitygw (internal/s3test), a real S3-compatible
// server; they skip without it unless CI is set.

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, srv *s3test.Server, prefix string) *objstore.S3 {
	t.Helper()
	st, err := objstore.NewS3(testContext(t), objstore.S3Config{
		Bucket: srv.Bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey,
	})
	if err != nil {
		t.Fatalf("NewS3: %v\n%s", err, srv.Output())
	}
	return st
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// rawGet reads an object with the server's own client, past the store.
func rawGet(t *testing.T, srv *s3test.Server, key string) []byte {
	t.Helper()
	out, err := srv.Client().GetObject(testContext(t), &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("raw get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawPut(t *testing.T, srv *s3test.Server, key string, data []byte) {
	t.Helper()
	_, err := srv.Client().PutObject(testContext(t), &s3.PutObjectInput{
		Bucket: aws.String(srv.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("raw put %s: %v", key, err)
	}
}

func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "logs/prod")
	ctx := testContext(t)
	objects := map[string][]byte{
		"checkpoint":                  []byte("example.com/log\n1\nroot\n"),
		"tile/0/000":                  randomBytes(t, 8192),
		"tile/entries/000.p/3":        randomBytes(t, 300<<10),
		"tile/entries/x001/234.p/255": {},
	}
	for k, v := range objects {
		if err := st.Put(ctx, k, v); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for k, v := range objects {
		got, err := st.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		if !bytes.Equal(got, v) {
			t.Errorf("Get(%q) = %d bytes, want the %d put", k, len(got), len(v))
		}
		// The bucket is a static tlog-tiles mirror: each object sits at
		// PREFIX/KEY, nowhere else.
		if raw := rawGet(t, srv, "logs/prod/"+k); !bytes.Equal(raw, v) {
			t.Errorf("object %q is not at logs/prod/%s", k, k)
		}
	}
	// Another prefix in the same bucket is another store.
	other := open(t, srv, "logs/test")
	if _, err := other.Get(ctx, "checkpoint"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get from another prefix: %v, want ErrNotFound", err)
	}
	// The largest object the log can write round-trips.
	big := randomBytes(t, objstore.MaxObjectBytes)
	if err := st.Put(ctx, "tile/entries/999", big); err != nil {
		t.Fatalf("Put of MaxObjectBytes: %v", err)
	}
	if got, err := st.Get(ctx, "tile/entries/999"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get of MaxObjectBytes: %d bytes, %v", len(got), err)
	}
}

func TestS3NotFound(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "p")
	_, err := st.Get(testContext(t), "tile/0/000")
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if want := "s3://" + srv.Bucket + "/p/tile/0/000"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
}

func TestS3Overwrite(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "")
	ctx := testContext(t)
	for i, v := range []string{"first checkpoint, longer than the second", "second"} {
		if err := st.Put(ctx, "checkpoint", []byte(v)); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		got, err := st.Get(ctx, "checkpoint")
		if err != nil || string(got) != v {
			t.Fatalf("Get after Put %d = %q, %v; want %q", i, got, err, v)
		}
	}
	if raw := rawGet(t, srv, "checkpoint"); string(raw) != "second" {
		t.Errorf("with an empty prefix the object is at the bucket's root: got %q", raw)
	}
}

func TestS3TooLarge(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "p")
	ctx := testContext(t)
	// Someone who can write to the bucket planted an object the log never writes.
	rawPut(t, srv, "p/tile/entries/000", make([]byte, objstore.MaxObjectBytes+1))
	_, err := st.Get(ctx, "tile/entries/000")
	if !errors.Is(err, objstore.ErrTooLarge) {
		t.Fatalf("Get of an oversized object: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "tile/entries/000") || !strings.Contains(err.Error(), "limit") {
		t.Errorf("error %q does not name the key and the limit", err)
	}
	err = st.Put(ctx, "tile/entries/001", make([]byte, objstore.MaxObjectBytes+1))
	if !errors.Is(err, objstore.ErrTooLarge) {
		t.Fatalf("Put of an oversized object: %v, want ErrTooLarge", err)
	}
	if _, err := st.Get(ctx, "tile/entries/001"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("the refused Put stored something: %v", err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	cases := []struct{ name, id, secret, code string }{
		{"wrong secret", srv.AccessKeyID, "not-the-secret", "SignatureDoesNotMatch"},
		// AWS says InvalidAccessKeyId; versitygw has its own code.
		{"unknown access key", "nobody", srv.SecretAccessKey, "XAdminUserNotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := objstore.NewS3(testContext(t), objstore.S3Config{
				Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: c.id, SecretAccessKey: c.secret,
			})
			if !errors.Is(err, objstore.ErrDenied) {
				t.Fatalf("NewS3: %v, want ErrDenied", err)
			}
			if !strings.Contains(err.Error(), c.code) || !strings.Contains(err.Error(), "s3://"+srv.Bucket) {
				t.Errorf("error %q does not say %s and name the bucket", err, c.code)
			}
			if strings.Contains(err.Error(), srv.SecretAccessKey) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestS3Credentials(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretAccessKey)
	if _, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region}); err != nil {
		t.Fatalf("NewS3 with credentials from the environment: %v", err)
	}
	// Credentials in the config win over the environment.
	_, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: "nobody", SecretAccessKey: "x"})
	if !errors.Is(err, objstore.ErrDenied) {
		t.Fatalf("NewS3 with wrong configured credentials: %v, want ErrDenied", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err = objstore.NewS3(ctx, objstore.S3Config{Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region})
	if err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Fatalf("NewS3 without a secret: %v", err)
	}
}

func TestS3MissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	_, err := objstore.NewS3(testContext(t), objstore.S3Config{
		Bucket: "no-such-bucket", Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey,
	})
	if err == nil || !strings.Contains(err.Error(), "bucket does not exist") || !strings.Contains(err.Error(), "s3://no-such-bucket/") {
		t.Fatalf("NewS3 of a missing bucket: %v", err)
	}
}

func TestS3ServerStopped(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "p")
	ctx := testContext(t)
	if err := st.Put(ctx, "checkpoint", []byte("one")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := st.Put(ctx, "checkpoint", []byte("two")); err == nil {
		t.Fatal("Put with the server stopped succeeded")
	} else if !strings.Contains(err.Error(), "s3://"+srv.Bucket+"/p/checkpoint") {
		t.Errorf("error %q does not name the object", err)
	}
	_, err := st.Get(ctx, "checkpoint")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get with the server stopped: %v; want an error that is not ErrNotFound", err)
	}
	_, err = objstore.NewS3(ctx, objstore.S3Config{Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey})
	if err == nil {
		t.Fatal("NewS3 with the server stopped succeeded")
	}
}

func TestS3BadInput(t *testing.T) {
	srv := s3test.Start(t)
	st := open(t, srv, "p")
	ctx := testContext(t)
	for _, k := range []string{"", "../escape", "tile//0", "/checkpoint", "a?b"} {
		if err := st.Put(ctx, k, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Put(%q): %v", k, err)
		}
		if _, err := st.Get(ctx, k); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Get(%q): %v", k, err)
		}
	}
	for _, cfg := range []objstore.S3Config{
		{Bucket: "Bad_Bucket", Endpoint: srv.Endpoint, Region: srv.Region},
		{Bucket: srv.Bucket, Prefix: "a//b", Endpoint: srv.Endpoint, Region: srv.Region},
		{Bucket: srv.Bucket, Endpoint: "ftp://127.0.0.1:1"},
		{Bucket: srv.Bucket, Endpoint: "127.0.0.1:9000"},
		{Bucket: srv.Bucket, Endpoint: "http://user:pw@127.0.0.1:9000"},
	} {
		cfg.AccessKeyID, cfg.SecretAccessKey = srv.AccessKeyID, srv.SecretAccessKey
		if _, err := objstore.NewS3(ctx, cfg); err == nil {
			t.Errorf("NewS3(%+v) accepted", cfg)
		}
	}
}

// corrupting flips one byte of every PUT body on its way to the server,
// after the client computed its checksums.
type corrupting struct{}

func (corrupting) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > 0 {
			b[len(b)/2] ^= 0x01
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestS3DamagedInTransit(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st, err := objstore.NewS3(ctx, objstore.S3Config{
		Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey,
		HTTPClient: &http.Client{Transport: corrupting{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Put(ctx, "tile/0/000", randomBytes(t, 8192))
	if err == nil {
		t.Fatal("a Put whose bytes were damaged on the way succeeded")
	}
	t.Logf("refused: %v", err)
	if _, err := open(t, srv, "").Get(ctx, "tile/0/000"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the damaged object was stored: %v", err)
	}
}
