package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// warrantBin is the warrant binary built once for the tests that run it as
// a user would.
var warrantBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warrant-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrantBin = filepath.Join(dir, "warrant")
	out, err := exec.Command("go", "build", "-o", warrantBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building warrant: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// userEnv is an environment for running warrant as a user: its own config
// dir (so trusted state stays in the test), a port of its own.
func userEnv(t *testing.T, dir, addr string) []string {
	return append(os.Environ(),
		"PATH="+filepath.Dir(warrantBin)+":"+os.Getenv("PATH"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HOME="+dir,
		"WARRANT_LISTEN="+addr,
		"WARRANT_SERVER=http://"+addr,
		"WARRANT_LOG_KEY=",
		"WARRANT_REGISTRAR_KEY=",
	)
}

// result is what a warrant process did.
type result struct {
	stdout, stderr string
	code           int
}

// warrant runs the binary in dir and returns its output and exit status.
func warrant(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrantBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running warrant %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustWarrant runs warrant and fails the test unless it exits 0.
func mustWarrant(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	r := warrant(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("warrant %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// server is a running `warrant serve` process.
type server struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
}

// startServer runs `warrant serve` in dir and waits until it answers.
func startServer(t *testing.T, dir string, env []string, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(warrantBin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, logs: &logs}
	t.Cleanup(func() { s.kill(syscall.SIGKILL) })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if answers(addr) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers reports whether an HTTP server answers at addr (over TLS or not:
// a TLS server answers a plain request with a 400). A connection alone is
// not enough: serve binds its address before it opens its log.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /checkpoint HTTP/1.0\r\n\r\n")); err != nil {
		return false
	}
	b := make([]byte, 5)
	_, err = io.ReadFull(c, b)
	return err == nil && string(b) == "HTTP/"
}

// kill sends sig and waits for the process to exit.
func (s *server) kill(sig syscall.Signal) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(sig)
	s.cmd.Wait()
}
