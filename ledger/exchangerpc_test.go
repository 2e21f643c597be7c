package ledger

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// TestExchangeTokenRPC: the ExchangeToken RPC is the token endpoint over
// Connect: the same token and entry, the DPoP proof for the RPC's URL,
// errors as Connect codes with catalogued reasons and the OAuth error.
func TestExchangeTokenRPC(t *testing.T) {
	w := newTokenWorld(t, func(o *Options) { o.DPoPNonce = true })
	rpc := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, w.srv.URL)
	htu := w.srv.URL + warrantv1connect.LedgerServiceExchangeTokenProcedure
	ctx := context.Background()
	scope := "tickets:read"
	call := func(msg *warrantv1.ExchangeTokenRequest, proof string) (*connect.Response[warrantv1.ExchangeTokenResponse], *connect.Error) {
		t.Helper()
		req := connect.NewRequest(msg)
		if proof != "" {
			req.Header().Set("DPoP", proof)
		}
		resp, err := rpc.ExchangeToken(ctx, req)
		if err == nil {
			return resp, nil
		}
		var ce *connect.Error
		if !errors.As(err, &ce) {
			t.Fatalf("not a Connect error: %v", err)
		}
		return nil, ce
	}
	msg := func(resource string) *warrantv1.ExchangeTokenRequest {
		return &warrantv1.ExchangeTokenRequest{SubjectToken: "d-exec", SubjectTokenType: TokenTypeDelegationID, Resource: resource, Scope: &scope}
	}
	expect := func(name string, ce *connect.Error, code connect.Code, reason, oauth string) {
		t.Helper()
		if ce == nil {
			t.Fatalf("%s: no error", name)
		}
		if ce.Code() != code || detailReason(ce) != reason || !strings.HasPrefix(ce.Message(), oauth+": ") {
			t.Fatalf("%s: %v %q %q, want %v %s %s", name, ce.Code(), detailReason(ce), ce.Message(), code, reason, oauth)
		}
	}

	// Without the server's nonce: Unauthenticated, with one to retry with.
	_, ce := call(msg(ticketsAPI), w.exec.proof(t, "dpop+jwt", "POST", htu, w.clock.Now()))
	expect("no nonce", ce, connect.CodeUnauthenticated, proofs.ReasonDPoPNonceRequired, "use_dpop_nonce")
	nonce := ce.Meta().Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce")
	}
	proof := func(c *dpopClient, url string) string {
		return c.proofWith(t, "dpop+jwt", "POST", url, w.clock.Now(), map[string]any{"nonce": nonce})
	}
	resp, ce := call(msg(ticketsAPI), proof(w.exec, htu))
	if ce != nil {
		t.Fatalf("exchange: %v", ce)
	}
	m := resp.Msg
	if m.TokenType != "DPoP" || m.IssuedTokenType != TokenTypeAccessToken || m.ExpiresIn != 300 || m.Scope != scope || resp.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("answer %+v", m)
	}
	claims, _, err := proofs.ParseAccessToken(m.AccessToken, []*proofs.PublicKey{w.f.log.tokens.pub})
	if err != nil || claims.Aud != ticketsAPI || claims.ClientID != executorID || claims.Warrant.IssuanceIndex != m.Entry.GetIndex() || claims.Iss != w.srv.URL {
		t.Fatalf("token %+v: %v", claims, err)
	}
	cp, err := proofs.OpenCheckpoint(m.Entry.Checkpoint, w.f.verifier(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := proofs.VerifyInclusion(m.Entry.Index, cp.Size, proofs.LeafHash(m.Entry.Leaf), m.Entry.InclusionProof, cp.Root); err != nil {
		t.Fatalf("entry: %v", err)
	}
	// The proof may come in the request instead of the header.
	withField := msg(ticketsAPI)
	withField.Dpop = proof(w.exec, htu)
	if _, ce := call(withField, ""); ce != nil {
		t.Fatalf("proof in the dpop field: %v", ce)
	}

	size := w.f.log.Checkpoint().Size
	bad := msg(ticketsAPI)
	bad.SubjectTokenType = "urn:ietf:params:oauth:token-type:jwt"
	_, ce = call(bad, proof(w.exec, htu))
	expect("wrong subject token type", ce, connect.CodeInvalidArgument, proofs.ReasonTokenRequestInvalid, "invalid_request")
	_, ce = call(msg(""), proof(w.exec, htu))
	expect("no resource", ce, connect.CodeInvalidArgument, proofs.ReasonTokenRequestInvalid, "invalid_target")
	_, ce = call(msg(ticketsAPI), "")
	expect("no proof", ce, connect.CodeUnauthenticated, proofs.ReasonDPoPProofInvalid, "invalid_dpop_proof")
	_, ce = call(msg(ticketsAPI), proof(w.exec, w.srv.URL+TokenEndpointPath))
	expect("the token endpoint's htu", ce, connect.CodeUnauthenticated, proofs.ReasonDPoPProofInvalid, "invalid_dpop_proof")
	both := msg(ticketsAPI)
	both.Dpop = proof(w.exec, htu)
	_, ce = call(both, proof(w.exec, htu))
	expect("two proofs", ce, connect.CodeUnauthenticated, proofs.ReasonDPoPProofInvalid, "invalid_dpop_proof")
	stranger := &dpopClient{priv: newTestKey(t).priv, alg: "EdDSA"}
	_, ce = call(msg(ticketsAPI), proof(stranger, htu))
	expect("unregistered key", ce, connect.CodeUnauthenticated, proofs.ReasonSignatureKeyUnknown, "invalid_dpop_proof")
	if got := w.f.log.Checkpoint().Size; got != size {
		t.Fatalf("refusals wrote entries: %d -> %d", size, got)
	}

	// A denial is recorded: PermissionDenied with the entry.
	_, ce = call(msg("https://crm.example"), proof(w.exec, htu))
	expect("resource outside the destinations", ce, connect.CodePermissionDenied, proofs.ReasonAudienceNotAllowed, "invalid_target")
	var denied *warrantv1.ExchangeTokenResponse
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if r, ok := v.(*warrantv1.ExchangeTokenResponse); ok {
				denied = r
			}
		}
	}
	if denied == nil || denied.Entry == nil || denied.AccessToken != "" || denied.Entry.Index != size {
		t.Fatalf("denial detail %+v", denied)
	}
	leaf, err := proofs.ParseLeaf(denied.Entry.Leaf)
	if err != nil || leaf.Kind != proofs.KindToken || leaf.Decision.Outcome != proofs.OutcomeDenied {
		t.Fatalf("denied entry %+v: %v", leaf, err)
	}
}
