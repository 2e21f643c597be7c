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
