package ledger

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/internal/testpki"
	"github.com/warrantlog/warrant/proofs"
)

// mtlsServer serves f's log over real TLS on loopback; with clientCA set
// it requires client certificates from it and carries their SPIFFE IDs
// into the log, as serve --client-ca does.
func mtlsServer(t *testing.T, f *fixture, ca *testpki.CA, clientCA *testpki.CA) *httptest.Server {
	t.Helper()
	h := NewHandler(f.log)
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		h = PeerIdentityFromTLS(h)
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCA.Pool()
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// tlsClient is a client of srv trusting ca, presenting svid (if not nil).
func tlsClient(t *testing.T, f *fixture, srv *httptest.Server, ca *testpki.CA, svid *testpki.Pair) *client.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if svid != nil {
		cfg.Certificates = []tls.Certificate{svid.TLS}
	}
	return client.New(srv.URL, f.verifier(t), client.WithTLS(cfg), client.WithRetry(1, 0))
}

// TestMutualTLSPeerIdentity: with mutual TLS, a delegation or an
// issuer-signed revocation is accepted only over a connection whose
// client certificate (an X.509-SVID) names its issuer; otherwise it is
// refused (Unauthenticated, peer_identity_mismatch) and nothing is
// written. Registrar-signed key bindings are not tied to a SPIFFE ID.
func TestMutualTLSPeerIdentity(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ca := testpki.NewCA(t, "test CA")
	srv := mtlsServer(t, f, ca, ca)
	asAlice := tlsClient(t, f, srv, ca, ca.SVID(t, humanID))
	asPlanner := tlsClient(t, f, srv, ca, ca.SVID(t, agentID))
	notSVID := tlsClient(t, f, srv, ca, ca.SVID(t, ""))

	refused := func(c *client.Client, env []byte, what string) {
		t.Helper()
		size := f.log.Checkpoint().Size
		_, err := c.Append(ctx, env)
		if proofs.Reason(err) != ReasonPeerIdentityMismatch || connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("%s: %v (reason %q, code %v), want Unauthenticated %s", what, err, proofs.Reason(err), connect.CodeOf(err), ReasonPeerIdentityMismatch)
		}
		if got := f.log.Checkpoint().Size; got != size {
			t.Fatalf("%s: the log grew from %d to %d", what, size, got)
		}
	}

	grant := signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))
	refused(asPlanner, grant, "alice's grant over the planner's connection")
	refused(notSVID, grant, "alice's grant over a connection without a SPIFFE ID")
	e, err := asAlice.Append(ctx, grant)
	if err != nil {
		t.Fatalf("alice's grant over her own connection: %v", err)
	}
	if e.Leaf.Delegation == nil || e.Leaf.Delegation.Issuer != humanID {
		t.Fatalf("appended %+v", e.Leaf)
	}

	rev := signPayload(t, f.human, proofs.PayloadTypeRevocation, &proofs.Revocation{
		Delegation: "dlg_root", Issuer: humanID, Reason: "test", IssuedAt: proofs.FormatTime(time.Now()), Nonce: "nonce-rev00001"})
	refused(asPlanner, rev, "alice's revocation over the planner's connection")
	if _, err := asAlice.Append(ctx, rev); err != nil {
		t.Fatalf("alice's revocation over her own connection: %v", err)
	}

	// A key binding is signed by a registrar, not an agent: any
	// authenticated peer may submit it.
	kb := bindingEnvelope(t, f.registrar, "spiffe://example.org/agent/new", newTestKey(t), proofs.TierDraft, false)
	if _, err := notSVID.Append(ctx, kb); err != nil {
		t.Fatalf("a registrar-signed binding over mutual TLS: %v", err)
	}

	// Reads need only a certificate the CA issued.
	if _, err := notSVID.Checkpoint(ctx); err != nil {
		t.Fatalf("reading over mutual TLS: %v", err)
	}
}

// TestMutualTLSRefusesNoCertificate: without a client certificate, or with
// one from another CA, the TLS layer refuses the connection and nothing
// reaches the log.
func TestMutualTLSRefusesNoCertificate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ca := testpki.NewCA(t, "test CA")
	srv := mtlsServer(t, f, ca, ca)
	size := f.log.Checkpoint().Size
	grant := signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))
	other := testpki.NewCA(t, "another CA")
	for name, c := range map[string]*client.Client{
		"no client certificate":         tlsClient(t, f, srv, ca, nil),
		"certificate from another CA":   tlsClient(t, f, srv, ca, other.SVID(t, humanID)),
		"client not trusting server CA": tlsClient(t, f, srv, other, ca.SVID(t, humanID)),
	} {
		_, err := c.Append(ctx, grant)
		if err == nil {
			t.Fatalf("%s: appended", name)
		}
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("%s: %v (code %v), want a transport failure", name, err, connect.CodeOf(err))
		}
	}
	if got := f.log.Checkpoint().Size; got != size {
		t.Fatalf("the log grew from %d to %d", size, got)
	}
}

// TestPlainTLS: without client certificates, TLS only protects the
// transport; the log makes no identity check beyond the signatures, and
// gRPC works over HTTP/2 negotiated by ALPN.
func TestPlainTLS(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ca := testpki.NewCA(t, "test CA")
	srv := mtlsServer(t, f, ca, nil)
	c := tlsClient(t, f, srv, ca, nil)
	if _, err := c.Append(ctx, signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))); err != nil {
		t.Fatalf("append over TLS: %v", err)
	}
	g := client.New(srv.URL, f.verifier(t), client.WithTLS(&tls.Config{RootCAs: ca.Pool()}), client.WithGRPC())
	if _, err := g.Delegation(ctx, "dlg_root"); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
}

// TestWithPeerIdentity: the context API the middleware uses.
func TestWithPeerIdentity(t *testing.T) {
	f := newFixture(t, nil)
	grant := signDelegation(t, f.human, delegation("dlg_root", humanID, agentID, "nonce-root0001"))
	if _, err := f.log.Append(WithPeerIdentity(context.Background(), agentID), grant); proofs.Reason(err) != ReasonPeerIdentityMismatch {
		t.Fatalf("mismatched peer: %v", err)
	}
	if _, err := f.log.Append(WithPeerIdentity(context.Background(), ""), grant); proofs.Reason(err) != ReasonPeerIdentityMismatch {
		t.Fatalf("peer without a SPIFFE ID: %v", err)
	}
	if _, err := f.log.Append(WithPeerIdentity(context.Background(), humanID), grant); err != nil {
		t.Fatalf("matching peer: %v", err)
	}
}
