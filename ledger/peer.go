package ledger

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warrantlog/warrant/proofs"
)

// Transport identity (mutual TLS).
//
// With mutual TLS, the client certificate (an X.509-SVID) names the agent
// on the other end of the connection by its SPIFFE ID. The log then
// requires that an agent appends only its own events: the issuer of a
// delegation, and of an issuer-signed revocation, must equal the peer's
// SPIFFE ID. Otherwise the append is refused with reason
// peer_identity_mismatch (Unauthenticated: the transport identity does
// not vouch for the event) and nothing is written. The signatures are
// still what makes an event authentic; the SVID adds that a stolen signed
// envelope cannot be replayed from another workload's connection, and that
// an agent's key alone, away from its workload identity, is not enough.
//
// Envelopes signed by a trust anchor rather than an agent (key bindings
// signed by a registrar, policies and administrative revocations signed by
// an admin key) name no issuer and are not tied to a SPIFFE ID; any peer
// the TLS layer accepted may submit them.

// ReasonPeerIdentityMismatch refuses an event whose issuer is not the
// SPIFFE ID of the client certificate (mutual TLS only).
const ReasonPeerIdentityMismatch = proofs.ReasonPeerIdentityMismatch

type peerKey struct{}

// peer is the transport identity of a request: the SPIFFE ID of its
// verified client certificate, or why it has none.
type peer struct {
	id  string
	why string // set when id is empty
}

// WithPeerIdentity returns a context saying that the request comes from the
// workload with SPIFFE ID id, as verified by the transport (mutual TLS).
// Log.Append then refuses delegations and issuer-signed revocations whose
// issuer is not id. An empty id means the peer was authenticated without a
// SPIFFE ID: such events are refused from it. Without it (no mutual TLS),
// Append makes no transport identity check.
func WithPeerIdentity(ctx context.Context, id string) context.Context {
	p := peer{id: id}
	if id == "" {
		p.why = "the peer has no SPIFFE ID"
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// peerIdentity returns the request's transport identity, and whether there
// is one to check.
func peerIdentity(ctx context.Context) (peer, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	return p, ok
}

// PeerIdentityFromTLS is the HTTP middleware of a server that requires
// client certificates: it gives every request the SPIFFE ID of its verified
// client certificate (the URI SAN of an X.509-SVID) as its peer identity
// (see WithPeerIdentity). A request without a verified certificate, or with
// one that names no single valid SPIFFE ID, gets an empty identity, so its
// agents' events are refused; registrar- and admin-signed envelopes and
// reads are unaffected.
func PeerIdentityFromTLS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peer{why: "the request carries no verified client certificate"}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			id, err := x509svid.IDFromCert(r.TLS.VerifiedChains[0][0])
			if err != nil {
				p.why = fmt.Sprintf("the client certificate is not an X.509-SVID: %v", err)
			} else {
				p = peer{id: id.String()}
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, p)))
	})
}

// checkPeer refuses an event whose issuer is not the peer's SPIFFE ID, when
// the request carries a transport identity.
func checkPeer(ctx context.Context, r *request) error {
	p, ok := peerIdentity(ctx)
	if !ok {
		return nil
	}
	var issuer, what string
	switch {
	case r.ev.Delegation != nil:
		issuer, what = r.ev.Delegation.Issuer, "delegation"
	case r.ev.Revocation != nil && !r.ev.ByAdmin:
		issuer, what = r.ev.Revocation.Issuer, "revocation"
	case r.ev.Token != nil:
		issuer, what = r.ev.Token.Requester, "token exchange"
	default:
		return nil // signed by a registrar or an admin key: no SPIFFE ID to match
	}
	if p.id == "" {
		return proofs.Errorf(ReasonPeerIdentityMismatch, "%s; with mutual TLS a %s is accepted only over a connection authenticated as its issuer %s", p.why, what, issuer)
	}
	if p.id != issuer {
		return proofs.Errorf(ReasonPeerIdentityMismatch, "the client certificate is for %s but the %s's issuer is %s; with mutual TLS an agent appends only its own events", p.id, what, issuer)
	}
	return nil
}
