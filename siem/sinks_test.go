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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/siem"
)

func sinkTestCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sinkTestRecords(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// ---------------------------------------------------------------- stdout

func TestStdoutSink(t *testing.T) {
	ctx := sinkTestCtx(t)
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 1<<16)
	s := siem.Stdout(bw)
	if err := s.Write(ctx, sinkTestRecords(`{"a":1}`, "CEF:0|x")); err != nil {
		t.Fatal(err)
	}
	// Flushed by Write: the buffered writer holds nothing back.
	if got, want := out.String(), "{\"a\":1}\nCEF:0|x\n"; got != want {
		t.Fatalf("stdout = %q, want %q", got, want)
	}
	if err := s.Write(ctx, sinkTestRecords("two\nlines")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("record with a line break: err = %v, want permanent", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sinkTestRecords("late")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("write after close: err = %v, want permanent", err)
	}
}

// ------------------------------------------------------------------ file

func TestFileSinkAppendsAndSurvivesReopen(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	first := sinkTestRecords(`{"time":1,"id":"o/0"}`, `CEF:0|warrantlog|warrant|0.1.0|x|y|3|a=b c`)
	if err := s.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("mode = %o, want 600", perm)
		}
	}

	// Reopen: appended, not truncated.
	s, err = siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	second := sinkTestRecords(`<134>1 2024-01-01T00:00:00Z h warrant - - - msg with "quotes" and ünïcode`)
	if err := s.Write(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sinkTestRecords("a\nb")); !errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("record with a line break: err = %v, want permanent", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := string(first[0]) + "\n" + string(first[1]) + "\n" + string(second[0]) + "\n"
	if string(got) != want {
		t.Fatalf("file =\n%q\nwant\n%q", got, want)
	}
}

func TestFileSinkTerminatesTornLine(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	// What a crash in the middle of a batch leaves: a prefix ending in a
	// torn record.
	if err := os.WriteFile(path, []byte("{\"id\":\"o/0\"}\n{\"id\":\"o/"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(ctx, sinkTestRecords(`{"id":"o/1"}`, `{"id":"o/2"}`)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	want := []string{`{"id":"o/0"}`, `{"id":"o/`, `{"id":"o/1"}`, `{"id":"o/2"}`}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("lines = %q, want %q", lines, want)
	}
}

func TestFileSinkConcurrentWritesKeepLinesIntact(t *testing.T) {
	ctx := sinkTestCtx(t)
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := siem.File(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				rec := fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("x", 500))
				if err := s.Write(ctx, sinkTestRecords(rec, rec)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 80 {
		t.Fatalf("%d lines, want 80", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("torn line %q", l)
		}
	}
}

// ---------------------------------------------------------------- syslog

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

// ------------------------------------------------------------------- HEC

const sinkTestToken = "11111111-2222-3333-4444-555555555555"

type sinkTestHECEvent struct {
	Time       json.Number     `json:"time"`
	Sourcetype string          `json:"sourcetype"`
	Source     string          `json:"source"`
	Event      json.RawMessage `json:"event"`
}

// sinkTestHEC is a HEC receiver: handler decides each answer from the
// request number (1-based); accepted events are recorded.
type sinkTestHEC struct {
	srv      *httptest.Server
	requests atomic.Int32

	mu     sync.Mutex
	events []sinkTestHECEvent
	sizes  []int
	counts []int
	errs   []string
}

func sinkTestNewHEC(t *testing.T, answer func(n int) (int, string)) *sinkTestHEC {
	t.Helper()
	h := &sinkTestHEC{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(h.requests.Add(1))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			h.fail("reading body: %v", err)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" {
			h.fail("%s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Splunk "+sinkTestToken {
			h.fail("Authorization = %q", got)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"text":"Token is required","code":2}`)
			return
		}
		var evs []sinkTestHECEvent
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		for {
			var ev sinkTestHECEvent
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				h.fail("decoding events: %v", err)
				return
			}
			evs = append(evs, ev)
		}
		status, resp := answer(n)
		if status == http.StatusOK {
			h.mu.Lock()
			h.events = append(h.events, evs...)
			h.sizes = append(h.sizes, len(body))
			h.counts = append(h.counts, len(evs))
			h.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, resp)
	}))
	t.Cleanup(func() {
		h.srv.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.errs {
			t.Error("HEC receiver: " + e)
		}
	})
	return h
}

func (h *sinkTestHEC) fail(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *sinkTestHEC) url() string { return h.srv.URL + "/services/collector/event" }

func (h *sinkTestHEC) sink() siem.Sink {
	return siem.HEC(h.url(), sinkTestToken, h.srv.Client())
}

const sinkTestHECOK = `{"text":"Success","code":0}`

func sinkTestAlwaysOK(int) (int, string) { return http.StatusOK, sinkTestHECOK }

func TestHECSinkDelivers(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	s := h.sink()
	defer s.Close()
	recs := sinkTestRecords(
		`{"class_uid":3005,"time":1714557600123,"metadata":{"uid":"o/0"},"message":"<b>&"}`,
		`CEF:0|warrantlog|warrant|0.1.0|delegation|accepted|3|rt=1714557600123 msg=a\=b`,
		`{"class_uid":6003,"metadata":{"uid":"o/2"}}`,
		`<134>1 2024-05-01T10:00:00.123Z host warrant - - - "quoted" <tag>`,
		`{"time":"not a number"}`,
		`{"time":5}`,
	)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) != len(recs) {
		t.Fatalf("%d events, want %d", len(h.events), len(recs))
	}
	want := []struct{ time, sourcetype string }{
		{"1714557600.123", "warrant:ocsf"},
		{"", "warrant:cef"},
		{"", "warrant:ocsf"},
		{"", "warrant:syslog"},
		{"", "warrant:ocsf"},
		{"0.005", "warrant:ocsf"},
	}
	for i, ev := range h.events {
		if string(ev.Time) != want[i].time || ev.Sourcetype != want[i].sourcetype || ev.Source != "warrant" {
			t.Errorf("event %d: time %q sourcetype %q source %q, want %q %q warrant", i, ev.Time, ev.Sourcetype, ev.Source, want[i].time, want[i].sourcetype)
		}
		if json.Valid(recs[i]) {
			if string(ev.Event) != string(recs[i]) {
				t.Errorf("event %d: %s, want the record verbatim %s", i, ev.Event, recs[i])
			}
		} else {
			var s string
			if err := json.Unmarshal(ev.Event, &s); err != nil || s != string(recs[i]) {
				t.Errorf("event %d: %s, want the record as a string", i, ev.Event)
			}
		}
	}
}

func TestHECSinkRetriesServerBusy(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`
		}
		return http.StatusOK, sinkTestHECOK
	})
	s := siem.WithRetry(h.sink(), 5, time.Millisecond)
	defer s.Close()
	recs := sinkTestRecords(`{"metadata":{"uid":"o/0"}}`, `{"metadata":{"uid":"o/1"}}`, `{"metadata":{"uid":"o/2"}}`)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n := h.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range h.events {
		seen[string(ev.Event)] = true
	}
	for _, r := range recs {
		if !seen[string(r)] {
			t.Fatalf("record %s lost", r)
		}
	}
}

func TestHECSinkRetries429(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, func(n int) (int, string) {
		if n == 1 {
			return http.StatusTooManyRequests, `{"text":"Too many requests","code":9}`
		}
		return http.StatusOK, sinkTestHECOK
	})
	raw := h.sink()
	err := raw.Write(ctx, sinkTestRecords("x"))
	if err == nil || errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("429: err = %v, want retryable", err)
	}
	s := siem.WithRetry(raw, 3, time.Millisecond)
	defer s.Close()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if n := h.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestHECSinkPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
	}{
		{http.StatusUnauthorized, `{"text":"Invalid token ` + sinkTestToken + `","code":4}`},
		{http.StatusForbidden, `{"text":"Invalid token","code":4}`},
		{http.StatusBadRequest, `{"text":"Invalid data format","code":6}`},
		{http.StatusOK, `<html>not HEC</html>`},
		{http.StatusOK, `{"text":"Incorrect index","code":7}`},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			ctx := sinkTestCtx(t)
			h := sinkTestNewHEC(t, func(int) (int, string) { return tc.status, tc.body })
			s := siem.WithRetry(h.sink(), 10, 50*time.Millisecond)
			defer s.Close()
			err := s.Write(ctx, sinkTestRecords(`{"a":1}`))
			if !errors.Is(err, siem.ErrPermanent) {
				t.Fatalf("err = %v, want permanent", err)
			}
			if n := h.requests.Load(); n != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", n)
			}
			if strings.Contains(err.Error(), sinkTestToken) {
				t.Fatalf("error text carries the token: %v", err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Fatalf("error text %q does not name the status", err)
			}
		})
	}
}

func TestHECSinkWrongTokenNotLeaked(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	const wrong = "wrong-token-do-not-print"
	s := siem.WithRetry(siem.HEC(h.url(), wrong, h.srv.Client()), 5, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	h.mu.Lock()
	h.errs = nil // the receiver reported the wrong token: expected
	h.mu.Unlock()
	if !errors.Is(err, siem.ErrPermanent) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("err = %v, want permanent without the token", err)
	}
}

func TestHECSinkSplitsLargeBatches(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	s := h.sink()
	defer s.Close()
	var recs [][]byte
	for i := 0; i < 7; i++ {
		recs = append(recs, []byte(fmt.Sprintf(`{"time":%d,"i":%d,"pad":"%s"}`, 1000+i, i, strings.Repeat("p", 200<<10))))
	}
	recs = append(recs, bytes.Repeat([]byte{'c'}, 1200<<10)) // larger than the bound: goes alone
	recs = append(recs, []byte("CEF:0|tail"))
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sizes) < 4 {
		t.Fatalf("%d requests (%v bytes), want the batch split", len(h.sizes), h.sizes)
	}
	for i, n := range h.sizes {
		if n > 1<<20 && h.counts[i] != 1 {
			t.Fatalf("request %d has %d events in %d bytes, above the 1 MiB bound", i, h.counts[i], n)
		}
	}
	if len(h.events) != len(recs) {
		t.Fatalf("%d events, want %d", len(h.events), len(recs))
	}
	for i, ev := range h.events { // in order, none lost
		if json.Valid(recs[i]) {
			if string(ev.Event) != string(recs[i]) {
				t.Fatalf("event %d out of order or altered", i)
			}
		} else {
			var s string
			if json.Unmarshal(ev.Event, &s) != nil || s != string(recs[i]) {
				t.Fatalf("event %d out of order or altered", i)
			}
		}
	}
}

func TestHECSinkContextCancelStopsRetries(t *testing.T) {
	h := sinkTestNewHEC(t, func(int) (int, string) {
		return http.StatusServiceUnavailable, `{"text":"Server is busy","code":9}`
	})
	s := siem.WithRetry(h.sink(), 1000, 10*time.Millisecond)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// 1,000 retries from 10 ms would take hours: returning at all shows
	// the cancellation ended them.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("returned after %v", d)
	}
	n := h.requests.Load()
	time.Sleep(50 * time.Millisecond)
	if h.requests.Load() != n {
		t.Fatal("requests continued after cancellation")
	}
}

func TestHECSinkNetworkErrorIsRetryable(t *testing.T) {
	ctx := sinkTestCtx(t)
	h := sinkTestNewHEC(t, sinkTestAlwaysOK)
	url, client := h.url(), h.srv.Client()
	h.srv.Close()
	err := siem.HEC(url, sinkTestToken, client).Write(ctx, sinkTestRecords("x"))
	if err == nil || errors.Is(err, siem.ErrPermanent) || strings.Contains(err.Error(), sinkTestToken) {
		t.Fatalf("err = %v, want retryable without the token", err)
	}
}

// ----------------------------------------------------------------- retry

type sinkTestFlaky struct {
	failures int
	err      error
	calls    int
	closed   bool
}

func (f *sinkTestFlaky) Write(ctx context.Context, records [][]byte) error {
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *sinkTestFlaky) Close() error { f.closed = true; return nil }

func TestWithRetrySinkRecovers(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 3, err: errors.New("transient")}
	s := siem.WithRetry(f, 4, time.Millisecond)
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if f.calls != 4 {
		t.Fatalf("%d calls, want 4", f.calls)
	}
	if err := s.Close(); err != nil || !f.closed {
		t.Fatal("Close not passed on")
	}
}

func TestWithRetrySinkGivesUp(t *testing.T) {
	ctx := sinkTestCtx(t)
	transient := errors.New("transient")
	f := &sinkTestFlaky{failures: 100, err: transient}
	s := siem.WithRetry(f, 3, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, transient) || errors.Is(err, siem.ErrPermanent) {
		t.Fatalf("err = %v", err)
	}
	if f.calls != 3 {
		t.Fatalf("%d calls, want 3", f.calls)
	}
}

func TestWithRetrySinkStopsAtPermanent(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 100, err: siem.Permanent(errors.New("rejected"))}
	s := siem.WithRetry(f, 10, time.Millisecond)
	err := s.Write(ctx, sinkTestRecords("x"))
	if !errors.Is(err, siem.ErrPermanent) || f.calls != 1 {
		t.Fatalf("err = %v after %d calls, want permanent after 1", err, f.calls)
	}
}

func TestWithRetrySinkBackoffGrows(t *testing.T) {
	ctx := sinkTestCtx(t)
	f := &sinkTestFlaky{failures: 4, err: errors.New("transient")}
	s := siem.WithRetry(f, 5, 20*time.Millisecond)
	start := time.Now()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	// Waits of at least 10, 20, 40, 80 ms (half of 20·2^n, by the jitter).
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("four retries took %v", d)
	}
}

func TestWithRetrySinkHonoursRetryAfter(t *testing.T) {
	ctx := sinkTestCtx(t)
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"text":"slow down","code":9}`)
			return
		}
		io.WriteString(w, sinkTestHECOK)
	}))
	defer srv.Close()
	// The receiver's Retry-After: 1 stretches a 1 ms back-off to 1 s.
	s := siem.WithRetry(siem.HEC(srv.URL, sinkTestToken, srv.Client()), 3, time.Millisecond)
	start := time.Now()
	if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %v, before the receiver's Retry-After", d)
	}
	if n.Load() != 2 {
		t.Fatalf("%d requests, want 2", n.Load())
	}
}

// ------------------------------------------------------------------ open

func TestOpenSinkSpecs(t *testing.T) {
	ctx := sinkTestCtx(t)

	t.Run("stdout", func(t *testing.T) {
		var buf bytes.Buffer
		s, err := siem.Open("-", siem.OpenOptions{Stdout: &buf})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, sinkTestRecords("a", "b")); err != nil {
			t.Fatal(err)
		}
		if buf.String() != "a\nb\n" {
			t.Fatalf("stdout = %q", buf.String())
		}
	})

	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		s, err := siem.Open(path, siem.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, sinkTestRecords(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got, _ := os.ReadFile(path); string(got) != "{\"x\":1}\n" {
			t.Fatalf("file = %q", got)
		}
	})

	t.Run("syslog+tcp", func(t *testing.T) {
		srv := sinkTestNewSyslogServer(t, nil, 0)
		s, err := siem.Open("syslog+tcp://"+srv.ln.Addr().String(), siem.OpenOptions{RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Write(ctx, sinkTestRecords("tcp record")); err != nil {
			t.Fatal(err)
		}
		if frames, _ := srv.wait(t, 1); frames[0] != "tcp record" {
			t.Fatalf("frames = %q", frames)
		}
	})

	t.Run("syslog+tls", func(t *testing.T) {
		serverCfg, clientCfg := sinkTestCA(t)
		srv := sinkTestNewSyslogServer(t, serverCfg, 0)
		s, err := siem.Open("syslog+tls://"+srv.ln.Addr().String(), siem.OpenOptions{TLS: clientCfg, RetryAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Write(ctx, sinkTestRecords("tls record")); err != nil {
			t.Fatal(err)
		}
		if frames, _ := srv.wait(t, 1); frames[0] != "tls record" {
			t.Fatalf("frames = %q", frames)
		}
	})

	t.Run("https", func(t *testing.T) {
		h := sinkTestNewHEC(t, sinkTestAlwaysOK)
		pool := x509.NewCertPool()
		pool.AddCert(h.srv.Certificate())
		// No path: the standard event endpoint is used.
		s, err := siem.Open(h.srv.URL, siem.OpenOptions{HECToken: sinkTestToken, TLS: &tls.Config{RootCAs: pool}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Write(ctx, sinkTestRecords(`{"time":1714557600000}`)); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.events) != 1 || string(h.events[0].Time) != "1714557600.000" {
			t.Fatalf("events = %+v", h.events)
		}
	})

	t.Run("http", func(t *testing.T) {
		var got atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Splunk "+sinkTestToken && r.URL.Path == "/hec" {
				got.Add(1)
			}
			io.WriteString(w, sinkTestHECOK)
		}))
		defer srv.Close()
		s, err := siem.Open(srv.URL+"/hec", siem.OpenOptions{HECToken: sinkTestToken})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Write(ctx, sinkTestRecords("x")); err != nil {
			t.Fatal(err)
		}
		if got.Load() != 1 {
			t.Fatal("the receiver did not get the authorized request")
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, spec := range []string{
			"",
			"syslog+tcp://127.0.0.1",
			"syslog+tls://:6514",
			"syslog+tcp://127.0.0.1:514/path",
			"syslog+udp://127.0.0.1:514",
			"ftp://example.com/x",
			"https://",
			"https://user:pw@example.com/services/collector/event",
		} {
			if s, err := siem.Open(spec, siem.OpenOptions{HECToken: "t"}); err == nil {
				s.Close()
				t.Errorf("Open(%q) succeeded", spec)
			}
		}
		if _, err := siem.Open("https://splunk.example.com:8088", siem.OpenOptions{}); err == nil {
			t.Error("HEC output without a token accepted")
		}
		if _, err := siem.Open(filepath.Join(t.TempDir(), "missing", "dir", "f"), siem.OpenOptions{}); err == nil {
			t.Error("file in a missing directory accepted")
		}
	})
}
