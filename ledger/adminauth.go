package ledger

import (
	"net/http"
	"sync"
	"time"

	"github.com/warrantlog/warrant/proofs"
)

// maxAdminNonces bounds the replay cache of admin requests. A nonce is
// kept for twice proofs.AdminRequestWindow, so the cache holds at most the
// admin requests of a few minutes: an admin key signing more than this is
// refused until old nonces expire, rather than growing the cache.
const maxAdminNonces = 10_000

// adminAuth checks admin-signed requests (proofs.ParseAdminAuthorization)
// against the log's admin keys, clock and origin, refusing replays.
type adminAuth struct {
	l *Log
	// started is when this server began taking admin requests: the used
	// nonces are remembered in memory only, so a request signed before
	// then (which an earlier run of the server may have served) is refused.
	started time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce → when it may be forgotten
}

func newAdminAuth(l *Log) *adminAuth {
	return &adminAuth{l: l, started: l.opts.Now(), seen: map[string]time.Time{}}
}

// check authorises r, or says why not (reason proofs.ReasonAdminAuth).
// The signature is checked before the nonce is remembered, so nobody
// without an admin key can fill the replay cache.
func (a *adminAuth) check(r *http.Request) error {
	if len(a.l.admins) == 0 {
		return proofs.Errorf(proofs.ReasonAdminAuth, "this server has no admin key (serve --admin-key), so it serves no administrative request on its main listener; use serve --ops-listen")
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return proofs.Errorf(proofs.ReasonAdminAuth, "an admin-signed Authorization header (%s) is required", proofs.AdminAuthScheme)
	}
	auth, err := proofs.ParseAdminAuthorization(h)
	if err != nil {
		return err
	}
	key := a.l.admins[auth.KeyID]
	if key == nil {
		return proofs.Errorf(proofs.ReasonAdminAuth, "key %s is not an admin key of this server", auth.KeyID)
	}
	now := a.l.opts.Now()
	if d := auth.Time.Sub(now); d > proofs.AdminRequestWindow || d < -proofs.AdminRequestWindow {
		return proofs.Errorf(proofs.ReasonAdminAuth, "request time %s is more than %v from the server's %s", auth.Time.UTC().Format(time.RFC3339), proofs.AdminRequestWindow, now.UTC().Format(time.RFC3339))
	}
	if auth.Time.Before(a.started.Truncate(time.Second)) {
		return proofs.Errorf(proofs.ReasonAdminAuth, "request signed at %s, before this server started taking admin requests (%s): sign a new one", auth.Time.UTC().Format(time.RFC3339), a.started.UTC().Format(time.RFC3339))
	}
	msg := proofs.AdminRequestMessage(r.Method, r.URL.Path, a.l.Origin(), auth.Time, auth.Nonce)
	if err := key.VerifyDSSE(proofs.AdminRequestPayloadType, msg, auth.Signature); err != nil {
		return proofs.Errorf(proofs.ReasonAdminAuth, "signature does not verify under admin key %s for %s %s on %s", auth.KeyID, r.Method, r.URL.Path, a.l.Origin())
	}
	return a.remember(auth.Nonce, now)
}

func (a *adminAuth) remember(nonce string, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[nonce]; ok {
		return proofs.Errorf(proofs.ReasonAdminAuth, "nonce already used: a replayed request")
	}
	if len(a.seen) >= maxAdminNonces {
		for n, until := range a.seen {
			if now.After(until) {
				delete(a.seen, n)
			}
		}
		if len(a.seen) >= maxAdminNonces {
			return proofs.Errorf(proofs.ReasonAdminAuth, "too many admin requests in the last %v", 2*proofs.AdminRequestWindow)
		}
	}
	a.seen[nonce] = now.Add(2 * proofs.AdminRequestWindow)
	return nil
}

// refuse answers 401 with the scheme to use and the reason.
func refuseAdmin(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", proofs.AdminAuthScheme)
	http.Error(w, err.Error(), http.StatusUnauthorized)
}
