package explorertest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// tamperingProxy forwards to the log whose URL target holds, changing what
// edit changes in each JSON answer (decoded) and each GET /checkpoint.
type tamperingProxy struct {
	target atomic.Pointer[url.URL]
	// editJSON changes a decoded JSON answer in place.
	editJSON func(v any)
	// editNote changes a checkpoint note (nil: none).
	editNote func(note []byte) []byte
	// editTiles flips the last byte of every tile and entry bundle.
	editTiles bool
	// editRequest changes a decoded JSON request body of an RPC (by its
	// method's name) in place: the proxy asks the log another question.
	editRequest func(method string, body map[string]any)
}

func startProxy(t *testing.T, target string, p *tamperingProxy) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(target)
	p.target.Store(u)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.target.Load())
			r.Out.Header.Del("Accept-Encoding") // answers the proxy can read
			if p.editRequest != nil && r.Out.Method == http.MethodPost && r.Out.Body != nil {
				body, err := io.ReadAll(r.Out.Body)
				r.Out.Body.Close()
				var m map[string]any
				if err == nil && json.Unmarshal(body, &m) == nil {
					p.editRequest(path.Base(r.Out.URL.Path), m)
					body, _ = json.Marshal(m)
				}
				r.Out.Body = io.NopCloser(bytes.NewReader(body))
				r.Out.ContentLength = int64(len(body))
				r.Out.Header.Set("Content-Length", strconv.Itoa(len(body)))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			switch {
			case strings.HasPrefix(resp.Request.URL.Path, "/tile/") && p.editTiles && len(body) > 0:
				body = bytes.Clone(body)
				body[len(body)-1] ^= 1
			case resp.Request.URL.Path == "/checkpoint" && p.editNote != nil:
				body = p.editNote(body)
			case strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
				var v any
				if json.Unmarshal(body, &v) == nil {
					if p.editJSON != nil {
						p.editJSON(v)
					}
					if p.editNote != nil {
						walk(v, func(m map[string]any) {
							if s, ok := m["checkpoint"].(string); ok {
								if note, err := base64.StdEncoding.DecodeString(s); err == nil {
									m["checkpoint"] = base64.StdEncoding.EncodeToString(p.editNote(note))
								}
							}
						})
					}
					body, _ = json.Marshal(v)
				}
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

// walk calls f on every JSON object in v.
func walk(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, x := range v {
			walk(x, f)
		}
	case []any:
		for _, x := range v {
			walk(x, f)
		}
	}
}

// flipLeafByte changes one byte of the leaf of entry index wherever an
// answer carries it (GetEntry, ListChildren, ListAgentEntries): the last
// digit of its log time.
func flipLeafByte(index uint64) func(v any) {
	return func(v any) {
		walk(v, func(m map[string]any) {
			if m["index"] != strconv.FormatUint(index, 10) {
				return
			}
			leaf, ok := m["leaf"].(string)
			if !ok {
				return
			}
			b, err := base64.StdEncoding.DecodeString(leaf)
			if err != nil {
				return
			}
			i := bytes.Index(b, []byte(`Z","`)) - 1 // the last digit of log_time
			b[i] = '0' + (b[i]-'0'+1)%10
			m["leaf"] = base64.StdEncoding.EncodeToString(b)
		})
	}
}

// noneVerified fails if any of the selectors is marked verified, and
// requires each to be marked failed.
func noneVerified(t *testing.T, b *browser, page string, selectors ...string) {
	t.Helper()
	for _, sel := range selectors {
		if n := b.count(sel + `[data-verified="true"]`); n != 0 {
			t.Errorf("%s: %s is marked verified although tampered", page, sel)
		}
		if n := b.count(sel + `[data-verified="false"]`); n == 0 {
			t.Errorf("%s: %s is not marked data-verified=false: %s", page, sel, b.text(sel))
		}
	}
}

// TestTamperingProxy serves the explorer through a proxy that changes one
// byte of an entry, then one byte of the checkpoint, and then swaps in a
// fork signed by the same key: each page marks the tampered fact
// data-verified="false", says so in words, and never marks it verified.
func TestTamperingProxy(t *testing.T) {
	tl := startLog(t)
	target := tl.index["dlg-triage"]

	t.Run("entry", func(t *testing.T) {
		b := newBrowser(t)
		proxy := startProxy(t, tl.srv.URL, &tamperingProxy{editJSON: flipLeafByte(target)})
		b.open(tl.pageURL(proxy.URL, fmt.Sprintf("/ui/entry/%d", target)))
		noneVerified(t, b, "entry", "#entry-proof", "#payload", "#decision")
		if s := b.text("#entry-proof"); !strings.Contains(s, "NOT VERIFIED") || !strings.Contains(s, "inclusion_proof_invalid") {
			t.Errorf("the failure is not shown plainly: %s", s)
		}
		if s := b.text("#verification-failed"); !strings.Contains(s, "FAILED verification") {
			t.Errorf("no banner says the page failed verification: %q", s)
		}
		if n := b.count(`#signatures [data-verified="true"]`); n != 0 {
			t.Errorf("a signature of the tampered entry is marked verified")
		}
		if s := b.text("#decision .outcome"); strings.Contains(s, "\u2713") || !strings.Contains(s, "not verified") {
			t.Errorf("the tampered decision carries a check mark: %s", s)
		}
		b.screenshot("tampered-entry")
		// Other entries still verify; the tampered one is marked where it appears.
		b.open(tl.pageURL(proxy.URL, "/ui/blast-radius?delegation=dlg-root"))
		noneVerified(t, b, "blast radius", fmt.Sprintf(`#graph a.node[data-index="%d"]`, target), "#radius-summary")
		if n := b.count(`#graph a.node[data-verified="true"]`); n != 6 {
			t.Errorf("blast radius: %d untampered nodes verified, want 6", n)
		}
		// Counts and the cut are derived from the tampered entry too.
		noneVerified(t, b, "blast radius", "#counts")
		b.run(`document.querySelector("#cut-target").value = "` + itoa(tl.index["dlg-root"]) + `"; document.querySelector("#cut-target").dispatchEvent(new Event("change"))`)
		noneVerified(t, b, "blast radius", "#cut-summary")
		b.screenshot("tampered-blast-radius")
		b.open(tl.pageURL(proxy.URL, "/ui/agent/"+url.PathEscape(executor)))
		noneVerified(t, b, "timeline", fmt.Sprintf(`#timeline tr:has(a[href="/ui/entry/%d"])`, target))
	})

	t.Run("checkpoint", func(t *testing.T) {
		b := newBrowser(t)
		flip := func(note []byte) []byte {
			out := bytes.Clone(note)
			i := bytes.IndexByte(out, '\n')
			i = i + 1 + bytes.IndexByte(out[i+1:], '\n') + 1 // the root line
			if out[i] == 'A' {
				out[i] = 'B'
			} else {
				out[i] = 'A'
			}
			return out
		}
		proxy := startProxy(t, tl.srv.URL, &tamperingProxy{editNote: flip})
		b.open(tl.pageURL(proxy.URL, "/ui/log"))
		noneVerified(t, b, "log", "#checkpoint")
		if s := b.text("#checkpoint"); !strings.Contains(s, "checkpoint_signature_invalid") {
			t.Errorf("the failure is not shown plainly: %s", s)
		}
		if n := b.count(`[data-verified="true"]`); n != 0 {
			t.Errorf("log page: %d facts marked verified under a tampered checkpoint", n)
		}
		b.screenshot("tampered-checkpoint")
		b.open(tl.pageURL(proxy.URL, "/ui/entry/dlg-root"))
		noneVerified(t, b, "entry", "#entry-proof", "#payload")
		if n := b.count(`[data-verified="true"]`); n != 0 {
			t.Errorf("entry page: %d facts marked verified under a tampered checkpoint", n)
		}
	})

	t.Run("forged witness", func(t *testing.T) {
		// A cosignature line the log's key does not cover: the checkpoint
		// still verifies, the witness it names is only the server's claim.
		forge := func(note []byte) []byte {
			sig := base64.StdEncoding.EncodeToString(make([]byte, 68))
			return append(bytes.Clone(note), []byte("\u2014 evil.example/fake-witness "+sig+"\n")...)
		}
		b := newBrowser(t)
		proxy := startProxy(t, tl.srv.URL, &tamperingProxy{editNote: forge})
		b.open(tl.pageURL(proxy.URL, "/ui/log"))
		if n := b.count(`#checkpoint[data-verified="true"]`); n != 1 {
			t.Errorf("the checkpoint, signed by the log, is not verified: %s", b.text("#checkpoint"))
		}
		if eval[bool](b, `[...document.querySelectorAll('[data-verified="true"]')].some((el) => el.innerText.includes("fake-witness"))`) {
			t.Errorf("the forged witness is shown inside a verified fact")
		}
		noneVerified(t, b, "log", "#witnesses-section")
		if s := b.text("#witnesses-section"); !strings.Contains(s, "evil.example/fake-witness") || !strings.Contains(s, "claimed by the server, signatures not checked") {
			t.Errorf("the witness list does not say it is unchecked: %s", s)
		}
	})

	t.Run("tiles", func(t *testing.T) {
		b := newBrowser(t)
		proxy := startProxy(t, tl.srv.URL, &tamperingProxy{editTiles: true})
		b.open(tl.pageURL(proxy.URL, "/ui/log"))
		noneVerified(t, b, "log", "#tiles")
		if n := b.count(`#checkpoint[data-verified="true"]`); n != 1 {
			t.Errorf("the untampered checkpoint is not verified")
		}
	})

	t.Run("fork", func(t *testing.T) {
		b := newBrowser(t)
		tp := &tamperingProxy{}
		proxy := startProxy(t, tl.srv.URL, tp)
		b.open(tl.pageURL(proxy.URL, "/ui/log")) // trusts the honest log's checkpoint
		verified(t, b, "log before the fork", 3)
		fork := startFork(t, tl)
		u, _ := url.Parse(fork.URL)
		tp.target.Store(u)
		b.open(tl.pageURL(proxy.URL, "/ui/log"))
		noneVerified(t, b, "log after the fork", "#checkpoint")
		if s := b.text("#checkpoint"); !strings.Contains(s, "consistency_proof_invalid") {
			t.Errorf("the fork is not shown plainly: %s", s)
		}
		b.screenshot("fork")
	})
}

// TestBannerCauses checks that a page that could not verify says why in
// words that fit: no key pinned, or the log unreachable, is no failed
// verification.
func TestBannerCauses(t *testing.T) {
	tl := startLog(t)

	b := newBrowser(t)
	b.open(tl.srv.URL + "/ui/entry/0")
	if s := b.text("#verification-failed"); !strings.Contains(s, "No log key pinned") || strings.Contains(s, "FAILED") {
		t.Errorf("no key pinned: banner %q", s)
	}
	if n := b.count(`[data-verified="true"]`); n != 0 {
		t.Errorf("no key pinned: %d facts marked verified", n)
	}

	// An API origin where nothing answers: the page is not allowed to reach
	// it, or it is down, whichever comes first.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	b = newBrowser(t)
	b.open(tl.pageURL(tl.srv.URL, "/ui/entry/0") + "&api=" + url.QueryEscape(gone.URL))
	if s := b.text("#verification-failed"); !strings.Contains(s, "Could not reach the log (network or CORS") || strings.Contains(s, "FAILED") {
		t.Errorf("log unreachable: banner %q", s)
	}
	if n := b.count(`[data-verified="false"]`); n == 0 {
		t.Errorf("log unreachable: nothing marked data-verified=false")
	}
	if n := b.count(`[data-verified="true"]`); n != 0 {
		t.Errorf("log unreachable: %d facts marked verified", n)
	}
}
