package explorertest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/warrantlog/warrant/explorer"
)

// TestVerifyVectors runs every vector of testdata/vectors that concerns
// what the browser checks (verifier keys, leaf hashes and entry ids, roots,
// checkpoints with and without witness cosignatures, inclusion and
// consistency proofs, the tlog-proof and chain bundle files, DSSE
// signatures by Ed25519 and P-256 keys, and every invalid checkpoint,
// proof and tlog-proof case with its reason code) through verify.js and
// log.js in Chromium.
func TestVerifyVectors(t *testing.T) {
	b := newBrowser(t)
	mux := http.NewServeMux()
	mux.Handle("/ui/", explorer.Handler())
	mux.Handle("/vectors/", http.StripPrefix("/vectors/", http.FileServer(http.Dir("../testdata/vectors"))))
	harness := http.StripPrefix("/harness/", http.FileServer(http.Dir("testdata")))
	mux.Handle("/harness/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", explorer.CSP())
		harness.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b.do(chromedp.Navigate(srv.URL+"/harness/harness.html"), chromedp.WaitReady(chromedp.CSS("body[data-result]")))
	result := eval[string](b, "document.body.dataset.result")
	var r struct {
		Passed   int      `json:"passed"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal([]byte(result), &r); err != nil {
		t.Fatalf("harness result %q: %v", result, err)
	}
	for _, f := range r.Failures {
		t.Errorf("vector: %s", f)
	}
	// 10 entries, 11 roots, 3 checkpoints x 4, 11 inclusion proofs x 2, the
	// consistency proofs, two files, 5 keys, the envelopes, the invalid cases.
	if r.Passed < 80 {
		t.Errorf("only %d vector checks passed", r.Passed)
	}
	t.Logf("%d vector checks passed in the browser", r.Passed)
	b.checkClean(srv.URL)
}
