package siem_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrantlog/warrant/siem"
)

// sinkTestSyslogServer accepts connections and parses octet-counted
// frames, recording each with the number of the connection it came on.
type sinkTestSyslogServer struct {
	ln net.Listener

	mu     sync.Mutex
	frames []string
	connOf []int
	conns  int
	errs   []error
	got    chan struct{} // one send per frame

	// dropAfter closes a connection after that many frames on it (0: never).
	dropAfter int
	dropped   chan struct{}
}

func sinkTestNewSyslogServer(t *testing.T, cfg *tls.Config, dropAfter int) *sinkTestSyslogServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	srv := &sinkTestSyslogServer{ln: ln, got: make(chan struct{}, 1024), dropAfter: dropAfter, dropped: make(chan struct{}, 16)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.mu.Lock()
			srv.conns++
			n := srv.conns
			srv.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.serve(c, n)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, err := range srv.errs {
			t.Errorf("syslog server: %v", err)
		}
	})
	return srv
}

func (srv *sinkTestSyslogServer) serve(c net.Conn, n int) {
	defer c.Close()
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return // a client that refused our certificate
		}
	}
	// Close with the listener, so that Cleanup does not wait on an idle
	// client connection.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-stop:
		case <-time.After(60 * time.Second):
			c.Close()
		}
	}()
	r := bufio.NewReader(c)
	count := 0
	for {
		lenStr, err := r.ReadString(' ')
		if err != nil {
			if err != io.EOF && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				srv.fail(fmt.Errorf("reading MSG-LEN: %w", err))
			}
			return
		}
		lenStr = strings.TrimSuffix(lenStr, " ")
		l, err := strconv.Atoi(lenStr)
		if err != nil || l <= 0 || lenStr[0] == '0' {
			srv.fail(fmt.Errorf("bad MSG-LEN %q", lenStr))
			return
		}
		msg := make([]byte, l)
		if _, err := io.ReadFull(r, msg); err != nil {
			srv.fail(fmt.Errorf("reading SYSLOG-MSG: %w", err))
			return
		}
		srv.mu.Lock()
		srv.frames = append(srv.frames, string(msg))
		srv.connOf = append(srv.connOf, n)
		srv.mu.Unlock()
		srv.got <- struct{}{}
		count++
		if srv.dropAfter > 0 && count == srv.dropAfter {
			c.Close()
			srv.dropped <- struct{}{}
			return
		}
	}
}

func (srv *sinkTestSyslogServer) fail(err error) {
	srv.mu.Lock()
	srv.errs = append(srv.errs, err)
	srv.mu.Unlock()
}

func (srv *sinkTestSyslogServer) wait(t *testing.T, n int) ([]string, []int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-srv.got:
		case <-time.After(60 * time.Second):
			t.Fatalf("syslog server: got %d of %d frames", i, n)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]string(nil), srv.frames...), append([]int(nil), srv.connOf...)
}

func TestSyslogTCPSinkFramesExactly(t *testing.T) {
	ctx := sinkTestCtx(t)
	srv := sinkTestNewSyslogServer(t, nil, 0)
	s := siem.SyslogTCP(srv.ln.Addr().String(), nil)
	defer s.Close()
	recs := sinkTestRecords(
		`<134>1 2024-05-01T10:00:00.000Z host warrant - delegation [warrant@32473 index="0"] accepted`,
		"multi\nline record\r\nwith \"quotes\" and 8 spaces        ",
		"x",
		strings.Repeat("é", 5000), // multi-byte: MSG-LEN counts octets
	)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sinkTestRecords("second batch")); err != nil {
		t.Fatal(err)
	}
	frames, conns := srv.wait(t, 5)
	for i, r := range append(recs, []byte("second batch")) {
		if frames[i] != string(r) {
			t.Fatalf("frame %d = %q, want %q", i, frames[i], r)
		}
		if conns[i] != 1 {
			t.Fatalf("frame %d on connection %d, want 1 (connection reused)", i, conns[i])
		}
	}
	if err := s.Write(ctx, sinkTestRecords("ok", "")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("empty record: err = %v, want permanent", err)
	}
}

func TestSyslogTCPSinkReconnectsAfterServerDrop(t *testing.T) {
	ctx := sinkTestCtx(t)
	srv := sinkTestNewSyslogServer(t, nil, 1)
	s := siem.SyslogTCP(srv.ln.Addr().String(), nil)
	defer s.Close()
	if err := s.Write(ctx, sinkTestRecords("one")); err != nil {
		t.Fatal(err)
	}
	<-srv.dropped // the server has closed the first connection
	if err := s.Write(ctx, sinkTestRecords("two")); err != nil {
		t.Fatalf("write after the server dropped the connection: %v", err)
	}
	frames, conns := srv.wait(t, 2)
	if frames[1] != "two" || conns[1] != 2 {
		t.Fatalf("frames %q on connections %v, want \"two\" on connection 2", frames, conns)
	}
}

func TestSyslogTCPSinkUnreachableIsRetryable(t *testing.T) {
	ctx := sinkTestCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := siem.SyslogTCP(addr, nil)
	defer s.Close()
	err = s.Write(ctx, sinkTestRecords("secret-record"))
	if err == nil || errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "secret-record") {
		t.Fatal("error carries record contents")
	}
}

func TestSyslogTCPSinkWriteHonoursContext(t *testing.T) {
	// A receiver that accepts and never reads: the socket buffers fill
	// and the write blocks until the context's deadline.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	defer func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	}()
	s := siem.SyslogTCP(ln.Addr().String(), nil)
	defer s.Close()
	big := make([][]byte, 16)
	for i := range big {
		big[i] = bytes.Repeat([]byte{'a'}, 1<<20)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, big)
	if err == nil {
		t.Skip("16 MiB fit in the socket buffers")
	}
	// The deadline, not the 16 MiB, ends the write: far sooner than
	// writing it all to a reader that never reads could.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("write returned after %v", d)
	}
}

// sinkTestCA makes a self-signed certificate for 127.0.0.1 and a client
// config trusting it.
func sinkTestCA(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "warrant test receiver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}

func TestSyslogTLSSink(t *testing.T) {
	ctx := sinkTestCtx(t)
	serverCfg, clientCfg := sinkTestCA(t)
	srv := sinkTestNewSyslogServer(t, serverCfg, 2)
	s := siem.SyslogTCP(srv.ln.Addr().String(), clientCfg)
	defer s.Close()
	recs := sinkTestRecords("first\nrecord", `{"class_uid":3005}`)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	<-srv.dropped // the server closed the TLS connection after two frames
	if err := s.Write(ctx, sinkTestRecords("after reconnect")); err != nil {
		t.Fatalf("write after the server dropped the TLS connection: %v", err)
	}
	frames, conns := srv.wait(t, 3)
	want := []string{"first\nrecord", `{"class_uid":3005}`, "after reconnect"}
	if fmt.Sprintf("%q", frames) != fmt.Sprintf("%q", want) || conns[2] != 2 {
		t.Fatalf("frames %q on connections %v, want %q, the last on connection 2", frames, conns, want)
	}
}

func TestSyslogTLSSinkRejectsUntrustedReceiver(t *testing.T) {
	ctx := sinkTestCtx(t)
	serverCfg, _ := sinkTestCA(t)
	srv := sinkTestNewSyslogServer(t, serverCfg, 0)
	_, otherCA := sinkTestCA(t)
	s := siem.SyslogTCP(srv.ln.Addr().String(), otherCA)
	defer s.Close()
	err := s.Write(ctx, sinkTestRecords("x"))
	if err == nil {
		t.Fatal("write to a receiver with an untrusted certificate succeeded")
	}
	srv.mu.Lock()
	n := len(srv.frames)
	srv.mu.Unlock()
	if n != 0 {
		t.Fatal("the untrusted receiver got frames")
	}
}
