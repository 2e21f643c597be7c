// Package etcdtest runs a real etcd server for tests: one member (Start) or
// a cluster of several (StartCluster) on loopback ports with data
// directories of the test's own, started from the
// binary named by the WARRANT_ETCD environment variable or found as "etcd" on
// PATH (Debian's etcd-server package installs it). Without a binary the test
// is skipped, unless CI is set: there a missing etcd is a failure, so that
// the tests that need it cannot pass by not running.
//
// A member can be stopped and restarted on the same ports and data
// directory, which is how tests take etcd (or its quorum) away from the code
// under test and give it back.
package etcdtest

import (
	"fmt"
	"io"
	"math/rand/v2"
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
	name    string // member name
	cluster string // --initial-cluster: every member's name=peer URL
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
	return StartCluster(t, 1)[0]
}

// StartCluster runs a fresh etcd cluster of n members on loopback, waits
// until every member is healthy (the cluster has elected a raft leader), and
// stops them when the test ends. Stopping members takes the cluster's quorum
// away; restarting them gives it back.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	// A port found free can be taken by another process before etcd binds
	// it (freeAddr); then the cluster starts again on other ports.
	for attempt := 1; ; attempt++ {
		ss := make([]*Server, n)
		var initial []string
		for i := range ss {
			name := fmt.Sprintf("m%d", i)
			ss[i] = &Server{
				t:      t,
				bin:    bin,
				name:   name,
				dir:    filepath.Join(dir, fmt.Sprintf("%s-%d", name, attempt)),
				client: freeAddr(t),
				peer:   freeAddr(t),
			}
			ss[i].logPath = ss[i].dir + ".log"
			initial = append(initial, name+"=http://"+ss[i].peer)
			t.Cleanup(ss[i].Stop)
		}
		for _, s := range ss {
			s.cluster = strings.Join(initial, ",")
			s.launch()
		}
		var err error
		for _, s := range ss {
			if err = s.waitHealthyErr(); err != nil {
				break
			}
		}
		if err == nil {
			return ss
		}
		for _, s := range ss {
			s.Stop()
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("etcd: a port was taken before etcd bound it; starting the cluster again on other ports (%v)", strings.SplitN(err.Error(), "\n", 2)[0])
	}
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
// directory (stopping it first if it runs), and waits until it is healthy
// (in a cluster: until it has a leader, which needs a quorum of members).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.launch()
	s.waitHealthy()
}

// launch starts the process, without waiting for it to serve.
func (s *Server) launch() {
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
		"--name", s.name,
		"--data-dir", s.dir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", s.cluster,
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("etcd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.proc, s.exited = cmd.Process, exited
}

// waitHealthy waits until the member answers its health endpoint, failing
// the test if it exits or takes longer than startTimeout.
func (s *Server) waitHealthy() {
	s.t.Helper()
	if err := s.waitHealthyErr(); err != nil {
		s.t.Fatal(err)
	}
}

// waitHealthyErr is waitHealthy, returning the failure with the log's tail.
func (s *Server) waitHealthyErr() error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for !healthy(s.Endpoint()) {
		select {
		case <-exited:
			return fmt.Errorf("etcd %s exited while starting:\n%s", s.name, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s not healthy after %v:\n%s", s.name, startTimeout, s.logTail())
		}
	}
	return nil
}

// healthy says whether the member answers its health endpoint, which it
// does once its cluster has a raft leader and it serves requests.
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

// freeAddr returns a loopback address with a port nobody listens on now,
// chosen below Linux's default ephemeral range (32768-60999), where the
// kernel does not hand out ports to other processes' connections and
// listeners on port 0, so that it is very likely still free when etcd
// binds it; StartCluster starts again on other ports if it was not.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err == nil {
			defer l.Close()
			return l.Addr().String()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
