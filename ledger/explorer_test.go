package ledger

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// TestExplorerRoutes checks that the listener serves the explorer's pages
// and assets with the strict policy, and nothing else under /ui/.
func TestExplorerRoutes(t *testing.T) {
	l := openTestLog(t, t.TempDir(), newTestKey(t), nil)
	defer l.Close()
	srv := httptest.NewServer(NewHandler(l))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/ui/", 200, `<main id="main"`},
		{"GET", "/ui/entry/12", 200, `<main id="main"`},
		{"GET", "/ui/chain/dlg-1", 200, `<main id="main"`},
		{"GET", "/ui/agent/spiffe%3A%2F%2Fexample.org%2Fa", 200, `<main id="main"`},
		{"GET", "/ui/blast-radius?agent=x", 200, `<main id="main"`},
		{"GET", "/ui/log", 200, `<main id="main"`},
		{"GET", "/ui/assets/verify.js", 200, "export async function openCheckpoint"},
		{"GET", "/ui/assets/style.css", 200, ":root"},
		{"HEAD", "/ui/log", 200, ""},
		{"GET", "/ui/assets/", 404, ""},
		{"GET", "/ui/assets/../index.html", 307, ""}, // cleaned by the mux, then 404
		{"GET", "/ui/nope", 404, ""},
		{"GET", "/ui", 301, ""},
		{"POST", "/ui/log", 405, ""},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
		if c.status == 200 {
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self';", "frame-ancestors 'none'", "base-uri 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s: Content-Security-Policy %q lacks %q", c.path, csp, want)
				}
			}
			if strings.HasSuffix(c.path, ".js") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("%s: Content-Type %q, not a module script type", c.path, resp.Header.Get("Content-Type"))
			}
		}
	}
}

// TestExplorerCORS checks that only the configured origins get CORS
// answers, only for reads, never with credentials; and that Open refuses
// an origin that is not one.
func TestExplorerCORS(t *testing.T) {
	const origin = "https://explorer.example"
	l := openTestLog(t, t.TempDir(), newTestKey(t), func(o *Options) { o.UICORSOrigins = []string{origin} })
	defer l.Close()
	srv := httptest.NewServer(NewHandler(l))
	defer srv.Close()
	for _, c := range []struct {
		method, path, origin, preflight string
		allowed                         bool
	}{
		{"OPTIONS", "/warrant.v1.LedgerService/GetEntry", origin, "POST", true},
		{"OPTIONS", "/warrant.v1.LedgerService/ListChildren", origin, "POST", true},
		{"OPTIONS", "/warrant.v1.LedgerService/Append", origin, "POST", false},
		{"OPTIONS", "/warrant.v1.LedgerService/AppendBatch", origin, "POST", false},
		{"OPTIONS", "/warrant.v1.LedgerService/GetEntry", "https://evil.example", "POST", false},
		{"OPTIONS", "/checkpoint", origin, "GET", true},
		{"OPTIONS", "/checkpoint", origin, "DELETE", false},
		{"POST", "/warrant.v1.LedgerService/GetCheckpoint", origin, "", true},
		{"POST", "/warrant.v1.LedgerService/Append", origin, "", false},
		{"GET", "/checkpoint", origin, "", true},
		{"GET", "/tile/0/000.p/1", origin, "", true},
		{"GET", "/checkpoint", "https://explorer.example.evil", "", false},
		{"POST", "/oauth2/token", origin, "", false},
	} {
		var body io.Reader
		if c.method == "POST" {
			body = strings.NewReader("{}")
		}
		req, _ := http.NewRequest(c.method, srv.URL+c.path, body)
		req.Header.Set("Origin", c.origin)
		req.Header.Set("Content-Type", "application/json")
		if c.preflight != "" {
			req.Header.Set("Access-Control-Request-Method", c.preflight)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if c.allowed != (got == c.origin) || (got != "" && got != c.origin) {
			t.Errorf("%s %s from %s: Access-Control-Allow-Origin %q, want allowed=%v", c.method, c.path, c.origin, got, c.allowed)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s %s: credentials allowed", c.method, c.path)
		}
		if c.allowed && !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("%s %s: no Vary: Origin", c.method, c.path)
		}
	}

	for _, bad := range []string{"*", "https://explorer.example/", "https://explorer.example/ui", "ftp://x.example", "https://EXPLORER.example", "explorer.example", "https://u@explorer.example", ""} {
		_, err := Open(t.Context(), Options{Dir: t.TempDir(), Logger: quietLogger(), UICORSOrigins: []string{bad}})
		if proofs.Reason(err) != proofs.ReasonOptionsInvalid {
			t.Errorf("UICORSOrigins %q: %v, want %s", bad, err, proofs.ReasonOptionsInvalid)
		}
	}
	for _, good := range []string{"https://explorer.example", "http://127.0.0.1:8080", "https://[::1]:8443"} {
		if err := CheckOrigin(good); err != nil {
			t.Errorf("CheckOrigin(%q): %v", good, err)
		}
	}
}
