// Package explorer holds the web explorer: a static bundle of hand-written
// HTML, CSS and JavaScript modules that reads a log's public read API
// (Connect JSON, GET /checkpoint) and verifies, in the browser, every fact it
// shows against the log's verifier key the user pins. There is no build step
// and nothing is fetched from anywhere but the log: the files in static/ are
// exactly what a browser runs, so a team can review them and host that copy.
//
// The bundle is mounted by the ledger at /ui/ on the log's listener
// (ledger.NewHandler); Handler serves it with a strict Content-Security-Policy.
package explorer

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is the path the bundle is served under. Its pages load their
// modules by absolute paths under it, so a copy hosted elsewhere must also be
// served at /ui/.
const Prefix = "/ui/"

// Files returns the bundle, with index.html at its top and the modules and
// stylesheet under assets/.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// pages are the first path segments (below Prefix) of the explorer's routes:
// each is answered with index.html, whose script renders the page.
var pages = map[string]bool{"": true, "entry": true, "chain": true, "agent": true, "blast-radius": true, "log": true}

// CSP returns the Content-Security-Policy the bundle is served with: only
// its own files run and style, no inline script or style, no frames, and
// network requests only to its own origin and apiOrigins (the log's origin,
// when the bundle is hosted apart from the log).
func CSP(apiOrigins ...string) string {
	connect := "'self'"
	for _, o := range apiOrigins {
		connect += " " + o
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + connect +
		"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// Handler serves the bundle at Prefix: the files under assets/, and
// index.html for every route of the explorer (/ui/, /ui/entry/…,
// /ui/chain/…, /ui/agent/…, /ui/blast-radius, /ui/log); anything else is
// 404. apiOrigins are added to the policy's connect-src.
func Handler(apiOrigins ...string) http.Handler {
	files := Files()
	fileServer := http.FileServerFS(files)
	csp := CSP(apiOrigins...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// Revalidate every time: an updated server must never run a stale
		// mix of old and new modules.
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		first, _, _ := strings.Cut(rest, "/")
		switch {
		case first == "assets" && rest != "assets/" && path.Clean(rest) == rest:
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + rest
			fileServer.ServeHTTP(w, r2)
		case pages[first]:
			b, err := fs.ReadFile(files, "index.html")
			if err != nil {
				http.Error(w, "index.html missing", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	})
}
