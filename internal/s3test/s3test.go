// Package s3test runs a real S3-compatible server for tests: versitygw, a
// gateway that serves a local directory over the S3 API, built from the
// module proxy (.ci/run installs it into .bin/). Tests find it through the
// WARRANT_VERSITYGW environment variable; without it they skip, unless CI is
// set, where a missing server is a failure rather than a silent skip.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
)

// Env names the environment variable holding the versitygw binary's path.
const Env = "WARRANT_VERSITYGW"

// Server is one running versitygw over a temporary directory, with one bucket.
type Server struct {
	// Endpoint is the server's base URL, e.g. "http://127.0.0.1:40123".
	Endpoint string
	// Bucket exists and is empty when Start returns.
	Bucket string
	// Region is the region the server signs for (clients must use it).
	Region string
	// AccessKeyID and SecretAccessKey are the server's root credentials.
	AccessKeyID, SecretAccessKey string

	cmd  *exec.Cmd
	out  *output
	done chan struct{}
	once sync.Once
}

// Binary returns the versitygw binary from WARRANT_VERSITYGW, skipping the
// test when it is unset (failing it when CI is set).
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(Env)
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: .ci/run must build versitygw into .bin/ and export its path", Env)
		}
		t.Skipf("%s is not set: no S3-compatible server to test against", Env)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v", Env, bin, err)
	}
	return bin
}

// Start runs versitygw's posix backend over a temporary directory on a free
// loopback port with fresh random root credentials, creates a bucket, and
// stops the server when the test ends.
//
// Object metadata is kept in extended attributes of the objects' files
// (versitygw's default) wherever the file system has them: a put is then
// one link of a fully written file, so a server killed mid-put leaves the
// object whole or absent, as S3 does. Only without them does it go to a
// sidecar directory, which is not crash-atomic: versitygw stores an
// object's ETag there before linking its data, so a kill between the two
// leaves a key that a conditional put finds taken and a read finds empty.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	root := t.TempDir()
	data, sidecar := filepath.Join(root, "data"), filepath.Join(root, "meta")
	for _, d := range []string{data, sidecar} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if hasXattrs(data) {
		sidecar = ""
	}
	s := &Server{
		Bucket:          "warrant-test",
		Region:          "us-east-1",
		AccessKeyID:     "root" + randomHex(t, 8),
		SecretAccessKey: randomHex(t, 20),
	}
	// A port found by listening and closing can be taken again before the
	// server binds it; on that rare failure, try another.
	var err error
	for range 3 {
		if err = s.start(bin, freeAddr(t), data, sidecar); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v\nversitygw output:\n%s", s.Bucket, err, s.out.tail())
	}
	return s
}

func (s *Server) start(bin, addr, data, sidecar string) error {
	out := &output{}
	args := []string{"--port", addr,
		"--access", s.AccessKeyID, "--secret", s.SecretAccessKey,
		"--region", s.Region, "--quiet", "posix"}
	if sidecar != "" {
		args = append(args, "--sidecar", sidecar)
	}
	cmd := exec.Command(bin, append(args, data)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	endpoint := "http://" + addr
	// Generous: the machine may be busy, and the server has no readiness
	// signal but answering.
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start (%v):\n%s", cmd.ProcessState, out.tail())
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw did not answer on %s within 60s: %v\n%s", addr, err, out.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Endpoint, s.cmd, s.out, s.done = endpoint, cmd, out, done
	return nil
}

// Client returns an S3 client with the root credentials, path-style, for
// tests that need to reach past the store under test (to plant an object).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}, nil
		}),
	})
}

// Stop kills the server and waits for it to exit. Tests call it to see the
// store unavailable; it runs again, harmlessly, when the test ends.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
}

// Output returns the tail of the server's output, for a failing test's log.
func (s *Server) Output() string { return s.out.tail() }

// hasXattrs reports whether dir's file system keeps user extended
// attributes: the test versitygw runs itself at start.
func hasXattrs(dir string) bool {
	_, err := unix.Getxattr(dir, "user.test", nil)
	return !errors.Is(err, unix.ENOTSUP)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// output keeps the last 64 KiB a server wrote: the tail is what a failure
// needs, and a long test must not grow it without bound.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const outputBytes = 64 << 10

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	if o.b.Len() > 2*outputBytes {
		keep := append([]byte(nil), o.b.Bytes()[o.b.Len()-outputBytes:]...)
		o.b.Reset()
		o.b.Write(keep)
	}
	return len(p), nil
}

func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.b.Bytes()
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}
