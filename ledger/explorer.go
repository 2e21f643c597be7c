package ledger

// The web explorer (package explorer) on the log's listener, and the CORS
// answers that let a copy of it hosted on another origin read the log.

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/explorer"
)

// registerExplorer serves the explorer's bundle at /ui/, whose pages call
// the API on this same origin.
func registerExplorer(mux *http.ServeMux) {
	h := explorer.Handler()
	mux.Handle("GET "+explorer.Prefix, h)
	mux.Handle("GET /ui", http.RedirectHandler(explorer.Prefix, http.StatusMovedPermanently))
}

// corsReads are the requests a browser on another origin may make: the
// read RPCs the explorer uses (never Append, tokens or administration,
// which a page elsewhere has no business sending), the checkpoint and the
// tiles.
var corsReads = []string{
	warrantv1connect.LedgerServiceGetEntryProcedure,
	warrantv1connect.LedgerServiceGetEntriesProcedure,
	warrantv1connect.LedgerServiceGetCheckpointProcedure,
	warrantv1connect.LedgerServiceGetInclusionProofProcedure,
	warrantv1connect.LedgerServiceGetConsistencyProofProcedure,
	warrantv1connect.LedgerServiceGetChainBundleProcedure,
	warrantv1connect.LedgerServiceListChildrenProcedure,
	warrantv1connect.LedgerServiceListChildrenBatchProcedure,
	warrantv1connect.LedgerServiceListAgentEntriesProcedure,
}

func corsAllowed(method, path string) bool {
	switch method {
	case http.MethodPost:
		return slices.Contains(corsReads, path)
	case http.MethodGet, http.MethodHead:
		return path == "/checkpoint" || strings.HasPrefix(path, "/tile/")
	}
	return false
}

// withCORS answers the browsers of origins (exact matches; no credentials
// are ever allowed, and the read API needs none) for the reads above, and
// their preflight requests. Every other request passes through unchanged,
// so a page elsewhere can read the log and nothing more.
func withCORS(origins []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !slices.Contains(origins, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !corsAllowed(r.Header.Get("Access-Control-Request-Method"), r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if corsAllowed(r.Method, r.URL.Path) {
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
		}
		next.ServeHTTP(w, r)
	})
}

// CheckOrigin accepts a web origin as a browser sends it: http or https, a
// host, an optional port, and nothing else.
func CheckOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" ||
		o != u.Scheme+"://"+u.Host || strings.ToLower(o) != o {
		return errors.New("is not a web origin (scheme://host[:port], lower case, no path), e.g. https://explorer.example")
	}
	return nil
}
