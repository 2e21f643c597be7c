package explorertest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/explorer"
)

// TestOtherOrigin hosts the bundle on another origin (a plain static
// server, as a team would host the copy it reviewed) and points it at the
// log, which allows that origin with --ui-cors-origin (Options.UICORSOrigins).
// The pages work and verify; the log's answers carry CORS headers only for
// that origin and only for reads.
func TestOtherOrigin(t *testing.T) {
	// The static host's address is needed before the log starts.
	static := httptest.NewUnstartedServer(nil)
	staticOrigin := "http://" + static.Listener.Addr().String()
	tl := startLog(t, staticOrigin)
	static.Config.Handler = explorer.Handler(tl.srv.URL)
	static.Start()
	defer static.Close()

	b := newBrowser(t)
	frag := "#logkey=" + url.QueryEscape(tl.vkey) + "&api=" + url.QueryEscape(tl.srv.URL)
	b.open(staticOrigin + "/ui/log" + frag)
	verified(t, b, "log from another origin", 3)
	if s := b.text("#trust-status"); !strings.Contains(s, tl.srv.URL) {
		t.Errorf("the trust status does not name the log's origin: %s", s)
	}
	b.open(staticOrigin + "/ui/entry/dlg-review" + frag)
	verified(t, b, "entry from another origin", 5)
	b.open(staticOrigin + "/ui/blast-radius?agent=" + url.QueryEscape(planner) + frag)
	verified(t, b, "blast radius from another origin", 5)
	b.screenshot("other-origin")
	b.checkClean(staticOrigin, tl.srv.URL)

	// Without the log's consent (another origin), the browser refuses.
	other := httptest.NewServer(explorer.Handler(tl.srv.URL))
	defer other.Close()
	b2 := newBrowser(t)
	b2.open(other.URL + "/ui/log" + frag)
	if n := b2.count(`[data-verified="true"]`); n != 0 {
		t.Errorf("an origin the log does not allow shows %d verified facts", n)
	}
	if n := b2.count(`[data-verified="false"]`); n == 0 {
		t.Errorf("an origin the log does not allow: no failure shown: %s", b2.text("main"))
	}

	// The headers themselves: reads only, that origin only.
	for _, c := range []struct {
		method, path, origin string
		allowed              bool
	}{
		{"OPTIONS", "/warrant.v1.LedgerService/GetEntry", staticOrigin, true},
		{"OPTIONS", "/warrant.v1.LedgerService/Append", staticOrigin, false},
		{"OPTIONS", "/warrant.v1.LedgerService/GetEntry", other.URL, false},
		{"GET", "/checkpoint", staticOrigin, true},
		{"GET", "/tile/0/000.p/1", staticOrigin, true},
		{"POST", "/oauth2/token", staticOrigin, false},
	} {
		req, _ := http.NewRequest(c.method, tl.srv.URL+c.path, nil)
		req.Header.Set("Origin", c.origin)
		if c.method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type,connect-protocol-version")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if (got == c.origin) != c.allowed || (got != "" && got != c.origin) {
			t.Errorf("%s %s from %s: Access-Control-Allow-Origin %q, allowed %v", c.method, c.path, c.origin, got, c.allowed)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s %s: credentials allowed", c.method, c.path)
		}
	}
}
