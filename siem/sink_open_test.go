package siem_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrantlog/warrant/siem"
)

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
