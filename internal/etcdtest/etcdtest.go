// Package etcdtest runs a real etcd server for tests: one member on
// loopback ports with a data directory of the test's own, started from the
// binary named by the WARRANT_ETCD environment variable or found as "etcd" on
// PATH (Debian's etcd-server package installs it). Without a binary the test
// is skipped, unless CI is set: there a missing etcd is a failure, so that
// the tests that need it cannot pass by not running.
//
// The server can be stopped and restarted on the same ports and data
// directory, which is how tests take etcd away from the code under test and
// give it back.
package etcdtest

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a start waits for the server to be healthy;
// generous, for a busy machine.
const startTimeout = 60 * time.Second

// Server is one etcd member run by a test. Its methods are safe for
// concurrent use, but Restart and Stop must not race each other.
type Server struct {
	t       testing.TB
	bin     string
	dir     string // data directory
	logPath string
	client  string // host:port of the client URL
	peer    string // host:port of the peer URL

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been waited for
}

// Binary returns the etcd binary tests use, from WARRANT_ETCD or PATH, or
// skips t (fails it when CI is set) if there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("WARRANT_ETCD"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd not found (set WARRANT_ETCD or install Debian's etcd-server): %v", err)
		}
		t.Skipf("etcd not found (set WARRANT_ETCD or install Debian's etcd-server): %v", err)
	}
	return bin
}

// Start runs a fresh etcd member and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:      t,
		bin:    Binary(t),
		dir:    filepath.Join(t.TempDir(), "etcd"),
		client: freeAddr(t),
		peer:   freeAddr(t),
	}
	s.logPath = s.dir + ".log"
	t.Cleanup(s.Stop)
	s.start()
	return s
}

// Endpoint is the client URL, for clientv3.Config.Endpoints.
func (s *Server) Endpoint() string { return "http://" + s.client }

// Addr is the client address (host:port), for a proxy in front of it.
func (s *Server) Addr() string { return s.client }

// Stop stops the server (SIGTERM, then SIGKILL if it lingers) and waits for
// it; the data directory is kept for Restart. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.proc.Kill()
		<-s.exited
	}
	s.proc, s.exited = nil, nil
}

// Restart starts the stopped server again on the same ports and data
// directory (stopping it first if it runs), and waits until it is healthy.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	clientURL, peerURL := "http://"+s.client, "http://"+s.peer
	cmd := exec.Command(s.bin,
		"--name", "test",
		"--data-dir", s.dir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL,
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("etcd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(startTimeout)
	for !healthy(clientURL) {
		select {
		case <-exited:
			s.t.Fatalf("etcd exited while starting:\n%s", s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			s.t.Fatalf("etcd not healthy after %v:\n%s", startTimeout, s.logTail())
		}
	}
	s.proc, s.exited = cmd.Process, exited
}

// healthy says whether the member answers its health endpoint, which it
// does once it has a raft leader (itself) and serves requests.
func healthy(clientURL string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(clientURL + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"health":"true"`)
}

// logTail is the end of the server's log, for a failure message.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freeAddr returns a loopback address with a port nobody listens on now.
// Another process may take it before etcd does; that is rare enough for
// tests, and start fails loudly if it happens.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
