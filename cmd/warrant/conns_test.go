package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
)

// slowBody opens a connection from the loopback address ip and sends a
// request whose body never arrives: its headers promise 1,000 bytes, and
// one is sent. The server may already have closed a connection beyond its
// cap when the request is sent: unless held, that is no failure.
func slowBody(t *testing.T, ip, addr string, held bool) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing from %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	req := "POST " + warrantv1connect.LedgerServiceGetCheckpointProcedure + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/proto\r\nContent-Length: 1000\r\n\r\n\x08"
	if _, err := io.WriteString(c, req); err != nil && held {
		t.Fatalf("slow request from %s: %v", ip, err)
	}
	return c
}

// servedFrom reports whether a client connecting from ip gets the
// checkpoint.
func servedFrom(ip, addr string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	rpc := warrantv1connect.NewLedgerServiceClient(hc, "http://"+addr)
	_, err := rpc.GetCheckpoint(context.Background(), connect.NewRequest(&warrantv1.GetCheckpointRequest{}))
	return err
}

// closedByServer waits (up to a generous minute) for the server to close
// c, reading and discarding whatever it answers first.
func closedByServer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return nil // EOF or reset: closed
	}
	return err
}

func checkFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < need {
		t.Skipf("open file limit %d is below the %d this test needs", lim.Cur, need)
	}
}

// TestSlowBodiesTimeOut holds 500 connections whose request bodies never
// arrive against a real server: a legitimate client is still served, and
// the server closes every slow connection once --body-timeout has passed.
func TestSlowBodiesTimeOut(t *testing.T) {
	const slow = 500
	checkFileLimit(t, 2*slow+200) // ours and the server's (same user)
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	startServer(t, dir, env, addr, "--body-timeout", "3s", "--max-conns-per-ip", "100")
	var conns []net.Conn
	for i := range slow {
		conns = append(conns, slowBody(t, fmt.Sprintf("127.0.0.%d", 1+i/100), addr, true))
	}
	if err := servedFrom("127.0.0.9", addr); err != nil {
		t.Fatalf("with %d slow-body connections open, a legitimate client: %v", slow, err)
	}
	for i, c := range conns {
		if err := closedByServer(c); err != nil {
			t.Fatalf("slow connection %d was not closed by the server: %v", i, err)
		}
	}
	if err := servedFrom("127.0.0.1", addr); err != nil {
		t.Fatalf("after the slow connections, a client from their address: %v", err)
	}
}

// TestConnectionsCappedPerAddress fills one address's connection cap with
// slow requests (under a body timeout far longer than the test): that
// address's next connection is closed unanswered, another address is
// served, and a place freed is taken again.
func TestConnectionsCappedPerAddress(t *testing.T) {
	const capPerIP = 50
	checkFileLimit(t, 2*capPerIP+200)
	dir := t.TempDir()
	addr := freeAddr(t)
	env := userEnv(t, dir, addr)
	srv := startServer(t, dir, env, addr, "--body-timeout", "1h", "--max-conns-per-ip", fmt.Sprint(capPerIP))
	baseline := openFiles(t, srv.cmd.Process.Pid)
	var conns []net.Conn
	for i := range 4 * capPerIP { // only the first capPerIP are held
		conns = append(conns, slowBody(t, "127.0.0.1", addr, i < capPerIP))
	}
	// The server may not have accepted the last of them yet: until it
	// has, a connection beyond the cap may still get in. Wait until one
	// is refused.
	deadline := time.Now().Add(time.Minute)
	for servedFrom("127.0.0.1", addr) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("connection %d from one address was still served", capPerIP+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The server holds no more descriptors than its cap allows (plus
	// slack for the store's own files, which may come and go).
	if n := openFiles(t, srv.cmd.Process.Pid); n > baseline+capPerIP+20 {
		t.Errorf("the server holds %d open files, %d before %d connections from one address capped at %d", n, baseline, len(conns), capPerIP)
	}
	if err := servedFrom("127.0.0.2", addr); err != nil {
		t.Fatalf("another address while one is at its cap: %v", err)
	}
	conns[0].Close()
	for {
		err := servedFrom("127.0.0.1", addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a place freed was not taken again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFiles counts the file descriptors process pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count the server's open files: %v", err)
	}
	return len(fds)
}
