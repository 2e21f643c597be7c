package ledger

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func httpFrom(ip string) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	t.DialContext = d.DialContext
	t.MaxConnsPerHost = 0
	return &http.Client{Transport: t}
}

// TestLimitRequests: requests in flight are bounded per address and in
// all, whatever the connections; a request over a bound is refused at
// once, and another address is served while one is at its bound.
func TestLimitRequests(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	h := LimitRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			started.Done()
			<-release
		}
		io.WriteString(w, "ok")
	}), 3, 5)
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	a, b, c := httpFrom("127.0.0.11"), httpFrom("127.0.0.12"), httpFrom("127.0.0.13")
	var done sync.WaitGroup
	hold := func(client *http.Client, n int) {
		started.Add(n)
		for range n {
			done.Add(1)
			go func() { defer done.Done(); get(client, "/hold") }()
		}
		started.Wait()
	}
	hold(a, 3) // a at its bound
	if code, body := get(a, "/"); code != http.StatusTooManyRequests || !strings.Contains(body, ReasonTooManyRequests) {
		t.Errorf("a 4th request from a: %d %q, want 429 %s", code, body, ReasonTooManyRequests)
	}
	if code, _ := get(b, "/"); code != http.StatusOK {
		t.Errorf("another address while a is at its bound: %d", code)
	}
	hold(b, 2) // 5 in all
	if code, _ := get(c, "/"); code != http.StatusTooManyRequests {
		t.Errorf("a request over the total: %d, want 429", code)
	}
	close(release)
	done.Wait()
	if code, _ := get(a, "/"); code != http.StatusOK {
		t.Errorf("a after its requests ended: %d", code)
	}
}

// TestBodyDeadlineCutsSlowBodies sends, over HTTP/1.1 and over HTTP/2, a
// request whose body starts but never ends: the handler's read fails once
// the deadline has passed, while a body sent in full is read whole.
func TestBodyDeadlineCutsSlowBodies(t *testing.T) {
	readErr := make(chan error, 4)
	h := BodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}), 300*time.Millisecond)
	url, h2c := serveLoopback(t, h)
	for name, c := range map[string]*http.Client{"HTTP/1.1": http.DefaultClient, "HTTP/2": h2c} {
		pr, pw := io.Pipe()
		go c.Post(url, "application/octet-stream", pr)
		pw.Write([]byte("a first part"))
		select {
		case err := <-readErr:
			if err == nil {
				t.Errorf("%s: a body that never ended was read without error", name)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: a body that never ended is still being read after 30 s", name)
		}
		pw.Close()
		resp, err := c.Post(url, "application/octet-stream", strings.NewReader("whole"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if err := <-readErr; err != nil {
			t.Errorf("%s: a whole body failed to read: %v", name, err)
		}
	}
}
